"""Connecting to a chain: local anvil or Ganache started on a free port, or any RPC URL.

A local chain runs in its own process group and is stopped as a group, so no engine is
left behind (``node_modules/.bin/anvil`` is a node wrapper around the real binary; we
start the real binary, and Ganache's node process, each as a group leader).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

import yaml
from web3 import HTTPProvider, JSONBaseProvider, Web3
from web3.types import RPCEndpoint, RPCResponse

from edgeshare.artifacts import get_project_root
from edgeshare.errors import ChainUnavailable, InputError
from edgeshare.rpc import RpcClient, redact_urls

Engine = Literal["anvil", "ganache"]
ENGINES: tuple[Engine, ...] = ("anvil", "ganache")
# Both engines are started with this mnemonic, so local dev keys are the same on each.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
LOCAL_CHAIN_IDS = frozenset({31337, 1337})


def is_local_chain_id(chain_id: int) -> bool:
    """True for the chain ids of local development chains (anvil 31337, Ganache 1337)."""
    return chain_id in LOCAL_CHAIN_IDS


def get_free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_engine(engine: Engine) -> list[str]:
    """The command that starts ``engine``, preferring the project's own npm install."""
    root = get_project_root()
    if engine == "anvil":
        for path in sorted(root.glob("node_modules/@foundry-rs/anvil-*/bin/anvil")):
            if os.access(path, os.X_OK):
                return [str(path)]
        found = shutil.which("anvil")
        if found:
            return [found]
    else:
        script = root / "node_modules" / "ganache" / "dist" / "node" / "cli.js"
        node = shutil.which("node")
        if script.exists() and node:
            return [node, str(script)]
    raise ChainUnavailable(f"{engine} is not installed; run `make install`")


def build_dev_keys(count: int) -> list[str]:
    """Private keys of the first ``count`` accounts of the local dev mnemonic (hex)."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.to_0x_hex()
        for i in range(count)
    ]


class LocalChain:
    """A local anvil or Ganache on a free port, as a context manager.

    Args:
        engine: ``"anvil"`` or ``"ganache"``.
        accounts: How many dev accounts to fund.
        chain_id: The chain id to run with (default: the engine's usual one).
        block_time: Seconds between blocks; None mines each transaction at once.
        extra_args: More command-line arguments for the engine.
    """

    def __init__(
        self,
        engine: Engine = "anvil",
        *,
        accounts: int = 10,
        chain_id: int | None = None,
        block_time: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        if engine not in ENGINES:
            raise InputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.engine: Engine = engine
        self.accounts = accounts
        self.chain_id = chain_id or (31337 if engine == "anvil" else 1337)
        self.block_time = block_time
        self.extra_args = extra_args
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None
        # anvil spills the state of long chains under $HOME/.foundry/anvil/tmp: it gets a
        # home of its own, removed in stop(), so a chain started here leaves nothing behind
        self._home: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """The chain's HTTP RPC URL."""
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        cmd = find_engine(self.engine)
        if self.engine == "anvil":
            cmd += [
                "--host", "127.0.0.1", "--port", str(self.port),
                "--chain-id", str(self.chain_id), "--accounts", str(self.accounts),
                "--mnemonic", DEV_MNEMONIC, "--balance", "1000000",
            ]  # fmt: skip
            if self.block_time:
                cmd += ["--block-time", str(self.block_time)]
        else:
            cmd += [
                "--server.host", "127.0.0.1", "--server.port", str(self.port),
                "--chain.chainId", str(self.chain_id), "--wallet.totalAccounts",
                str(self.accounts), "--wallet.mnemonic", DEV_MNEMONIC,
                "--wallet.defaultBalance", "1000000", "--logging.quiet",
                "--miner.blockGasLimit", "0x1c9c380",
            ]  # fmt: skip
            if self.block_time:
                cmd += ["--miner.blockTime", str(self.block_time)]
        return cmd + list(self.extra_args)

    def start(self, timeout: float = 60.0) -> LocalChain:
        """Start the engine and wait until it answers RPC calls."""
        self.port = get_free_port()
        # closed in stop(); the engine writes to it for its whole life
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix=f"edgeshare-{self.engine}-", suffix=".log"
        )
        env = None
        if self.engine == "anvil":
            self._home = tempfile.TemporaryDirectory(prefix="edgeshare-anvil-home-")
            env = {**os.environ, "HOME": self._home.name}
        self._proc = subprocess.Popen(
            self._command(),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        w3 = Web3(HTTPProvider(self.url, request_kwargs={"timeout": 5}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ChainUnavailable(f"{self.engine} exited at start:\n{self._read_log()}")
            try:
                if w3.eth.chain_id == self.chain_id:
                    return self
            except Exception:  # not listening yet
                time.sleep(0.1)
        self.stop()
        raise ChainUnavailable(f"{self.engine} did not answer within {timeout:.0f}s")

    def _read_log(self) -> str:
        if self._log is None:
            return ""
        return Path(self._log.name).read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        """Stop the engine's whole process group; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._home is not None:
            self._home.cleanup()
            self._home = None

    def __enter__(self) -> LocalChain:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RpcClientProvider(JSONBaseProvider):
    """A web3 provider that sends every request through an ``RpcClient``, so web3's calls
    get the retries, rate-limit handling and URL redaction of ``edgeshare.rpc``.

    Args:
        url: The JSON-RPC endpoint.
        timeout: Seconds per HTTP request.
    """

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__()
        self.rpc_client = RpcClient(url, timeout=timeout)
        """The client every request goes through (``edgeshare.rpc.get_rpc`` returns it)."""
        self.endpoint_uri = url

    def __str__(self) -> str:
        return f"RPC connection {self.rpc_client.name}"

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        (reply,) = self.rpc_client.batch_replies([(str(method), _to_json(params))])
        return cast(RPCResponse, {"jsonrpc": "2.0", "id": 0, **reply})

    def make_batch_request(self, requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse]:
        replies = self.rpc_client.batch_replies([(str(m), _to_json(p)) for m, p in requests])
        return [cast(RPCResponse, {"jsonrpc": "2.0", "id": i, **r}) for i, r in enumerate(replies)]


def _to_json(params: Any) -> Any:
    """web3's request parameters as plain JSON (they may hold bytes and HexBytes)."""
    return json.loads(Web3.to_json({"params": params or []}))["params"]


CONNECT_TIMEOUT = 30.0
"""Seconds per request of a connection made without a timeout."""


def connect(url: str, timeout: float | None = None) -> Web3:
    """A Web3 connected to ``url``; raises ChainUnavailable if it does not answer.

    Every request goes through an ``RpcClient`` (``RpcClientProvider``), with its retries.

    Args:
        url: The JSON-RPC endpoint.
        timeout: Seconds per request (default ``CONNECT_TIMEOUT``; the CLI passes
            ``EDGESHARE_RPC_TIMEOUT``).
    """
    if not url.lower().startswith(("http://", "https://")):
        scheme = url.partition("://")[0] if "://" in url else ""
        shown = f"a {scheme[:10]}:// URL" if scheme.isalnum() else "something else"
        raise InputError(f"the RPC URL must start with http:// or https://; got {shown}")
    w3 = Web3(RpcClientProvider(url, timeout if timeout is not None else CONNECT_TIMEOUT))
    try:
        w3.eth.chain_id  # noqa: B018 - probes the endpoint
    except ChainUnavailable as exc:
        raise ChainUnavailable(f"cannot reach the chain: {exc}") from None
    except Exception as exc:
        raise ChainUnavailable(redact_urls(f"cannot reach the chain at {url}: {exc}")) from None
    return w3


def get_network_url(name: str) -> str:
    """The RPC URL of a network named in brownie's network config.

    ``~/.brownie/network-config.yaml`` when brownie has written one, else the default
    config inside the installed brownie package, which is found without importing brownie
    (an import would start brownie's own set-up). Without either, an ``InputError`` says
    how to get one: brownie is an extra (``edgeshare[brownie]``), not a dependency.
    """
    import importlib.util

    path = Path.home() / ".brownie" / "network-config.yaml"
    if not path.exists():
        try:
            spec = importlib.util.find_spec("brownie")
        except ImportError:
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise InputError(
                f"--network {name} names a network of brownie's network config, and there "
                "is none: brownie is not installed and ~/.brownie/network-config.yaml does "
                "not exist. Give --rpc-url URL, or pip install 'edgeshare[brownie]'"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / "network-config.yaml"
    config = yaml.safe_load(path.read_text())
    networks = [n for group in config.get("live", []) for n in group.get("networks", [])]
    for network in networks:
        if network.get("id") == name:
            host = os.path.expandvars(str(network["host"]))
            if "$" in host:
                raise InputError(f"network {name!r} needs an environment variable: {host}")
            return host
    known = ", ".join(ENGINES + tuple(n["id"] for n in networks))
    raise InputError(f"unknown network {name!r}; known: {known}")
