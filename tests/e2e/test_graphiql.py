"""GraphiQL without the internet: the page loads every asset from this server, and a headless Chromium
that can reach nothing else runs a query and shows a subscription's event in it."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from app.ide_assets import IMMUTABLE, vendored
from tests.e2e.browser import Page, find_chromium, offline_page
from tests.e2e.operations import BOOK_COUNT, create_book

pytestmark = pytest.mark.e2e

HTML = {"accept": "text/html"}
ASSET = re.compile(r'<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"')
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
EDITOR = "document.querySelector('.graphiql-query-editor .CodeMirror')"
RESULT = "document.querySelector('.result-window .CodeMirror')"
SUBSCRIPTION = 'subscription {{ catalogChanged(after: "{after}") {{ kind entity entityId }} }}'


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium to drive: install Debian's `chromium` (.ci/run does, where apt-get works)")
    return path


async def test_the_page_loads_every_asset_from_this_server(anon_http: httpx.AsyncClient, server: str) -> None:
    page = await anon_http.get("/graphql", headers=HTML)
    assets = [url for url in ASSET.findall(page.text) if not url.startswith("data:")]

    assert not [url for url in assets if "://" in url]
    files = {file.path: file for file in vendored().files()}
    assert sorted(assets) == sorted(f"graphiql/assets/{path}" for path in files)
    for url in assets:
        response = await anon_http.get(urljoin(f"{server}/graphql", url))
        assert response.status_code == 200, url
        assert response.headers["content-type"] == CONTENT_TYPES[Path(url).suffix]
        assert response.headers["cache-control"] == IMMUTABLE
        assert (
            hashlib.sha256(response.content).hexdigest() == files[url.removeprefix("graphiql/assets/")].sha256
        )


async def test_the_page_allows_scripts_and_styles_from_this_server_only(anon_http: httpx.AsyncClient) -> None:
    response = await anon_http.get("/graphql", headers=HTML)
    policy = dict(
        part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";")
    )

    assert policy["script-src"].startswith("'self' 'sha256-") and "https:" not in policy["script-src"]
    assert policy["style-src"] == "'self' 'unsafe-inline'"


async def test_the_large_script_is_sent_compressed(anon_http: httpx.AsyncClient) -> None:
    script = next(file for file in vendored().files() if file.path.endswith("graphiql.min.js"))
    response = await anon_http.get(f"/graphiql/assets/{script.path}", headers={"accept-encoding": "gzip"})

    assert response.headers["content-encoding"] == "gzip"
    assert response.num_bytes_downloaded < len(response.content) / 3


async def test_only_the_manifests_files_are_served(anon_http: httpx.AsyncClient) -> None:
    for path in ("manifest.json", "graphiql@3.8.3/graphiql.min.js.map", "../settings.py", "nothing.js"):
        response = await anon_http.get(f"/graphiql/assets/{path}")
        assert response.status_code == 404, path


async def test_graphiql_runs_a_query_and_a_subscription_with_no_network_but_this_server(
    chromium: str, server: str, http: httpx.AsyncClient, refs: dict[str, Any], tmp_path: Path
) -> None:
    async with offline_page(chromium, tmp_path / "profile") as page:
        # The browser is cut off: the CDN strawberry's own page loads from cannot be reached.
        assert await page.navigate("https://unpkg.com/graphiql@3.8.3/graphiql.min.js") is not None
        page.requests.clear()
        page.problems.clear()

        assert await page.navigate(f"{server}/graphql") is None
        await page.wait_for(
            f"{EDITOR} && document.querySelector('.graphiql-execute-button')", "GraphiQL's editor"
        )

        await run(page, BOOK_COUNT)
        await page.wait_for(f"{RESULT}.CodeMirror.getValue().includes('totalCount')", "the query's result")
        assert isinstance(json.loads(await result(page))["data"]["books"]["totalCount"], int)

        after = (await create_book(http, refs))["position"]
        await run(page, SUBSCRIPTION.format(after=after))
        book = await create_book(http, refs, name="Read on a train")
        await page.wait_for(
            f"{RESULT}.CodeMirror.getValue().includes({json.dumps(book['bookId'])})", "the event"
        )
        event = json.loads(await result(page))["data"]["catalogChanged"]
        await page.screenshot(tmp_path / "graphiql.png")

    assert event == {"kind": "CREATED", "entity": "Book", "entityId": book["bookId"]}
    assert {f"{server}/graphiql/assets/{file.path}" for file in vendored().files()} <= set(page.requests)
    assert [url for url in page.requests if not url.startswith((f"{server}/", "data:"))] == []
    assert page.problems == []


async def run(page: Page, query: str) -> None:
    """Put `query` in GraphiQL's editor and press its run button, once GraphiQL has parsed it.

    GraphiQL reads the operation's type (a subscription goes over the websocket) from the document it
    parses a moment after each edit; a click before that would run the previous document's way.
    """
    await page.evaluate(f"{EDITOR}.CodeMirror.setValue({json.dumps(query)})")
    await page.wait_for(
        f"{EDITOR}.CodeMirror.documentAST?.loc?.source.body === {json.dumps(query)}", "the parse"
    )
    await page.evaluate("document.querySelector('.graphiql-execute-button').click()")


async def result(page: Page) -> str:
    text: str = await page.evaluate(f"{RESULT}.CodeMirror.getValue()")
    return text
