#!/usr/bin/env python3
"""A bounded load test of ``malsori serve`` on loopback.

Starts a server (or uses ``--url``, which must be a loopback address), sends ``--requests`` real
audio requests with at most ``--concurrency`` in flight, and reports:

* lost: requests that never got an HTTP answer, or whose answer is not theirs (``X-Request-ID``);
* duplicated: answers seen twice for one request, or more transcriptions counted by the server
  (``/metrics``) than requests it accepted;
* 429s (queue full), with the queue size they are expected against;
* throughput (requests and audio seconds per second) and p50/p95/max latency.

Every loop is bounded in count and time (``--timeout``); nothing is sent beyond 127.0.0.0/8.

    python scripts/loadtest_server.py --requests 60 --concurrency 60 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SPEECH = "The quick brown fox jumps over the lazy dog."


@dataclass
class Outcome:
    request_id: str
    status: int | None = None  # None: no HTTP answer at all
    seconds: float = 0.0
    text: str = ""
    echoed_id: str | None = None
    tries: int = 0
    error: str = ""


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_loopback(url: str) -> None:
    host = urllib.parse.urlparse(url).hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing to load-test {host}: only loopback addresses are allowed")


def make_clip(folder: Path) -> Path:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("no --file given and espeak-ng is not installed to make one")
    clip = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(clip), SPEECH], check=True)
    return clip


def start_server(args: argparse.Namespace, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "malsori", "serve", "--no-auth", "--host", "127.0.0.1",
        "--port", str(port), "--data-dir", str(data_dir), "--workers", str(args.workers),
        "--queue-size", str(args.queue_size), "--beam-size", str(args.beam_size),
        "--model", args.model, "--log-level", "warning",
    ]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    log = open(data_dir.parent / "server.log", "wb")  # noqa: SIM115 (lives as long as the server)
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit((data_dir.parent / "server.log").read_text())
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not become ready in 180 s")


def transcriptions_counted(url: str) -> dict[str, float]:
    """Requests per status and audio seconds processed, from the server's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    pattern = (
        r'malsori_http_requests_total\{endpoint="/v1/audio/transcriptions",'
        r'method="POST",status="(\d+)"\} ([0-9.e+]+)'
    )
    for status, value in re.findall(pattern, text):
        out[status] = float(value)
    audio = re.search(
        r'malsori_audio_seconds_processed_total\{task="transcribe"\} ([0-9.e+]+)', text
    )
    out["audio_s"] = float(audio.group(1)) if audio else 0.0
    return out


async def one_request(
    client: httpx.AsyncClient, url: str, audio: bytes, index: int, args: argparse.Namespace
) -> Outcome:
    outcome = Outcome(request_id=f"load-{index:05d}")
    started = time.perf_counter()
    while outcome.tries <= args.retries:
        outcome.tries += 1
        try:
            response = await client.post(
                f"{url}/v1/audio/transcriptions",
                files={"file": ("speech.wav", audio, "audio/wav")},
                data={"model": "whisper-1", "language": "en", "response_format": "json"},
                headers={"X-Request-ID": outcome.request_id},
            )
        except httpx.HTTPError as e:
            outcome.error = f"{type(e).__name__}: {e}"
            break
        outcome.status = response.status_code
        outcome.echoed_id = response.headers.get("x-request-id")
        if response.status_code == 429 and outcome.tries <= args.retries:
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            continue
        if response.status_code == 200:
            outcome.text = response.json()["text"]
        break
    outcome.seconds = time.perf_counter() - started
    return outcome


async def load(url: str, audio: bytes, args: argparse.Namespace) -> Run:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=0)
    gate = asyncio.Semaphore(args.concurrency)
    timeout = httpx.Timeout(args.timeout, connect=30)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def gated(i: int) -> Outcome:
            async with gate:
                return await one_request(client, url, audio, i, args)

        started = time.perf_counter()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(gated(i) for i in range(args.requests))), timeout=args.timeout
        )
        return Run(list(outcomes), time.perf_counter() - started)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def report(run: Run, before: dict[str, float], after: dict[str, float], clip_s: float,
           args: argparse.Namespace) -> int:  # fmt: skip
    outcomes = run.outcomes
    statuses = Counter(o.status for o in outcomes)
    ok = [o for o in outcomes if o.status == 200]
    lost = [o for o in outcomes if o.status is None or o.echoed_id != o.request_id]
    ids = Counter(o.request_id for o in outcomes)
    duplicated = sum(n - 1 for n in ids.values() if n > 1)
    counted_ok = after.get("200", 0) - before.get("200", 0)
    counted_429 = after.get("429", 0) - before.get("429", 0)
    transcribed_s = after["audio_s"] - before["audio_s"]
    runs_counted = round(transcribed_s / clip_s) if clip_s else 0
    extra_runs = max(0, runs_counted - len(ok))
    texts = Counter(o.text for o in ok)
    latencies = [o.seconds for o in ok]
    retried = sum(o.tries - 1 for o in outcomes)
    print(
        f"requests sent        {len(outcomes)} ({args.concurrency} concurrent, "
        f"{args.workers} worker(s), queue size {args.queue_size}, retries <= {args.retries})"
    )
    print(f"statuses             {dict(sorted((str(k), v) for k, v in statuses.items()))}")
    print(f"lost                 {len(lost)}")
    print(
        f"duplicated           {duplicated} answers, {extra_runs} extra transcriptions "
        f"(server counted {int(counted_ok)} x 200 and {runs_counted} runs "
        f"for {len(ok)} answers)"
    )
    print(
        f"429 (queue full)     {statuses.get(429, 0)} final, {retried} retried; server "
        f"counted {int(counted_429)}"
    )
    print(f"distinct texts       {len(texts)}: {next(iter(texts), '')!r}")
    print(f"wall time            {run.wall_s:.1f} s")
    print(
        f"throughput           {len(ok) / run.wall_s:.2f} requests/s, "
        f"{len(ok) * clip_s / run.wall_s:.2f} audio s/s"
    )
    print(
        f"latency (200s)       p50 {percentile(latencies, 50):.2f} s, "
        f"p95 {percentile(latencies, 95):.2f} s, max {max(latencies, default=0):.2f} s"
    )
    for o in lost[:5]:
        print(f"  lost {o.request_id}: status {o.status}, echoed {o.echoed_id}, {o.error}")
    bad = lost or duplicated or extra_runs or counted_ok != len(ok) or len(texts) > 1
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--file", type=Path, help="audio to send (default: a 3 s espeak-ng clip)")
    p.add_argument("--url", help="an already running server on loopback (started with --no-auth)")
    p.add_argument("--requests", type=int, default=60, help="requests in all (default: 60)")
    p.add_argument("--concurrency", type=int, default=60, help="in flight at once (default: 60)")
    p.add_argument("--retries", type=int, default=0, help="retries of a 429 after Retry-After")
    p.add_argument("--timeout", type=float, default=540, help="seconds for the whole run")
    p.add_argument("--workers", type=int, default=2, help="server worker threads (default: 2)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per worker (default: 1)")
    p.add_argument("--queue-size", type=int, default=64, help="server queue size (default: 64)")
    p.add_argument("--beam-size", type=int, default=1, help="server beam size (default: 1)")
    p.add_argument("--model", default="base", help="model the server loads (default: base)")
    args = p.parse_args()
    if not (1 <= args.requests <= 1000 and 1 <= args.concurrency <= 200):
        raise SystemExit("keep it bounded: 1-1000 requests, 1-200 concurrent")

    import av

    with tempfile.TemporaryDirectory(prefix="malsori-load-") as tmp:
        clip = args.file or make_clip(Path(tmp))
        with av.open(str(clip)) as container:
            clip_s = float(container.duration or 0) / av.time_base
        process = None
        if args.url:
            check_loopback(args.url)
            url = args.url
        else:
            process, url = start_server(args, Path(tmp) / "data")
        try:
            before = transcriptions_counted(url)
            run = asyncio.run(load(url, clip.read_bytes(), args))
            after = transcriptions_counted(url)
        finally:
            if process is not None:
                process.terminate()
                process.wait(30)
        print(f"audio                {clip.name}, {clip_s:.2f} s; server {url}")
        return report(run, before, after, clip_s, args)


if __name__ == "__main__":
    sys.exit(main())
