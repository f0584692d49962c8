"""Long-form transcription: decode in windows, run Whisper on each, stitch typed results.

One window is the whole input for anything under ``stream_window_s`` (20 minutes by default);
longer inputs are cut at the quietest point of each window's last minute, so no cut lands in a
word, and the language found in the first window plus the tail of the previous text carry over.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from .audio import AudioSource, AudioStream, as_float32, materialize
from .decoding import FRAMES_PER_SECOND, SAMPLE_RATE, RawSegment, max_new_tokens
from .errors import NoSpeechError
from .glossary import merge_hotwords
from .hallucination import (
    SpeechProbe,
    collapse_loops,
    is_stock_phrase,
    is_unspaced,
    normalize_phrase,
    split_units,
    stock_phrase_pattern,
    time_to_say,
)
from .options import TranscribeOptions
from .postprocess import postprocess_segment
from .rescoring import Rescorer, rescorer_for
from .results import LanguageInfo, RemovedSegment, Segment, Transcript, Word
from .vad import (
    clip_regions,
    decode_regions,
    has_speech,
    only_speech,
    original_time,
    restore_times,
    vad_options,
)

logger = logging.getLogger(__name__)


class Model(Protocol):
    """What transcription needs of a loaded model (``malsori.model.Model`` is one)."""

    whisper: Any  # malsori._whisper.WhisperModel (faster-whisper's, with malsori's rules)

    @property
    def name(self) -> str: ...

    @property
    def multilingual(self) -> bool: ...


_CUT_SEARCH_S = 60.0  # look for a quiet cut point in this much audio at the end of a window
_PROMPT_TAIL_CHARS = 200  # previous text carried into the next window's prompt


def _quiet_cut(audio: np.ndarray, lo: int, hi: int) -> int:
    """Index of the quietest half second between ``lo`` and ``hi`` (by RMS over 100 ms frames)."""
    frame = SAMPLE_RATE // 10
    region = audio[lo:hi]
    n = region.size // frame
    if n < 5:
        return hi
    rms = np.sqrt(np.mean(region[: n * frame].reshape(n, frame) ** 2, axis=1))
    smooth = np.convolve(rms, np.ones(5) / 5, mode="valid")
    return lo + (int(np.argmin(smooth)) + 2) * frame + frame // 2


def iter_windows(blocks: Iterable[np.ndarray], window_s: float) -> Iterator[tuple[int, np.ndarray]]:
    """Re-cut decoded blocks into (start sample, audio) windows of about ``window_s`` seconds."""
    window = int(window_s * SAMPLE_RATE)
    search = int(min(_CUT_SEARCH_S, window_s / 4) * SAMPLE_RATE)
    pending: list[np.ndarray] = []  # joined only when a window is full: no quadratic copying
    pending_len = 0
    offset = 0
    for block in blocks:
        pending.append(block)
        pending_len += block.size
        if pending_len < window + search:
            continue
        buf = np.concatenate(pending)
        while buf.size >= window + search:
            cut = _quiet_cut(buf, window - search, window)
            yield offset, buf[:cut]
            offset += cut
            buf = buf[cut:]
        pending, pending_len = [buf.copy()], buf.size
    if pending_len:
        yield offset, np.concatenate(pending)


def whisper_kwargs(opts: TranscribeOptions) -> dict[str, Any]:
    """faster-whisper keyword arguments for the options shared by every window."""
    return {
        "task": opts.task,
        "beam_size": opts.beam_size,
        "best_of": opts.best_of,
        "patience": opts.patience,
        "temperature": list(opts.temperature),
        "compression_ratio_threshold": opts.compression_ratio_threshold,
        "log_prob_threshold": opts.log_prob_threshold,
        "no_speech_threshold": opts.no_speech_threshold,
        "condition_on_previous_text": opts.condition_on_previous_text,
        "word_timestamps": opts.word_timestamps,
        "without_timestamps": opts.without_timestamps,
        "vad_filter": False,  # malsori runs VAD itself (see malsori.vad)
        "hotwords": merge_hotwords(opts.hotwords, opts.glossary),  # the caller's, then the terms
        "language_detection_segments": opts.language_detection_segments,
        "length_penalty": opts.length_penalty,
        "repetition_penalty": opts.repetition_penalty,
        "no_repeat_ngram_size": opts.no_repeat_ngram_size,
        "suppress_blank": opts.suppress_blank,
        "suppress_tokens": list(opts.suppress_tokens),
        "max_initial_timestamp": opts.max_initial_timestamp,
        "prepend_punctuations": opts.prepend_punctuations,
        "append_punctuations": opts.append_punctuations,
        "prompt_reset_on_temperature": opts.prompt_reset_on_temperature,
        "hallucination_silence_threshold": opts.hallucination_silence_threshold,
        "multilingual": opts.multilingual,
    }


def _token_budget(opts: TranscribeOptions, samples: int) -> int | None:
    """malsori's budget for short audio, or the caller's ``max_new_tokens`` if smaller."""
    budget = max_new_tokens(samples)
    if opts.max_new_tokens is None:
        return budget
    return opts.max_new_tokens if budget is None else min(budget, opts.max_new_tokens)


def _prompt(opts: TranscribeOptions, previous_text: str) -> str | None:
    if not previous_text or not opts.condition_on_previous_text:
        return opts.initial_prompt
    tail = previous_text[-_PROMPT_TAIL_CHARS:]
    return f"{opts.initial_prompt} {tail}" if opts.initial_prompt else tail


def _language_info(info: Any, fixed: str | None) -> LanguageInfo:
    if fixed is not None:
        return LanguageInfo.given(fixed)
    return LanguageInfo.detected_from(
        info.all_language_probs or [(info.language, info.language_probability)]
    )


def _whole_characters(text: str) -> str:
    """``text`` without U+FFFD: a decode cut off inside a character's bytes (Korean, Chinese,
    Japanese characters take two or three byte-level tokens) ends in it."""
    return text.replace("\ufffd", "")


class Assembler:
    """Turns decoded segments (``RawSegment``, from any engine) into clean, monotonic Segments,
    applying the defences.

    ``add`` returns the kept segment (or None when removed) and whether a repetition loop was
    found, in which case the caller restarts decoding after it without the previous text.
    """

    def __init__(self, opts: TranscribeOptions):
        self.opts = opts
        self.segments: list[Segment] = []
        self.removed: list[RemovedSegment] = []
        self.last_end = 0.0
        self.pattern = stock_phrase_pattern(opts.stock_phrases)
        self.reset_pending = False
        self.window_end = float("inf")  # segments are clamped to the audio they came from

    def add(
        self,
        raw: RawSegment,
        offset: float,
        probe: SpeechProbe,
        window_start: float,
        language: str | None,
    ) -> tuple[Segment | None, bool]:
        cleaned = self._clean(raw, offset)
        if cleaned is None:
            return None, False
        seg = cleaned
        looped = False
        if self.opts.repetition_filter:
            seg, looped = self._collapse(seg, language)
            if self._repeats_previous(seg):
                self._remove(seg, "repetition")
                return None, True
        if self.opts.hallucination_filter and self._hallucinated(seg, probe, window_start):
            return None, looped
        seg = replace(seg, id=len(self.segments), flags=seg.flags + self._suspicions(seg))
        if self.reset_pending:
            seg = replace(seg, flags=(*seg.flags, "context_reset"))
            self.reset_pending = False
        # Spacing, punctuation, glossary: done here, so on_segment sees the final text too.
        seg = postprocess_segment(seg, language, self.opts)
        self.segments.append(seg)
        self.last_end = seg.end
        return seg, looped

    def _clean(self, raw: RawSegment, offset: float) -> Segment | None:
        """Times made monotonic and kept inside the audio; None when it starts past the end."""
        start = max(float(raw.start) + offset, self.last_end)
        if start >= self.window_end:
            return None
        end = min(max(float(raw.end) + offset, start), self.window_end)
        words: list[Word] = []
        cursor = start
        for w in raw.words or ():
            w_start = min(max(float(w.start) + offset, cursor), end)
            w_end = min(max(float(w.end) + offset, w_start), end)
            cursor = w_start
            text = _whole_characters(w.word)
            if text.strip():
                words.append(Word(w_start, w_end, text, float(w.probability)))
        return Segment(
            id=-1,
            start=start,
            end=end,
            text="".join(w.word for w in words) if words else _whole_characters(raw.text),
            words=tuple(words),
            avg_logprob=float(raw.avg_logprob),
            no_speech_prob=float(raw.no_speech_prob),
            compression_ratio=float(raw.compression_ratio),
            temperature=float(raw.temperature or 0.0),
            tokens=raw.tokens,
            seek=round(
                (start if raw.window_start is None else raw.window_start + offset)
                * FRAMES_PER_SECOND
            ),
        )

    def _collapse(self, seg: Segment, language: str | None) -> tuple[Segment, bool]:
        unspaced = is_unspaced(language)
        if seg.words:
            keep = collapse_loops([w.word for w in seg.words], unspaced=unspaced)
            if len(keep) == len(seg.words):
                return seg, False
            words = tuple(seg.words[i] for i in keep)
            text = "".join(w.word for w in words)
            return replace(seg, words=words, text=text, flags=("repetition_collapsed",)), True
        units = split_units(seg.text, language)
        keep = collapse_loops(units, unspaced=unspaced)
        if len(keep) == len(units):
            return seg, False
        text = "".join(units[i] for i in keep)
        return replace(seg, text=text, flags=("repetition_collapsed",)), True

    def _repeats_previous(self, seg: Segment) -> bool:
        """The third and later copies of one segment text back to back are a loop."""
        key = normalize_phrase(seg.text)
        if len(key) < 2 or len(self.segments) < 2:
            return False
        return all(normalize_phrase(s.text) == key for s in self.segments[-2:])

    def _hallucinated(self, seg: Segment, probe: SpeechProbe, window_start: float) -> bool:
        opts = self.opts
        stock = is_stock_phrase(seg.text, self.pattern)
        doubtful = (opts.no_speech_threshold is not None and seg.no_speech_prob > 0.5) or (
            opts.log_prob_threshold is not None and seg.avg_logprob < opts.log_prob_threshold
        )
        if not (stock or doubtful) or not seg.text.strip():
            return False
        ratio = probe.speech_ratio(seg.start - window_start, seg.end - window_start)
        # Enough speech under it, as a share of its time or as the time its text takes to say
        # (Whisper sometimes stretches a segment over a long pause or breaths).
        if ratio >= opts.hallucination_speech_ratio or ratio * (seg.end - seg.start) >= time_to_say(
            seg.text
        ):
            return False
        self._remove(seg, "stock_phrase" if stock else "no_speech")
        return True

    def _suspicions(self, seg: Segment) -> tuple[str, ...]:
        o = self.opts
        flags = []
        if o.log_prob_threshold is not None and seg.avg_logprob < o.log_prob_threshold:
            flags.append("low_confidence")
        if o.compression_ratio_threshold is not None and (
            seg.compression_ratio > o.compression_ratio_threshold
        ):
            flags.append("repetitive")
        if o.no_speech_threshold is not None and seg.no_speech_prob > o.no_speech_threshold:
            flags.append("maybe_no_speech")
        return tuple(flags)

    def _remove(self, seg: Segment, reason: str) -> None:
        logger.info("removed %s segment %.2f-%.2f: %r", reason, seg.start, seg.end, seg.text)
        self.removed.append(RemovedSegment(seg.start, seg.end, seg.text, reason))


_MAX_RESETS_PER_WINDOW = 20


def _decode_window(
    model: Model,
    audio: np.ndarray,
    window_start: float,
    state: _WindowState,
    on_segment: Callable[[Segment], None] | None,
) -> None:
    """Transcribe one window; after a repetition loop, restart right after it with no prompt."""
    from ._whisper import encoder_window, rescoring  # faster-whisper: only with a model

    opts = state.opts
    probe = SpeechProbe(audio, threshold=opts.vad_threshold)
    state.assembler.window_end = window_start + audio.size / SAMPLE_RATE
    pos = 0  # sample where the current decoding pass starts, within the window
    prompt = _prompt(opts, state.previous_text)
    texts: list[str] = []
    for _ in range(_MAX_RESETS_PER_WINDOW + 1):
        part = audio[pos:]
        regions = decode_regions(part, opts) if opts.vad else [{"start": 0, "end": part.size}]
        part_start = window_start + pos / SAMPLE_RATE
        regions = clip_regions(regions, opts.clip_timestamps, part_start, part.size)
        if not regions:
            break  # nothing left but silence, noise or music
        restart_at: float | None = None
        offset = window_start + pos / SAMPLE_RATE
        speech = only_speech(part, regions)
        # faster-whisper encodes and decodes lazily, in the loop: both contexts stay open over it
        with encoder_window(opts.encoder_window_s), rescoring(state.rescorer):
            raw_segments, info = model.whisper.transcribe(
                speech,
                language=state.language,
                initial_prompt=prompt,
                max_new_tokens=_token_budget(opts, speech.size),
                # The caller's prefix starts the input's first window only, as in faster-whisper.
                prefix=opts.prefix if window_start == 0 and pos == 0 else None,
                **state.kwargs,
            )
            raw_segments = restore_times(raw_segments, regions)
            if state.language_info is None:
                state.language_info = _language_info(info, opts.language)
                state.language = state.language_info.language  # later windows keep it
            for decoded in raw_segments:
                raw = RawSegment.of(
                    decoded, original_time(getattr(decoded, "seek", 0) / FRAMES_PER_SECOND, regions)
                )
                seg, looped = state.assembler.add(raw, offset, probe, window_start, state.language)
                if seg is not None:
                    texts.append(seg.text)
                    if on_segment is not None:
                        on_segment(seg)
                if looped:
                    restart_at = float(raw.end)
                    break
        if restart_at is None:
            break
        new_pos = pos + int(restart_at * SAMPLE_RATE)
        if new_pos <= pos or audio.size - new_pos < SAMPLE_RATE // 2:
            break
        logger.info("repetition loop before %.2f s: decoding again without context", offset)
        pos, prompt = new_pos, opts.initial_prompt
        state.assembler.reset_pending = True
    state.previous_text = "".join(texts).strip() or state.previous_text


@dataclass
class _WindowState:
    opts: TranscribeOptions
    kwargs: dict[str, Any]
    assembler: Assembler
    language: str | None
    language_info: LanguageInfo | None = None
    previous_text: str = ""
    rescorer: Rescorer | None = None


def _transcribe_windows(
    model: Model,
    windows: Iterable[tuple[int, np.ndarray]],
    opts: TranscribeOptions,
    on_segment: Callable[[Segment], None] | None,
) -> tuple[_WindowState, int]:
    state = _WindowState(opts, whisper_kwargs(opts), Assembler(opts), opts.language)
    state.rescorer = rescorer_for(opts)
    total = 0
    for start, audio in windows:
        total = start + audio.size
        _decode_window(model, audio, start / SAMPLE_RATE, state, on_segment)
    return state, total


def no_speech_language(model: Model, opts: TranscribeOptions) -> LanguageInfo:
    """VAD found no speech anywhere: the language is the one given, or none ("")."""
    if opts.language is not None:
        return LanguageInfo.given(opts.language)
    return LanguageInfo("" if model.multilingual else "en", 0.0, (), detected=False)


def run_transcription(
    model: Model,
    source: AudioSource,
    opts: TranscribeOptions,
    *,
    on_segment: Callable[[Segment], None] | None = None,
) -> Transcript:
    started = time.perf_counter()
    if isinstance(source, np.ndarray):
        audio = as_float32(source)
        state, total = _transcribe_windows(
            model, iter_windows([audio], opts.stream_window_s), opts, on_segment
        )
        name = "<waveform>"
    else:
        name = (
            os.fspath(source)
            if isinstance(source, str | os.PathLike)
            else str(getattr(source, "name", "<stream>"))
        )
        with materialize(source) as path:
            stream = AudioStream(path)
            windows = iter_windows(stream.blocks(), opts.stream_window_s)
            state, total = _transcribe_windows(model, windows, opts, on_segment)
    return Transcript(
        segments=tuple(state.assembler.segments),
        language=state.language_info or no_speech_language(model, opts),
        duration=total / SAMPLE_RATE,
        processing_time=time.perf_counter() - started,
        options=opts,
        model=model.name,
        source=name,
        removed=tuple(state.assembler.removed),
    )


def run_language_detection(
    model: Model, source: AudioSource, opts: TranscribeOptions
) -> LanguageInfo:
    if not model.multilingual:
        return LanguageInfo("en", 1.0, (("en", 1.0),), detected=False)
    # Enough audio for the requested 30 s segments even after VAD drops the silences.
    needed = int(max(120.0, 60.0 * opts.language_detection_segments) * SAMPLE_RATE)
    if isinstance(source, np.ndarray):
        audio = as_float32(source)[:needed]
    else:
        with materialize(source) as path:
            parts, have = [], 0
            for block in AudioStream(path).blocks():
                parts.append(block)
                have += block.size
                if have >= needed:
                    break
            audio = np.concatenate(parts)[:needed]
    if opts.vad and not has_speech(audio, opts):
        raise NoSpeechError("no speech found in the first minutes: cannot detect the language")
    _, _, probs = model.whisper.detect_language(
        audio=audio,
        vad_filter=opts.vad,
        vad_parameters=vad_options(opts),
        language_detection_segments=opts.language_detection_segments,
    )
    return LanguageInfo.detected_from(probs)
