"""The web page in headless Firefox (Debian's firefox-esr, over WebDriver BiDi: ``bidi.py``)
against a real server: the same two journeys as the Chromium tests (``test_web_page.py``).

The live page records Firefox's own fake microphone, a tone: Firefox can neither play a file as
its microphone (as Chromium does) nor, headless without a sound card, run the Web Audio graph
that could stand in for one, so no speech reaches the page here. The test checks what is
Firefox's own: the page records (MediaRecorder, Ogg/Opus in Firefox), streams over the
WebSocket, and the server decodes the stream and ends it cleanly; recognising words from the
live page is covered in Chromium. Clicks and typing are done by script (the page's own handlers
run, with a user activation); screenshots go to the test's temp folder (and
$MALSORI_SCREENSHOTS).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .bidi import Firefox
from .conftest import SPEECH_WORDS, Server
from .test_web_page import DROP_FILE, words_of

pytestmark = pytest.mark.slow

SET_VALUE = """(() => {
  const field = document.querySelector(a0);
  field.value = a1;
  field.dispatchEvent(new Event("input", { bubbles: true }));
  field.dispatchEvent(new Event("change", { bubbles: true }));
  return true;
})()"""
CLICK = "(document.querySelector(a0).click(), true)"
TEXT = "document.querySelector(a0)?.innerText ?? ''"
VISIBLE = "(() => { const e = document.querySelector(a0); return !!e && !e.hidden; })()"


@pytest.fixture
def browser(firefox: str) -> Iterator[Firefox]:
    """A Firefox for the upload page."""
    session = Firefox(firefox)
    try:
        yield session
    finally:
        session.close()


def open_page(ff: Firefox, server: Server, hash_: str) -> None:
    ff.goto(f"{server.url}/{hash_}")
    ff.js(SET_VALUE, "#api-key", server.key)
    ff.js("(document.querySelector('#key-form').requestSubmit(), true)")
    ff.wait_for("document.querySelector('#key-status').textContent === 'saved'", timeout=10)


def test_upload_by_drag_and_drop_in_firefox(
    browser: Firefox, web_server: Server, speech_clip: Path, tmp_path: Path,
    screenshots: list[Path],
) -> None:  # fmt: skip
    ff = browser
    open_page(ff, web_server, "")
    data = base64.b64encode(speech_clip.read_bytes()).decode()
    ff.call(DROP_FILE, speech_clip.name, data)
    assert ff.js(TEXT, "#chosen") == speech_clip.name
    ff.js(SET_VALUE, "#language", "en")
    ff.js(CLICK, "#upload-button")
    text = ff.wait_for(
        "(() => { const t = document.querySelector('#result-view').innerText;"
        " return t.toLowerCase().includes('fox') ? t : ''; })()",
        timeout=120,
    )
    assert set(SPEECH_WORDS) <= words_of(text)
    assert re.search(r"00:00:0\d\.\d{3} → 00:00:0\d\.\d{3}", text)  # timestamps shown
    row = ff.wait_for(
        "(() => { const r = document.querySelector('#jobs tr.job')?.innerText ?? '';"
        " return r.includes('completed') ? r : ''; })()",
        timeout=30,
    )
    assert speech_clip.name in row
    assert not ff.js(VISIBLE, "#error")
    shot = tmp_path / "web-upload-firefox.png"
    ff.screenshot(shot)
    screenshots.append(shot)
    # The download: the page fetches the SRT with the key and clicks a blob link; the link is
    # caught here and its file read back.
    ff.js(
        """(() => {
            window.caught = null;
            const click = HTMLAnchorElement.prototype.click;
            HTMLAnchorElement.prototype.click = function () {
                if (this.download) {
                    window.caught = fetch(this.href).then((r) => r.text())
                        .then((body) => ({ name: this.download, body }));
                    return;
                }
                return click.call(this);
            };
            document.querySelector("#downloads .download-srt").click();
            return true;
        })()"""
    )
    ff.wait_for("window.caught !== null", timeout=30)
    download = ff.js("window.caught")
    assert download["name"] == "speech.srt"
    srt = download["body"]
    assert srt.startswith("1\n00:00:0") and "-->" in srt and "fox" in srt.lower()


def test_live_page_records_and_streams_in_firefox(
    firefox: str, web_server: Server, tmp_path: Path, screenshots: list[Path]
) -> None:
    ff = Firefox(firefox, prefs={"media.navigator.streams.fake": True})  # a tone generator
    try:
        open_page(ff, web_server, "#live")
        assert ff.js(VISIBLE, "#live")
        ff.js(SET_VALUE, "#live-language", "en")
        ff.js(CLICK, "#live-start")
        ff.wait_for(
            "document.querySelector('#live-status').textContent === 'listening'", timeout=30
        )
        time.sleep(3)  # about 3 s of Firefox's recording (Ogg/Opus) reaches the server
        shot = tmp_path / "web-live-firefox.png"
        ff.screenshot(shot)
        screenshots.append(shot)
        ff.js(CLICK, "#live-stop")
        status = ff.wait_for(
            "(() => { const s = document.querySelector('#live-status').textContent;"
            " return s.includes('done') ? s : ''; })()",
            timeout=60,
        )
        # The server decoded Firefox's stream: the end event reports the audio it received.
        seconds = float(re.search(r"done: ([\d.]+) s", status).group(1))  # type: ignore[union-attr]
        assert seconds >= 1.5, status
        assert ff.js("document.querySelectorAll('#live-downloads a').length") == 2
        assert not ff.js(VISIBLE, "#error"), ff.js(TEXT, "#error")
        shot = tmp_path / "web-live-done-firefox.png"
        ff.screenshot(shot)
        screenshots.append(shot)
    finally:
        ff.close()
