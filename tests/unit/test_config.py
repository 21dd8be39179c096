"""Settings: where the RPC URL comes from, edgeshare.toml, and the log level flags."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgeshare.cli.common import build_target
from edgeshare.config import CONFIG_ENV, load_settings
from edgeshare.errors import InputError
from tests.inproc import run_main


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No RPC or config variables set, in an empty working directory."""
    for name in ("EDGESHARE_RPC_URL", "ETH_RPC_URL", CONFIG_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_rpc_url__flag_then_edgeshare_variable_then_foundrys(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ETH_RPC_URL", "http://foundry:8545")
    assert build_target(None, None, start_local=False).url == "http://foundry:8545"
    clean_env.setenv("EDGESHARE_RPC_URL", "http://ours:8545")
    assert build_target(None, None, start_local=False).url == "http://ours:8545"
    assert build_target("http://flag:8545", None, start_local=False).url == "http://flag:8545"


def test_rpc_url__none_anywhere_names_every_way_to_give_one(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match=r"--rpc-url.*EDGESHARE_RPC_URL"):
        build_target(None, None, start_local=False)
    assert build_target(None, None).engine == "anvil"  # a command that starts its own chain


def test_network__from_edgeshare_toml_with_variables(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "edgeshare.toml").write_text(
        '[networks.testnet]\nrpc_url = "https://rpc.example/v2/${API_KEY}"\nconfirmations = 3\n'
    )
    with pytest.raises(InputError, match="needs the environment variable API_KEY"):
        build_target(None, "testnet", start_local=False)
    clean_env.setenv("API_KEY", "k123")
    target = build_target(None, "testnet", start_local=False)
    assert target.url == "https://rpc.example/v2/k123"
    assert target.settings.networks["testnet"].confirmations == 3


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("[networks.x\n", "is not valid TOML"),
        ('[networks.x]\nrpc_url = "http://a"\nconfirmation = 2\n', "confirmation: unknown field"),
        ("[networks.x]\nconfirmations = 2\n", "networks.x.rpc_url"),
    ],
)
def test_config_file__bad_file_names_the_problem(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, body: str, problem: str
) -> None:
    path = tmp_path / "other.toml"
    path.write_text(body)
    clean_env.setenv(CONFIG_ENV, str(path))
    with pytest.raises(InputError, match=problem):
        load_settings()


def test_config_file__named_but_missing_is_an_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(CONFIG_ENV, "nowhere.toml")
    with pytest.raises(InputError, match=r"nowhere\.toml does not exist"):
        load_settings()


@pytest.mark.parametrize(
    ("flags", "level"),
    [
        ([], logging.WARNING),
        (["-v"], logging.INFO),
        (["-vv"], logging.DEBUG),
        (["-q"], logging.ERROR),
    ],
)
def test_log_level__from_v_and_q(
    flags: list[str], level: int, capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    code, _ = run_main(capsys, clean_env, {}, *flags, "nodes", "list", "--help")
    assert code == 0
    assert logging.getLogger().level == level


def test_log_level__v_and_q_together_is_bad_input(
    capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    code, out = run_main(capsys, clean_env, {}, "-v", "-q", "nodes", "list")
    assert code == 2 and "not both" in out


def test_index_depth__flag_then_the_networks_setting(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from edgeshare.cli.common import get_index_depth

    (tmp_path / "edgeshare.toml").write_text(
        '[networks.slow]\nrpc_url = "http://a"\nconfirmations = 12\n'
        '[networks.fast]\nrpc_url = "http://b"\n'
    )
    assert get_index_depth("slow") == 12
    assert get_index_depth("slow", 3) == 3
    assert get_index_depth("fast") is None  # the index's own default
    assert get_index_depth(None) is None
