"""The GraphiQL page: its assets served by this server (or, when asked, its CDN), and its security policy."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.ide_assets import ASSETS_PATH, Manifest, vendored
from app.settings import Settings

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_ASSET_TAG = re.compile(r"<(?:script|link)\b[^>]*>")
_ATTRIBUTE = re.compile(r'\b(src|href|integrity)="([^"]*)"')
_SOURCE = re.compile(r'(?:src|href)="([^"]+)"')
# Relative to /graphql, so that the page also works behind a proxy that serves it under a prefix.
_LOCAL_PREFIX = ASSETS_PATH.lstrip("/")


class MissingAsset(Exception):
    """Strawberry's GraphiQL page loads a file that the package does not hold."""

    def __init__(self, url: str) -> None:
        super().__init__(
            f"The GraphiQL page loads {url}, which is not vendored in app/static/graphiql: run `python -m "
            "scripts.refresh_graphiql` in the repository, or set BOOKWORM_GRAPHIQL_CDN=true to load the "
            "page's assets from their CDN."
        )


@dataclass(frozen=True)
class CdnAsset:
    """A script or style sheet the page loads from another origin, with its subresource integrity."""

    url: str
    integrity: str | None


@dataclass(frozen=True)
class IdePage:
    """The GraphiQL page and the Content-Security-Policy it is sent with."""

    html: str
    policy: str


def graphiql_page(template: str, settings: Settings) -> IdePage:
    """Strawberry's GraphiQL page with its assets on this server (or their CDN, if asked), and its policy."""
    if not settings.graphiql:
        return IdePage("", "")
    html = template if settings.graphiql_cdn else local_page(template, vendored())
    return IdePage(html, content_security_policy(html))


def cdn_assets(html: str) -> list[CdnAsset]:
    """The `https://` scripts and style sheets of a page, in the order it names them."""
    assets = []
    for tag in _ASSET_TAG.findall(html):
        attributes = dict(_ATTRIBUTE.findall(tag))
        url = attributes.get("src") or attributes.get("href") or ""
        if url.startswith("https://"):
            assets.append(CdnAsset(url, attributes.get("integrity")))
    return assets


def local_page(html: str, manifest: Manifest) -> str:
    """Point each asset the page loads from a CDN at this server's copy; MissingAsset if there is none."""
    paths = {file.url: file.path for file in manifest.files()}
    for asset in cdn_assets(html):
        if asset.url not in paths:
            raise MissingAsset(asset.url)
        html = html.replace(f'"{asset.url}"', f'"{_LOCAL_PREFIX}/{paths[asset.url]}"')
    return html


def content_security_policy(html: str) -> str:
    """Allow the page's own inline script (by hash), where its assets come from, and nothing else.

    Hashing the inline script rather than allowing 'unsafe-inline' means a script injected into the page
    (through a query string, say) does not run.
    """
    hashes = " ".join(f"'sha256-{_sha256(script)}'" for script in _INLINE_SCRIPT.findall(html))
    sources = " ".join(sorted({_source(url) for url in _SOURCE.findall(html) if not url.startswith("data:")}))
    directives = [
        "default-src 'none'",
        f"script-src {sources} {hashes}".strip(),
        f"style-src {sources} 'unsafe-inline'".strip(),  # GraphiQL sets style attributes as it runs
        f"font-src {sources} data:".strip(),
        "img-src 'self' data:",
        "connect-src 'self'",  # HTTP and websocket requests to this server only
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


def _sha256(script: str) -> str:
    return base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def _source(url: str) -> str:
    """The CSP source of an asset: its origin, or 'self' for an address on this server."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme else "'self'"
