"""Subtitles people can publish: profiles, cues built from timed words, lint and re-flow.

``profiles`` says what a cue may be (line width, lines, reading speed, durations, gaps);
``cues`` builds cues from a transcript's timed words; ``lint`` checks any cues against a profile;
``parse`` reads SRT and WebVTT files; ``reflow`` re-flows a file's cues without audio. Only the
profiles are imported here (``TranscribeOptions`` holds a ``SubtitleSpec``); import the rest from
their modules.
"""

from __future__ import annotations

from .profiles import (
    LIMITS,
    PROFILE_NAMES,
    PROFILES,
    SubtitleProfile,
    SubtitleSpec,
    get_profile,
    profile_for_language,
)

__all__ = [
    "LIMITS",
    "PROFILES",
    "PROFILE_NAMES",
    "SubtitleProfile",
    "SubtitleSpec",
    "get_profile",
    "profile_for_language",
]
