"""``malsori serve``: the HTTP server (OpenAI-compatible API, durable jobs). Needs the ``server``
extra; nothing from it is imported until the command runs."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..errors import InvalidOptionError, require_extra

logger = logging.getLogger(__name__)

SERVER_MODULES = (
    "fastapi", "uvicorn", "multipart", "sqlalchemy", "pydantic_settings", "prometheus_client",
    "httpx",
)  # fmt: skip


def require_server_extra(command: str) -> None:
    """Raise a one-line error naming the extra when any server package is missing."""
    require_extra("server", SERVER_MODULES, f"`malsori {command}`")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the HTTP server: OpenAI-compatible API, durable jobs",
        description="Serve Whisper models over HTTP: /v1/audio/transcriptions and "
        "/v1/audio/translations (OpenAI-compatible), /v1/jobs, /v1/models, /health, /ready, "
        "/metrics. Every setting can also come from MALSORI_* environment variables "
        "(MALSORI_DATABASE_URL, MALSORI_LIMITS__MAX_UPLOAD_BYTES, ...); flags win.",
    )
    p.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default: 8000)")
    p.add_argument("--workers", type=int, help="transcription worker threads (default: 1)")
    p.add_argument("--data-dir", help="jobs database, job audio and spool files")
    p.add_argument("--spool-dir", help="uploads being checked (default: DATA_DIR/uploads)")
    p.add_argument("--no-workers", action="store_true",
                   help="API only: leave jobs to `malsori worker` processes")  # fmt: skip
    p.add_argument("--no-auth", action="store_true",
                   help="accept requests without an API key (local use only)")  # fmt: skip
    p.add_argument("-m", "--model", action="append", metavar="MODEL",
                   help="model name or CTranslate2 folder (default: base); repeat to "
                   "serve several: the first is the default, each loads on first use")  # fmt: skip
    p.add_argument("--max-loaded", type=int, metavar="N",
                   help="models loaded at once; the least recently used idle one is unloaded "
                   "to load another (default: no limit)")  # fmt: skip
    p.add_argument("--model-ttl", type=float, metavar="SECONDS",
                   help="unload a model after this long unused (default: never)")  # fmt: skip
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: auto")
    p.add_argument("--compute-type", help="CTranslate2 compute type (default: auto)")
    p.add_argument("--threads", type=int, help="CPU threads per worker (default: cores/workers)")
    p.add_argument("--beam-size", type=int, help="beam width for every request (default: 5)")
    p.add_argument("--max-upload-mb", type=float, help="largest upload in MiB (default: 25)")
    p.add_argument("--max-audio-seconds", type=float, help="longest audio (default: 10800)")
    p.add_argument("--queue-size", type=int, help="waiting requests before 429 (default: 64)")
    p.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="allow browser requests from this origin (repeatable; * for any)",
    )
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    ray = p.add_argument_group("Ray Serve (needs the ray extra; docs/deployment-ray.md)")
    ray.add_argument(
        "--ray",
        action="store_true",
        help="deploy the server on Ray Serve: replicas, autoscaling, a GPU each",
    )
    ray.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="Ray cluster to join (auto: the one this machine joined; default: start one)",
    )
    ray.add_argument("--replicas", type=int, metavar="N", help="fewest replicas (default: 1)")
    ray.add_argument(
        "--max-replicas",
        type=int,
        metavar="N",
        help="most replicas: autoscaling above --replicas (default: --replicas)",
    )
    p.set_defaults(handler=run_serve)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings given on the command line, nested as ``ServerSettings`` expects."""
    names = ("host", "port", "workers", "data_dir", "spool_dir", "log_level")
    top: dict[str, Any] = {k: getattr(args, k) for k in names}
    if args.no_workers:
        top["job_workers"] = False
    groups: dict[str, dict[str, Any]] = {
        "model": {"name": args.model[0] if args.model else None,
                  "others": args.model[1:] if args.model and len(args.model) > 1 else None,
                  "device": args.device, "compute_type": args.compute_type,
                  "threads": args.threads, "max_loaded": args.max_loaded,
                  "idle_ttl_s": args.model_ttl},
        "decode": {"beam_size": args.beam_size},
        "limits": {"max_audio_seconds": args.max_audio_seconds, "queue_size": args.queue_size,
                   "max_upload_bytes": None if args.max_upload_mb is None
                   else int(args.max_upload_mb * 1024 * 1024)},
        "cors": {"allow_origins": args.cors_origin},
        "auth": {"enabled": False} if args.no_auth else {},
        "ray": {"address": args.ray_address, "min_replicas": args.replicas,
                "max_replicas": args.max_replicas if args.max_replicas is not None
                else args.replicas},
    }  # fmt: skip
    out: dict[str, Any] = {k: v for k, v in top.items() if v is not None}
    for name, values in groups.items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            out[name] = given
    return out


def load_settings(overrides: dict[str, Any]) -> Any:
    """``ServerSettings`` from the environment with ``overrides`` on top; one-line errors."""
    from pydantic import ValidationError

    from ..server.settings import ServerSettings

    try:
        return ServerSettings(**overrides)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidOptionError(f"invalid server setting {where}: {first['msg']}") from None


def run_serve(args: argparse.Namespace) -> int:
    require_server_extra("serve")
    import uvicorn

    from ..model import resolve_compute_type, resolve_device
    from ..server import create_app
    from ..server.logs import configure_logging
    from ..server.protocol import header_timeout_protocol
    from ..server.services import served_models

    settings = load_settings(_overrides(args))
    configure_logging("debug" if args.verbose else settings.log_level)
    if not settings.auth.enabled:
        logger.warning("authentication is OFF (--no-auth): anyone reaching the port may use it")
    # What would stop the startup, said in one line now: models not installed, no such device
    # (on Ray the replicas' machines have the devices, not necessarily this one).
    served_models([settings.model.name, *settings.model.others])
    if args.ray:
        return _serve_on_ray(settings)
    resolve_compute_type(settings.model.compute_type, resolve_device(settings.model.device))
    app = create_app(settings)  # loads the default model at startup (model.preload)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        http=header_timeout_protocol(settings.security.header_timeout_s),
        timeout_graceful_shutdown=15,
    )
    return 0


def _serve_on_ray(settings: Any) -> int:
    """Deploy on Ray Serve and wait for SIGINT or SIGTERM, then remove the deployment."""
    import signal
    import threading

    from ..server import ray_serve

    ray_serve.require_ray_extra()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ray_serve.run(settings, stop)
    return 0
