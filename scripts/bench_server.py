#!/usr/bin/env python
"""Many clients at once against one ``malsori serve``, side by side with the same server with
batching off, with plain faster-whisper transcribing the same clips one by one and (optional)
with speaches, another OpenAI-compatible Whisper server on faster-whisper.

Sides (each in its own process, same model, compute type and CPU threads in all):

- ``engine``: ``malsori serve`` as shipped: every request goes through one engine that packs
  concurrent requests into shared windows and decodes them in batches (the layout it takes by
  default on a CPU, two lanes of half the threads, given ``--threads`` in all);
- ``unbatched``: the same server with ``MALSORI_ENGINE__BATCHING=false`` (each request decoded
  on its own by a worker thread, as before the engine);
- ``fw``: faster-whisper's ``WhisperModel.transcribe`` over the clips one by one in one process
  (its defaults: beam 5, language detection, no VAD);
- ``speaches``: a speaches server (uvicorn, one process, one CTranslate2 worker of ``--threads``
  threads, model never unloaded, its Silero VAD then ``BatchedInferencePipeline`` per request,
  beam 5) started from its own virtual environment (``--speaches-python`` or
  ``MALSORI_BENCH_SPEACHES_PYTHON``); skipped, with the reason, when that is not given or has
  no speaches. It reads malsori's installed model through a Hugging Face-style cache that the
  script lays out in a temporary folder (links to the model's files, ``HF_HUB_OFFLINE=1``);
- ``batch`` (``--long`` only): ``malsori batch`` on the long file (``scripts/bench_batch.py``'s
  worker: model loaded and warmed up untimed, then ``run_batch`` timed).

Workloads:

- ``--clients`` clips of the manifest (spread over it, so languages mix) sent at once, one
  request per client, over loopback only (``--clients 0``: skip);
- ``--long FILE``: one long recording (with its ``.segments.tsv`` reference) sent as one request
  to each server side, and through ``fw`` and ``batch``;
- ``--live N``: N live sessions on malsori's server sides (``/v1/realtime``, malsori's protocol,
  16 kHz PCM16 in 200 ms messages sent at real speed, language given) replaying the dev set's
  long-form recordings (``--live-seconds`` of each, taken in turn), alone (``--clients 0``) or
  with the clients' burst sent ``--live-lead`` seconds after they start. Reported: the **commit
  latency** of every final word (the time its ``final`` event arrived minus the time its end was
  sent, i.e. heard), p50/p95/max over all sessions and the worst session's p95.

Each side runs ``--repeats`` times, the order of the sides alternating between repeats (the
machine's speed drifts); medians are reported: audio seconds per wall second, p50/p95 latency,
corpus WER/CER (``malsori.evaluation`` normalisation) and the peak RSS of the server's process
tree (the sum of each process's peak). Servers are warmed up with one untimed request first
(speaches loads its model then).

    python scripts/bench_server.py --manifest ../shared/evaldata/manifest.tsv --clients 32 \\
        --repeats 3 --threads 2 --sides engine,unbatched,fw,speaches \\
        --speaches-python /work/speaches-venv/bin/python \\
        --long ../shared/evaldata/longform/ko_kih_longform.flac --long-language ko
    python scripts/bench_server.py --manifest ../shared/evaldata/manifest.tsv --clients 32 \\
        --live 2 --sides engine --repeats 3          # the burst with two live sessions
    python scripts/bench_server.py --clients 0 --live 4 --sides engine --repeats 3

Installing speaches for the comparison (outside this repository; nothing of it is part of
malsori). It needs Python 3.12 and the versions pinned in its ``uv.lock``; from a checkout of
its source (speaches-ai/speaches on GitHub, measured at commit 870e1e1)::

    python3.12 -m venv /work/speaches-venv
    /work/speaches-venv/bin/pip install uv
    cd speaches && /work/speaches-venv/bin/uv export --frozen --no-dev --no-emit-project \\
        --no-emit-workspace --no-hashes --format requirements-txt > /tmp/speaches-req.txt
    /work/speaches-venv/bin/uv pip install --python /work/speaches-venv/bin/python \\
        --no-deps -r /tmp/speaches-req.txt
    /work/speaches-venv/bin/uv pip install --python /work/speaches-venv/bin/python \\
        --no-deps .

(about 8 GB: the lock pins torch 2.8.0 with its CUDA libraries, pyannote, gradio and the rest of
its server; faster-whisper 1.1.1, ctranslate2 4.5.0, av 15.1.0, onnx-asr 0.7.0.) No model
download is needed: the script points it at malsori's model.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from malsori.bench.protocol import peak_rss_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import _segments_reference, score, short_set  # a sibling script
from bench_batch import run_engine as run_batch_worker

SIDES = ("engine", "unbatched", "fw", "speaches", "batch")
DEFAULT_SIDES = ("engine", "unbatched", "fw", "speaches")
SERVER_SIDES = ("engine", "unbatched", "speaches")
REQUEST_MODEL = "whisper-1"  # what every side is asked for
SPEACHES_ORG = "malsori"  # the cache folder's owner: the model is served as malsori/<model>


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in task.read_text().split()]
    return found


def peak_rss_mib(pid: int) -> float:
    """Sum of the peak resident memory of ``pid``'s process tree."""
    return sum(peak_rss_bytes(p) for p in _tree(pid)) / 1024 / 1024


def speaches_python(args: argparse.Namespace) -> tuple[str | None, str]:
    """(interpreter, "") when speaches can be started, else (None, why not)."""
    python = args.speaches_python or os.environ.get("MALSORI_BENCH_SPEACHES_PYTHON")
    if not python:
        return None, ("no --speaches-python (or MALSORI_BENCH_SPEACHES_PYTHON) given; see this "
                      "script's docstring for how to install speaches")  # fmt: skip
    if not Path(python).exists():
        return None, f"{python} does not exist"
    check = "import importlib.util,sys;sys.exit(importlib.util.find_spec('speaches.main') is None)"
    if subprocess.run([python, "-c", check], capture_output=True).returncode != 0:
        return None, f"speaches is not installed in {python}'s environment"
    return python, ""


def speaches_cache(model: str, root: Path) -> str:
    """A Hugging Face-style cache holding malsori's ``model`` as ``malsori/<model>``; its ID."""
    from malsori.registry import resolve

    source = resolve(model).path
    name = source.name.replace("/", "-")
    repo = root / "hub" / f"models--{SPEACHES_ORG}--{name}"
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    for f in ("model.bin", "config.json", "tokenizer.json", "vocabulary.json",
              "vocabulary.txt", "preprocessor_config.json"):  # fmt: skip
        if (source / f).exists():
            (snapshot / f).symlink_to((source / f).resolve())
    if not (snapshot / "preprocessor_config.json").exists():  # speaches lists it as required
        config = json.loads((source / "config.json").read_text())
        mels = 128 if len(config.get("lang_ids", [])) > 99 else 80  # large-v3 and turbo: 128
        (snapshot / "preprocessor_config.json").write_text(json.dumps({
            "feature_size": mels, "sampling_rate": 16000, "hop_length": 160,
            "chunk_length": 30, "n_fft": 400}))  # fmt: skip
    # speaches finds its models by their card: library and task in the front matter
    (snapshot / "README.md").write_text(
        "---\nlibrary_name: ctranslate2\npipeline_tag: automatic-speech-recognition\n"
        f"tags:\n- automatic-speech-recognition\n---\nmalsori's `{model}` model (benchmark).\n"
    )
    return f"{SPEACHES_ORG}/{name}"


def start_server(
    side: str, args: argparse.Namespace, data: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """The side's server, ready: its process and URL."""
    port = free_port()
    cwd = None
    if side == "speaches":
        # It runs from its checkout: it mounts realtime-console/dist and reads model_aliases.json
        # in its working folder. The alias lets every side be asked for the same "whisper-1".
        (data / "realtime-console" / "dist").mkdir(parents=True)
        model_id = speaches_cache(args.model, data / "hf")
        (data / "model_aliases.json").write_text(json.dumps({REQUEST_MODEL: model_id}))
        cwd = data
        env = dict(os.environ, HF_HUB_CACHE=str(data / "hf" / "hub"), HF_HUB_OFFLINE="1",
                   WHISPER__INFERENCE_DEVICE="cpu", WHISPER__COMPUTE_TYPE=args.compute_type,
                   WHISPER__CPU_THREADS=str(args.threads), WHISPER__NUM_WORKERS="1",
                   STT_MODEL_TTL="-1", ENABLE_UI="false", LOG_LEVEL="warning",
                   DO_NOT_TRACK="1", HF_HUB_DISABLE_TELEMETRY="1",
                   GRADIO_ANALYTICS_ENABLED="False", PYANNOTE_METRICS_ENABLED="0")  # fmt: skip
        env.pop("PYTHONPATH", None)
        cmd = [args.speaches_python, "-m", "uvicorn", "--factory", "speaches.main:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
        ready = "/health"
    else:
        env = dict(os.environ,
                   MALSORI_ENGINE__BATCHING="true" if side == "engine" else "false",
                   MALSORI_ENGINE__BATCH_SIZE=str(args.batch_size))  # fmt: skip
        cmd = [sys.executable, "-m", "malsori", "serve", "--no-auth", "--port", str(port),
               "--data-dir", str(data), "--beam-size", str(args.beam_size), "--model",
               args.model, "--compute-type", args.compute_type, "--queue-size",
               str(4 * max(args.clients, 1)), "--log-level", "warning"]  # fmt: skip
        if side == "unbatched":  # its own default layout: one worker on every thread
            cmd += ["--workers", "1", "--threads", str(args.threads)]
        else:  # its default layout (as `malsori batch`), held to --threads on a bigger machine
            from malsori.batch.runner import model_layout

            workers, each = model_layout("cpu", args.threads)
            cmd += ["--workers", str(workers), "--threads", str(each)]
        ready = "/ready"
    log = open(data / "server.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit((data / "server.log").read_text())
        try:
            if httpx.get(f"{url}{ready}", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"{side}: server did not become ready")


async def _send(client: httpx.AsyncClient, url: str, path: str) -> tuple[str, float, str]:
    started = time.perf_counter()
    with open(path, "rb") as f:
        response = await client.post(
            f"{url}/v1/audio/transcriptions",
            files={"file": (Path(path).name, f.read())},
            data={"model": REQUEST_MODEL, "response_format": "json"},
        )
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        return path, seconds, f"<HTTP {response.status_code}: {response.text[:200]}>"
    return path, seconds, str(response.json()["text"]).strip()


async def _warm_up(url: str, warmup: str) -> None:
    async with httpx.AsyncClient(timeout=3600) as client:
        _, _, text = await _send(client, url, warmup)
    if text.startswith("<HTTP"):
        raise SystemExit(f"warm-up request failed: {text}")


async def _all_at_once(
    url: str, paths: list[str], warmup: str, warm: bool = True
) -> tuple[dict[str, str], list[float], float]:
    if warm:
        await _warm_up(url, warmup)
    limits = httpx.Limits(max_connections=len(paths) + 4)
    async with httpx.AsyncClient(timeout=3600, limits=limits) as client:
        started = time.perf_counter()
        results = await asyncio.gather(*(_send(client, url, p) for p in paths))
        wall = time.perf_counter() - started
    return {p: t for p, _, t in results}, [s for _, s, _ in results], wall


LIVE_CHUNK_S = 0.2  # audio per WebSocket message


def live_audio(data: Path, seconds: float) -> list[tuple[str, bytes]]:
    """(language, 16 kHz PCM16) of the dev set's long-form recordings, ``seconds`` of each."""
    from malsori.audio import SAMPLE_RATE, AudioStream

    out = []
    for path in sorted((data / "longform").glob("*.flac")):
        language = "ko" if path.name.startswith("ko_") else "en"
        samples = AudioStream(path).read()[: int(seconds * SAMPLE_RATE)]
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        out.append((language, pcm))
    if not out:
        raise SystemExit(f"--live: no long-form recordings in {data / 'longform'}")
    return out


async def _live_session(url: str, language: str, pcm: bytes) -> list[float]:
    """Replay ``pcm`` at real speed to ``/v1/realtime``; the commit latency of each final word."""
    import websockets

    ws_url = url.replace("http://", "ws://") + f"/v1/realtime?encoding=pcm16&language={language}"
    step = int(LIVE_CHUNK_S * 16000) * 2
    latencies: list[float] = []
    async with websockets.connect(ws_url, subprotocols=["malsori.v1"], max_size=None) as ws:
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            raise SystemExit(f"live session refused: {ready}")
        started = time.perf_counter()

        async def read() -> None:
            async for message in ws:
                event = json.loads(message)
                now = time.perf_counter() - started
                if event["type"] == "final":
                    ends = [w["end"] for w in event.get("words") or []]
                    if not ends and event["text"].strip():
                        ends = [event["end"]]
                    latencies.extend(now - end for end in ends)
                elif event["type"] in ("end", "error"):
                    if event["type"] == "error":
                        print(f"  live session error: {event['error']}", flush=True)
                    return

        reader = asyncio.create_task(read())
        for n, at in enumerate(range(0, len(pcm), step)):
            # the message holds audio up to (n + 1) chunks: it can be sent once that is heard
            await asyncio.sleep(max(0.0, started + (n + 1) * LIVE_CHUNK_S - time.perf_counter()))
            await ws.send(pcm[at : at + step])
        await ws.send(json.dumps({"type": "stop"}))
        await reader
    return latencies


async def _load(
    url: str, paths: list[str], warmup: str, live: list[tuple[str, bytes]], lead_s: float
) -> tuple[dict[str, str], list[float], float, list[list[float]]]:
    """The live sessions (if any), and ``lead_s`` later the clients' burst (if any)."""
    sessions = [asyncio.create_task(_live_session(url, lang, pcm)) for lang, pcm in live]
    texts: dict[str, str] = {}
    latencies: list[float] = []
    wall = 0.0
    if paths:
        if sessions:
            await asyncio.sleep(lead_s)
        texts, latencies, wall = await _all_at_once(url, paths, warmup, warm=not sessions)
    return texts, latencies, wall, [await s for s in sessions]


def run_server_side(
    side: str, args: argparse.Namespace, paths: list[str], warmup: str
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as tmp:
        proc, url = start_server(side, args, Path(tmp))
        try:
            live = getattr(args, "live_audio", [])
            if live:
                asyncio.run(_warm_up(url, warmup))
            texts, latencies, wall, live_latencies = asyncio.run(
                _load(url, paths, warmup, live, args.live_lead)
            )
            rss = peak_rss_mib(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return {"texts": texts, "latencies": latencies, "wall": wall, "rss": rss,
            "live": live_latencies}  # fmt: skip


def run_fw_side(args: argparse.Namespace, paths: list[str], warmup: str) -> dict[str, Any]:
    """faster-whisper in a process of its own: the clips one by one."""
    code = (
        "import json,sys,time,resource\n"
        "from faster_whisper import WhisperModel\n"
        "from malsori.registry import resolve\n"
        "a=json.loads(sys.argv[1])\n"
        "m=WhisperModel(str(resolve(a['model']).path),device='cpu',"
        "compute_type=a['compute_type'],cpu_threads=a['threads'])\n"
        "one=lambda p:''.join(s.text for s in m.transcribe(p,beam_size=a['beam'])[0]).strip()\n"
        "one(a['warmup'])\n"
        "t=time.perf_counter();texts={};lat=[]\n"
        "for p in a['paths']:\n"
        "    texts[p]=one(p);lat.append(time.perf_counter()-t)\n"
        "wall=time.perf_counter()-t\n"
        "rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024\n"
        "print(json.dumps({'texts':texts,'latencies':lat,'wall':wall,'rss':rss}))\n"
    )
    settings = {"model": args.model, "compute_type": args.compute_type, "threads": args.threads}
    payload = json.dumps({**settings, "beam": args.beam_size, "paths": paths, "warmup": warmup})
    out = subprocess.run([sys.executable, "-c", code, payload], check=True, capture_output=True,
                         text=True)  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_batch_side(
    args: argparse.Namespace, paths: list[str], warmup: str, workdir: Path
) -> dict[str, Any]:
    """``malsori batch`` on the files, through bench_batch.py's worker (loading untimed)."""
    worker_args = argparse.Namespace(model=args.model, compute_type=args.compute_type,
                                     threads=args.threads, batch_size=args.batch_size,
                                     warmup_file=warmup)  # fmt: skip
    data = run_batch_worker(worker_args, "malsori", paths, workdir)
    return {"texts": data["texts"], "latencies": [data["wall"]], "wall": data["wall"],
            "rss": data["peak_rss_mib"]}  # fmt: skip


def pick(manifest: Path, clients: int) -> list[tuple[str, str, str, float]]:
    entries = short_set(manifest, 10**6)
    step = max(1, len(entries) // clients)
    return entries[::step][:clients]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    title: str,
    sides: list[str],
    args: argparse.Namespace,
    refs: list[tuple[str, str, str]],
    audio_s: float,
    warmup: str,
    workdir: Path,
) -> dict[str, list[dict[str, Any]]]:
    """Every side ``--repeats`` times (order alternating); prints the table of medians."""
    paths = [r[0] for r in refs]
    print(f"{title}: {audio_s:.1f} s of audio; sides {sides}; {args.repeats} repeats", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
    for repeat in range(args.repeats):
        order = sides if repeat % 2 == 0 else sides[::-1]
        for side in order:
            if side == "fw":
                run = run_fw_side(args, paths, warmup)
            elif side == "batch":
                run = run_batch_side(args, paths, warmup, workdir)
            else:
                run = run_server_side(side, args, paths, warmup)
            if refs:
                run.update(score(refs, run["texts"]))
            runs[side].append(run)
            line = f"  repeat {repeat + 1} {side}:"
            if refs:
                line += f" wall {run['wall']:.1f} s, p95 {quantile(run['latencies'], 0.95):.1f} s"
            if run.get("live"):
                words = [x for session in run["live"] for x in session]
                line += (f" live p50 {quantile(words, 0.5):.2f} s, p95 "
                         f"{quantile(words, 0.95):.2f} s ({len(words)} words)")  # fmt: skip
            print(line, flush=True)
    live_table(title, runs)
    if not refs:
        return runs
    ref_side = "fw" if "fw" in runs else None
    base = statistics.median(r["wall"] for r in runs[ref_side]) if ref_side else None
    print(
        f"\n{title}\n\n| side | wall s (median, range) | audio s / wall s | vs fw one by one | "
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
    print(flush=True)
    return runs


def live_table(title: str, runs: dict[str, list[dict[str, Any]]]) -> None:
    """Commit latency of the live sessions' final words: medians over repeats."""
    rows = {side: rs for side, rs in runs.items() if any(r.get("live") for r in rs)}
    if not rows:
        return
    print(
        f"\n{title}: live sessions, commit latency of final words (s)\n\n| side | sessions | "
        "words | p50 | p95 | max | worst session p95 |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    for side, rs in rows.items():
        every = [[x for session in r["live"] for x in session] for r in rs]
        worst = [max(quantile(session, 0.95) for session in r["live"] if session) for r in rs]
        print(f"| {side} | {len(rs[0]['live'])} | {statistics.median(len(w) for w in every):.0f} | "
              f"{statistics.median(quantile(w, 0.5) for w in every):.2f} | "
              f"{statistics.median(quantile(w, 0.95) for w in every):.2f} | "
              f"{statistics.median(max(w) for w in every):.2f} | "
              f"{statistics.median(worst):.2f} |")  # fmt: skip
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--manifest", type=Path, help="short clips (needed unless --clients 0)")
    p.add_argument("--clients", type=int, default=32, help="0: no short-clip workload")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="CPU threads in all, every side")
    p.add_argument("--model", default="base")
    p.add_argument("--compute-type", default="int8")
    p.add_argument("--beam-size", type=int, default=5, help="malsori and fw (speaches: its 5)")
    p.add_argument("--batch-size", type=int, default=8, help="the engine's windows per call")
    p.add_argument("--sides", default=",".join(DEFAULT_SIDES), help=f"from {', '.join(SIDES)}")
    p.add_argument("--long", type=Path, metavar="FILE",
                   help="also one long recording (its reference: FILE.segments.tsv)")  # fmt: skip
    p.add_argument("--long-language", default="ko", help="the long file's language (scoring)")
    p.add_argument("--speaches-python", help="python of a venv with speaches (see the docstring)")
    p.add_argument(
        "--live",
        type=int,
        default=0,
        metavar="N",
        help="N live sessions on malsori's server sides (with the burst, or alone)",
    )
    p.add_argument(
        "--live-seconds",
        type=float,
        default=90.0,
        help="audio each live session replays at real speed",
    )
    p.add_argument(
        "--live-lead",
        type=float,
        default=10.0,
        help="seconds the live sessions run before the clients' burst",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=Path(__file__).resolve().parent.parent.parent / "shared" / "evaldata",
        help="the dev set (its longform/ for --live)",
    )
    p.add_argument("--json", type=Path, help="write every run's numbers here")
    args = p.parse_args(argv)
    sides = [s for s in args.sides.split(",") if s]
    unknown = sorted(set(sides) - set(SIDES))
    if unknown:
        raise SystemExit(f"unknown sides: {', '.join(unknown)} (use {', '.join(SIDES)})")
    if args.clients > 0 and args.manifest is None:
        raise SystemExit("--manifest is needed for the short clips (or --clients 0)")
    if args.clients <= 0 and args.long is None and args.live <= 0:
        raise SystemExit("nothing to measure: give --clients > 0, --long FILE or --live N")
    if args.live > 0:
        if set(sides) - {"engine", "unbatched"}:
            raise SystemExit("--live runs on malsori's server sides only: --sides engine,unbatched")
        recordings = live_audio(args.data, args.live_seconds)
        args.live_audio = [recordings[n % len(recordings)] for n in range(args.live)]
    if "speaches" in sides:
        args.speaches_python, why = speaches_python(args)
        if args.speaches_python is None:
            print(f"speaches side skipped: {why}", flush=True)
            sides.remove("speaches")
    if args.beam_size != 5 and "speaches" in sides:
        print("note: speaches decodes with beam 5 whatever --beam-size says", flush=True)
    if shutil.which("sox") is None and args.long:
        raise SystemExit("the long workload needs sox (its untimed warm-up clip)")
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        workdir = Path(tmp)
        if args.clients > 0:
            assert args.manifest is not None
            clips = pick(args.manifest, args.clients)
            refs = [(c[0], c[1], c[2]) for c in clips]
            title = f"{len(clips)} clients at once, one short clip each"
            short_sides = [s for s in sides if s != "batch"]
            if args.live > 0:
                title += f", with {args.live} live sessions"
            report[title] = measure(title, short_sides, args, refs, sum(c[3] for c in clips),
                                    clips[0][0], workdir)  # fmt: skip
        elif args.live > 0:
            title = f"{args.live} live sessions, nothing else"
            warmup = str(workdir / "warmup.flac")  # 10 s of a long-form file, untimed
            first = sorted((args.data / "longform").glob("*.flac"))[0]
            subprocess.run(["sox", str(first), warmup, "trim", "0", "10"], check=True)
            report[title] = measure(title, sides, args, [], 0.0, warmup, workdir)
        args.live_audio = []  # the long file alone
        if args.long is not None:
            from malsori.audio import probe

            long_path = str(args.long.resolve())
            seconds = probe(long_path).declared_duration or 0.0
            refs = [(long_path, args.long_language, _segments_reference(args.long))]
            warmup = str(workdir / "warmup.flac")  # 15 s of the file, untimed
            subprocess.run(["sox", long_path, warmup, "trim", "0", "15"], check=True)
            title = f"one long file ({args.long.name}), one request"
            report[title] = measure(title, sides, args, refs, seconds, warmup, workdir)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
