"""Server settings: pydantic-settings, read from ``MALSORI_*`` environment variables.

Nested groups use a double underscore: ``MALSORI_MODEL__NAME=small``,
``MALSORI_LIMITS__MAX_UPLOAD_BYTES=52428800``, ``MALSORI_CORS__ALLOW_ORIGINS='["https://a.b"]'``.
``malsori serve`` flags override the environment; tests build ``ServerSettings(...)`` directly and
pass it to ``create_app(settings)``. Nothing else in the server reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..options import FULL_ENCODER_WINDOW_S, MIN_ENCODER_WINDOW_S

ComputeType = Literal[
    "auto", "default", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
    "float16", "bfloat16", "float32",
]  # fmt: skip
LogLevel = Literal["debug", "info", "warning", "error"]

MB = 1024 * 1024


def default_data_dir() -> Path:
    """``~/.local/share/malsori/server`` on Linux (jobs are data, not cache)."""
    return Path(platformdirs.user_data_dir("malsori")) / "server"


class _Group(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")


class ModelSettings(_Group):
    name: str = "base"
    """The default model (requests without ``model``): a name (base, small, large-v3, ...) or a
    CTranslate2 Whisper folder."""
    others: list[str] = Field(default_factory=list)
    """More models served by the same process (names or folders; a folder's id is its name),
    each loaded on its first request: ``["tiny.en", "/models/my-finetune"]``."""
    preload: bool = True
    """Load the default model at startup (the others always load on their first request)."""
    max_loaded: int | None = Field(default=None, ge=1)
    """Models loaded at once; loading one more unloads the least recently used idle one (None:
    no limit). A model with work in flight is never unloaded: a load waits ``load_wait_s`` for
    one to become idle, then is refused (503 ``model_busy``)."""
    idle_ttl_s: float | None = Field(default=None, gt=0)
    """Seconds without use after which a model is unloaded (None: kept until evicted or
    unloaded by an admin); it loads again on its next request."""
    load_wait_s: float = Field(default=30.0, ge=0)
    """How long a request waits for room under ``max_loaded`` before it is refused (503)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the model runs; auto picks CUDA when a device is present."""
    compute_type: ComputeType = "auto"
    """CTranslate2 compute type; auto is int8 on CPU and float16 on CUDA."""
    threads: int = Field(default=0, ge=0)
    """CPU threads per transcription worker (0: every core this process may use)."""
    aliases: list[str] = Field(default_factory=lambda: ["whisper-1"])
    """Other ids of the default model, accepted in requests and listed by /v1/models (OpenAI
    clients send ``whisper-1``)."""


class DecodeSettings(_Group):
    beam_size: int = Field(default=5, ge=1)
    """Beam width for every request (1: greedy, faster on CPU)."""
    best_of: int = Field(default=5, ge=1)
    """Samples drawn at temperatures above 0."""
    vad: bool = True
    """Silero voice-activity detection before decoding."""
    rescore: bool = True
    """N-best rescoring with a language model (Korean: Kiwi's), for every request."""


class LimitSettings(_Group):
    max_upload_bytes: int = Field(default=25 * MB, ge=1)
    """Largest accepted upload; the body stops being read past it (413)."""
    max_audio_seconds: float = Field(default=3 * 3600.0, gt=0)
    """Longest accepted audio, measured by decoding it (413)."""
    queue_size: int = Field(default=64, ge=1)
    """Requests and jobs that may wait for a worker; past that the server answers 429."""
    max_concurrent_decodes: int = Field(default=4, ge=1)
    """Uploads checked (decoded once to measure them) at the same time, each on one thread of
    the decode pool; more wait, holding the queue slot they reserved first."""
    max_concurrent_decodes_per_key: int = Field(default=2, ge=1)
    """Uploads of one API key checked at the same time; the key's others wait their turn."""
    max_queued_jobs_per_key: int = Field(default=16, ge=1)
    """Jobs of one API key queued or running (and being uploaded); past that the key gets 429
    (not applied with authentication off)."""
    max_concurrent_requests_per_key: int = Field(default=4, ge=1)
    """Synchronous transcription or translation requests of one API key in progress at once
    (from upload to answer); past that the key gets 429 (not applied with authentication off)."""


class JobSettings(_Group):
    audio_retention_s: float = Field(default=24 * 3600.0, ge=0)
    """Seconds a finished job's audio is kept on disk (0: deleted when the job ends)."""
    result_retention_s: float | None = Field(default=None, gt=0)
    """Seconds a finished job (and its result) is kept; None keeps it until deleted."""
    cleanup_interval_s: float = Field(default=300.0, gt=0)
    """How often the retention sweep runs."""
    max_attempts: int = Field(default=3, ge=1)
    """Runs of one job (restarts included) before it is marked failed."""
    callback_timeout_s: float = Field(default=10.0, gt=0)
    """Timeout of the single completion callback request."""
    progress_interval_s: float = Field(default=1.0, ge=0)
    """Least time between two progress writes of one running job."""
    callback_allow_hosts: list[str] = Field(default_factory=list)
    """Callback host names allowed whatever they resolve to (internal hooks); by default a
    callback may only go to public addresses (never loopback, private or link-local ones)."""
    callback_allow_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    """Networks (CIDR, ``["10.0.0.0/8"]``) callbacks may reach besides public addresses."""
    lease_s: float = Field(default=30.0, ge=1)
    """Seconds a process holds a job it runs without renewing its lease (it renews every third
    of this); a job whose process died is run again by another once its lease has run out."""
    poll_interval_s: float = Field(default=1.0, gt=0)
    """How often a process with job workers looks in the database for jobs it could take (jobs
    submitted to other replicas, or left by a process that died)."""


class WorkerSettings(_Group):
    concurrency: int = Field(default=4, ge=1)
    """Jobs one ``malsori worker`` holds and runs at once (the engine decodes them together)."""
    metrics_host: str = "127.0.0.1"
    """Address of the worker's Prometheus endpoint (``/metrics``); 0.0.0.0 in a container."""
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    """TCP port of the worker's Prometheus endpoint (0: none)."""


class AuthSettings(_Group):
    enabled: bool = True
    """Require ``Authorization: Bearer <key>`` (keys from ``malsori keys create``). Turn off only
    for local use (``malsori serve --no-auth``)."""
    admin_keys: list[str] = Field(default_factory=list)
    """Ids of the API keys (``malsori keys list``) that may load and unload models
    (``POST``/``DELETE /v1/models/{id}``). With authentication off every caller may."""


class CorsSettings(_Group):
    allow_origins: list[str] = Field(default_factory=list)
    """Origins allowed by CORS (``["*"]`` for any); empty turns CORS off."""
    allow_methods: list[str] = Field(default_factory=lambda: ["GET", "POST", "DELETE"])
    """Methods allowed by CORS."""
    allow_headers: list[str] = Field(
        default_factory=lambda: ["Authorization", "Content-Type", "X-Request-ID"]
    )
    """Request headers allowed by CORS."""


class SecuritySettings(_Group):
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host header names (no port) accepted besides loopback ones (localhost, 127.0.0.1, ::1)
    when authentication is off (``["*"]``: any); when it is on, checked only if not empty."""
    allowed_origins: list[str] = Field(default_factory=list)
    """Browser origins (``https://app.example``) accepted besides loopback ones and the CORS
    origins when authentication is off (``["*"]``: any); when it is on, checked only if not
    empty. Requests without an Origin header (non-browser clients) are not affected."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """Seconds a connection has to send a complete request head, counted from its opening (or,
    on a kept-alive connection, from the first byte of its next request); past it the
    connection is closed. Stops slow-loris clients holding connections open."""


class RealtimeSettings(_Group):
    max_sessions: int = Field(default=4, ge=1)
    """Live streams (``/v1/realtime``) open at once; more are refused (``too_many_sessions``)."""
    max_sessions_per_key: int = Field(default=2, ge=1)
    """Live streams one API key may have open at once; more are refused (``too_many_sessions``).
    Not counted when authentication is off."""
    max_session_s: float = Field(default=3 * 3600.0, gt=0)
    """Longest a live stream may stay open (wall clock); then it is finished like ``stop``
    (``session_too_long``)."""
    max_message_audio_s: float = Field(default=60.0, gt=0)
    """Most audio one binary message may carry, once decoded (``audio_too_long``): bounds what
    a few kilobytes of compressed silence can become."""
    max_session_audio_s: float = Field(default=3 * 3600.0, gt=0)
    """Most audio one live stream may send in all (``audio_too_long``)."""
    workers: int = Field(default=2, ge=1)
    """Threads decoding live streams, round robin (each decode uses the shared model; two: as
    many as the engine's lanes on a CPU, so two streams decode at once)."""
    idle_timeout_s: float = Field(default=30.0, gt=0)
    """A stream that receives no audio for this long is ended (``idle_timeout``); it is also the
    window over which ``min_audio_rate`` is measured."""
    min_audio_rate: float = Field(default=0.5, ge=0, le=1)
    """Least audio per second of wall clock a client must send, over each ``idle_timeout_s``
    window, or its stream is ended (``audio_too_slow``): tiny messages cannot hold a place."""
    key_check_interval_s: float = Field(default=5.0, gt=0)
    """How often an open stream checks that its API key is still valid; a revoked key's streams
    end with ``invalid_api_key``."""
    burst_s: float = Field(default=5.0, ge=0)
    """How far ahead of real time a client may send audio before the server stops reading."""
    max_lag_s: float = Field(default=30.0, gt=0)
    """Received but undecoded audio at which the server stops reading until decoding catches
    up (a client is then slowed by TCP flow control; nothing is dropped)."""
    beam_size: int = Field(default=5, ge=1)
    """Beam width for live decoding, used while decodes stay within ``decode_budget_s``."""
    decode_budget_s: float = Field(default=0.5, ge=0)
    """Live decodes use the beam while their running mean time stays within this many seconds,
    and decode greedily (faster, a little less accurate) while it does not: a slow CPU or many
    streams at once keep low latency, a fast machine gets beam search (0: always the beam)."""
    min_chunk_s: float = Field(default=0.5, gt=0)
    """New audio (seconds) that triggers the next decode of a stream."""
    endpoint_silence_ms: int = Field(default=500, ge=100)
    """Silence after speech that makes the decoded text final at once."""
    encoder_window_s: float | None = Field(
        default=None, ge=MIN_ENCODER_WINDOW_S, le=FULL_ENCODER_WINDOW_S
    )
    """Audio (seconds) the encoder sees, at least: less is faster, 30 is the most accurate
    (unset: 15 on a CPU, 30 on a GPU)."""
    fallback: bool = False
    """Temperature fallback in live decodes (off: a failed decode waits for the next one, which
    comes within a second, instead of costing seconds of latency)."""


class EngineSettings(_Group):
    batching: bool = True
    """Decode every request, job and live stream through one engine that packs the speech of
    concurrent requests into shared 30 s windows and decodes them in batches (``malsori.engine``).
    Off: each request is decoded on its own by a worker thread, as before (for comparison)."""
    batch_size: int = Field(default=8, ge=1)
    """30 s windows decoded together in one model call (more on a GPU: 16-32)."""
    max_active: int = Field(default=64, ge=1)
    """Requests and jobs handed to the engine at once; the rest wait in the queue."""
    prepare_workers: int = Field(default=2, ge=1)
    """Threads decoding uploads and running VAD ahead of the model."""


class RaySettings(_Group):
    address: str | None = None
    """Ray cluster to deploy on (``auto``: the one this machine joined with ``ray start``);
    None starts a local Ray instance for this process."""
    min_replicas: int = Field(default=1, ge=0)
    """Fewest replicas of the server (each with its own models and engine)."""
    max_replicas: int = Field(default=1, ge=1)
    """Most replicas; above ``min_replicas`` Ray Serve adds and removes replicas to keep about
    ``target_ongoing_requests`` requests in each."""
    target_ongoing_requests: float = Field(default=8.0, gt=0)
    """Requests in progress per replica (queued or running) that autoscaling aims for; each
    replica's engine batches the ones it holds."""
    upscale_delay_s: float = Field(default=30.0, ge=0)
    """How long the load must stay above the target before a replica is added."""
    downscale_delay_s: float = Field(default=600.0, ge=0)
    """How long the load must stay below the target before a replica is removed."""
    max_ongoing_requests: int = Field(default=64, ge=1)
    """Requests one replica takes at once; more wait in Ray Serve's proxy. Live streams hold
    one for their whole length."""
    gpus_per_replica: float | None = Field(default=None, ge=0)
    """GPUs each replica reserves (None: 1 when the cluster has GPUs, else 0)."""
    cpus_per_replica: float = Field(default=1.0, ge=0)
    """CPUs each replica reserves in Ray's accounting (set ``model.threads`` to match)."""
    local_object_store_mb: int = Field(default=256, ge=80)
    """Object store of a local Ray instance (requests do not pass through it: keep it small)."""


class ServerSettings(BaseSettings):
    """Everything ``malsori serve`` can be told, with the defaults it uses."""

    model_config = SettingsConfigDict(
        env_prefix="MALSORI_",
        env_nested_delimiter="__",
        use_attribute_docstrings=True,
        extra="ignore",
    )

    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0 for every interface)."""
    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port to listen on."""
    workers: int = Field(default=1, ge=1)
    """Model calls that run at once (CTranslate2 replicas sharing the weights). With the engine
    on a CPU, two batches at once on half the threads each are faster than one: 0 threads and
    1 worker then load two lanes (``batch.runner.model_layout``)."""
    data_dir: Path = Field(default_factory=default_data_dir)
    """Folder for the SQLite database, job audio and upload spool files. Replicas and workers
    of one deployment share it (a network or volume mount): job audio is read from here."""
    spool_dir: Path | None = None
    """Folder for uploads while they are checked, emptied at startup: each process needs its
    own when several share ``data_dir`` (default: ``data_dir/uploads``)."""
    job_workers: bool = True
    """Run durable jobs in this process. Off (``malsori serve --no-workers``): API only; jobs
    wait in the database for ``malsori worker`` processes (synchronous requests still run
    here)."""
    database_url: SecretStr | None = None
    """SQLAlchemy URL (``postgresql+psycopg://user:pw@host/db``); default: SQLite in data_dir."""
    log_level: LogLevel = "info"
    """Server log level."""
    model: ModelSettings = Field(default_factory=ModelSettings)
    """The Whisper models served, and when they are loaded and unloaded."""
    decode: DecodeSettings = Field(default_factory=DecodeSettings)
    """Decoding settings applied to every request."""
    limits: LimitSettings = Field(default_factory=LimitSettings)
    """Upload, duration, queue, decoding and per-key limits."""
    jobs: JobSettings = Field(default_factory=JobSettings)
    """Durable jobs: retention, retries, callbacks."""
    auth: AuthSettings = Field(default_factory=AuthSettings)
    """API keys."""
    cors: CorsSettings = Field(default_factory=CorsSettings)
    """Cross-origin requests from browsers."""
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    """Live streams over the ``/v1/realtime`` WebSocket."""
    engine: EngineSettings = Field(default_factory=EngineSettings)
    """The engine every transcription goes through: batching across requests."""
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    """Host and Origin checks, connection timeouts."""
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    """``malsori worker``: jobs held at once, its metrics endpoint."""
    ray: RaySettings = Field(default_factory=RaySettings)
    """``malsori serve --ray``: replicas and autoscaling on Ray Serve."""

    def sqlalchemy_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'malsori.db'}"
