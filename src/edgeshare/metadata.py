"""Node metadata: what a developer needs to pick a node and call it.

A node list's ``endpoint``, ``models``, ``gpu`` and ``capacity_rps`` go into one JSON
document, written canonically (sorted keys, no spaces, UTF-8), so the same fields always
give the same bytes and the same SHA-256. The registry keeps only a URI
(``metadata_uri``, at most 256 bytes); the content hash rides in its fragment,
``<uri>#sha256=<64 hex digits>``, so whoever reads the URI can check what it got:

- on local chains: ``data:application/json;base64,<document>#sha256=<hex>`` when that fits
  in 256 bytes, else ``file:///<dir of the node list>/<name>.json#sha256=<hex>``;
- on public chains: the entry's own ``metadata_uri`` (``ipfs://`` or ``https://``), where
  the operator publishes the document, with the fragment added.

``fetch_metadata`` reads ``data:`` and ``file:`` URIs and checks the hash; ``http(s)`` and
``ipfs`` URIs are not fetched at run time (a URI on chain is anyone's input: fetching it
would let a registered node make every reader's machine call an address of its choice, and
the board would wait on strangers' servers).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from pydantic import AfterValidator, Field, ValidationError

from edgeshare.errors import EdgeShareError
from edgeshare.models import StrictModel

MAX_URI_BYTES = 256
"""NodeRegistry keeps ``metadata_uri`` as ``String[256]``."""
MAX_DOCUMENT_BYTES = 64 * 1024
"""The largest metadata document read from a file."""
DATA_PREFIX = "data:application/json;base64,"
HASH_FRAGMENT = re.compile(r"^sha256=(?P<hex>[0-9a-f]{64})$")
PUBLISHED_SCHEMES = ("ipfs", "https")
"""Where a document on a public chain may live."""


class MetadataError(EdgeShareError, ValueError):
    """A metadata document or URI is malformed, or its content does not match its hash."""

    exit_code = 2


class MetadataNotFetched(MetadataError):
    """The URI is of a kind that is not fetched at run time (``http(s)``, ``ipfs``)."""


def _check_endpoint(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("an endpoint must not carry credentials (they would be public)")
    if any(c.isspace() for c in value):
        raise ValueError("an endpoint must not contain spaces")
    return value


def _check_models(value: list[str]) -> list[str]:
    seen: set[str] = set()
    for name in value:
        if not name.strip():
            raise ValueError("a model name must not be empty")
        if name in seen:
            raise ValueError(f"model {name!r} is listed twice")
        seen.add(name)
    return value


Endpoint = Annotated[str, Field(max_length=200), AfterValidator(_check_endpoint)]
ModelName = Annotated[str, Field(min_length=1, max_length=100)]
Models = Annotated[list[ModelName], Field(min_length=1), AfterValidator(_check_models)]


class NodeMetadata(StrictModel):
    """The metadata document of a node: how to reach it and what it serves."""

    endpoint: Endpoint | None = None
    """The URL developers send inference requests to (http or https)."""
    models: (
        Annotated[list[ModelName], Field(min_length=1), AfterValidator(_check_models)] | None
    ) = None
    """The models the node serves, by name."""
    gpu: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """The accelerator, e.g. ``H100 80GB``."""
    capacity_rps: Annotated[int, Field(ge=1, le=10**9)] | None = None
    """Sustained requests per second the node can take."""

    def is_empty(self) -> bool:
        """True when no field is set (then there is no document)."""
        return not self.model_dump(exclude_none=True)


def build_document(metadata: NodeMetadata) -> bytes:
    """The canonical bytes of a metadata document: JSON with sorted keys, no spaces, UTF-8,
    unset fields left out."""
    fields = metadata.model_dump(exclude_none=True)
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def get_content_hash(document: bytes) -> str:
    """The SHA-256 of a document, 64 lower-case hex digits."""
    return hashlib.sha256(document).hexdigest()


def build_data_uri(document: bytes) -> str:
    """``data:application/json;base64,...#sha256=...`` of a document (may exceed 256 bytes)."""
    body = base64.b64encode(document).decode()
    return f"{DATA_PREFIX}{body}#sha256={get_content_hash(document)}"


def build_file_uri(path: Path, document: bytes) -> str:
    """``file:///...#sha256=...`` of a document to be written at ``path``."""
    return f"{path.resolve().as_uri()}#sha256={get_content_hash(document)}"


def add_content_hash(uri: str, document: bytes) -> str:
    """``uri`` with the document's hash as its fragment; a fragment already there must be
    that same hash."""
    base, has_fragment, fragment = uri.partition("#")
    digest = get_content_hash(document)
    if has_fragment:
        found = HASH_FRAGMENT.match(fragment)
        if found is None:
            raise MetadataError(f"{uri}: the fragment must be #sha256=<64 hex digits> or absent")
        if found.group("hex") != digest:
            raise MetadataError(
                f"{uri}: its #sha256 is not the hash of the metadata fields ({digest})"
            )
    return f"{base}#sha256={digest}"


def get_uri_hash(uri: str) -> str | None:
    """The content hash a URI carries in its ``#sha256=`` fragment, else None."""
    found = HASH_FRAGMENT.match(uri.partition("#")[2])
    return found.group("hex") if found else None


def get_document_name(document: bytes) -> str:
    """The file name a document is written under next to its node list."""
    return f"node-metadata-{get_content_hash(document)[:16]}.json"


def fetch_metadata(uri: str, *, allow_files: bool = True) -> NodeMetadata:
    """Read the metadata document at ``uri`` and check it against the URI's hash.

    Args:
        uri: A registered ``metadata_uri`` with a ``#sha256=<hex>`` fragment.
        allow_files: Whether ``file:`` URIs may be read (only meaningful on the machine
            that wrote them: a local chain's).

    Raises:
        MetadataNotFetched: For ``http(s)``, ``ipfs`` and other URIs that are not read at
            run time, and ``file:`` ones when ``allow_files`` is False.
        MetadataError: For a malformed URI or document, or content that does not match
            the hash.
    """
    base, _, _ = uri.partition("#")
    digest = get_uri_hash(uri)
    scheme = urlsplit(base).scheme.lower()
    if scheme == "data":
        document = _read_data_uri(base)
    elif scheme == "file" and allow_files:
        document = _read_file_uri(base)
    else:
        raise MetadataNotFetched(f"{scheme or 'a schemeless'} URI is not fetched at run time")
    if digest is None:
        raise MetadataError("the URI carries no #sha256=<hex> content hash")
    if get_content_hash(document) != digest:
        raise MetadataError("the document does not match the URI's #sha256 (changed or replaced)")
    try:
        data: Any = json.loads(document)
        return NodeMetadata.model_validate(data)
    except (ValueError, ValidationError) as exc:
        raise MetadataError(f"not a node metadata document: {exc}") from None


def _read_data_uri(base: str) -> bytes:
    head, comma, body = base.partition(",")
    if not comma or not head.lower().startswith("data:application/json"):
        raise MetadataError("a data: URI must be data:application/json[;base64],...")
    if head.lower().endswith(";base64"):
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error:
            raise MetadataError("the data: URI's base64 is malformed") from None
    return unquote(body).encode()


def _read_file_uri(base: str) -> bytes:
    parts = urlsplit(base)
    if parts.netloc not in ("", "localhost"):
        raise MetadataNotFetched(f"file URI of another host ({parts.netloc}) is not fetched")
    path = Path(url2pathname(parts.path))
    try:
        with path.open("rb") as handle:
            document = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise MetadataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(document) > MAX_DOCUMENT_BYTES:
        raise MetadataError(f"{path} is larger than {MAX_DOCUMENT_BYTES} bytes")
    return document
