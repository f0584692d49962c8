#!/usr/bin/env python
"""Many clients at once against one ``malsori serve``, side by side with the same server with
batching off and with plain faster-whisper transcribing the same clips one by one.

Sides (each in its own process, same model, compute type and CPU threads in all):

- ``engine``: ``malsori serve`` as shipped: every request goes through one engine that packs
  concurrent requests into shared windows and decodes them in batches;
- ``unbatched``: the same server with ``MALSORI_ENGINE__BATCHING=false`` (each request decoded
  on its own by a worker thread, as before the engine);
- ``fw``: faster-whisper's ``WhisperModel.transcribe`` over the clips one by one in one process
  (its defaults: beam 5, language detection, no VAD).

``--clients`` clips of the manifest (spread over it, so languages mix) are sent at once, one
request per client, over loopback only. Each side runs ``--repeats`` times, the order of the
sides alternating between repeats (the machine's speed drifts); medians are reported: audio
seconds per wall second, p50/p95 latency, corpus WER/CER (``malsori.evaluation`` normalisation)
and the server's peak RSS.

    python scripts/bench_server.py --manifest ../shared/evaldata/manifest.tsv --clients 32 \\
        --repeats 3 --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import score, short_set  # a sibling script

SIDES = ("engine", "unbatched", "fw")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_server(
    side: str, args: argparse.Namespace, data: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, MALSORI_ENGINE__BATCHING="true" if side == "engine" else "false",
               MALSORI_ENGINE__BATCH_SIZE=str(args.batch_size))  # fmt: skip
    cmd = [sys.executable, "-m", "malsori", "serve", "--no-auth", "--port", str(port),
           "--data-dir", str(data), "--beam-size", str(args.beam_size), "--model", args.model,
           "--compute-type", args.compute_type, "--queue-size", str(4 * args.clients),
           "--log-level", "warning"]  # fmt: skip
    if side == "unbatched":  # its own default layout: one worker on every thread
        cmd += ["--workers", "1", "--threads", str(args.threads)]
    log = open(data / "server.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit((data / "server.log").read_text())
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not become ready")


async def _send(client: httpx.AsyncClient, url: str, path: str) -> tuple[str, float, str]:
    started = time.perf_counter()
    with open(path, "rb") as f:
        response = await client.post(
            f"{url}/v1/audio/transcriptions",
            files={"file": (Path(path).name, f.read())},
            data={"model": "whisper-1", "response_format": "json"},
        )
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        return path, seconds, f"<HTTP {response.status_code}: {response.text[:200]}>"
    return path, seconds, response.json()["text"]


async def _all_at_once(url: str, paths: list[str]) -> tuple[dict[str, str], list[float], float]:
    limits = httpx.Limits(max_connections=len(paths) + 4)
    async with httpx.AsyncClient(timeout=900, limits=limits) as client:
        await _send(client, url, paths[0])  # warm-up
        started = time.perf_counter()
        results = await asyncio.gather(*(_send(client, url, p) for p in paths))
        wall = time.perf_counter() - started
    return {p: t for p, _, t in results}, [s for _, s, _ in results], wall


def run_server_side(side: str, args: argparse.Namespace, paths: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as tmp:
        proc, url = start_server(side, args, Path(tmp))
        try:
            texts, latencies, wall = asyncio.run(_all_at_once(url, paths))
            rss = peak_rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return {"texts": texts, "latencies": latencies, "wall": wall, "rss": rss}


def run_fw_side(args: argparse.Namespace, paths: list[str]) -> dict[str, Any]:
    """faster-whisper in a process of its own: the clips one by one."""
    code = (
        "import json,sys,time,resource\n"
        "from faster_whisper import WhisperModel\n"
        "from malsori.registry import resolve\n"
        "a=json.loads(sys.argv[1])\n"
        "m=WhisperModel(str(resolve(a['model']).path),device='cpu',"
        "compute_type=a['compute_type'],cpu_threads=a['threads'])\n"
        "one=lambda p:''.join(s.text for s in m.transcribe(p,beam_size=a['beam'])[0]).strip()\n"
        "one(a['paths'][0])\n"
        "t=time.perf_counter();texts={};lat=[]\n"
        "for p in a['paths']:\n"
        "    texts[p]=one(p);lat.append(time.perf_counter()-t)\n"
        "wall=time.perf_counter()-t\n"
        "rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024\n"
        "print(json.dumps({'texts':texts,'latencies':lat,'wall':wall,'rss':rss}))\n"
    )
    settings = {"model": args.model, "compute_type": args.compute_type, "threads": args.threads}
    payload = json.dumps({**settings, "beam": args.beam_size, "paths": paths})
    out = subprocess.run([sys.executable, "-c", code, payload], check=True, capture_output=True,
                         text=True)  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def pick(manifest: Path, clients: int) -> list[tuple[str, str, str, float]]:
    entries = short_set(manifest, 10**6)
    step = max(1, len(entries) // clients)
    return entries[::step][:clients]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="CPU threads in all, every side")
    p.add_argument("--model", default="base")
    p.add_argument("--compute-type", default="int8")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8, help="the engine's windows per call")
    p.add_argument("--sides", default=",".join(SIDES))
    p.add_argument("--json", type=Path, help="write every run's numbers here")
    args = p.parse_args(argv)
    sides = [s for s in args.sides.split(",") if s]
    clips = pick(args.manifest, args.clients)
    paths = [c[0] for c in clips]
    audio_s = sum(c[3] for c in clips)
    refs = [(c[0], c[1], c[2]) for c in clips]
    print(f"{len(clips)} clips, {audio_s:.1f} s of audio; sides {sides}; {args.repeats} repeats",
          flush=True)  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
    for repeat in range(args.repeats):
        order = sides if repeat % 2 == 0 else sides[::-1]
        for side in order:
            run = run_fw_side(args, paths) if side == "fw" else run_server_side(side, args, paths)
            run.update(score(refs, run["texts"]))
            runs[side].append(run)
            print(f"  repeat {repeat + 1} {side}: wall {run['wall']:.1f} s, "
                  f"p95 {quantile(run['latencies'], 0.95):.1f} s", flush=True)  # fmt: skip
    base = statistics.median(r["wall"] for r in runs["fw"]) if "fw" in runs else None
    print(
        "\n| side | wall s (median, range) | audio s / wall s | vs fw one by one | "
        "p50 s | p95 s | WER | CER | peak RSS MiB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for side, rs in runs.items():
        walls = [r["wall"] for r in rs]
        wall = statistics.median(walls)
        p50 = statistics.median(quantile(r["latencies"], 0.5) for r in rs)
        p95 = statistics.median(quantile(r["latencies"], 0.95) for r in rs)
        ratio = f"{base / wall:.2f}x" if base else "-"
        print(f"| {side} | {wall:.1f} ({min(walls):.1f}-{max(walls):.1f}) | {audio_s / wall:.2f} | "
              f"{ratio} | {p50:.1f} | {p95:.1f} | {100 * rs[0]['wer']:.2f}% | "
              f"{100 * rs[0]['cer']:.2f}% | {max(r['rss'] for r in rs):.0f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
