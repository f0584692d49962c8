"""One configuration in its own process, so that its peak memory is its own.

``python -m malsori.bench.worker`` speaks ``malsori.bench.protocol`` (one JSON request a line
on stdin, one JSON reply a line on stdout):

- ``{"op": "load", "config": NAME, "model": M, "device": D, "threads": N}``:
  ``{"ok": true, "load_s": ..., "prepare_s": ..., "size_bytes": ...}``
- ``{"op": "run", "paths": [...]}``: ``{"ok": true, "outputs": [[text, language], ...],
  "wall_s": ...}``
- ``{"op": "stats"}``: ``{"ok": true, "peak_rss_bytes": ..., "peak_gpu_bytes": ...}``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from .configs import BenchConfig, Setting, make
from .protocol import peak_rss_bytes, serve_stdio

__all__ = ["Worker", "peak_gpu_bytes", "peak_rss_bytes"]


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


def main() -> None:
    serve_stdio(Worker().handle)


if __name__ == "__main__":
    main()
