"""Several models in one process: each loads on its first request, unloads after an idle TTL, and
a budget of models loaded at once evicts the least recently used. No HTTP here.

Every door goes through ``ModelManager.use(model_id)``: synchronous requests, jobs and each live
decode hold the model for as long as they run, so a model with work in flight is never unloaded
(eviction waits for it, up to ``load_wait_s``, then refuses with ``ModelBusyError``: a 503).

Unloading closes the model's engine (its threads end), frees CTranslate2's weights at once
(``unload_model``), drops every reference, runs the garbage collector and, when PyTorch is loaded
in the process, empties its CUDA cache, so the device memory goes back to the driver; glibc's
free host memory goes back to the system too (``malloc_trim``).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..allocator import trim_free_memory
from ..engine import Engine, Priority
from ..model import Model
from ..options import TranscribeOptions
from ..results import Transcript
from .exceptions import ModelBusyError, NotReadyError, UnknownModelError
from .metrics import Metrics

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
_MIN_SWEEP_S = 1.0
_MAX_SWEEP_S = 30.0


@dataclass
class Loaded:
    """A loaded model and the engine that batches its requests (None with batching off)."""

    model: Model
    engine: Engine | None
    owned: bool = True  # loaded here (its weights are freed on unload), not handed in


@dataclass(frozen=True)
class ModelStatus:
    """One served model as ``GET /v1/models`` shows it."""

    id: str
    loaded: bool
    in_use: int  # requests, jobs and live decodes holding it now
    default: bool
    aliases: tuple[str, ...]
    device: str | None  # where it runs, once loaded
    load_seconds: float | None  # its last load


class _Entry:
    def __init__(self, model_id: str, spec: str):
        self.id = model_id
        self.spec = spec  # what to load: a registry name or a folder
        self.loaded: Loaded | None = None
        self.loading = False
        self.in_use = 0
        self.last_used = 0.0
        self.multilingual: bool | None = None  # known after the first load
        self.device: str | None = None
        self.load_seconds: float | None = None


class ModelManager:
    """The served models by id (and aliases of the default one); loads, unloads, evicts.

    ``load(spec)`` loads one model; ``make_engine(model)`` builds its engine (or returns None).
    ``models`` maps each id to what to load; the first is the default (``model=`` absent).
    """

    def __init__(
        self,
        models: dict[str, str],
        *,
        aliases: list[str],
        load: Callable[[str], Model],
        make_engine: Callable[[Model], Engine | None],
        metrics: Metrics,
        max_loaded: int | None = None,
        idle_ttl_s: float | None = None,
        load_wait_s: float = 30.0,
        clock: Clock = time.monotonic,
    ):
        if not models:
            raise ValueError("at least one model must be served")
        self._entries = {mid: _Entry(mid, spec) for mid, spec in models.items()}
        self.default = next(iter(self._entries))
        self.aliases = tuple(a for a in dict.fromkeys(aliases) if a not in self._entries)
        self._load = load
        self._make_engine = make_engine
        self.metrics = metrics
        self.max_loaded = max_loaded
        self.idle_ttl_s = idle_ttl_s
        self.load_wait_s = load_wait_s
        self.clock = clock
        self._cond = threading.Condition()
        self._closed = False
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # --- names ---------------------------------------------------------------------------

    @property
    def served(self) -> tuple[str, ...]:
        """The served models' ids, the default first."""
        return tuple(self._entries)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every id a request may name: the models, then the default one's aliases."""
        return (*self._entries, *self.aliases)

    def resolve(self, requested: str | None) -> str:
        """The served model a request's ``model`` names (the default when absent)."""
        if requested is None or requested in self.aliases:
            return self.default
        if requested in self._entries:
            return requested
        raise UnknownModelError(
            f"model {requested!r} is not served here; use one of {', '.join(self.ids)}"
        )

    def multilingual(self, model_id: str | None) -> bool | None:
        """Whether the model knows more than English (None until it was first loaded)."""
        return self._entries[self.resolve(model_id)].multilingual

    # --- using a model -------------------------------------------------------------------

    @contextmanager
    def use(self, model_id: str | None) -> Iterator[Loaded]:
        """The model, loaded if needed, held (never unloaded) until the block ends."""
        entry, loaded = self._acquire(self.resolve(model_id))
        try:
            yield loaded
        finally:
            with self._cond:
                entry.in_use -= 1
                entry.last_used = self.clock()
                self._cond.notify_all()

    def load(self, model_id: str | None) -> ModelStatus:
        """Load the model now (``POST /v1/models/{id}``); nothing to do if it is loaded."""
        with self.use(model_id):
            pass
        return self.status(self.resolve(model_id))

    def adopt(self, model: Model) -> None:
        """Serve an already loaded model as the default one (tests, embedding): it is unloaded
        like the others, but its weights belong to the caller and are never freed here."""
        entry = self._entries[self.default]
        loaded = Loaded(model, self._make_engine(model), owned=False)
        with self._cond:
            entry.loaded = loaded
            self._loaded_now(entry, model, seconds=model.info.load_seconds)

    def _acquire(self, model_id: str) -> tuple[_Entry, Loaded]:
        entry = self._entries[model_id]
        deadline = time.monotonic() + self.load_wait_s
        with self._cond:
            while True:
                if self._closed:
                    raise NotReadyError("the server is stopping")
                if entry.loaded is not None:
                    entry.in_use += 1
                    entry.last_used = self.clock()
                    return entry, entry.loaded
                if entry.loading:  # by another request: it ends loaded or failed, however long
                    self._cond.wait()
                    continue
                room, victim = self._make_room()
                if room:
                    entry.loading = True
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._busy(entry)
                self._cond.wait(remaining)
        if victim is not None:
            _free(victim)
        return entry, self._load_entry(entry)

    def _load_entry(self, entry: _Entry) -> Loaded:
        """Load in the calling thread (others asking for the same model wait for it)."""
        started = time.perf_counter()
        try:
            model = self._load(entry.spec)
            loaded = Loaded(model, self._make_engine(model))
        except BaseException:
            with self._cond:
                entry.loading = False
                self._cond.notify_all()
            raise
        seconds = time.perf_counter() - started
        with self._cond:
            entry.loading = False
            entry.loaded = loaded
            entry.in_use += 1
            entry.last_used = self.clock()
            self._loaded_now(entry, model, seconds)
            self._cond.notify_all()
        logger.info("model %s loaded in %.2f s", entry.id, seconds)
        return loaded

    def _loaded_now(self, entry: _Entry, model: Model, seconds: float) -> None:
        entry.multilingual = model.multilingual
        entry.device = model.info.device
        entry.load_seconds = seconds
        self.metrics.observe_model_load(entry.id, seconds, device=model.info.device)

    def _make_room(self) -> tuple[bool, Loaded | None]:
        """Whether one more model may load now, and the least recently used idle model
        detached to make room (the caller frees it outside the lock)."""
        if self.max_loaded is None:
            return True, None
        present = [e for e in self._entries.values() if e.loaded is not None or e.loading]
        if len(present) < self.max_loaded:
            return True, None
        idle = [e for e in present if e.loaded is not None and e.in_use == 0]
        if not idle:
            return False, None
        victim = min(idle, key=lambda e: e.last_used)
        logger.info("unloading model %s to make room (max_loaded=%d)", victim.id, self.max_loaded)
        return True, self._detach(victim, "evicted")

    def _busy(self, entry: _Entry) -> ModelBusyError:
        held = ", ".join(f"{e.id} ({e.in_use})" for e in self._entries.values() if e.in_use)
        return ModelBusyError(
            f"model {entry.id!r} cannot be loaded now: {self.max_loaded} model(s) may be loaded "
            f"at once and every loaded one has work in flight ({held or 'loading'})",
            retry_after=max(1, round(self.load_wait_s)),
        )

    # --- unloading -----------------------------------------------------------------------

    def unload(self, model_id: str | None) -> ModelStatus:
        """Unload the model now (``DELETE /v1/models/{id}``); ModelBusyError while it has work
        in flight or is loading."""
        mid = self.resolve(model_id)
        entry = self._entries[mid]
        with self._cond:
            if entry.loading or entry.in_use:
                raise ModelBusyError(
                    f"model {mid!r} has {entry.in_use} request(s) in flight"
                    + (" and is loading" if entry.loading else "")
                    + "; try again when they are done",
                    retry_after=5,
                )
            victim = self._detach(entry, "admin") if entry.loaded is not None else None
        if victim is not None:
            _free(victim)
        return self.status(mid)

    def sweep(self) -> list[str]:
        """Unload the models idle for longer than ``idle_ttl_s``; their ids."""
        if self.idle_ttl_s is None:
            return []
        now = self.clock()
        with self._cond:
            stale = [
                e
                for e in self._entries.values()
                if e.loaded is not None and not e.in_use and now - e.last_used >= self.idle_ttl_s
            ]
            victims = [self._detach(e, "idle") for e in stale]
        for victim in victims:
            _free(victim)
        for e in stale:
            logger.info("model %s unloaded after %.0f s idle", e.id, self.idle_ttl_s)
        return [e.id for e in stale]

    def _detach(self, entry: _Entry, reason: str) -> Loaded:
        loaded = entry.loaded
        assert loaded is not None
        entry.loaded = None
        self.metrics.observe_model_unload(entry.id, reason)
        self._cond.notify_all()
        return loaded

    def start(self) -> None:
        """Start the idle sweeper (a daemon thread), when there is a TTL."""
        if self.idle_ttl_s is None or self._sweeper is not None:
            return
        interval = min(_MAX_SWEEP_S, max(_MIN_SWEEP_S, self.idle_ttl_s / 4))

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.sweep()
                except Exception:  # an engine that fails to close must not end the sweeper
                    logger.exception("unloading idle models failed")

        self._sweeper = threading.Thread(target=loop, name="malsori-models", daemon=True)
        self._sweeper.start()

    def close(self) -> None:
        """Stop the sweeper and unload everything (requests still running end cancelled)."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        with self._cond:
            self._closed = True
            victims = []
            for e in self._entries.values():
                if e.loaded is not None:
                    e.loaded.owned &= not e.in_use  # weights in use stay until their callers end
                    victims.append(e.loaded)
                    e.loaded = None
            self._cond.notify_all()
        for victim in victims:
            _free(victim)

    # --- what is served ------------------------------------------------------------------

    def status(self, model_id: str) -> ModelStatus:
        e = self._entries[model_id]
        with self._cond:
            return ModelStatus(
                id=e.id,
                loaded=e.loaded is not None,
                in_use=e.in_use,
                default=e.id == self.default,
                aliases=self.aliases if e.id == self.default else (),
                device=e.device,
                load_seconds=e.load_seconds,
            )

    def statuses(self) -> list[ModelStatus]:
        return [self.status(mid) for mid in self.served]

    def loaded(self, model_id: str | None = None) -> Loaded | None:
        """The model's loaded state now, without loading it (None when unloaded)."""
        return self._entries[self.resolve(model_id)].loaded


def _free(loaded: Loaded) -> None:
    """Close the engine and give the model's memory back (device memory included)."""
    if loaded.engine is not None:
        loaded.engine.close()
    if loaded.owned:
        ct2 = getattr(getattr(loaded.model, "whisper", None), "model", None)
        if ct2 is not None and hasattr(ct2, "unload_model"):
            ct2.unload_model()  # CTranslate2 frees the weights now, whoever still refers to it
    loaded.engine = None
    del loaded
    gc.collect()
    torch: Any = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()  # only what PyTorch itself cached (VAD, fine-tuning)
    trim_free_memory()  # host memory the weights and buffers held goes back to the system


class ManagedDecoder:
    """A served model seen as a live stream's decoder (``streaming.engine.Decoder``): each
    decode holds the model through the manager, through its engine at live priority."""

    def __init__(self, models: ModelManager, model_id: str | None, priority: Priority):
        self.models = models
        self.model_id = models.resolve(model_id)
        self.priority = priority

    @property
    def name(self) -> str:
        return self.model_id

    @property
    def multilingual(self) -> bool:
        """Known once the model was loaded; before that, taken as yes (never a load in the
        caller's thread, which may be the event loop): each decode checks again once loaded."""
        known = self.models.multilingual(self.model_id)
        return True if known is None else known

    def transcribe(self, source: Any, options: TranscribeOptions | None = None) -> Transcript:
        with self.models.use(self.model_id) as loaded:
            if loaded.engine is None:
                return loaded.model.transcribe(source, options)
            return loaded.engine.submit(source, options, priority=self.priority).result()
