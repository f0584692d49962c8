#!/usr/bin/env python3
"""``malsori serve --ray`` on a local Ray instance, under load: does autoscaling add a replica?

Starts ``malsori serve --ray --replicas 1 --max-replicas 2`` on a free loopback port with a target
of one ongoing request per replica and a short upscale delay, sends waves of ``--concurrency``
transcriptions of a generated ~40 s English clip (espeak-ng and sox) until Ray Serve adds a
replica or ``--timeout`` passes, and prints the time to ready, each request's status and latency,
and when the replica was added. Stops the deployment (SIGINT) at the end; bounded in time.

    python scripts/bench_ray_serve.py --model tiny.en --concurrency 4
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SENTENCE = "The yellow submarine sailed across the ocean while seven penguins walked slowly."
ADDED = "Adding 1 replica"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_clip(folder: Path, parts: int = 6) -> Path:
    pieces = []
    for i in range(parts):
        piece = folder / f"s{i}.wav"
        text = f"Sentence number {i + 1}. {SENTENCE}"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(piece), text], check=True)
        pieces.append(str(piece))
    clip = folder / "long.wav"
    subprocess.run(["sox", *pieces, str(clip)], check=True)
    return clip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds of load at most")
    args = parser.parse_args()
    import httpx

    folder = Path(tempfile.mkdtemp(prefix="malsori-ray-bench-"))
    clip = make_clip(folder).read_bytes()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "serve.log"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "MALSORI_RAY__LOCAL_OBJECT_STORE_MB": "128", "MALSORI_RAY__TARGET_ONGOING_REQUESTS": "1",
           "MALSORI_RAY__UPSCALE_DELAY_S": "2", "MALSORI_RAY__CPUS_PER_REPLICA": "0.5"}  # fmt: skip
    cmd = [sys.executable, "-m", "malsori", "serve", "--ray", "--replicas", "1",
           "--max-replicas", "2", "--port", str(port), "--no-auth", "-m", args.model,
           "--threads", "1", "--beam-size", "1", "--data-dir", str(folder / "data")]  # fmt: skip
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    try:
        while True:
            if proc.poll() is not None or time.monotonic() - started > 300:
                print(log.read_text(), file=sys.stderr)
                return 1
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        print(f"ready after {time.monotonic() - started:.1f} s")
        results: list[tuple[int, float]] = []

        def one() -> None:
            t = time.monotonic()
            r = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": ("long.wav", clip)},
                           data={"language": "en"}, timeout=600)  # fmt: skip
            results.append((r.status_code, time.monotonic() - t))

        baseline = log.read_text().count(ADDED)  # the first replica's
        load_started = time.monotonic()
        added_at = None
        while added_at is None and time.monotonic() - load_started < args.timeout:
            wave = [threading.Thread(target=one) for _ in range(args.concurrency)]
            for t in wave:
                t.start()
            while any(t.is_alive() for t in wave):
                if added_at is None and log.read_text().count(ADDED) > baseline:
                    added_at = time.monotonic() - load_started
                time.sleep(0.5)
        for status, seconds in results:
            print(f"request: {status} in {seconds:.1f} s")
        if added_at is None:
            print(f"no replica added within {args.timeout:.0f} s of load")
        else:
            print(f"a second replica was added {added_at:.1f} s after the load began")
    finally:
        proc.send_signal(signal.SIGINT)
        print(f"malsori serve --ray exited with {proc.wait(120)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
