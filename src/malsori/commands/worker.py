"""``malsori worker``: runs durable jobs from the database shared with ``malsori serve`` replicas
(no HTTP API). Needs the ``server`` extra; settings as ``malsori serve`` (``MALSORI_*``)."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from .serve import load_settings, require_server_extra


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="run durable jobs from the shared database (for API-only `serve` replicas)",
        description="Claim durable jobs from the database that `malsori serve` replicas share "
        "(MALSORI_DATABASE_URL; PostgreSQL across machines) and run them, renewing a lease on "
        "each; a worker that dies loses its jobs to another once their lease runs out. SIGTERM "
        "hands the running jobs back. Job audio is read from the shared data folder.",
    )
    p.add_argument("--data-dir", help="the data folder the replicas share (job audio)")
    p.add_argument("-m", "--model", action="append", metavar="MODEL",
                   help="model name or CTranslate2 folder (default: base); repeat for every "
                   "model the replicas serve: a job runs with the one it named")  # fmt: skip
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: auto")
    p.add_argument("--compute-type", help="CTranslate2 compute type (default: auto)")
    p.add_argument("--threads", type=int, help="CPU threads per model lane (default: all)")
    p.add_argument("--beam-size", type=int, help="beam width for every job (default: 5)")
    p.add_argument("--concurrency", type=int, help="jobs held and run at once (default: 4)")
    p.add_argument("--metrics-host", help="address of /metrics (default: 127.0.0.1)")
    p.add_argument("--metrics-port", type=int, help="port of /metrics, 0 for none (default: 9101)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=run)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {
        "model": {"name": args.model[0] if args.model else None,
                  "others": args.model[1:] if args.model and len(args.model) > 1 else None,
                  "device": args.device, "compute_type": args.compute_type,
                  "threads": args.threads},
        "decode": {"beam_size": args.beam_size},
        "worker": {"concurrency": args.concurrency, "metrics_host": args.metrics_host,
                   "metrics_port": args.metrics_port},
    }  # fmt: skip
    out: dict[str, Any] = {
        k: v for k, v in (("data_dir", args.data_dir), ("log_level", args.log_level)) if v
    }
    for name, values in groups.items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            out[name] = given
    return out


def run(args: argparse.Namespace) -> int:
    require_server_extra("worker")
    from ..server.logs import configure_logging
    from ..server.services import served_models
    from ..server.worker import run_worker

    settings = load_settings(_overrides(args))
    configure_logging("debug" if args.verbose else settings.log_level)
    served_models([settings.model.name, *settings.model.others])  # each installed: one line if not
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_worker(settings, stop)
    return 0
