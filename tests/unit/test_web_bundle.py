"""The web app's bundle in the package is built from the sources in web/ as they are now
(the banner of app.js records their sha256; `make web` rebuilds it), and its index.html
loads only the bundle's own files, with no inline script or style (the API's
Content-Security-Policy allows neither)."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
STATIC = ROOT / "src" / "edgeshare" / "web" / "static"
BANNER = re.compile(r"^/\* edgeshare-web sources sha256:([0-9a-f]{64}) ")


def get_sources_hash() -> str:
    """web/build.mjs's hash: over every file of web/src, web/index.html and
    web/build.mjs in sorted order of their path under web/: path, NUL, content, NUL."""
    files = [*(p for p in (WEB / "src").rglob("*") if p.is_file())]
    files += [WEB / "index.html", WEB / "build.mjs"]
    digest = hashlib.sha256()
    for rel in sorted(p.relative_to(WEB).as_posix() for p in files):
        digest.update(rel.encode() + b"\0" + (WEB / rel).read_bytes() + b"\0")
    return digest.hexdigest()


def test_bundle_is_built_from_the_current_sources() -> None:
    for name in ("index.html", "app.js", "app.css"):
        assert (STATIC / name).is_file(), f"{STATIC / name} is missing: run `make web`"
    found = BANNER.match((STATIC / "app.js").read_text(encoding="utf-8"))
    assert found, "app.js has no sources banner: run `make web`"
    assert found.group(1) == get_sources_hash(), (
        "the bundle in src/edgeshare/web/static/ is stale (web/ changed since it was "
        "built): run `make web` and commit the result"
    )
    assert (STATIC / "index.html").read_bytes() == (WEB / "index.html").read_bytes()


class _Page(HTMLParser):
    """The tags of index.html that load something, and any inline script or style."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.refs.append(str(found[name]))
        if "style" in found:
            self.inline.append(f"style attribute on <{tag}>")
        if any(name.startswith("on") for name in found):
            self.inline.append(f"event handler attribute on <{tag}>")
        self._open = tag if tag in ("script", "style") else None

    def handle_data(self, data: str) -> None:
        if self._open and data.strip():
            self.inline.append(f"inline <{self._open}>")


def test_index_html_loads_only_local_assets_and_nothing_inline() -> None:
    page = _Page()
    page.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    assert not page.inline, page.inline
    assert sorted(page.refs) == ["app.css", "app.js", "data:,"], page.refs
    for ref in page.refs:
        assert ref == "data:," or (STATIC / ref).is_file(), ref


def test_bundle_fetches_nothing_from_elsewhere() -> None:
    css = (STATIC / "app.css").read_text(encoding="utf-8")
    assert "@import" not in css and "url(http" not in css and "@font-face" not in css
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    # the only URLs the app builds are same-origin /api/ paths
    assert "fetch(`/api/" in js
    assert not re.search(r"fetch\(\s*[\"'`]https?://", js)
