"""The packed engine: work scheduled across files, not file by file.

- Worker threads decode audio and run VAD ahead of the model (``prepare``).
- The language of each file is detected from its first speech, in batches (``lid``).
- Speech regions of many files (same language) are packed into shared 30 s windows
  (``packing``) and windows are decoded in batches (``decoder``), one batch per model worker at
  once (two on a CPU, ``runner.model_layout``).
- Segments go back to their file by Whisper's timestamps (word alignment splits a segment that
  straddles two files), then through the same defences as ``malsori transcribe``
  (``malsori.transcribe.Assembler``), one file at a time, in order. A window holding only one
  long recording's speech needs no timestamps to tell files apart: it is decoded without them
  and cut into segments by its aligned words.

Decoding rules are the same as ``transcribe``'s except that windows are independent: the previous
window's text is not used as a prompt (each window has ``initial_prompt`` and ``hotwords``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import SAMPLE_RATE
from ..decoding import WINDOW_S, WINDOW_SAMPLES, RawSegment, RawWord
from ..errors import MalsoriError
from ..hallucination import SpeechProbe
from ..options import TranscribeOptions
from ..results import LanguageInfo, Transcript
from ..transcribe import Assembler, no_speech_language
from .decoder import DecodedSegment, WindowDecoder, WindowResult, split_untimed
from .engine_api import Deliver, FileFailedError, internal_error
from .inputs import BatchInput
from .lid import LanguageDetector
from .packing import (
    Packer,
    Piece,
    Placement,
    TimedText,
    Window,
    assign,
    iter_pieces_after,
    owner,
)
from .prepare import FileEnd, FileFailed, Prefetcher, PreparedPart

if TYPE_CHECKING:
    from ..model import Model

logger = logging.getLogger(__name__)

# What CTranslate2 and numpy raise when a model call goes wrong (out of memory included).
MODEL_ERRORS = (RuntimeError, ValueError, MemoryError)
MAX_RETRIES = 2  # times the unfinished tail of a piece is decoded again
# An open window is sent once this many batches of other windows have closed meanwhile.
MAX_WINDOW_WAIT_BATCHES = 2


@dataclass
class EngineStats:
    """What the packed engine did, for the log and the benchmark."""

    windows: int = 0  # windows decoded
    pieces: int = 0  # speech regions decoded (retries included)
    speech_seconds: float = 0.0  # audio decoded, gaps and padding not counted
    straddled: int = 0  # segments over two pieces, split by their words
    lost: int = 0  # pieces that got no text in a shared window and went again alone
    unfinished: int = 0  # pieces whose tail went again after an unfinished decode
    untimed: int = 0  # windows of one recording, decoded without timestamps

    def describe(self) -> str:
        fill = self.speech_seconds / (self.windows * WINDOW_S) if self.windows else 0.0
        return (
            f"{self.windows} windows ({fill:.0%} speech, {self.untimed} without timestamps), "
            f"{self.pieces} pieces, "
            f"{self.straddled} split by words, {self.lost} decoded again alone, "
            f"{self.unfinished} tails decoded again"
        )


@dataclass
class _Part:
    prepared: PreparedPart
    pending: int  # pieces not decoded yet
    segments: list[RawSegment] = field(default_factory=list)  # file time


@dataclass
class _File:
    index: int
    language: LanguageInfo | None = None
    parts: dict[int, _Part] = field(default_factory=dict)
    fed: int = 0  # parts already through the assembler
    seen: int = 0  # parts received
    samples: int | None = None  # decoded length, once every part has been received
    seconds: float = 0.0  # model time spent on this file
    assembler: Assembler | None = None


class PackedEngine:
    name = "packed"

    def __init__(self, model: Model, options: TranscribeOptions, *, batch_size: int = 8,
                 workers: int = 2):  # fmt: skip
        self.model = model
        self.options = options
        self.batch_size = batch_size
        self.workers = workers
        # Batches decoded at once: one per model worker (``runner.model_layout``: two on a CPU).
        # The windows in flight stay ``batch_size`` in all, and so does the memory they take.
        self.lanes = max(1, min(model.info.workers, batch_size))
        self.lane_batch = -(-batch_size // self.lanes)
        self.decoder = WindowDecoder(model, options)
        self.detector = LanguageDetector(self.decoder)
        self.stats = EngineStats()

    def run(self, items: Sequence[BatchInput], deliver: Deliver) -> None:
        self.items = items
        self.deliver = deliver
        self.files: dict[int, _File] = {}
        self.packer = Packer(max_wait=MAX_WINDOW_WAIT_BATCHES * self.batch_size)
        self.awaiting_language: list[int] = []
        lookahead = max(240.0, 3 * self.batch_size * WINDOW_S)
        prefetch = Prefetcher(items, self.options, workers=self.workers, limit_s=lookahead)
        pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="malsori-model")
        try:
            self._loop(prefetch, pool)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            prefetch.close()
        logger.info(
            "packed engine: %s, %d temperature fallbacks; languages: %d by the fast pass, "
            "%d by the full one; %d batches at once",
            self.stats.describe(), self.decoder.fallbacks, self.detector.fast, self.detector.full,
            self.lanes,
        )  # fmt: skip

    def _loop(self, prefetch: Prefetcher, pool: ThreadPoolExecutor) -> None:
        b, lane = self.batch_size, self.lane_batch
        running: dict[Future[list[WindowResult]], tuple[list[Window], float]] = {}
        while True:
            # Take in what is prepared, but only while the model has too little to do: the
            # buffer behind stays bounded and the decoding threads wait.
            while (
                self.packer.ready < 2 * b
                and len(self.awaiting_language) < b
                and (item := prefetch.get(block=False)) is not None
            ):
                self._accept(item)
            exhausted = prefetch.exhausted
            if self.awaiting_language and (
                exhausted or self.packer.ready < lane or len(self.awaiting_language) >= b
            ):
                self._detect_languages()
                continue
            free = len(running) < self.lanes
            if free and (self.packer.ready >= lane or (exhausted and self.packer.pending)):
                size = lane
                if exhausted:  # the last windows: shared out among the idle lanes
                    idle = self.lanes - len(running)
                    size = max(1, min(lane, -(-self.packer.pending // idle)))
                windows = self.packer.take(size, flush=exhausted)
                if windows:
                    future = pool.submit(self._run_model, windows)
                    running[future] = (windows, time.perf_counter())
                    continue
            if running:
                # Wait for a batch; with a lane free and more audio coming, only briefly, so
                # that prepared audio is taken in and the free lane filled.
                timeout = 0.05 if free and not exhausted else None
                done, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
                for future in done:
                    self._collect(future, *running.pop(future))
                continue
            if exhausted:
                break
            item = prefetch.get(block=True)
            if item is not None:
                self._accept(item)
        for state in list(self.files.values()):  # cannot happen: every file ends or fails
            self._fail(state.index, FileFailedError("internal error: file left unfinished"))

    # --- input side ---------------------------------------------------------------------------

    def _accept(self, item: PreparedPart | FileEnd | FileFailed) -> None:
        if isinstance(item, FileFailed):
            self._fail(item.file, item.error)
            return
        state = self.files.setdefault(item.file, _File(item.file))
        if isinstance(item, FileEnd):
            state.samples = item.samples
            if state.language is None and state.index not in self.awaiting_language:
                # no speech anywhere: the language given, or none (as transcribe says)
                state.language = no_speech_language(self.model, self.options)
            self._finish(state)
            return
        state.parts[item.part] = _Part(item, pending=len(item.regions))
        state.seen += 1
        if state.language is None and self.options.language is not None:
            state.language = LanguageInfo(self.options.language, 1.0, (), detected=False)
        if state.language is not None:
            self._pack(state, item)
        elif item.regions and state.index not in self.awaiting_language:
            self.awaiting_language.append(state.index)  # detected from its first speech

    def _pack(self, state: _File, part: PreparedPart) -> None:
        assert state.language is not None
        for lo, hi in part.regions:
            piece = Piece(state.index, part.part, part.start + lo, part.audio[lo:hi],
                          long_form=part.audio.size > WINDOW_SAMPLES)  # fmt: skip
            self.packer.add(piece, state.language.language)

    def _detect_languages(self) -> None:
        started = time.perf_counter()
        waiting = [self.files[i] for i in self.awaiting_language if i in self.files]
        self.awaiting_language = []
        limit = int(self.options.language_detection_segments * WINDOW_S * SAMPLE_RATE)
        speeches = []
        for state in waiting:
            first = next(p.prepared for _, p in sorted(state.parts.items()) if p.prepared.regions)
            spans = [first.audio[lo:hi] for lo, hi in first.regions]
            speeches.append(np.concatenate(spans)[:limit])
        try:
            infos = self.detector.detect(speeches, self.batch_size)
        except MODEL_ERRORS as e:
            for state in waiting:
                self._fail(state.index, internal_error(self.items[state.index].source, e))
            return
        share = (time.perf_counter() - started) / max(1, len(waiting))
        for state, info in zip(waiting, infos, strict=True):
            state.language = info
            state.seconds += share
            for number in sorted(state.parts):
                self._pack(state, state.parts[number].prepared)
            self._finish(state)

    # --- model side ---------------------------------------------------------------------------

    def _collect(
        self, future: Future[list[WindowResult]], windows: list[Window], started: float
    ) -> None:
        """A decoded batch: its segments to their files; its files failed if the model did."""
        try:
            results = future.result()
        except MODEL_ERRORS as e:  # a bad window must not stop the job: its files fail
            files = {p.piece.file for w in windows for p in w.placements}
            for index in sorted(files & set(self.files)):
                self._fail(index, internal_error(self.items[index].source, e))
            return
        # Model time, shared by the files of the batch (the lanes run side by side).
        elapsed = (time.perf_counter() - started) / self.lanes
        total = sum(w.speech_seconds for w in windows) or 1.0
        touched: set[int] = set()
        for window, result in zip(windows, results, strict=True):
            touched |= self._distribute(window, result, elapsed / total)
            self.stats.windows += 1
            self.stats.untimed += window.one_recording
            self.stats.pieces += len(window.placements)
            self.stats.speech_seconds += window.speech_seconds
            window.release()
        for index in sorted(touched):
            if index in self.files:
                self._finish(self.files[index])

    def _run_model(self, windows: list[Window]) -> list[WindowResult]:
        """Encode, decode (with fallback) and, where needed, align a batch of windows (in a
        model lane's thread: it reads the windows and touches no engine state).

        A window that holds the speech of one recording only (a long file's) is decoded without
        timestamp tokens and cut into segments by its aligned words: no timestamp tokens to
        write, and no early stop at the last timestamp that leaves the window's tail to be
        decoded again (``docs/batch.md``). Windows shared by several files keep the timestamps
        that tell their files apart.
        """
        clock = [time.perf_counter()]
        features = np.stack([self.decoder.features(w.audio()) for w in windows])
        encoded = self.decoder.encode(features)
        clock.append(time.perf_counter())
        languages = [w.language for w in windows]
        ends = [w.used / SAMPLE_RATE for w in windows]
        timed = [not w.one_recording for w in windows]
        cuts = [w.file_cuts for w in windows]
        results = self.decoder.generate(encoded, languages, ends, timed, cuts)
        clock.append(time.perf_counter())
        need_words = [
            i for i, (w, r) in enumerate(zip(windows, results, strict=True))
            if self.options.word_timestamps or not timed[i] or _straddles(w, r)
        ]  # fmt: skip
        if need_words:
            self.decoder.align(encoded, results, languages, ends, need_words)
        for result, end, is_timed in zip(results, ends, timed, strict=True):
            if not is_timed:
                split_untimed(result, end)
        clock.append(time.perf_counter())
        logger.debug(
            "%d windows (%d without timestamps): encoded in %.2f s, decoded in %.2f s, "
            "aligned in %.2f s",
            len(windows), timed.count(False), *np.diff(clock),
        )  # fmt: skip
        return results

    def _distribute(self, window: Window, result: WindowResult, cost: float) -> set[int]:
        """Hand each piece of a decoded window its segments (file time); requeue what an
        unfinished decode left out. Returns the files touched."""
        placements = window.placements
        groups, straddled = _segments_by_placement(placements, result)
        redo = _unfinished(placements, result)
        self.stats.unfinished += len(redo)
        lost = _lost(placements, groups, redo)
        self.stats.lost += len(lost)
        self.stats.straddled += straddled
        redo.update(lost)
        touched = set()
        for i, p in enumerate(placements):
            state = self.files.get(p.piece.file)
            if state is None:  # the file failed meanwhile
                continue
            touched.add(state.index)
            part = state.parts[p.piece.part]
            part.segments += [self._raw(p, seg, result) for seg in groups.get(i, [])]
            part.pending -= 1
            state.seconds += cost * p.length / SAMPLE_RATE
            if i in redo:
                part.pending += 1
                self.packer.add(redo[i], window.language)
        return touched

    def _raw(self, p: Placement, item: TimedText, result: WindowResult) -> RawSegment:
        """A decoded segment in file time, the form ``Assembler`` takes."""
        start = p.to_file_time(item.start)
        end = max(p.to_file_time(item.end), start)
        words = None
        if self.options.word_timestamps and isinstance(item.payload, list):
            words = tuple(
                RawWord(p.to_file_time(w["start"]), p.to_file_time(w["end"]), w["word"],
                        float(w["probability"]))
                for w in item.payload
            )  # fmt: skip
        return RawSegment(
            start, end, item.text, words, avg_logprob=result.avg_logprob,
            no_speech_prob=result.no_speech_prob, compression_ratio=result.compression_ratio,
            temperature=result.temperature,
        )  # fmt: skip

    # --- output side --------------------------------------------------------------------------

    def _finish(self, state: _File) -> None:
        """Feed finished parts to the defences in order; deliver the file once all are in."""
        if state.language is None:
            return
        if state.assembler is None:
            state.assembler = Assembler(self.options)
        try:
            while state.fed in state.parts and state.parts[state.fed].pending == 0:
                self._feed(state, state.parts.pop(state.fed))
                state.fed += 1
            if state.samples is None or state.fed < state.seen:
                return
            transcript = self._transcript(state)
        except MalsoriError as e:  # post-processing that cannot run (a missing analyser)
            self._fail(state.index, e)
            return
        del self.files[state.index]
        self.deliver(state.index, transcript)

    def _feed(self, state: _File, part: _Part) -> None:
        assert state.assembler is not None and state.language is not None
        prepared = part.prepared
        probe = SpeechProbe(prepared.audio, threshold=self.options.vad_threshold)
        start = prepared.start / SAMPLE_RATE
        for raw in sorted(part.segments, key=lambda s: (s.start, s.end)):
            state.assembler.add(raw, 0.0, probe, start, state.language.language)

    def _transcript(self, state: _File) -> Transcript:
        assert state.assembler is not None and state.language is not None
        assert state.samples is not None
        # Post-processing (Korean spacing, punctuation, glossary) ran in the assembler.
        return Transcript(
            segments=tuple(state.assembler.segments),
            language=state.language,
            duration=state.samples / SAMPLE_RATE,
            processing_time=state.seconds,
            options=self.options,
            model=self.model.name,
            source=str(self.items[state.index].source),
            removed=tuple(state.assembler.removed),
        )

    def _fail(self, index: int, error: MalsoriError) -> None:
        self.files.pop(index, None)
        if index in self.awaiting_language:
            self.awaiting_language.remove(index)
        self.deliver(index, error)


def _straddles(window: Window, result: WindowResult) -> bool:
    items = [TimedText(s.start, s.end, s.text) for s in result.segments]
    return assign(window.placements, items)[1]


def _segments_by_placement(
    placements: list[Placement], result: WindowResult
) -> tuple[dict[int, list[TimedText]], int]:
    """Each segment (or, when one straddles two pieces, each run of its words) by the piece it
    belongs to, payload: the words, window time; and how many segments were split."""
    groups: dict[int, list[TimedText]] = {}
    split = 0
    for seg in result.segments:
        index, spill = owner(placements, seg.start, seg.end)
        if not (spill and seg.words):
            groups.setdefault(index, []).append(TimedText(seg.start, seg.end, seg.text, seg.words))
            continue
        split += 1
        for run_index, run in _word_runs(placements, seg):
            text = "".join(w["word"] for w in run)
            item = TimedText(run[0]["start"], run[-1]["end"], text, run)
            groups.setdefault(run_index, []).append(item)
    return groups, split


def _word_runs(
    placements: list[Placement], seg: DecodedSegment
) -> list[tuple[int, list[dict[str, Any]]]]:
    runs: list[tuple[int, list[dict[str, Any]]]] = []
    for word in seg.words or ():
        index = owner(placements, word["start"], word["end"])[0]
        if runs and runs[-1][0] == index:
            runs[-1][1].append(word)
        else:
            runs.append((index, [word]))
    return runs


def _lost(
    placements: list[Placement], groups: dict[int, list[TimedText]], redo: dict[int, Piece]
) -> dict[int, Piece]:
    """Speech that got no text in a shared window, to be decoded again in a window of its own:
    Whisper sometimes runs two neighbours together or skips one. A piece that gets no text
    alone either is taken as it is (noise that VAD took for speech)."""
    if len(placements) < 2:
        return {}
    lost = {}
    for i, p in enumerate(placements):
        piece = p.piece
        if i in groups or i in redo or piece.audio is None:
            continue
        lost[i] = replace(piece, solo=True)
    return lost


def _unfinished(placements: list[Placement], result: WindowResult) -> dict[int, Piece]:
    """Pieces for the speech an unfinished decode did not reach, by placement index."""
    if result.complete_until is None or result.silent:
        return {}
    redo: dict[int, Piece] = {}
    index = {id(p): i for i, p in enumerate(placements)}
    for p, skip in iter_pieces_after(placements, result.complete_until):
        piece = p.piece
        if piece.retries >= MAX_RETRIES or piece.audio is None or skip >= piece.length:
            continue
        redo[index[id(p)]] = replace(
            piece, start=piece.start + skip, audio=piece.audio[skip:], retries=piece.retries + 1
        )
    return redo
