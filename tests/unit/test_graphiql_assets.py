"""The GraphiQL page's vendored assets: every one strawberry's page loads is in the package, as the
manifest says, with its licence; the page served points at them, or at the CDN when asked."""

from __future__ import annotations

import base64
import hashlib

import pytest
from strawberry.http.ides import get_graphql_ide_html

from app.ide_assets import ASSET_DIR, Manifest, VendoredPackage, asset_routes, vendored
from app.schema.ide import MissingAsset, cdn_assets, content_security_policy, graphiql_page, local_page
from app.settings import Settings

TEMPLATE = get_graphql_ide_html("graphiql")


def test_every_asset_strawberrys_graphiql_page_loads_is_vendored_with_the_pages_integrity() -> None:
    files = {file.url: file for file in vendored().files()}
    for asset in cdn_assets(TEMPLATE):
        assert asset.url in files, f"{asset.url} is not vendored: run python -m scripts.refresh_graphiql"
        assert files[asset.url].integrity == asset.integrity
    assert len(files) == len(cdn_assets(TEMPLATE)) == 7


@pytest.mark.parametrize("package", vendored().packages, ids=lambda package: package.name)
def test_each_vendored_file_is_what_the_manifest_says_and_its_licence_is_kept(
    package: VendoredPackage,
) -> None:
    for file in package.files:
        data = (ASSET_DIR / file.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == file.sha256
        assert f"sha384-{base64.b64encode(hashlib.sha384(data).digest()).decode()}" == file.integrity
    licence = (ASSET_DIR / package.licence_file).read_text()
    assert package.license == "MIT" and "Permission is hereby granted" in licence


def test_the_manifest_reads_back_what_it_wrote() -> None:
    assert Manifest.from_json(vendored().to_json()) == vendored()


def test_the_served_page_loads_its_assets_from_this_server_and_allows_nothing_else() -> None:
    page = graphiql_page(TEMPLATE, Settings())

    assert cdn_assets(page.html) == []
    assert "unpkg.com" not in page.html
    assert 'src="graphiql/assets/graphiql@3.8.3/graphiql.min.js"' in page.html
    assert "script-src 'self' 'sha256-" in page.policy and "https:" not in page.policy


def test_with_the_cdn_setting_the_page_is_strawberrys_own_and_no_assets_are_served() -> None:
    settings = Settings.from_env({"BOOKWORM_GRAPHIQL_CDN": "true"})
    page = graphiql_page(TEMPLATE, settings)

    assert settings.graphiql_cdn
    assert page.html == TEMPLATE
    assert page.policy == content_security_policy(TEMPLATE)
    assert "script-src https://unpkg.com 'sha256-" in page.policy
    assert asset_routes(settings) == []


def test_with_graphiql_off_there_is_no_page_and_no_assets() -> None:
    settings = Settings(graphiql=False)

    assert graphiql_page(TEMPLATE, settings).html == ""
    assert asset_routes(settings) == []


def test_a_page_that_loads_an_asset_not_vendored_is_refused_saying_what_to_do() -> None:
    page = TEMPLATE.replace("graphiql@3.8.3/graphiql.min.js", "graphiql@4.0.0/graphiql.min.js")

    with pytest.raises(MissingAsset) as refused:
        local_page(page, vendored())

    assert "https://unpkg.com/graphiql@4.0.0/graphiql.min.js" in str(refused.value)
    assert "scripts.refresh_graphiql" in str(refused.value) and "BOOKWORM_GRAPHIQL_CDN" in str(refused.value)
