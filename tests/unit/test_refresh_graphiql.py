"""scripts/refresh_graphiql.py against an npm registry kept in memory: what it vendors, what it refuses."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from app.ide_assets import MANIFEST, Manifest
from scripts.refresh_graphiql import REGISTRY, RefreshError, refresh

LIB_JS = b"window.Lib = {};"
PLUGIN_CSS = b".plugin { color: red }"
MIT = b"MIT License\n\nCopyright (c) Lib contributors\n"
REPOSITORY = {"type": "git", "url": "git+https://github.com/example/lib.git"}


def sri(data: bytes) -> str:
    return f"sha384-{base64.b64encode(hashlib.sha384(data).digest()).decode()}"


def page(lib_js: bytes = LIB_JS) -> str:
    return (
        f'<link rel="stylesheet" href="https://unpkg.com/@lib/plugin@2.0.0/dist/style.css" '
        f'integrity="{sri(PLUGIN_CSS)}" />\n'
        f'<script crossorigin src="https://unpkg.com/lib@1.0.0/umd/lib.min.js" integrity="{sri(lib_js)}">'
        "</script>\n<script>Lib.start()</script>\n"
    )


class Registry:
    """Package metadata and tarballs by address, as registry.npmjs.org answers them."""

    def __init__(self) -> None:
        self.answers: dict[str, bytes] = {}

    def publish(
        self, name: str, version: str, files: dict[str, bytes], *, integrity: str | None = None
    ) -> None:
        tarball = _tarball(files)
        address = f"{REGISTRY}/{name}/-/{name.rpartition('/')[2]}-{version}.tgz"
        digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
        dist = {"tarball": address, "integrity": integrity or f"sha512-{digest}"}
        metadata = {
            "name": name,
            "version": version,
            "license": "MIT",
            "repository": REPOSITORY,
            "dist": dist,
        }
        self.answers[f"{REGISTRY}/{name.replace('/', '%2F')}/{version}"] = json.dumps(metadata).encode()
        self.answers[address] = tarball

    def fetch(self, url: str) -> bytes:
        return self.answers[url]


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            member = tarfile.TarInfo(f"package/{path}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    registry.publish("lib", "1.0.0", {"umd/lib.min.js": LIB_JS, "LICENSE": MIT, "README.md": b"# lib"})
    registry.publish("@lib/plugin", "2.0.0", {"dist/style.css": PLUGIN_CSS, "package.json": b"{}"})
    return registry


@pytest.fixture
def target(tmp_path: Path) -> Path:
    target = tmp_path / "graphiql"
    target.mkdir()
    (target / "old.js").write_text("from the last refresh")
    return target


def test_refresh_vendors_the_pages_files_their_licences_and_a_manifest(
    registry: Registry, target: Path
) -> None:
    manifest = refresh(page(), registry.fetch, target)

    assert (target / "lib@1.0.0/umd/lib.min.js").read_bytes() == LIB_JS
    assert (target / "@lib/plugin@2.0.0/dist/style.css").read_bytes() == PLUGIN_CSS
    assert (target / "lib@1.0.0/LICENSE").read_bytes() == MIT
    assert not (target / "old.js").exists() and not (target / "lib@1.0.0/README.md").exists()
    assert Manifest.from_json((target / MANIFEST).read_text()) == manifest
    lib = next(package for package in manifest.packages if package.name == "lib")
    assert (lib.name, lib.licence_from, lib.files[0].integrity) == ("lib", "lib@1.0.0", sri(LIB_JS))
    assert lib.files[0].url == "https://unpkg.com/lib@1.0.0/umd/lib.min.js"


def test_a_package_without_a_licence_file_keeps_that_of_its_repository_under_the_same_licence(
    registry: Registry, target: Path
) -> None:
    manifest = refresh(page(), registry.fetch, target)

    plugin = next(package for package in manifest.packages if package.name == "@lib/plugin")
    assert (plugin.licence_file, plugin.licence_from) == ("@lib/plugin@2.0.0/LICENSE", "lib@1.0.0")
    assert (target / plugin.licence_file).read_bytes() == MIT


def test_a_tarball_that_does_not_match_the_registrys_integrity_is_refused(
    registry: Registry, target: Path
) -> None:
    registry.publish("lib", "1.0.0", {"umd/lib.min.js": LIB_JS, "LICENSE": MIT}, integrity="sha512-AAAA")

    with pytest.raises(RefreshError, match="tarball does not match"):
        refresh(page(), registry.fetch, target)

    assert [path.name for path in target.iterdir()] == ["old.js"]


def test_a_file_that_does_not_match_the_pages_integrity_is_refused(registry: Registry, target: Path) -> None:
    with pytest.raises(RefreshError, match="does not match its integrity"):
        refresh(page(lib_js=b"something else"), registry.fetch, target)

    assert [path.name for path in target.iterdir()] == ["old.js"]


def test_a_package_with_no_licence_text_anywhere_is_refused(registry: Registry, target: Path) -> None:
    registry.publish("lib", "1.0.0", {"umd/lib.min.js": LIB_JS})

    with pytest.raises(RefreshError, match="no licence file"):
        refresh(page(), registry.fetch, target)
