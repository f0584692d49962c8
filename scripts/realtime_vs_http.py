#!/usr/bin/env python
"""The same real recordings through OpenAI's Realtime transcription protocol and through
``/v1/audio/transcriptions``, with the official ``openai`` client against one ``malsori serve``.

Each clip of the manifest is sent once over HTTP and once as a Realtime session
(``client.realtime.connect()``, GA ``session.update`` with ``type: "transcription"``, 24 kHz PCM16
appended in 100 ms chunks, server VAD turn detection), the session's turns joined; both are scored
against the manifest's reference with ``malsori.evaluation`` (corpus WER, and CER without spaces
for Korean). The issue's bar: the Realtime text within 1 WER point of the HTTP text.

    .venv/bin/python scripts/realtime_vs_http.py --manifest ../shared/evaldata/manifest.tsv \\
        --per-language 10 --languages en,ko
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from malsori.evaluation import ErrorCounts, error_counts, normalize_text
from malsori.manifest import load_manifest, select_entries

DONE = "conversation.item.input_audio_transcription.completed"
CHUNK = 4800  # samples of 24 kHz PCM16: 100 ms


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pcm24k(path: Path) -> bytes:
    """The clip as 24 kHz mono PCM16 with 0.2 s of silence before and 1.5 s after (the server
    VAD's silence ends the last turn)."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-af", "adelay=200,apad=pad_dur=1.5",
         "-ar", "24000", "-ac", "1", "-f", "s16le", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return out


def realtime_text(client: Any, pcm: bytes, language: str) -> str:
    texts: list[str] = []
    committed = 0
    with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        update: Any = {"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "whisper-1", "language": language},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 700}}}}  # fmt: skip
        conn.session.update(session=update)
        for i in range(0, len(pcm), CHUNK * 2):
            conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + CHUNK * 2]).decode())
        conn.session.update(session=update)  # answered once every append before it is read
        updates = 0
        for event in conn:
            if event.type == "error":
                raise RuntimeError(str(event))
            updates += event.type == "session.updated"
            committed += event.type == "input_audio_buffer.committed"
            if event.type == DONE:
                texts.append(event.transcript)
            if updates == 2 and len(texts) == committed:
                break
    return " ".join(t.strip() for t in texts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", type=Path, default=Path("../shared/evaldata/manifest.tsv"))
    p.add_argument("--languages", default="en,ko")
    p.add_argument("--per-language", type=int, default=10)
    p.add_argument("--model", default="base")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    from openai import OpenAI

    entries = select_entries(
        [e for e in load_manifest(args.manifest) if "longform" not in str(e.audio)],
        languages=args.languages.split(","),
        limit_per_language=args.per_language,
    )
    port = free_port()
    data = tempfile.mkdtemp(prefix="rt-vs-http-")
    env = {**os.environ, "MALSORI_DATA_DIR": data}
    server = subprocess.Popen(
        [sys.executable, "-m", "malsori", "serve", "--no-auth", "--port", str(port),
         "-m", args.model, "--threads", str(args.threads), "--data-dir", data],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        import httpx

        for _ in range(600):
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        client = OpenAI(base_url=f"{url}/v1", api_key="none")
        totals: dict[tuple[str, str], ErrorCounts] = {}
        for entry in entries:
            with open(entry.audio, "rb") as f:
                http = client.audio.transcriptions.create(
                    file=f, model="whisper-1", language=entry.language
                ).text
            live = realtime_text(client, pcm24k(entry.audio), entry.language)
            ref = normalize_text(entry.reference, entry.language)
            for side, text in (("http", http), ("realtime", live)):
                hyp = normalize_text(text, entry.language)
                key = (entry.language, side)
                totals[key] = totals.get(key, ErrorCounts()) + error_counts(ref, hyp)
                if entry.language == "ko":
                    nsp = error_counts(ref.replace(" ", ""), hyp.replace(" ", ""), unit="char")
                    totals[(entry.language, side + "-cer")] = (
                        totals.get((entry.language, side + "-cer"), ErrorCounts()) + nsp
                    )
            print(f"{Path(entry.audio).name}\n  http:     {http}\n  realtime: {live}", flush=True)
        print("\n| language | clips | HTTP WER | Realtime WER | HTTP CER (ko, no spaces) | "
              "Realtime CER |\n|---|---:|---:|---:|---:|---:|")  # fmt: skip
        for lang in args.languages.split(","):
            n = sum(e.language == lang for e in entries)

            def pct(key: tuple[str, str]) -> str:
                c = totals.get(key)
                return "–" if c is None or c.rate is None else f"{100 * c.rate:.2f}%"

            print(f"| {lang} | {n} | {pct((lang, 'http'))} | {pct((lang, 'realtime'))} | "
                  f"{pct((lang, 'http-cer'))} | {pct((lang, 'realtime-cer'))} |")  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
