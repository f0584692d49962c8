"""The web page in headless Chromium against a real server: a file dropped on the page is
transcribed with progress, listed among the user's jobs, shown with timestamps and downloaded;
the live page records a fake microphone fed from a speech file and shows the words as they
stream. Screenshots go to the test's temp folder (and $MALSORI_SCREENSHOTS)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from .conftest import SPEECH_WORDS, Server

pytestmark = pytest.mark.slow

BASE_ARGS = ["--no-first-run", "--disable-background-networking", "--no-default-browser-check"]


def words_of(text: str) -> set[str]:
    return set("".join(c.lower() if c.isalnum() else " " for c in text).split())


def open_page(p: Any, chromium: str, server: Server, hash_: str, *args: str) -> tuple[Any, Page]:
    browser = p.chromium.launch(executable_path=chromium, args=[*BASE_ARGS, *args])
    context = browser.new_context(accept_downloads=True)  # a new, empty profile
    page = context.new_page()
    page.goto(f"{server.url}/{hash_}")
    page.fill("#api-key", server.key)
    page.click("#key-form button")
    expect(page.locator("#key-status")).to_have_text("saved")
    return browser, page


# Drag and drop: a DataTransfer holding the file (name, base64 bytes), dropped on the drop zone.
DROP_FILE = """(name, data) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, { type: "audio/wav" }));
    const zone = document.getElementById("drop-zone");
    for (const type of ["dragover", "drop"]) {
        zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true }));
    }
    return true;
}"""


def drop_file(page: Page, path: Path) -> None:
    data = base64.b64encode(path.read_bytes()).decode()
    page.evaluate(f"([name, data]) => ({DROP_FILE})(name, data)", [path.name, data])


def test_upload_by_drag_and_drop(
    chromium: str, web_server: Server, speech_clip: Path, tmp_path: Path, screenshots: list[Path]
) -> None:
    with sync_playwright() as p:
        browser, page = open_page(p, chromium, web_server, "")
        try:
            drop_file(page, speech_clip)
            expect(page.locator("#chosen")).to_have_text(speech_clip.name)
            page.fill("#language", "en")
            page.click("#upload-button")
            view = page.locator("#result-view")
            expect(view).to_contain_text("fox", timeout=120_000)
            text = view.inner_text()
            assert set(SPEECH_WORDS) <= words_of(text)
            assert re.search(r"00:00:0\d\.\d{3} → 00:00:0\d\.\d{3}", text)  # timestamps shown
            row = page.locator("#jobs tr.job").first
            expect(row).to_contain_text(speech_clip.name)
            expect(row).to_contain_text("completed")
            expect(page.locator("#error")).to_be_hidden()
            shot = tmp_path / "web-upload.png"
            page.screenshot(path=shot, full_page=True)
            screenshots.append(shot)
            with page.expect_download() as download:
                page.click("#downloads .download-srt")
            saved = tmp_path / download.value.suggested_filename
            download.value.save_as(saved)
            assert saved.name == "speech.srt"
            srt = saved.read_text(encoding="utf-8")
            assert srt.startswith("1\n00:00:0") and "-->" in srt and "fox" in srt.lower()
            page.select_option("#format", "vtt")  # another view of the same result
            row.locator("button").click()
            expect(view).to_contain_text("WEBVTT")
        finally:
            browser.close()


def test_live_page_with_a_fake_microphone(
    chromium: str, web_server: Server, speech_clip: Path, tmp_path: Path, screenshots: list[Path]
) -> None:
    fake_mic = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech_clip}%noloop",
    ]
    with sync_playwright() as p:
        browser, page = open_page(p, chromium, web_server, "#live", *fake_mic)
        try:
            expect(page.locator("#live")).to_be_visible()
            page.fill("#live-language", "en")
            page.click("#live-start")
            expect(page.locator("#live-status")).to_have_text("listening", timeout=30_000)
            lines = page.locator("#final-lines")
            expect(lines).to_contain_text("fox", timeout=90_000)
            shot = tmp_path / "web-live.png"
            page.screenshot(path=shot, full_page=True)
            screenshots.append(shot)
            page.click("#live-stop")
            expect(page.locator("#live-status")).to_contain_text("done", timeout=60_000)
            heard = words_of(lines.inner_text())
            assert {"quick", "brown", "fox"} <= heard
            # Synthetic speech through Opus, decoded as it streams (where the decodes fall
            # depends on timing): "lazy dog" has come out as "easy to add" now and then.
            assert len(heard & {"jumps", "over", "lazy", "dog"}) >= 2, heard
            assert re.search(r"00:00:0\d\.\d{3}", lines.inner_text())  # each line has its time
            expect(page.locator("#live-downloads a")).to_have_count(2)
            expect(page.locator("#error")).to_be_hidden()
            shot = tmp_path / "web-live-done.png"
            page.screenshot(path=shot, full_page=True)
            screenshots.append(shot)
        finally:
            browser.close()


def test_key_storage_and_content_security_policy(chromium: str, web_server: Server) -> None:
    """The key stays in the tab (sessionStorage) unless "remember key on this device" is ticked
    (localStorage); the page runs under its Content-Security-Policy without a violation."""
    storage = (
        "() => [sessionStorage.getItem('malsori.apiKey'), localStorage.getItem('malsori.apiKey')]"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BASE_ARGS)
        try:
            context = browser.new_context()
            messages: list[str] = []
            context.on("console", lambda m: messages.append(m.text))
            page = context.new_page()
            response = page.goto(f"{web_server.url}/")
            assert response is not None
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            page.fill("#api-key", web_server.key)
            page.click("#key-form button")
            expect(page.locator("#key-status")).to_have_text("saved")
            assert page.evaluate(storage) == [web_server.key, None]  # this tab only
            page.reload()
            expect(page.locator("#api-key")).to_have_value(web_server.key)  # kept while it lives
            other = context.new_page()
            other.goto(f"{web_server.url}/")
            expect(other.locator("#api-key")).to_have_value("")  # a new tab does not have it
            page.check("#remember-key")
            page.click("#key-form button")
            assert page.evaluate(storage) == [None, web_server.key]
            third = context.new_page()
            third.goto(f"{web_server.url}/")
            expect(third.locator("#api-key")).to_have_value(web_server.key)
            expect(third.locator("#remember-key")).to_be_checked()
            third.uncheck("#remember-key")
            third.click("#key-form button")
            assert third.evaluate(storage) == [web_server.key, None]  # forgotten on the device
            expect(third.locator("#jobs")).to_be_visible()
            assert not [m for m in messages if "Content Security Policy" in m], messages
        finally:
            browser.close()
