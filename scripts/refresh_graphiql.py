"""Vendor the scripts and style sheets of strawberry's GraphiQL page into app/static/graphiql.

Strawberry's page loads pinned versions (name@version) from unpkg.com. For each package, this downloads
the tarball of that version from the npm registry, checks it against the registry's integrity hash, takes
the files the page names (each checked against the page's own subresource integrity) and the package's
licence, and writes app/static/graphiql/manifest.json. Run it from the repository root after upgrading
strawberry-graphql, then commit what changed:

    python -m scripts.refresh_graphiql
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import re
import shutil
import sys
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from strawberry.http.ides import get_graphql_ide_html

from app.ide_assets import ASSET_DIR, MANIFEST, Manifest, VendoredFile, VendoredPackage
from app.schema.ide import CdnAsset, cdn_assets

REGISTRY = "https://registry.npmjs.org"
UNPKG = re.compile(r"https://unpkg\.com/((?:@[^/@]+/)?[^/@]+)@([^/]+)/(.+)")
LICENCE = re.compile(r"(?:LICEN[CS]E|COPYING)(?:\.md|\.txt)?", re.IGNORECASE)

Fetch = Callable[[str], bytes]


class RefreshError(Exception):
    """A download did not match its hash, or a package lacks what the page needs."""


@dataclass
class Pinned:
    """One package@version the page loads, and the files it loads from it (path in the package, asset)."""

    name: str
    version: str
    files: list[tuple[str, CdnAsset]]

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass
class Fetched:
    """A pinned package's tarball, checked, with its registry metadata and member files."""

    pinned: Pinned
    tarball: str
    integrity: str
    license: str
    repository: str
    members: dict[str, bytes]


def pinned_packages(html: str) -> list[Pinned]:
    """The packages a page loads from unpkg.com, in the order it first names them."""
    packages: dict[tuple[str, str], Pinned] = {}
    for asset in cdn_assets(html):
        match = UNPKG.fullmatch(asset.url)
        if match is None:
            raise RefreshError(f"{asset.url} is not an unpkg.com address of a pinned name@version")
        name, version, path = match.groups()
        if ".." in PurePosixPath(path).parts:
            raise RefreshError(f"{asset.url} leaves its package")
        packages.setdefault((name, version), Pinned(name, version, [])).files.append((path, asset))
    return list(packages.values())


def fetch_package(pinned: Pinned, fetch: Fetch) -> Fetched:
    """Download a pinned package's tarball from the npm registry and check it against dist.integrity."""
    metadata = json.loads(fetch(f"{REGISTRY}/{quote(pinned.name, safe='@')}/{pinned.version}"))
    dist = metadata["dist"]
    if not dist["tarball"].startswith(f"{REGISTRY}/"):
        raise RefreshError(f"{pinned.key}: the registry names a tarball elsewhere: {dist['tarball']}")
    tarball = fetch(dist["tarball"])
    check_integrity(tarball, dist["integrity"], what=f"{pinned.key}'s tarball")
    repository = metadata.get("repository") or {}
    return Fetched(
        pinned=pinned,
        tarball=dist["tarball"],
        integrity=dist["integrity"],
        license=str(metadata.get("license", "")),
        repository=_repository(repository.get("url", "") if isinstance(repository, dict) else repository),
        members=_members(tarball),
    )


def check_integrity(data: bytes, integrity: str, *, what: str) -> None:
    """Raise RefreshError unless `data` matches every hash of a subresource-integrity string."""
    hashes = integrity.split()
    for expected in hashes:
        algorithm, _, digest = expected.partition("-")
        if algorithm not in {"sha256", "sha384", "sha512"}:
            raise RefreshError(f"{what}: unknown integrity algorithm {algorithm!r}")
        if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() != digest:
            raise RefreshError(f"{what} does not match its integrity {expected}")
    if not hashes:
        raise RefreshError(f"{what} has no integrity hash to check")


def vendor(fetched: list[Fetched], out: Path) -> Manifest:
    """Write each package's files and licence under `out`; return their manifest."""
    packages = []
    for package in fetched:
        pinned = package.pinned
        files = []
        for path, asset in pinned.files:
            data = package.members.get(path)
            if data is None:
                raise RefreshError(f"{pinned.key}'s tarball has no {path}")
            check_integrity(data, asset.integrity or "", what=asset.url)
            files.append(_write(out, f"{pinned.key}/{path}", data, asset))
        source, name, text = _licence(package, fetched)
        licence_file = f"{pinned.key}/{name}"
        (out / licence_file).write_bytes(text)
        packages.append(
            VendoredPackage(
                name=pinned.name,
                version=pinned.version,
                license=package.license,
                licence_file=licence_file,
                licence_from=source.pinned.key,
                tarball=package.tarball,
                tarball_integrity=package.integrity,
                files=tuple(files),
            )
        )
    template = (
        f"strawberry-graphql {installed_version('strawberry-graphql')}: strawberry/static/graphiql.html"
    )
    manifest = Manifest(template=template, packages=tuple(packages))
    (out / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def refresh(html: str, fetch: Fetch, target: Path) -> Manifest:
    """Replace `target` with the assets the page loads; on any error, leave it as it was."""
    fetched = [fetch_package(pinned, fetch) for pinned in pinned_packages(html)]
    staging = target.with_name(f"{target.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        manifest = vendor(fetched, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return manifest


def _write(out: Path, path: str, data: bytes, asset: CdnAsset) -> VendoredFile:
    (out / path).parent.mkdir(parents=True, exist_ok=True)
    (out / path).write_bytes(data)
    integrity = asset.integrity or ""
    return VendoredFile(
        url=asset.url, path=path, integrity=integrity, sha256=hashlib.sha256(data).hexdigest()
    )


def _licence(package: Fetched, fetched: list[Fetched]) -> tuple[Fetched, str, bytes]:
    """The package's licence file; else that of a package from the same repository under the same licence.

    (@graphiql/plugin-explorer's tarball has none; graphiql's, from the same repository, has its text.)
    """
    candidates = [package] + [
        other
        for other in fetched
        if other is not package
        and other.repository == package.repository
        and other.license == package.license
    ]
    for candidate in candidates:
        for member, text in sorted(candidate.members.items()):
            if "/" not in member and LICENCE.fullmatch(member):
                return candidate, member, text
    raise RefreshError(
        f"{package.pinned.key} has no licence file in its tarball, nor has any other package from "
        f"{package.repository or 'its repository'} under {package.license or 'the same licence'}"
    )


def _members(tarball: bytes) -> dict[str, bytes]:
    """The regular files of an npm tarball, by path inside its top directory (`package/`, usually)."""
    members = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member in archive.getmembers():
            extracted = archive.extractfile(member) if member.isfile() else None
            if extracted is not None:
                _, _, path = member.name.partition("/")
                members[path] = extracted.read()
    return members


def _repository(url: str) -> str:
    """A repository URL without scheme, `git+`, `.git` or case: the same repository compares equal."""
    bare = re.sub(r"^(?:git\+)?[a-z]+://", "", url.strip().lower())
    return bare.removesuffix(".git").rstrip("/")


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        body: bytes = response.read()
        return body


def main() -> int:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    root = Path(__file__).resolve().parents[1]
    if root not in ASSET_DIR.parents:
        print(f"app is imported from {ASSET_DIR.parents[1]}, not {root}: run from the repository root")
        return 2
    try:
        manifest = refresh(get_graphql_ide_html("graphiql"), _download, ASSET_DIR)
    except RefreshError as e:
        print(f"refresh_graphiql: {e}; app/static/graphiql is unchanged", file=sys.stderr)
        return 1
    for package in manifest.packages:
        print(f"{package.name}@{package.version} ({package.license}): {len(package.files)} file(s)")
    print(f"wrote {ASSET_DIR.relative_to(root)}/{MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
