"""GraphiQL's scripts and styles, vendored into the package: their manifest, and the route serving them."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.settings import Settings

ASSET_DIR = Path(__file__).parent / "static" / "graphiql"
MANIFEST = "manifest.json"
ASSETS_PATH = "/graphiql/assets"
# Every address names a pinned version, so a browser may keep what it fetched for good.
IMMUTABLE = "public, max-age=31536000, immutable"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


@dataclass(frozen=True, kw_only=True)
class VendoredFile:
    """One file the GraphiQL page loads, as the package keeps it."""

    url: str  # the CDN address strawberry's page names
    path: str  # under ASSET_DIR, and under ASSETS_PATH
    integrity: str  # the page's subresource integrity (sha384-...), which the browser checks
    sha256: str


@dataclass(frozen=True, kw_only=True)
class VendoredPackage:
    """One npm package the files come from, its tarball and its licence."""

    name: str
    version: str
    license: str  # the SPDX expression of its package.json
    licence_file: str  # under ASSET_DIR
    licence_from: str  # name@version of the tarball that held the licence text
    tarball: str
    tarball_integrity: str  # the npm registry's dist.integrity, checked when it was downloaded
    files: tuple[VendoredFile, ...]


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """What scripts/refresh_graphiql.py vendored, and for which page."""

    template: str
    packages: tuple[VendoredPackage, ...]

    def files(self) -> Iterator[VendoredFile]:
        for package in self.packages:
            yield from package.files

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        return cls(template=raw["template"], packages=tuple(_package(p) for p in raw["packages"]))


def _package(raw: dict[str, Any]) -> VendoredPackage:
    files = tuple(VendoredFile(**file) for file in raw["files"])
    return VendoredPackage(**{**raw, "files": files})


@functools.cache
def vendored() -> Manifest:
    """Read the manifest of the vendored assets (once per process)."""
    return Manifest.from_json((ASSET_DIR / MANIFEST).read_text(encoding="utf-8"))


def asset_routes(settings: Settings) -> list[Route]:
    """The route serving the vendored assets, when GraphiQL is on and does not load them from its CDN."""
    if not settings.graphiql or settings.graphiql_cdn:
        return []
    files = {file.path: file for file in vendored().files()}

    async def asset(request: Request) -> Response:
        file = files.get(request.path_params["path"])
        if file is None:  # only what the manifest lists: no other file of the package is reachable
            return PlainTextResponse("Not Found", status_code=404)
        media_type = CONTENT_TYPES.get(PurePosixPath(file.path).suffix, "application/octet-stream")
        return FileResponse(
            ASSET_DIR / file.path, media_type=media_type, headers={"cache-control": IMMUTABLE}
        )

    # graphiql.min.js is 3.5 MB, a fifth of that gzipped; a browser fetches it once.
    gzip = Middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    return [Route(f"{ASSETS_PATH}/{{path:path}}", asset, methods=["GET", "HEAD"], middleware=[gzip])]
