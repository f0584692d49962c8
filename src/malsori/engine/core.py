"""The engine: one loaded model, work from anyone at any time, decoded in shared batches.

Every door submits here: ``malsori batch`` its files, the server its synchronous requests and
jobs, live streams their decodes (``Engine.submit``; the caller awaits a ``RequestHandle``).

- ``intake``: threads decode the audio and run VAD ahead of the model, most urgent first.
- Requests whose decoding options agree (``options.decoding_key``) share a ``_Group``: one
  ``WindowDecoder``, one language detector, one packer per priority class. Their speech regions
  (same language) are packed into shared 30 s windows (``packing``).
- The scheduler (``_pick``) fills a free model lane with the most urgent class's windows, oldest
  first: live, then synchronous requests, then jobs, then batch files. While live streams are
  decoding, one lane is theirs alone (``LIVE_RESERVE_S``). A live or synchronous
  window goes as soon as a lane is free (partly filled if need be); a job's or batch file's when
  it is full, or when nothing more of its class is coming. A new request so waits for at most the
  batches already running, whatever is queued behind.
- Decoded windows go back to their requests by Whisper's timestamps (``_distribute``), then
  through the same defences and post-processing as ``transcribe`` (``Assembler``), in order.
- A batch that fails is decoded again one window at a time, so a bad window fails only the
  requests in it; nothing a request does stops the engine.
- A cancelled request's windows are dropped before they are decoded, its prepared audio freed.

The memory in flight is bounded: prepared audio by ``buffer_s``, windows by the batch size.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import SAMPLE_RATE
from ..decoding import WINDOW_S, WINDOW_SAMPLES, RawSegment, RawWord
from ..errors import MalsoriError
from ..hallucination import SpeechProbe
from ..options import TranscribeOptions
from ..results import LanguageInfo, Segment, Transcript
from ..transcribe import Assembler, no_speech_language
from .decoder import WindowDecoder, WindowResult, split_untimed
from .distribute import distribute, straddles
from .intake import FileEnd, FileFailed, Intake, PreparedPart, internal_error
from .lid import LanguageDetector
from .packing import Packer, Piece, Placement, TimedText, Window
from .requests import Priority, Request, RequestCancelledError, RequestHandle
from .stats import EngineStats

if TYPE_CHECKING:
    from ..audio import AudioSource
    from ..model import Model

logger = logging.getLogger(__name__)

# What CTranslate2 and numpy raise when a model call goes wrong (out of memory included).
MODEL_ERRORS = (RuntimeError, ValueError, MemoryError)
# An open window is sent once this many batches of other windows have closed meanwhile.
MAX_WINDOW_WAIT_BATCHES = 2
# A live or synchronous window still being filled by a request in preparation waits this long
# at most for it (seconds): 32 clients at once share windows instead of going one by one.
LINGER_S = 0.15
_IDLE_POLL_S = 0.05
# While live streams decode (one submitted within this many seconds), one model lane is kept for
# them: other work takes the other lanes, so a live decode never waits for a batch to finish.
LIVE_RESERVE_S = 5.0


@dataclass
class _Part:
    prepared: PreparedPart
    pending: int  # pieces not decoded yet
    segments: list[RawSegment] = field(default_factory=list)  # input time


@dataclass(eq=False)
class _Group:
    """Requests that decode alike: one decoder, one packer per priority class."""

    options: TranscribeOptions  # the first request's; its decoding fields are the group's
    decoder: WindowDecoder
    detector: LanguageDetector
    packers: dict[Priority, Packer] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _State:
    request: Request
    group: _Group
    language: LanguageInfo | None = None
    parts: dict[int, _Part] = field(default_factory=dict)
    fed: int = 0  # parts already through the assembler
    seen: int = 0  # parts received
    samples: int | None = None  # decoded length, once every part has been received
    seconds: float = 0.0  # model time spent on this request
    assembler: Assembler | None = None
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class _Batch:
    group: _Group
    priority: Priority
    windows: list[Window]
    started: float


class Engine:
    """A long-lived engine over one model. ``submit`` from any thread; ``close`` to stop."""

    def __init__(
        self,
        model: Model,
        *,
        batch_size: int = 8,
        prepare_workers: int = 2,
        buffer_s: float | None = None,
        batching: bool = True,
    ):
        self.model = model
        self.batch_size = batch_size
        # Batches decoded at once: one per model worker (two on a CPU, ``batch.runner``).
        self.lanes = max(1, min(model.info.workers, batch_size))
        self.lane_batch = -(-batch_size // self.lanes) if batching else 1
        self.batching = batching  # off: one request per window, one window per batch
        self.stats = EngineStats()
        self._wake = threading.Condition()
        self._ids = itertools.count()
        self._inbox: list[Request] = []
        self._states: dict[int, _State] = {}
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self._awaiting_language: list[int] = []
        self._running: dict[Future[Any], _Batch | Request] = {}
        self._solos: list[Request] = []  # requests that cannot share windows, waiting
        self._live_seen = float("-inf")  # when the last live decode was submitted
        self._closed = False
        lookahead = buffer_s if buffer_s is not None else max(240.0, 3 * batch_size * WINDOW_S)
        self._intake = Intake(workers=prepare_workers, limit_s=lookahead, notify=self._notify)
        self._pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="malsori-model")
        self._thread = threading.Thread(target=self._loop, name="malsori-engine", daemon=True)
        self._thread.start()

    # --- the doors' side ------------------------------------------------------------------

    def submit(
        self,
        source: AudioSource,
        options: TranscribeOptions | None = None,
        *,
        priority: Priority = Priority.SYNC,
        name: str | None = None,
        on_segment: Callable[[Segment], None] | None = None,
    ) -> RequestHandle:
        """Queue one input; the handle gives its ``Transcript`` (or its error) when done.
        ``on_segment`` hears each segment as soon as it is final."""
        opts = options or TranscribeOptions()
        opts.check_model(multilingual=self.model.multilingual, model_name=self.model.name)
        request = Request(next(self._ids), source, opts, priority, name or _name_of(source),
                          on_segment=on_segment)  # fmt: skip
        request.future.set_running_or_notify_cancel()
        with self._wake:
            if self._closed:
                raise RuntimeError("the engine is closed")
            self._inbox.append(request)
            self._wake.notify_all()
        return RequestHandle(request, self._wake)

    def transcribe(
        self, source: AudioSource, options: TranscribeOptions | None = None, **kw: Any
    ) -> Transcript:
        """Submit and wait (for callers without a thread of their own to spare)."""
        return self.submit(source, options, **kw).result()

    def close(self) -> None:
        """Stop: requests not finished fail with ``RequestCancelledError``."""
        with self._wake:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        self._thread.join()
        self._intake.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    # --- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._closed:
                    break
                inbox, self._inbox = self._inbox, []
            try:
                self._step(inbox)
            except Exception as e:  # a bug: the requests in hand fail, the engine goes on
                logger.exception("engine step failed")
                for rid in list(self._states):
                    self._fail(rid, internal_error(self._states[rid].request.name, e))
        for future, work in list(self._running.items()):
            future.cancel()
            if isinstance(work, Request):  # stops at its next segment; its answer is this
                work.cancelled.set()
                work.future.set_exception(RequestCancelledError("the engine stopped"))
        self._running.clear()
        for rid in list(self._states):
            self._fail(rid, RequestCancelledError("the engine stopped"))
        for request in [*self._inbox, *self._solos]:
            request.future.set_exception(RequestCancelledError("the engine stopped"))

    def _step(self, inbox: list[Request]) -> None:
        for request in inbox:
            self._admit(request)
        self._reap_cancelled()
        # Take in what is prepared, but only while the model has too little to do: the
        # buffer behind stays bounded and the preparing threads wait.
        while item := self._intake.get(most=Priority.SYNC):  # never held back
            self._accept(item)
        while self._ready_windows() < 2 * self.batch_size and (item := self._intake.get()):
            self._accept(item)
        self._collect_done([f for f in self._running if f.done()])
        live = any(r.priority == Priority.LIVE for r in self._solos)
        if live and len(self._running) < self.lanes and (work := self._pick()) is not None:
            self._start(work)  # a live decode goes first, before language detection too
            return
        waiting = self._waiting_language()
        if waiting and (
            self._ready_windows() < self.lane_batch
            or len(waiting) >= self.batch_size
            or self._intake.idle
            or any(s.request.priority <= Priority.SYNC for s in waiting)  # no waiting for those
        ):
            self._detect_languages(most=self.batch_size)  # then back here: live may be waiting
            return
        if len(self._running) < self.lanes and (work := self._pick()) is not None:
            self._start(work)
            return
        if self._running:
            done, _ = wait(self._running, timeout=_IDLE_POLL_S, return_when=FIRST_COMPLETED)
            self._collect_done(list(done))
            return
        with self._wake:
            if not self._inbox and not self._closed:
                self._wake.wait(timeout=_IDLE_POLL_S if self._states else 1.0)

    def _start(self, work: _Batch | Request) -> None:
        run = self._run_alone if isinstance(work, Request) else self._run_model
        self._running[self._pool.submit(run, work)] = work  # type: ignore[arg-type]

    def _collect_done(self, done: list[Future[Any]]) -> None:
        for future in done:
            work = self._running.pop(future)
            if isinstance(work, Request):
                self._collect_alone(future, work)
            else:
                self._collect(future, work)

    def _admit(self, request: Request) -> None:
        if request.cancelled.is_set():
            request.future.set_exception(RequestCancelledError(f"{request.name}: cancelled"))
            return
        if request.priority == Priority.LIVE:
            self._live_seen = time.monotonic()
        if not request.packable:
            self.stats.requests += 1
            self._solos.append(request)
            return
        group = self._group(request.options)
        self._states[request.id] = _State(request, group)
        self.stats.requests += 1
        self._intake.add(request)

    def _group(self, options: TranscribeOptions) -> _Group:
        key = options.decoding_key()
        group = self._groups.get(key)
        if group is None:
            decoder = WindowDecoder(self.model, options)
            group = self._groups[key] = _Group(options, decoder, LanguageDetector(decoder))
        group.last_used = time.monotonic()
        return group

    def _reap_cancelled(self) -> None:
        for request in [r for r in self._solos if r.cancelled.is_set()]:
            self._solos.remove(request)
            self.stats.cancelled += 1
            request.future.set_exception(RequestCancelledError(f"{request.name}: cancelled"))
        for rid, state in list(self._states.items()):
            if state.request.cancelled.is_set():
                self._intake.drop(rid)
                self.stats.cancelled += 1
                self._fail(rid, RequestCancelledError(f"{state.request.name}: cancelled"))

    # --- input side -----------------------------------------------------------------------

    def _accept(self, item: PreparedPart | FileEnd | FileFailed) -> None:
        state = self._states.get(item.file)
        if state is None:  # cancelled or failed meanwhile
            return
        if isinstance(item, FileFailed):
            self._fail(item.file, item.error)
            return
        options = state.request.options
        if isinstance(item, FileEnd):
            state.samples = item.samples
            if state.language is None and item.file not in self._awaiting_language:
                # no speech anywhere: the language given, or none (as transcribe says)
                state.language = no_speech_language(self.model, options)
            self._finish(state)
            return
        state.parts[item.part] = _Part(item, pending=len(item.regions))
        state.seen += 1
        if state.language is None and options.language is not None:
            state.language = LanguageInfo.given(options.language)
        if state.language is not None:
            self._pack(state, item)
        elif item.regions and item.file not in self._awaiting_language:
            self._awaiting_language.append(item.file)  # detected from its first speech

    def _pack(self, state: _State, part: PreparedPart) -> None:
        assert state.language is not None
        packer = state.group.packers.get(state.request.priority)
        if packer is None:
            packer = Packer(max_wait=MAX_WINDOW_WAIT_BATCHES * self.batch_size)
            state.group.packers[state.request.priority] = packer
        for lo, hi in part.regions:
            piece = Piece(state.request.id, part.part, part.start + lo, part.audio[lo:hi],
                          long_form=part.audio.size > WINDOW_SAMPLES,
                          solo=not self.batching)  # fmt: skip
            packer.add(piece, state.language.language)

    def _detect_languages(self, most: int) -> None:
        """The language of the first ``most`` requests waiting for one, in batches per group
        (the others at the next step: the loop stays responsive to live work)."""
        waiting = [self._states[i] for i in self._awaiting_language if i in self._states][:most]
        taken = {state.request.id for state in waiting}
        self._awaiting_language = [i for i in self._awaiting_language
                                   if i in self._states and i not in taken]  # fmt: skip
        by_group: dict[int, list[_State]] = {}
        for state in waiting:
            by_group.setdefault(id(state.group), []).append(state)
        for states in by_group.values():
            self._detect_group(states)

    def _detect_group(self, states: list[_State]) -> None:
        group = states[0].group
        started = time.perf_counter()
        limit = int(group.options.language_detection_segments * WINDOW_S * SAMPLE_RATE)
        speeches = []
        for state in states:
            first = next(p.prepared for _, p in sorted(state.parts.items()) if p.prepared.regions)
            spans = [first.audio[lo:hi] for lo, hi in first.regions]
            speeches.append(np.concatenate(spans)[:limit])
        try:
            infos = group.detector.detect(speeches, self.batch_size)
        except MODEL_ERRORS as e:
            for state in states:
                self._fail(state.request.id, internal_error(state.request.name, e))
            return
        share = (time.perf_counter() - started) / max(1, len(states))
        for state, info in zip(states, infos, strict=True):
            state.language = info
            state.seconds += share
            for number in sorted(state.parts):
                self._pack(state, state.parts[number].prepared)
            self._finish(state)

    # --- the scheduler --------------------------------------------------------------------

    def _ready_windows(self) -> int:
        return sum(p.ready for g in self._groups.values() for p in g.packers.values())

    def _pick(self) -> _Batch | Request | None:
        """The next work for a free lane: the most urgent class's windows, oldest first, all of
        one group (one decoder call), or a request of that class that runs alone. While live
        streams decode, the last free lane waits for them."""
        reserved = self.lanes > 1 and time.monotonic() - self._live_seen < LIVE_RESERVE_S
        others = sum(work.priority != Priority.LIVE for work in self._running.values())
        for priority in Priority:
            if priority != Priority.LIVE and reserved and others >= self.lanes - 1:
                return None
            alone = [r for r in self._solos if r.priority == priority]
            if alone:
                self._solos.remove(alone[0])
                return alone[0]
            packers = [(g, g.packers[priority]) for g in self._groups.values()
                       if priority in g.packers and g.packers[priority].pending]  # fmt: skip
            if not packers:
                continue
            urgent = priority <= Priority.SYNC
            coming = self._intake.pending(priority) or any(
                s.request.priority == priority for s in self._waiting_language()
            )
            now = time.monotonic()
            for group, packer in sorted(packers, key=lambda gp: gp[1].oldest()):
                lingering = coming and now - packer.newest_open() < LINGER_S
                flush = not coming or (urgent and not lingering)
                windows = [w for w in packer.take(self.lane_batch, flush=flush) if self._live(w)]
                if windows:
                    group.last_used = time.monotonic()
                    return _Batch(group, priority, windows, time.perf_counter())
            if urgent and coming:
                return None  # more urgent work is on its way: lower classes do not jump it
        return None

    def _waiting_language(self) -> list[_State]:
        return [self._states[i] for i in self._awaiting_language if i in self._states]

    def _live(self, window: Window) -> bool:
        """Drop the pieces of requests that went away; False when none is left."""
        kept = [p for p in window.placements if p.piece.file in self._states]
        if len(kept) == len(window.placements):
            return True
        self.stats.dropped_pieces += len(window.placements) - len(kept)
        return bool(kept) and window.keep_only(kept)

    # --- model side -----------------------------------------------------------------------

    def _run_model(self, batch: _Batch) -> list[WindowResult]:
        """Encode, decode (with fallback) and, where needed, align a batch of windows (in a
        model lane's thread: it reads the windows and touches no engine state).

        A window that holds the speech of one recording only (a long file's) is decoded without
        timestamp tokens and cut into segments by its aligned words; windows shared by several
        requests keep the timestamps that tell them apart (``docs/batch.md``).
        """
        decoder, windows = batch.group.decoder, batch.windows
        features = np.stack([decoder.features(w.audio()) for w in windows])
        encoded = decoder.encode(features)
        languages = [w.language for w in windows]
        ends = [w.used / SAMPLE_RATE for w in windows]
        timed = [not w.one_recording for w in windows]
        cuts = [w.file_cuts for w in windows]
        results = decoder.generate(encoded, languages, ends, timed, cuts)
        words = batch.group.options.word_timestamps
        need_words = [
            i for i, (w, r) in enumerate(zip(windows, results, strict=True))
            if words or not timed[i] or straddles(w, r)
        ]  # fmt: skip
        if need_words:
            decoder.align(encoded, results, languages, ends, need_words)
        for result, end, is_timed in zip(results, ends, timed, strict=True):
            if not is_timed:
                split_untimed(result, end)
        return results

    def _run_alone(self, request: Request) -> Transcript:
        """A request that cannot share windows, through the sequential pipeline (in a model
        lane's thread); it stops at its next segment once cancelled."""

        def each(segment: Segment) -> None:
            if request.cancelled.is_set():
                raise RequestCancelledError(f"{request.name}: cancelled")
            if request.on_segment is not None:
                request.on_segment(segment)

        transcript = self.model.transcribe(request.source, request.options, on_segment=each)
        return replace(transcript, source=request.name)

    def _collect_alone(self, future: Future[Transcript], request: Request) -> None:
        self.stats.solo += 1
        try:
            transcript = future.result()
        except MalsoriError as e:
            if isinstance(e, RequestCancelledError):
                self.stats.cancelled += 1
            else:
                self.stats.failed += 1
            request.future.set_exception(e)
            return
        except Exception as e:  # a bug in one request: it fails, the engine goes on
            self.stats.failed += 1
            request.future.set_exception(internal_error(request.name, e))
            return
        self.stats.record_done(request, time.monotonic() - request.submitted)
        request.future.set_result(transcript)

    def _collect(self, future: Future[list[WindowResult]], batch: _Batch) -> None:
        """A decoded batch: its segments to their requests. A batch that failed goes again
        one window at a time; a window that fails alone fails its requests."""
        try:
            results = future.result()
        except MODEL_ERRORS as e:
            if len(batch.windows) > 1:
                logger.warning("a batch of %d windows failed (%s): decoding them one by one",
                               len(batch.windows), e)  # fmt: skip
                self.stats.batch_retries += 1
                for window in batch.windows:
                    self._requeue_alone(batch, window)
                return
            rids = {p.piece.file for p in batch.windows[0].placements}
            for rid in sorted(rids & set(self._states)):
                self._fail(rid, internal_error(self._states[rid].request.name, e))
            return
        elapsed = time.perf_counter() - batch.started
        self.stats.record_batch(batch.priority, batch.windows, elapsed, self.lane_batch)
        total = sum(w.speech_seconds for w in batch.windows) or 1.0
        touched: set[int] = set()
        for window, result in zip(batch.windows, results, strict=True):
            touched |= self._distribute(window, result, elapsed / self.lanes / total)
            window.release()
        for rid in sorted(touched):
            if rid in self._states:
                self._finish(self._states[rid])

    def _requeue_alone(self, batch: _Batch, window: Window) -> None:
        """A window of a failed batch, again on its own."""
        alone = _Batch(batch.group, batch.priority, [window], time.perf_counter())
        self._running[self._pool.submit(self._run_model, alone)] = alone

    def _distribute(self, window: Window, result: WindowResult, cost: float) -> set[int]:
        """Hand each piece of a decoded window its segments (input time); requeue what an
        unfinished decode left out. Returns the requests touched."""
        groups, redo = distribute(window, result, self.stats)
        touched = set()
        for i, p in enumerate(window.placements):
            state = self._states.get(p.piece.file)
            if state is None:  # the request failed or went away meanwhile
                continue
            touched.add(state.request.id)
            part = state.parts[p.piece.part]
            part.segments += [self._raw(state, p, seg, result) for seg in groups.get(i, [])]
            part.pending -= 1
            state.seconds += cost * p.length / SAMPLE_RATE
            if i in redo:
                part.pending += 1
                state.group.packers[state.request.priority].add(redo[i], window.language)
        return touched

    @staticmethod
    def _raw(state: _State, p: Placement, item: TimedText, result: WindowResult) -> RawSegment:
        """A decoded segment in input time, the form ``Assembler`` takes."""
        start = p.to_file_time(item.start)
        end = max(p.to_file_time(item.end), start)
        words = None
        if state.request.options.word_timestamps and isinstance(item.payload, list):
            words = tuple(
                RawWord(p.to_file_time(w["start"]), p.to_file_time(w["end"]), w["word"],
                        float(w["probability"]))
                for w in item.payload
            )  # fmt: skip
        return RawSegment(
            start, end, item.text, words, avg_logprob=result.avg_logprob,
            no_speech_prob=result.no_speech_prob, compression_ratio=result.compression_ratio,
            temperature=result.temperature, tokens=item.tokens,
        )  # fmt: skip

    # --- output side ----------------------------------------------------------------------

    def _finish(self, state: _State) -> None:
        """Feed finished parts to the defences in order; deliver once all are in."""
        if state.language is None:
            return
        options = state.request.options
        if state.assembler is None:
            state.assembler = Assembler(options)
        try:
            while state.fed in state.parts and state.parts[state.fed].pending == 0:
                self._feed(state, state.parts.pop(state.fed))
                state.fed += 1
            if state.samples is None or state.fed < state.seen:
                return
            transcript = Transcript(
                segments=tuple(state.assembler.segments),
                language=state.language,
                duration=state.samples / SAMPLE_RATE,
                processing_time=time.perf_counter() - state.started,
                options=options,
                model=self.model.name,
                source=state.request.name,
                removed=tuple(state.assembler.removed),
            )
        except MalsoriError as e:  # post-processing that cannot run (a missing analyser)
            self._fail(state.request.id, e)
            return
        del self._states[state.request.id]
        self.stats.record_done(state.request, time.monotonic() - state.request.submitted)
        state.request.future.set_result(transcript)

    def _feed(self, state: _State, part: _Part) -> None:
        assert state.assembler is not None and state.language is not None
        prepared = part.prepared
        probe = SpeechProbe(prepared.audio, threshold=state.request.options.vad_threshold)
        start = prepared.start / SAMPLE_RATE
        for raw in sorted(part.segments, key=lambda s: (s.start, s.end)):
            segment, _ = state.assembler.add(raw, 0.0, probe, start, state.language.language)
            if segment is not None and state.request.on_segment is not None:
                try:
                    state.request.on_segment(segment)
                except Exception:  # the caller's bug must not stop the engine
                    logger.exception("on_segment of %s failed", state.request.name)

    def _fail(self, rid: int, error: MalsoriError) -> None:
        state = self._states.pop(rid, None)
        if rid in self._awaiting_language:
            self._awaiting_language.remove(rid)
        if state is None:
            return
        self._intake.drop(rid)
        if not isinstance(error, RequestCancelledError):
            self.stats.failed += 1
        state.request.future.set_exception(error)


def _name_of(source: object) -> str:
    import os

    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    if isinstance(source, np.ndarray):
        return "<waveform>"
    return str(getattr(source, "name", "<stream>"))
