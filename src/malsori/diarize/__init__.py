"""Speaker diarization: who said what, offline.

A GE2E speaker encoder (weights from the ``resemblyzer`` wheel) embeds sliding windows of the
speech regions; agglomerative clustering finds the speakers; words are given to speakers by their
times and segments split where the speaker changes. It runs after transcription on the finished
transcript and its audio, the same for every door (``diarize_or_keep``). Needs the ``diarize``
extra.
"""

from __future__ import annotations

from ..errors import DiarizationError, SpeakerReferenceError
from .options import DiarizeOptions, KnownSpeaker
from .run import (
    Diarization,
    diarize_audio,
    diarize_or_keep,
    diarize_transcript,
    label_transcript,
    load_samples,
    reference_speaker,
)
from .store import SpeakerStore

__all__ = [
    "Diarization",
    "DiarizationError",
    "DiarizeOptions",
    "KnownSpeaker",
    "SpeakerReferenceError",
    "SpeakerStore",
    "diarize_audio",
    "diarize_or_keep",
    "diarize_transcript",
    "label_transcript",
    "load_samples",
    "reference_speaker",
]
