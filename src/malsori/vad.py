"""Voice activity detection (Silero, shipped inside faster-whisper): which parts of a window
are speech, the speech alone for the decoder, and times mapped back to the original audio.

Only silences of at least ``vad_min_silence_ms`` are removed, at the edges too: a clip that
starts with half a second of quiet is decoded as it is, because cutting a short lead-in shifts
Whisper's first timestamp and changes what it hears, for no gain. Long silences, music and noise
between speech are what VAD is for, and those go, but only from audio longer than one Whisper
window: a clip of 30 s or less that has speech is decoded whole (``decode_regions``). Whisper
pads it to 30 s anyway, so cutting its pauses saves nothing, while it takes away the context
Whisper was trained on (a speaker's hesitations, a quiet last word the VAD scored low).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE
from .options import FULL_ENCODER_WINDOW_S, TranscribeOptions

Region = dict[str, int]  # {"start": sample, "end": sample}, as faster-whisper's VAD returns


def vad_options(opts: TranscribeOptions) -> Any:
    from faster_whisper.vad import VadOptions

    return VadOptions(
        threshold=opts.vad_threshold,
        min_silence_duration_ms=opts.vad_min_silence_ms,
        speech_pad_ms=opts.vad_speech_pad_ms,
        min_speech_duration_ms=opts.vad_min_speech_ms,
        max_speech_duration_s=(
            float("inf") if opts.vad_max_speech_s is None else opts.vad_max_speech_s
        ),
    )


def speech_regions(audio: np.ndarray, opts: TranscribeOptions) -> list[Region]:
    """Speech regions of ``audio``; short silences at the start and end are kept with them."""
    from faster_whisper.vad import get_speech_timestamps

    regions: list[Region] = get_speech_timestamps(audio, vad_options(opts))
    if not regions:
        return []
    keep = int(opts.vad_min_silence_ms * SAMPLE_RATE / 1000)
    if regions[0]["start"] < keep:
        regions[0]["start"] = 0
    if audio.size - regions[-1]["end"] < keep:
        regions[-1]["end"] = audio.size
    return regions


def decode_regions(audio: np.ndarray, opts: TranscribeOptions) -> list[Region]:
    """What the decoder gets of ``audio``: nothing when VAD finds no speech; the whole of it
    when it has speech and fits in one window; otherwise its speech regions."""
    regions = speech_regions(audio, opts)
    if regions and audio.size <= FULL_ENCODER_WINDOW_S * SAMPLE_RATE:
        return [{"start": 0, "end": audio.size}]
    return regions


def has_speech(audio: np.ndarray, opts: TranscribeOptions) -> bool:
    return bool(speech_regions(audio, opts))


def only_speech(audio: np.ndarray, regions: list[Region]) -> np.ndarray:
    """The speech regions joined end to end (the whole audio when one region covers it)."""
    if len(regions) == 1 and regions[0]["start"] == 0 and regions[0]["end"] >= audio.size:
        return audio
    return np.concatenate([audio[r["start"] : r["end"]] for r in regions])


def restore_times(segments: Iterable[Any], regions: list[Region]) -> Iterator[Any]:
    """faster-whisper segments of ``only_speech`` audio, with times in the original audio."""
    from faster_whisper.transcribe import restore_speech_timestamps

    return iter(restore_speech_timestamps(segments, regions, SAMPLE_RATE))


def original_time(seconds: float, regions: list[Region]) -> float:
    """A time in ``only_speech`` audio, in the original audio's time."""
    from faster_whisper.vad import SpeechTimestampsMap

    return float(SpeechTimestampsMap(regions, SAMPLE_RATE).get_original_time(seconds))


def clip_regions(
    regions: list[Region], clips: tuple[float, ...], start_s: float, size: int
) -> list[Region]:
    """``regions`` of audio that starts at ``start_s`` in the input (``size`` samples long),
    kept only inside ``clips`` (input seconds: start,end,...; an odd count runs to the end)."""
    if not clips:
        return regions
    bounds = list(clips) + ([] if len(clips) % 2 == 0 else [float("inf")])
    kept: list[Region] = []
    for a, b in zip(bounds[::2], bounds[1::2], strict=True):
        lo = max(0, int((a - start_s) * SAMPLE_RATE))
        hi = min(size, int((b - start_s) * SAMPLE_RATE)) if b != float("inf") else size
        for r in regions:
            s, e = max(r["start"], lo), min(r["end"], hi)
            if e > s:
                kept.append({"start": s, "end": e})
    return sorted(kept, key=lambda r: r["start"])
