#!/usr/bin/env python
"""Latency benchmark of the streaming engine: real long-form speech replayed at real speed.

For each recording (``longform/*.flac`` of ../shared/evaldata by default):

1. the offline transcript: ``Model.transcribe`` with default options and word timestamps;
2. the stream: the file replayed in real time (``FileReplay``) into an ``OnlineProcessor``
   (``drive``, as ``malsori live --file X --realtime``), every event stamped with the wall-clock
   time since the replay started (which is the audio time being heard at that moment).

Reported, per file:

- **commit latency** of each final word: the time its final event was emitted minus the end of
  that word in the audio. Word ends come from the offline transcript's word timestamps (final
  words are aligned to offline words with difflib on normalised text; unmatched words are left
  out), and, as a cross-check, from the stream's own word times. p50, p95, max.
- **WER** of the final text and of the offline text against the reference (``segments.tsv``),
  and of the final text against the offline text (malsori.evaluation normalisation, jiwer).
- **CPU**: process CPU seconds per wall second during the replay (2.0 = two cores busy), and the
  system load average at the start and end (other users of the machine show there).

    python scripts/bench_streaming.py --threads 2
    python scripts/bench_streaming.py --files longform/ko_kih_longform.flac --max-seconds 180

Results go to bench-results/streaming-<time>.json (and a summary is printed).
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import malsori  # noqa: E402
from malsori.audio import SAMPLE_RATE, AudioStream  # noqa: E402
from malsori.evaluation import error_counts, normalize_text  # noqa: E402
from malsori.streaming import Final, OnlineProcessor, StreamEvent, StreamingOptions  # noqa: E402
from malsori.streaming.driver import drive  # noqa: E402

DEFAULT_FILES = ("longform/ljspeech_LJ001_0001-0032.flac", "longform/ko_kih_longform.flac")
LANGUAGES = {"ljspeech": "en", "ko_": "ko"}


@dataclass
class Stamped:
    wall: float  # seconds since the replay started
    event: StreamEvent


class ArrayReplay:
    """Blocks of a waveform at real speed (the file is decoded before the clock starts)."""

    def __init__(self, audio: np.ndarray, block_s: float = 0.1, speed: float = 1.0):
        self.audio = audio
        self.block = int(block_s * SAMPLE_RATE)
        self.speed = speed
        self.started = 0.0

    def __iter__(self) -> Any:
        self.started = time.monotonic()
        REPLAY_STARTED[0] = time.time()
        for i in range(0, self.audio.size, self.block):
            part = self.audio[i : i + self.block]
            due = self.started + (i + part.size) / SAMPLE_RATE / self.speed
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            yield part


REPLAY_STARTED = [0.0]  # time.time() when the current replay started, for the log


class ReplayClockFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"[{record.created - REPLAY_STARTED[0]:7.2f}] {record.getMessage()}"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values), q))


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": _r(percentile(values, 50)),
        "p95": _r(percentile(values, 95)),
        "mean": _r(statistics.fmean(values)) if values else None,
        "max": _r(max(values)) if values else None,
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def keys(words: list[str], language: str) -> list[str]:
    return [normalize_text(w, language) or w.strip().lower() for w in words]


def latencies(
    stamped: list[Stamped], offline_words: list[Any], language: str
) -> tuple[list[float], list[float], list[dict[str, Any]]]:
    """(latency against the offline word ends, latency against the stream's own word ends, and
    every final word with its times, for finding where the slow commits are)."""
    finals = [(s.wall, w) for s in stamped if isinstance(s.event, Final) for w in s.event.words]
    own = [wall - w.end for wall, w in finals]
    a = keys([w.word for _, w in finals], language)
    b = keys([w.word for w in offline_words], language)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    against_offline = []
    offline_end: dict[int, float] = {}
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            wall, _ = finals[block.a + k]
            offline_end[block.a + k] = offline_words[block.b + k].end
            against_offline.append(wall - offline_words[block.b + k].end)
    trace = [
        {
            "word": w.word,
            "start": round(w.start, 2),
            "end": round(w.end, 2),
            "offline_end": _r(offline_end.get(i)),
            "emitted": round(wall, 2),
        }
        for i, (wall, w) in enumerate(finals)
    ]
    return against_offline, own, trace


def wer(reference: str, hypothesis: str, language: str) -> float | None:
    counts = error_counts(normalize_text(reference, language), normalize_text(hypothesis, language))
    rate = counts.rate
    return None if rate is None else round(100 * rate, 2)


def reference_text(path: Path, until: float) -> str | None:
    """The reference utterances that end within the first ``until`` seconds."""
    tsv = path.with_name(path.name.replace(".flac", ".segments.tsv"))
    if not tsv.exists():
        return None
    rows = [line.split("\t", 2) for line in tsv.read_text(encoding="utf-8").splitlines()[1:]]
    return " ".join(r[2] for r in rows if len(r) == 3 and float(r[1]) <= until + 0.5)


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def run_file(
    model: Any,
    path: Path,
    language: str,
    args: argparse.Namespace,
    audio: np.ndarray,
    offline: Any,
    offline_s: float,
    encoder_window_s: float,
) -> dict[str, Any]:
    seconds = audio.size / SAMPLE_RATE
    options = malsori.TranscribeOptions(language=language, beam_size=args.beam_size)
    streaming = StreamingOptions(
        min_chunk_s=args.min_chunk,
        trim_s=args.trim,
        commit_guard_s=args.guard,
        encoder_window_s=encoder_window_s,
        fallback=args.fallback,
        decode_budget_s=args.decode_budget or None,
    )
    engine = OnlineProcessor(model, options, streaming, source=str(path))
    stamped: list[Stamped] = []
    replay = ArrayReplay(audio, speed=args.speed)
    load_before = os.getloadavg()
    cpu_before, wall_before = cpu_seconds(), time.monotonic()

    def on_event(event: StreamEvent) -> None:
        stamped.append(Stamped((time.monotonic() - replay.started) * args.speed, event))
        if isinstance(event, Final) and event.segment_end and args.verbose:
            print(f"  [{stamped[-1].wall:7.2f}] final to {event.end:7.2f}: {event.text.strip()}")

    drive(engine, replay, on_event, stop=threading.Event())
    wall = time.monotonic() - wall_before
    cpu = cpu_seconds() - cpu_before
    load_after = os.getloadavg()

    final_text = engine.committed_text
    vs_offline, vs_own, trace = latencies(stamped, list(offline.words), language)
    reference = reference_text(path, seconds)
    stats = engine.stats
    return {
        "file": str(path),
        "language": language,
        "encoder_window_s": encoder_window_s,
        "audio_seconds": round(seconds, 2),
        "latency_vs_offline_word_end": summary(vs_offline),
        "latency_vs_stream_word_end": summary(vs_own),
        "wer_final_vs_offline": wer(offline.text, final_text, language),
        "wer_final_vs_reference": wer(reference, final_text, language) if reference else None,
        "wer_offline_vs_reference": wer(reference, offline.text, language) if reference else None,
        "cpu_cores_used": round(cpu / wall, 2),
        "wall_seconds": round(wall, 1),
        "load_average_start": [round(x, 2) for x in load_before],
        "load_average_end": [round(x, 2) for x in load_after],
        "decodes": stats.decodes,
        "mean_decode_seconds": round(stats.decode_seconds / max(1, stats.decodes), 3),
        "silent_skips": stats.silent_skips,
        "endpoints": stats.endpoints,
        "forced_commits": stats.forced_commits,
        "greedy_decodes": stats.greedy_decodes,
        "offline_seconds": round(offline_s, 1),
        "final_text": final_text,
        "offline_text": offline.text,
        "final_words": trace,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "evaldata"))
    p.add_argument("--files", nargs="+", default=list(DEFAULT_FILES))
    p.add_argument("--model", default="base")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument(
        "--decode-budget",
        type=float,
        default=StreamingOptions.decode_budget_s,
        help="StreamingOptions.decode_budget_s (0: always --beam-size)",
    )
    p.add_argument("--min-chunk", type=float, default=0.5)
    p.add_argument("--trim", type=float, default=StreamingOptions.trim_s, help="trim_s")
    p.add_argument(
        "--guard", type=float, default=StreamingOptions.commit_guard_s, help="commit_guard_s"
    )
    p.add_argument("--fallback", action="store_true", help="temperature fallback in decodes")
    p.add_argument(
        "--encoder-windows", default="15,30", help="encoder windows (s), each run on every file"
    )
    p.add_argument("--speed", type=float, default=1.0, help="replay speed (1.0: real time)")
    p.add_argument("--max-seconds", type=float, default=0, help="replay only this much")
    p.add_argument("--out", default=str(ROOT / "bench-results"))
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument(
        "--log",
        default=None,
        help="write the engine's step-by-step debug log here (seconds "
        "since the replay of the current file started, then the message)",
    )
    args = p.parse_args()
    if args.log:
        handler = logging.FileHandler(args.log, mode="w", encoding="utf-8")
        handler.setFormatter(ReplayClockFormatter())
        engine_log = logging.getLogger("malsori.streaming")
        engine_log.setLevel(logging.DEBUG)
        engine_log.addHandler(handler)

    windows = [float(w) for w in args.encoder_windows.split(",") if w.strip()]
    model = malsori.load_model(args.model, threads=args.threads)
    model.transcribe(np.zeros(SAMPLE_RATE, np.float32), language="en", vad=False)  # warm-up
    results = []
    for name in args.files:
        path = Path(args.data) / name
        language = next((v for k, v in LANGUAGES.items() if k in path.name), "en")
        audio = AudioStream(path).read()
        if args.max_seconds:
            audio = audio[: int(args.max_seconds * SAMPLE_RATE)]
        seconds = audio.size / SAMPLE_RATE
        print(f"== {path.name}: {seconds:.1f} s, {language}", flush=True)
        started = time.perf_counter()
        offline = model.transcribe(audio, language=language, word_timestamps=True)
        offline_s = time.perf_counter() - started
        print(f"offline: {offline_s:.1f} s (RTFx {seconds / offline_s:.2f})", flush=True)
        for window in windows:
            r = run_file(model, path, language, args, audio, offline, offline_s, window)
            results.append(r)
            lat = r["latency_vs_offline_word_end"]
            print(
                f"encoder window {window:g} s: commit latency p50 {lat['p50']} s, "
                f"p95 {lat['p95']} s (n={lat['n']}); WER final vs reference "
                f"{r['wer_final_vs_reference']}%, offline vs reference "
                f"{r['wer_offline_vs_reference']}%, final vs offline {r['wer_final_vs_offline']}%; "
                f"mean decode {r['mean_decode_seconds']} s, {r['greedy_decodes']} of "
                f"{r['decodes']} greedy; CPU {r['cpu_cores_used']} cores; "
                f"load {r['load_average_start']} -> {r['load_average_end']}",
                flush=True,
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / time.strftime("streaming-%Y%m%d-%H%M%S.json")
    meta = {
        "model": args.model, "threads": args.threads, "beam_size": args.beam_size,
        "min_chunk_s": args.min_chunk, "trim_s": args.trim, "speed": args.speed,
        "fallback": args.fallback,
        "cpus": os.cpu_count(),
        "machine": platform.platform(), "malsori": malsori.__version__,
    }  # fmt: skip
    target.write_text(json.dumps({"meta": meta, "results": results}, ensure_ascii=False, indent=2))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
