"""Long-form transcription: decode in windows, run Whisper on each, stitch typed results.

One window is the whole input for anything under ``stream_window_s`` (20 minutes by default);
longer inputs are cut at the quietest point of each window's last minute, so no cut lands in a
word, and the language found in the first window plus the tail of the previous text carry over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio import SAMPLE_RATE, AudioSource, AudioStream, as_float32, materialize
from .errors import NoSpeechError
from .options import TranscribeOptions
from .results import LanguageInfo, Segment, Transcript, Word

if TYPE_CHECKING:
    from .model import Model

logger = logging.getLogger(__name__)

TOP_LANGUAGES = 10  # candidates kept in LanguageInfo
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
    buf = np.zeros(0, dtype=np.float32)
    offset = 0
    for block in blocks:
        buf = np.concatenate([buf, block]) if buf.size else block
        while buf.size >= window + search:
            cut = _quiet_cut(buf, window - search, window)
            yield offset, buf[:cut]
            offset += cut
            buf = buf[cut:].copy()
    if buf.size:
        yield offset, buf


def _whisper_kwargs(opts: TranscribeOptions) -> dict[str, Any]:
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
        "vad_filter": opts.vad,
        "vad_parameters": _vad_parameters(opts),
        "hotwords": opts.hotwords,
        "language_detection_segments": opts.language_detection_segments,
    }


def _vad_parameters(opts: TranscribeOptions) -> Any:
    from faster_whisper.vad import VadOptions

    return VadOptions(
        threshold=opts.vad_threshold,
        min_silence_duration_ms=opts.vad_min_silence_ms,
        speech_pad_ms=opts.vad_speech_pad_ms,
    )


def _prompt(opts: TranscribeOptions, previous_text: str) -> str | None:
    if not previous_text or not opts.condition_on_previous_text:
        return opts.initial_prompt
    tail = previous_text[-_PROMPT_TAIL_CHARS:]
    return f"{opts.initial_prompt} {tail}" if opts.initial_prompt else tail


def _language_info(info: Any, fixed: str | None) -> LanguageInfo:
    if fixed is not None:
        return LanguageInfo(fixed, 1.0, (), detected=False)
    probs = info.all_language_probs or [(info.language, info.language_probability)]
    top = tuple((code, float(p)) for code, p in probs[:TOP_LANGUAGES])
    return LanguageInfo(info.language, float(info.language_probability), top, detected=True)


class _Stitcher:
    """Turns faster-whisper segments of successive windows into clean, monotonic Segments."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.last_end = 0.0

    def add(self, raw: Any, offset: float) -> Segment:
        start = max(float(raw.start) + offset, self.last_end)
        end = max(float(raw.end) + offset, start)
        words: list[Word] = []
        cursor = start
        for w in raw.words or ():
            w_start = min(max(float(w.start) + offset, cursor), end)
            w_end = min(max(float(w.end) + offset, w_start), end)
            words.append(Word(w_start, w_end, w.word, float(w.probability)))
            cursor = w_start
        text = "".join(w.word for w in words) if words else raw.text
        seg = Segment(
            id=len(self.segments),
            start=start,
            end=end,
            text=text,
            words=tuple(words),
            avg_logprob=float(raw.avg_logprob),
            no_speech_prob=float(raw.no_speech_prob),
            compression_ratio=float(raw.compression_ratio),
            temperature=float(raw.temperature or 0.0),
        )
        self.segments.append(seg)
        self.last_end = end
        return seg


def _transcribe_windows(
    model: Model,
    windows: Iterable[tuple[int, np.ndarray]],
    opts: TranscribeOptions,
    on_segment: Callable[[Segment], None] | None,
) -> tuple[list[Segment], LanguageInfo | None, int]:
    kwargs = _whisper_kwargs(opts)
    language = opts.language
    lang_info: LanguageInfo | None = None
    stitcher = _Stitcher()
    previous_text = ""
    total = 0
    for start, audio in windows:
        offset = start / SAMPLE_RATE
        total = start + audio.size
        raw_segments, info = model.whisper.transcribe(
            audio, language=language, initial_prompt=_prompt(opts, previous_text), **kwargs
        )
        window_text: list[str] = []
        for raw in raw_segments:
            seg = stitcher.add(raw, offset)
            window_text.append(seg.text)
            if on_segment is not None:
                on_segment(seg)
        if lang_info is None:
            lang_info = _language_info(info, opts.language)
            language = lang_info.language  # later windows keep the first window's language
        previous_text = "".join(window_text).strip() or previous_text
    return stitcher.segments, lang_info, total


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
        segments, lang, total = _transcribe_windows(
            model, iter_windows([audio], opts.stream_window_s), opts, on_segment
        )
        name = "<waveform>"
    else:
        name = str(source) if isinstance(source, str) else getattr(source, "name", "<stream>")
        with materialize(source) as path:
            stream = AudioStream(path)
            windows = iter_windows(stream.blocks(), opts.stream_window_s)
            segments, lang, total = _transcribe_windows(model, windows, opts, on_segment)
    assert lang is not None  # at least one window: empty inputs raise EmptyAudioError earlier
    return Transcript(
        segments=tuple(segments),
        language=lang,
        duration=total / SAMPLE_RATE,
        processing_time=time.perf_counter() - started,
        options=opts,
        model=model.name,
        source=name,
    )


def _has_speech(audio: np.ndarray, opts: TranscribeOptions) -> bool:
    from faster_whisper.vad import get_speech_timestamps

    return bool(get_speech_timestamps(audio, _vad_parameters(opts)))


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
    if opts.vad and not _has_speech(audio, opts):
        raise NoSpeechError("no speech found in the first minutes: cannot detect the language")
    language, probability, probs = model.whisper.detect_language(
        audio=audio,
        vad_filter=opts.vad,
        vad_parameters=_vad_parameters(opts),
        language_detection_segments=opts.language_detection_segments,
    )
    top = tuple((code, float(p)) for code, p in probs[:TOP_LANGUAGES])
    return LanguageInfo(language, float(probability), top, detected=True)
