#!/usr/bin/env python3
"""Memory and time of loading, swapping and unloading models through the server's model manager.

Loads each given model in turn with a budget of one loaded model (each load evicts the one
before), then unloads the last, and prints the process's resident memory after every step: what
one model costs, and whether unloading gives it back. CPU only, no HTTP.

    python scripts/bench_model_manager.py base tiny.en base --threads 2
"""

from __future__ import annotations

import argparse
import os
import time


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="models to load in this order (installed)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per model")
    args = parser.parse_args()

    from malsori import load_model
    from malsori.server.metrics import Metrics
    from malsori.server.models import ModelManager

    manager = ModelManager(
        {m: m for m in dict.fromkeys(args.models)},
        aliases=[],
        load=lambda spec: load_model(spec, device="cpu", threads=args.threads),
        make_engine=lambda model: None,
        metrics=Metrics(),
        max_loaded=1,
    )
    print(f"start: RSS {rss_mib():.0f} MiB")
    for model in args.models:
        started = time.perf_counter()
        manager.load(model)
        seconds = time.perf_counter() - started
        print(f"load {model} (evicting the one before): {seconds:.2f} s, RSS {rss_mib():.0f} MiB")
    manager.unload(args.models[-1])
    print(f"unload {args.models[-1]}: RSS {rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
