"""Settings: the one module that reads the environment and ``edgeshare.toml``.

Everything else takes its settings as arguments, so the library behaves the same
whoever calls it, and a test sets a value by passing it. The command line resolves, in
order: its flags, then the environment, then ``edgeshare.toml`` in the current directory
(or the file ``EDGESHARE_CONFIG`` names), then the defaults.

The RPC URL comes from ``--rpc-url``, else ``EDGESHARE_RPC_URL``, else ``ETH_RPC_URL``
(Foundry's convention); ``--network NAME`` names a network of ``edgeshare.toml``::

    [networks.sepolia]
    rpc_url = "${SEPOLIA_RPC_URL}"   # ${VAR} is read from the environment
    confirmations = 2

or, when brownie is installed, one of brownie's network config.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError

from edgeshare.errors import InputError
from edgeshare.models import StrictModel

CONFIG_FILE = Path("edgeshare.toml")
CONFIG_ENV = "EDGESHARE_CONFIG"
RPC_URL_ENVS = ("EDGESHARE_RPC_URL", "ETH_RPC_URL")
RPC_TIMEOUT_ENV = "EDGESHARE_RPC_TIMEOUT"
MAX_FEE_ENV = "EDGESHARE_MAX_FEE_GWEI"
KEYSTORE_PASSWORD_ENV = "EDGESHARE_KEYSTORE_PASSWORD"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class NetworkConfig(StrictModel):
    """One named network of ``edgeshare.toml``."""

    rpc_url: Annotated[str, Field(min_length=1)]
    """The JSON-RPC URL; ``${VAR}`` parts are read from the environment."""
    confirmations: Annotated[int, Field(ge=0, le=1_000)] | None = None
    """Blocks the index stays behind the head on this network (default: the index's)."""


class ConfigFile(StrictModel):
    """``edgeshare.toml``."""

    networks: dict[str, NetworkConfig] = Field(default_factory=dict)


class Settings(StrictModel):
    """What the environment and the config file say (None: not set)."""

    rpc_url: str | None = None
    rpc_timeout: float | None = None
    """Seconds per RPC request."""
    max_fee_per_gas: int | None = None
    """Wei per gas no transaction may exceed."""
    keystore_password: str | None = Field(default=None, repr=False)
    networks: dict[str, NetworkConfig] = Field(default_factory=dict)

    def get_network(self, name: str, environ: Mapping[str, str]) -> NetworkConfig | None:
        """The named network, its ``${VAR}`` parts filled from ``environ``."""
        found = self.networks.get(name)
        if found is None:
            return None

        def fill(match: re.Match[str]) -> str:
            value = environ.get(match.group(1))
            if not value:
                raise InputError(
                    f"network {name!r} in {CONFIG_FILE} needs the environment variable "
                    f"{match.group(1)}, which is not set"
                )
            return value

        return found.model_copy(update={"rpc_url": _VAR.sub(fill, found.rpc_url)})


def parse_rpc_timeout(raw: str) -> float:
    """Seconds from ``EDGESHARE_RPC_TIMEOUT`` text: a number in (0, 3600]."""
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3_600:
        raise InputError(f"{RPC_TIMEOUT_ENV} must be a number of seconds (0-3600], got {raw!r}")
    return value


def parse_max_fee_gwei(raw: str) -> int:
    """Wei per gas from ``EDGESHARE_MAX_FEE_GWEI`` text: a whole number of gwei above 0."""
    raw = raw.strip()
    if not raw.isdigit() or int(raw) == 0:
        raise InputError(f"{MAX_FEE_ENV} must be a whole number of gwei above 0, got {raw!r}")
    return int(raw) * 10**9


def read_config_file(path: Path) -> ConfigFile:
    """Parse ``edgeshare.toml``; every problem names the file and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}") from None
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: "
            + ("unknown field" if err["type"] == "extra_forbidden" else str(err["msg"]))
            for err in exc.errors()
        )
        raise InputError(f"config file {path}: {problems}") from None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment (default ``os.environ``) and the config file."""
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_ENV)
    path = Path(named) if named else CONFIG_FILE
    config = read_config_file(path) if named or path.is_file() else ConfigFile()
    timeout, max_fee = env.get(RPC_TIMEOUT_ENV, ""), env.get(MAX_FEE_ENV, "")
    return Settings(
        rpc_url=next((env[name] for name in RPC_URL_ENVS if env.get(name)), None),
        rpc_timeout=parse_rpc_timeout(timeout) if timeout.strip() else None,
        max_fee_per_gas=parse_max_fee_gwei(max_fee) if max_fee.strip() else None,
        keystore_password=env.get(KEYSTORE_PASSWORD_ENV),
        networks=config.networks,
    )


def read_env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A setting the environment variable ``name`` holds (e.g. ``EDGESHARE_CLIENT_DB``)."""
    return (os.environ if environ is None else environ).get(name)


def read_secret_env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the environment variable the user named (e.g. ``--private-key-env``)."""
    return (os.environ if environ is None else environ).get(name)
