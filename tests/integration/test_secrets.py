"""Secrets never leave the process: every command runs with a private key (and a keystore
password) set, on success and on failure, and neither appears in any output or in any
file the tools write (manifest, signed reports, index database, reports)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from edgeshare.chain import LocalChain, build_dev_keys, connect
from edgeshare.deploy import read_manifest
from edgeshare.signer import Signer
from edgeshare.suite import Suite, send_increase_time, send_mint_mock
from edgeshare.tx import Transactor
from tests.inproc import run_main

PASSWORD = "correct horse battery staple 7f3a"


@pytest.fixture(scope="module")
def secret_key() -> str:
    """A key nobody else knows (not a dev key), funded on each test chain."""
    return Account.create().key.to_0x_hex()


@pytest.fixture
def chain(secret_key: str) -> Iterator[LocalChain]:
    with LocalChain("anvil") as local:
        address = Account.from_key(secret_key).address
        connect(local.url).provider.make_request("anvil_setBalance", [address, hex(10**22)])  # type: ignore[arg-type]
        yield local


def _leaks(secret_key: str, text: str) -> list[str]:
    body = secret_key[2:]
    needles = [body.lower(), body.upper(), PASSWORD]
    return [n[:6] + "..." for n in needles if n in text]


def test_every_command__never_prints_or_writes_the_key(
    secret_key: str,
    chain: LocalChain,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    me = Account.from_key(secret_key).address
    keystore = tmp_path / "keystore.json"
    keystore.write_text(json.dumps(Account.encrypt(secret_key, PASSWORD)))
    env = {"SECRET_KEY": secret_key, "EDGESHARE_KEYSTORE_PASSWORD": PASSWORD}
    manifest, db = str(tmp_path / "m.json"), str(tmp_path / "index.db")
    at = ["--rpc-url", chain.url, "--manifest", manifest]
    signed = ["--private-key-env", "SECRET_KEY"]
    outputs: list[str] = []

    def run(*args: str, expect: int = 0) -> None:
        code, output = run_main(capsys, monkeypatch, env, *args)
        assert code == expect, output
        outputs.append(output)

    run("deploy", *at, *signed, "--epoch-length", "60", "--challenge-period", "3600",
        "--unlock-period", "60")  # fmt: skip
    (tmp_path / "nodes.yaml").write_text(
        f'nodes:\n  - operator: "{me}"\n    attestor: "{me}"\n    shares: 1000\n'
        "    price_per_1k: 0.002\n    operator_cut_bps: 500\n    region: Accra\n"
        "    external_id: accra-1\n"
    )
    run("nodes", "register", "nodes.yaml", *at, *signed)
    run("nodes", "list", *at)
    w3 = connect(chain.url)
    suite = Suite.load(w3, read_manifest(Path(manifest)))  # type: ignore[arg-type]
    send_mint_mock(Transactor(w3, Signer.from_key(secret_key)), suite, me, 10**12)
    send_increase_time(w3, 600)
    (tmp_path / "usage.csv").write_text(
        "node_id,epoch,inferences,latency_ms,uptime_bps\n1,0,5000,40,9990\n1,1,7000,41,9980\n"
    )
    run("attest", "sign", "usage.csv", "--attestor-key-env", "SECRET_KEY", "-o", "signed.json", *at)
    run("attest", "post", "signed.json", *at, *signed)
    send_increase_time(w3, 3_600)
    run("attest", "finalize", "signed.json", *at, "--keystore", str(keystore))
    send_increase_time(w3, 60)
    run("claim", *at, *signed)
    run("shares", "transfer", "1", build_dev_keys_address(), "10", *at, *signed)
    run("portfolio", me, *at)
    run("operator", "set-price", "1", "0.45", *at, *signed)
    run("operator", "propose-cut", "1", "4", *at, *signed, "--dry-run")
    run("guardian", "pause", *at, "--keystore", str(keystore))
    run("guardian", "unpause", *at, *signed, "--json")
    run("owner", "set-treasury", me, *at, *signed)
    run("withdraw", *at, *signed)
    run("dev", "mint", me, "5", *at, *signed)
    run("status", "--operator", me, "--investor", me, *at)
    run("index", *at, "--db", db)
    run("market", *at, "--db", db)
    run("report", "operator", me, "--format", "html", "-o", "op.html", *at, "--db", db)
    run("report", "investor", me, "--format", "csv", "-o", "inv.csv", *at, "--db", db)
    # and failures, where a careless error message would show what it was given
    run("attest", "post", "usage.csv", *at, *signed, expect=2)
    run("claim", "--node", "99", *at, *signed, expect=2)
    run("deploy", *at, *signed, "--protocol-fee-bps", "999", expect=2)
    env["EDGESHARE_KEYSTORE_PASSWORD"] = "wrong " + PASSWORD
    run("claim", *at, "--keystore", str(keystore), expect=2)
    env["EDGESHARE_KEYSTORE_PASSWORD"] = PASSWORD
    env["BROKEN_KEY"] = secret_key[:-1] + "x"  # a typo'd key must not be echoed either
    run("claim", *at, "--private-key-env", "BROKEN_KEY", expect=2)
    run("operator", "withdraw", *at, "--private-key-env", "BROKEN_KEY", expect=2)
    run("registrar", "retire", "1", *at, "--keystore", str(keystore), "--dry-run")
    # the easy slip: the key itself where the variable's name belongs
    run("deploy", *at, "--private-key-env", secret_key, expect=2)
    run("attest", "sign", "usage.csv", "--attestor-key-env", secret_key, "-o", "x.json", *at,
        expect=2)  # fmt: skip
    run("operator", "pause", "1", *at, "--private-key-env", secret_key[2:], expect=2)

    assert len(outputs) == 31
    # every other role command, as a dry run and for real where it can run here
    other = build_dev_keys_address()
    for args in (
        ["operator", "rotate-attestor", "1", other], ["operator", "hand-over", "1", other],
        ["operator", "set-metadata", "1", "--endpoint", "https://n1.example.com/v1"],
        ["operator", "pause", "1"], ["operator", "resume", "1"], ["operator", "accept", "1"],
        ["registrar", "pause", "1"], ["registrar", "resume", "1"],
        ["owner", "set-registrar", me], ["owner", "set-guardian", me],
        ["owner", "transfer-ownership", other], ["owner", "accept-ownership"],
        ["owner", "recover-excess", me], ["guardian", "dispute", "1", "0"],
        ["dev", "advance", "60"],
    ):  # fmt: skip
        key = [] if args[0] == "dev" else signed  # moving a dev chain's clock needs no key
        for extra in ([] if args[0] == "dev" else ["--dry-run"], ["--json"]):
            code, output = run_main(capsys, monkeypatch, env, *args, *at, *key, *extra)
            assert code in (0, 1, 2), output
            assert "Traceback" not in output, output
            outputs.append(output)
    for output in outputs:
        assert not _leaks(secret_key, output), output
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != keystore]
    assert {p.name for p in written} >= {"m.json", "signed.json", "index.db", "op.html", "inv.csv"}
    for path in written:
        assert not _leaks(secret_key, path.read_bytes().decode("latin-1")), path
        assert secret_key[2:].encode() not in path.read_bytes()
        assert bytes.fromhex(secret_key[2:]) not in path.read_bytes(), path


def build_dev_keys_address() -> str:
    """Someone to give shares to."""
    return Signer.from_key(build_dev_keys(2)[1]).address


def test_a_key_given_as_the_variable_name__is_refused_without_being_shown(
    secret_key: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for args in (
        ["deploy", "--private-key-env", secret_key],
        ["attest", "sign", "u.csv", "--attestor-key-env", secret_key, "-o", "o.json",
         "--rpc-url", "http://127.0.0.1:9"],
        ["claim", "--rpc-url", "http://127.0.0.1:9", "--private-key-env", secret_key.upper()],
    ):  # fmt: skip
        code, output = run_main(capsys, monkeypatch, {}, *args)
        assert code == 2, output
        assert "looks like a private key" in output and "not shown" in output
        assert not _leaks(secret_key, output), output


def test_a_dead_endpoint__never_shows_the_url_path_and_says_it_retries(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeshare.chain import get_free_port

    url = f"http://127.0.0.1:{get_free_port()}/v2/MYSECRETAPIKEY"
    env = {"EDGESHARE_RPC_TIMEOUT": "1"}
    code, output = run_main(capsys, monkeypatch, env, "status", "--rpc-url", url)
    assert code == 1, output
    assert "MYSECRETAPIKEY" not in output and "/v2" not in output
    assert "retrying (" in output
    code, output = run_main(capsys, monkeypatch, env, "status", "--rpc-url", url, "--json")
    assert "MYSECRETAPIKEY" not in output
    assert json.loads(output[: output.rindex("}") + 1][output.index("{") :])["exit"] == 1


def test_redact_urls__cuts_the_paths_urllib3_and_requests_name_alone() -> None:
    from edgeshare.rpc import redact_urls

    text = (
        "HTTPConnectionPool(host='127.0.0.1', port=18999): Max retries exceeded with url: "
        "/v2/MYSECRETAPIKEY (Caused by NewConnectionError('...'))"
    )
    assert "MYSECRETAPIKEY" not in redact_urls(text)
    assert "host='127.0.0.1'" in redact_urls(text)
    assert redact_urls("https://eth.example.com/v3/KEY?x=1") == "https://eth.example.com/..."


def test_urls_of_any_scheme_and_near_keys__are_never_echoed(secret_key: str) -> None:
    from edgeshare.chain import connect
    from edgeshare.errors import InputError, KeyUnavailable
    from edgeshare.rpc import redact_urls
    from edgeshare.signer import check_env_name

    for url in ("wss://eth.example.com/v2/MYSECRETAPIKEY", "HTTPS://h.example/v2/MYSECRETAPIKEY"):
        assert "MYSECRETAPIKEY" not in redact_urls(f"failed: {url}")
    with pytest.raises(InputError) as raised:
        connect("wss://eth.example.com/v2/MYSECRETAPIKEY")
    assert "MYSECRETAPIKEY" not in str(raised.value) and "wss://" in str(raised.value)
    for near_key in (secret_key[3:], secret_key[2:] + "0", "key " + secret_key[2:]):
        with pytest.raises(KeyUnavailable) as refused:
            check_env_name(near_key)
        assert secret_key[4:20] not in str(refused.value)
