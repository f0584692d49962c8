"""Just enough of WebDriver BiDi to drive Debian's firefox-esr in the web page's tests.

Playwright drives Chromium, but for Firefox it needs either its own patched build (downloaded
from its CDN, which this project cannot reach) or, over WebDriver BiDi, commands that Firefox ESR
does not have yet (``emulation.setMediaFeaturesOverride``). Firefox serves BiDi itself on
``--remote-debugging-port`` (ws://127.0.0.1:PORT/session), and these tests need only a few of its
commands: open a page, run a script in it (with a preload script first), take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

# A fresh profile: no first-run pages, updates, telemetry or other background traffic; the
# microphone is granted without asking and audio plays without a click.
PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "app.update.enabled": False,
    "app.update.auto": False,
    "extensions.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.newtabpage.enabled": False,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.autoplay.block-webaudio": False,
}
_LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")


class BidiError(RuntimeError):
    pass


class Firefox:
    """A headless Firefox with a new profile, and one page (browsing context) in it."""

    def __init__(
        self, executable: str, *, prefs: dict[str, Any] | None = None, timeout: float = 60.0
    ):
        self.profile = Path(tempfile.mkdtemp(prefix="malsori-firefox-"))
        all_prefs = {**PREFS, **(prefs or {})}
        (self.profile / "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in all_prefs.items())
        )
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-remote", "--profile", str(self.profile),
             "--remote-debugging-port", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.log: list[str] = []
        url = self._wait_for_endpoint(timeout)
        self._connection = contextlib.ExitStack()
        self.ws: ClientConnection = self._connection.enter_context(
            connect(f"{url}/session", max_size=None, open_timeout=timeout)
        )
        self._ids = itertools.count(1)
        self.send("session.new", {"capabilities": {}})
        tree = self.send("browsingContext.getTree", {})
        self.context = tree["contexts"][0]["context"]

    def _wait_for_endpoint(self, timeout: float) -> str:
        found: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:  # keep draining, so Firefox never blocks on it
                self.log.append(line)
                match = _LISTENING.search(line)
                if match and not found:
                    found.append(match.group(1))
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout):
            self.close()
            raise BidiError("firefox did not start its BiDi server:\n" + "".join(self.log))
        return found[0]

    def send(self, method: str, params: dict[str, Any]) -> Any:
        """One command; returns its result (events that arrive meanwhile are ignored)."""
        command_id = next(self._ids)
        self.ws.send(json.dumps({"id": command_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") != command_id:
                continue
            if message.get("type") == "error":
                raise BidiError(f"{method}: {message.get('error')}: {message.get('message')}")
            return message["result"]

    def goto(self, url: str) -> None:
        self.send("browsingContext.navigate",
                  {"context": self.context, "url": url, "wait": "complete"})  # fmt: skip

    def call(self, function: str, *args: Any) -> Any:
        """Call a JavaScript function in the page with JSON arguments; its JSON result (an
        awaited promise's value)."""
        wrapped = f"async (...args) => JSON.stringify(await ({function})(...args.map(JSON.parse)))"
        result = self.send(
            "script.callFunction",
            {
                "functionDeclaration": wrapped,
                "arguments": [{"type": "string", "value": json.dumps(a)} for a in args],
                "target": {"context": self.context},
                "awaitPromise": True,
                "userActivation": True,  # as if clicked: lets the page start audio and capture
            },
        )
        if result["type"] == "exception":
            raise BidiError(result["exceptionDetails"].get("text", "script failed"))
        value = result["result"].get("value")
        return None if value is None else json.loads(value)

    def js(self, expression: str, *args: Any) -> Any:
        """``expression`` with ``args`` parsed into ``a0``, ``a1``..., evaluated in the page."""
        names = ", ".join(f"a{i}" for i in range(len(args)))
        return self.call(f"async ({names}) => ({expression})", *args)

    def wait_for(self, expression: str, *args: Any, timeout: float = 60.0) -> Any:
        """Poll until ``expression`` is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout} s: {expression}")
            time.sleep(0.2)

    def screenshot(self, path: Path) -> None:
        shot = self.send("browsingContext.captureScreenshot",
                         {"context": self.context, "origin": "document"})  # fmt: skip
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            if hasattr(self, "_connection"):
                self._connection.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
            shutil.rmtree(self.profile, ignore_errors=True)
