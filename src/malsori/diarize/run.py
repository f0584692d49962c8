"""Diarization of a finished transcript: the one function every door calls.

``diarize_transcript`` takes the transcript and its audio (a path, bytes or 16 kHz samples) and
returns the transcript with a speaker on every segment and word, segments split where the speaker
changes, and ``meta["diarization"]`` telling what was found. ``diarize_or_keep`` is what the doors
use: when diarization fails, the transcript comes back unchanged (no labels) with the failure in
``meta["diarization"]["error"]``, so a transcript is never lost to diarization.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

import numpy as np

from ..audio import SAMPLE_RATE, AudioStream, as_float32, materialize
from ..errors import DiarizationError, InputError, MalsoriError, SpeakerReferenceError
from ..options import TranscribeOptions
from ..results import Transcript
from ..vad import speech_regions
from .assign import LabelledTurn, SpeakerTimeline, label_segments
from .encoder import load_encoder
from .options import DiarizeOptions, KnownSpeaker
from .turns import cluster, embed_regions, turns_of

log = logging.getLogger(__name__)

AudioSource = str | os.PathLike[str] | bytes | BinaryIO | np.ndarray
# Speech regions for diarization: a pause of this much splits a region, so that a pause between
# two speakers is a boundary (transcription keeps pauses up to 2 s inside its regions).
MIN_SILENCE_MS = 150
SPEECH_PAD_MS = 30
# A cluster is a known speaker when its mean embedding is at least this similar (cosine) to the
# speaker's reference; otherwise it gets a number. Chosen on the tuning split of
# scripts/diarization_eval.py (speakers disjoint from those reported): there a cluster's centre
# was at least 0.90 similar to its own speaker's reference in 90% of cases and above 0.85 to
# another speaker's in 10%; 0.87 named more turns right but the unenrolled voice more often too.
KNOWN_MIN_SIMILARITY = 0.89


@dataclass(frozen=True)
class Diarization:
    """Who speaks when, in seconds of the input, with the labels given."""

    turns: tuple[LabelledTurn, ...]
    speakers: tuple[str, ...]  # every label, in order of first speech
    seconds: float  # wall-clock time it took

    def to_dict(self) -> dict[str, Any]:
        return {
            "speakers": list(self.speakers),
            "turns": [
                {"start": round(t.start, 3), "end": round(t.end, 3), "speaker": t.speaker}
                for t in self.turns
            ],
            "processing_time": round(self.seconds, 3),
        }


def load_samples(source: AudioSource) -> np.ndarray:
    """16 kHz mono float32 samples of any input malsori transcribes."""
    if isinstance(source, np.ndarray):
        return as_float32(source)
    with materialize(source) as path:
        return AudioStream(path).read()


def speech_spans(audio: np.ndarray, vad: TranscribeOptions) -> list[tuple[float, float]]:
    """Speech regions of ``audio`` in seconds, split at pauses of ``MIN_SILENCE_MS``."""
    opts = vad.replace(vad_min_silence_ms=MIN_SILENCE_MS, vad_speech_pad_ms=SPEECH_PAD_MS,
                       vad_max_speech_s=None, vad_min_speech_ms=0)  # fmt: skip
    return [(r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE) for r in speech_regions(audio, opts)]


def diarize_audio(
    audio: np.ndarray, options: DiarizeOptions, vad: TranscribeOptions | None = None
) -> Diarization:
    """Speaker turns of ``audio`` (16 kHz mono float32); no speech gives no turns."""
    began = time.perf_counter()
    regions = speech_spans(audio, vad or TranscribeOptions())
    encoder = load_encoder(options.device)
    windows = embed_regions(encoder, audio, regions)
    fewest, most = options.speaker_range
    labels = cluster(windows, fewest, most, exact=options.num_speakers is not None)
    names = _names(windows.embeddings, labels, options.known)
    turns = tuple(LabelledTurn(t.start, t.end, names[t.speaker]) for t in turns_of(windows, labels))
    speakers = tuple(dict.fromkeys(t.speaker for t in turns))
    return Diarization(turns, speakers, time.perf_counter() - began)


def _names(
    embeddings: np.ndarray, labels: np.ndarray, known: tuple[KnownSpeaker, ...]
) -> list[str]:
    """A label for every cluster: a known speaker's name where its voice matches (names given one
    to one by best matches first, then a cluster left over takes the name it matches if it
    matches it as well: one voice split in two clusters), else ``SPEAKER_n`` numbered in order
    of first speech."""
    count = int(labels.max()) + 1 if labels.size else 0
    names: list[str | None] = [None] * count
    if known and count:
        from scipy.optimize import linear_sum_assignment

        centres = np.stack([embeddings[labels == k].mean(axis=0) for k in range(count)])
        centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-8)
        refs = np.stack([k.embedding for k in known])
        similarity = centres @ refs.T
        rows, cols = linear_sum_assignment(-similarity)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if similarity[r, c] >= KNOWN_MIN_SIMILARITY:
                names[r] = known[c].name
        for r in range(count):  # a known voice split in two (read in two moods) is still one
            c = int(np.argmax(similarity[r]))
            if names[r] is None and similarity[r, c] >= KNOWN_MIN_SIMILARITY:
                names[r] = known[c].name
    taken = {n for n in names if n is not None}
    numbered, n = [], 0
    for name in names:
        if name is None:
            n += 1
            while f"SPEAKER_{n}" in taken:
                n += 1
            name = f"SPEAKER_{n}"
        numbered.append(name)
    return numbered


def label_transcript(transcript: Transcript, diarization: Diarization) -> Transcript:
    """The transcript with speakers on segments and words, split at changes of speaker."""
    timeline = SpeakerTimeline(diarization.turns)
    segments = tuple(label_segments(transcript.segments, timeline)) if diarization.turns else ()
    meta = {**transcript.meta, "diarization": diarization.to_dict()}
    if not diarization.turns:  # no speech: nothing to label
        return replace(transcript, meta=meta)
    return replace(transcript, segments=segments, meta=meta)


def diarize_transcript(
    transcript: Transcript, audio: AudioSource, options: DiarizeOptions
) -> Transcript:
    """``transcript`` (of ``audio``) with speakers; raises when diarization fails."""
    samples = load_samples(audio)
    try:
        diarization = diarize_audio(samples, options, transcript.options)
    except (RuntimeError, ValueError, MemoryError) as e:  # PyTorch and SciPy failures
        log.exception("diarization failed")
        raise DiarizationError(f"diarization failed: {e}") from e
    return label_transcript(transcript, diarization)


def diarize_or_keep(
    transcript: Transcript, audio: AudioSource, options: DiarizeOptions
) -> tuple[Transcript, str | None]:
    """``diarize_transcript``, or the transcript unchanged and why diarization failed."""
    try:
        return diarize_transcript(transcript, audio, options), None
    except MalsoriError as e:
        reason = str(e)
    meta = {**transcript.meta, "diarization": {"error": reason}}
    return replace(transcript, meta=meta), reason


def reference_speaker(
    name: str, source: AudioSource, vad: TranscribeOptions | None = None, device: str = "cpu"
) -> KnownSpeaker:
    """A known speaker from a recording of their voice (a few seconds of speech or more)."""
    try:
        audio = load_samples(source)
    except InputError as e:
        raise SpeakerReferenceError(f"speaker {name!r}: reference is not usable audio: {e}") from e
    regions = speech_spans(audio, vad or TranscribeOptions())
    windows = embed_regions(load_encoder(device), audio, regions)
    if not len(windows.embeddings):
        raise SpeakerReferenceError(f"speaker {name!r}: the reference holds no speech")
    weights = windows.spans[:, 1] - windows.spans[:, 0]
    mean = (windows.embeddings * weights[:, None]).sum(axis=0)
    return KnownSpeaker(name, (mean / max(float(np.linalg.norm(mean)), 1e-8)).astype(np.float32))
