"""A headless Chromium for the e2e tests, driven over the DevTools protocol and cut off from the network.

Chromium resolves no host name and sends every other request to a proxy that refuses connections; only
127.0.0.1 (bypassed by Chromium's proxy rules) answers. So a page that needs a CDN fails here as it fails
on a train. The driver is `websockets` on the DevTools socket: nothing is downloaded at test time.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.process import free_port, stop

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
START_WAIT = 30.0  # seconds for Chromium to open its DevTools socket
WAIT = 30.0  # seconds for a page condition: a 3.5 MB script parsed on a busy two-core machine


def find_chromium() -> str | None:
    """The path of an installed Chromium (or Chrome), or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


class DevToolsError(Exception):
    """Chromium answered a DevTools command with an error."""


@dataclass
class Page:
    """One tab: DevTools commands, the requests it made and the errors it logged."""

    ws: ClientConnection
    session: str
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Run one DevTools command in this tab; return its result."""
        command_id = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = answer
        await self.ws.send(
            json.dumps({"id": command_id, "method": method, "params": params, "sessionId": self.session})
        )
        async with asyncio.timeout(WAIT):
            return await answer

    async def navigate(self, url: str) -> str | None:
        """Open `url`; return Chromium's error (`net::ERR_...`) when it could not be loaded."""
        result = await self.send("Page.navigate", url=url)
        error: str | None = result.get("errorText")
        return error

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, condition: str, what: str) -> None:
        """Poll a JavaScript condition until it holds; fail, naming `what` and the page's errors, if not."""
        deadline = time.monotonic() + WAIT
        while not await self.evaluate(f"Boolean({condition})"):
            if time.monotonic() > deadline:
                shown = await self.evaluate("document.body.innerText.slice(-600)")
                raise AssertionError(
                    f"{what}: not within {WAIT:g} s. Page errors: {self.problems}; "
                    f"last requests: {self.requests[-8:]}; the page ends with: {shown!r}"
                )
            await asyncio.sleep(0.2)

    async def screenshot(self, path: Path) -> None:
        result = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(result["data"]))

    def _event(self, message: dict[str, Any]) -> None:
        params = message.get("params", {})
        match message.get("method"):
            case "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])
            case "Runtime.exceptionThrown":
                self.problems.append(str(params["exceptionDetails"].get("exception", {}).get("description")))
            case "Log.entryAdded" if params["entry"]["level"] == "error":
                self.problems.append(params["entry"]["text"])
            case "Runtime.consoleAPICalled" if params["type"] == "error":
                self.problems.append(
                    " ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"])
                )

    def _answer(self, message: dict[str, Any]) -> None:
        answer = self._pending.pop(message["id"], None)
        if answer is None or answer.done():
            return
        if "error" in message:
            answer.set_exception(DevToolsError(str(message["error"])))
        else:
            answer.set_result(message.get("result", {}))


@asynccontextmanager
async def offline_page(chromium: str, profile: Path) -> AsyncIterator[Page]:
    """A tab of a new headless Chromium that can reach 127.0.0.1 only; the browser is closed after."""
    process = _launch(chromium, profile)
    try:
        port, path = await _devtools_address(process, profile)
        async with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=WAIT) as ws:
            page = await _open_tab(ws)
            reader = asyncio.create_task(_read(ws, page))
            try:
                for domain in ("Page", "Runtime", "Network", "Log"):
                    await page.send(f"{domain}.enable")
                yield page
            finally:
                reader.cancel()
    finally:
        stop(process)


def _launch(chromium: str, profile: Path) -> subprocess.Popen[bytes]:
    refusing_proxy = (
        f"http://127.0.0.1:{free_port()}"  # nothing listens there: every request through it fails
    )
    arguments = [
        chromium,
        "--headless=new",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--proxy-server={refusing_proxy}",
        "--window-size=1280,800",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-gpu",
        "--disable-dev-shm-usage",  # containers give /dev/shm 64 MB
        *(["--no-sandbox"] if os.geteuid() == 0 else []),  # Chromium's sandbox refuses to run as root
        "about:blank",
    ]
    with (profile.parent / "chromium.log").open("wb") as log:
        return subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT)


async def _devtools_address(process: subprocess.Popen[bytes], profile: Path) -> tuple[str, str]:
    """The port and path of the browser's DevTools socket, which Chromium writes into its profile."""
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (profile.parent / "chromium.log").read_text(errors="replace")
            raise AssertionError(f"Chromium exited with {process.returncode}:\n{log[-4000:]}")
        lines = active.read_text().split("\n") if active.exists() else []
        if len(lines) >= 2 and lines[1]:
            return lines[0], lines[1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"Chromium did not open its DevTools socket within {START_WAIT:g} s")


async def _open_tab(ws: ClientConnection) -> Page:
    """Attach to a new tab; its commands and events travel on the browser's socket (flat sessions)."""
    await ws.send(json.dumps({"id": 1, "method": "Target.createTarget", "params": {"url": "about:blank"}}))
    target = await _reply(ws, 1)
    await ws.send(
        json.dumps(
            {
                "id": 2,
                "method": "Target.attachToTarget",
                "params": {"targetId": target["targetId"], "flatten": True},
            }
        )
    )
    attached = await _reply(ws, 2)
    return Page(ws=ws, session=attached["sessionId"])


async def _reply(ws: ClientConnection, command_id: int) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        while True:
            message = json.loads(await ws.recv())
            if message.get("id") == command_id:
                if "error" in message:
                    raise DevToolsError(str(message["error"]))
                result: dict[str, Any] = message["result"]
                return result


async def _read(ws: ClientConnection, page: Page) -> None:
    async for raw in ws:
        message = json.loads(raw)
        if message.get("sessionId") != page.session:
            continue
        if "id" in message:
            page._answer(message)
        else:
            page._event(message)
