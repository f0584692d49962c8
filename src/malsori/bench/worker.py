"""One configuration in its own process, so that its peak memory is its own.

``python -m malsori.bench.worker`` reads one JSON request a line on stdin and answers one JSON
line each on the stdout it started with (anything the engines print goes to stderr instead):

- ``{"op": "load", "config": NAME, "model": M, "device": D, "threads": N}``:
  ``{"ok": true, "load_s": ..., "prepare_s": ..., "size_bytes": ...}``
- ``{"op": "run", "paths": [...]}``: ``{"ok": true, "outputs": [[text, language], ...],
  "wall_s": ...}``
- ``{"op": "stats"}``: ``{"ok": true, "peak_rss_bytes": ..., "peak_gpu_bytes": ...}``

A failure answers ``{"ok": false, "error": "..."}`` and the worker goes on reading.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any

from .configs import BenchConfig, Setting, make


def peak_rss_bytes() -> int:
    """This process's peak resident memory: ``VmHWM`` of its own address space. (``ru_maxrss``
    would not do: Linux carries the parent's peak over into a child at fork.)"""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # elsewhere: kilobytes


def peak_gpu_bytes() -> int | None:
    if "torch" not in sys.modules:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.max_memory_allocated())


class Worker:
    def __init__(self) -> None:
        self.config: BenchConfig | None = None

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "load":
            setting = Setting(request["model"], request["device"], int(request["threads"]))
            config = make(request["config"], setting)
            started = time.perf_counter()
            config.prepare()
            prepared = time.perf_counter()
            config.load()
            loaded = time.perf_counter()
            self.config = config
            return {
                "ok": True,
                "prepare_s": prepared - started,
                "load_s": loaded - prepared,
                "size_bytes": config.size_on_disk(),
            }
        if op == "run":
            if self.config is None:
                return {"ok": False, "error": "no configuration loaded"}
            paths = [Path(p) for p in request["paths"]]
            started = time.perf_counter()
            outputs = self.config.run(paths)
            wall = time.perf_counter() - started
            return {"ok": True, "outputs": [[o.text, o.language] for o in outputs], "wall_s": wall}
        if op == "stats":
            return {
                "ok": True,
                "peak_rss_bytes": peak_rss_bytes(),
                "peak_gpu_bytes": peak_gpu_bytes(),
            }
        return {"ok": False, "error": f"unknown request {op!r}"}


def serve(requests: IO[str], replies: IO[str]) -> None:
    worker = Worker()
    for line in requests:
        if not line.strip():
            continue
        try:
            reply = worker.handle(json.loads(line))
        except Exception as e:  # reported to the parent, which marks the configuration failed
            traceback.print_exc(file=sys.stderr)
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0]}
        replies.write(json.dumps(reply, ensure_ascii=False) + "\n")
        replies.flush()


def main() -> None:
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # engines that print (whisper.cpp, tqdm) write to stderr from now on
    sys.stdout = sys.stderr
    serve(sys.stdin, replies)
    replies.close()
    sys.stderr.flush()
    os._exit(0)  # no interpreter teardown: engine threads can hold it up for many seconds


if __name__ == "__main__":
    main()
