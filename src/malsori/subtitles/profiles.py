"""Subtitle profiles: how wide a line may be, how many lines, how fast people can read.

A profile is a frozen value, validated once. ``netflix-ko`` and ``netflix-en`` follow the Netflix
timed-text style guides; ``latin`` and ``cjk`` are the general defaults ``auto`` picks from the
transcript's language; ``none`` keeps one cue per Whisper segment. Every limit can be overridden
(``SubtitleSpec``), and a spec is what travels in ``TranscribeOptions``.

Widths are counted the way Korean, Japanese and Chinese subtitle specs count them: in ``half``
counting a full-width character (Hangul, kana, Han) is 1 and a Latin letter, digit, space or
punctuation mark is 1/2; in ``full`` counting (Latin scripts) every character is 1 and a
full-width one 2. Reading speed uses the same count.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidOptionError

Counting = Literal["half", "full"]

FRAME_24 = 1 / 24  # one frame at 24 fps, in seconds
# Languages whose subtitles count full-width characters as one and the rest as half.
CJK_LANGUAGES = frozenset({"ko", "ja", "zh", "yue"})


@dataclass(frozen=True)
class SubtitleProfile:
    """The limits a cue must meet."""

    name: str
    counting: Counting  # how characters are counted (see the module docstring)
    max_line_width: float  # characters per line, in this profile's counting
    max_lines: int = 2
    max_cps: float = 20.0  # characters per second of the cue's duration (line breaks not counted)
    min_duration: float = 5 / 6  # seconds (20 frames at 24 fps)
    max_duration: float = 7.0  # seconds
    min_gap: float = 2 * FRAME_24  # seconds between one cue's end and the next one's start
    # A cue may stay this long after its last word is spoken; longer only when its reading speed
    # or the minimum duration asks for it and the silence after it has room.
    linger: float = 0.5

    def __post_init__(self) -> None:
        if self.counting not in ("half", "full"):
            raise InvalidOptionError(f"unknown character counting {self.counting!r}")
        if self.max_line_width < 4:
            raise InvalidOptionError(f"line width must be at least 4, got {self.max_line_width}")
        if not 1 <= self.max_lines <= 4:
            raise InvalidOptionError(f"lines per cue must lie in [1, 4], got {self.max_lines}")
        if self.max_cps <= 0:
            raise InvalidOptionError(f"reading speed must be positive, got {self.max_cps}")
        if self.min_duration < 0 or self.min_gap < 0 or self.linger < 0:
            raise InvalidOptionError("subtitle durations and gaps cannot be negative")
        if self.max_duration < max(self.min_duration, 1.0):
            raise InvalidOptionError(
                f"maximum cue duration ({self.max_duration} s) must be at least 1 s and the "
                f"minimum ({self.min_duration} s)"
            )

    def width(self, text: str) -> float:
        """The width of ``text`` in this profile's counting (line breaks count nothing)."""
        return text_width(text, self.counting)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def char_width(ch: str, counting: Counting) -> float:
    if ch in "\n\r" or unicodedata.combining(ch) or unicodedata.category(ch) == "Cf":
        return 0.0
    wide = unicodedata.east_asian_width(ch) in ("W", "F")
    if counting == "half":
        return 1.0 if wide else 0.5
    return 2.0 if wide else 1.0


def text_width(text: str, counting: Counting) -> float:
    return sum(char_width(ch, counting) for ch in unicodedata.normalize("NFC", text))


_LATIN = {"counting": "full", "max_line_width": 42, "max_lines": 2, "max_cps": 20.0}
_CJK = {"counting": "half", "max_line_width": 16, "max_lines": 2, "max_cps": 12.0}
PROFILES: dict[str, SubtitleProfile] = {
    "netflix-ko": SubtitleProfile("netflix-ko", **_CJK),  # type: ignore[arg-type]
    "netflix-en": SubtitleProfile("netflix-en", **_LATIN),  # type: ignore[arg-type]
    "latin": SubtitleProfile("latin", **_LATIN),  # type: ignore[arg-type]
    "cjk": SubtitleProfile("cjk", **_CJK),  # type: ignore[arg-type]
}
# "auto": the general profile for the transcript's language; "none": one cue per segment.
PROFILE_NAMES: tuple[str, ...] = ("auto", *PROFILES, "none")
# The limits a caller may override, each with its own command-line flag.
LIMITS: tuple[str, ...] = (
    "max_line_width",
    "max_lines",
    "max_cps",
    "min_duration",
    "max_duration",
    "min_gap",
)


def profile_for_language(language: str | None) -> SubtitleProfile:
    """The general profile for a language: full-width counting for Korean, Japanese, Chinese."""
    return PROFILES["cjk" if language in CJK_LANGUAGES else "latin"]


@dataclass(frozen=True)
class SubtitleSpec:
    """A profile name and the limits overridden on top of it; resolved per transcript.

    ``auto`` becomes ``cjk`` or ``latin`` by the transcript's language; ``none`` resolves to None
    (one cue per Whisper segment, as before profiles existed).
    """

    profile: str = "auto"
    max_line_width: float | None = None
    max_lines: int | None = None
    max_cps: float | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    min_gap: float | None = None

    def __post_init__(self) -> None:
        name = self.profile.strip().lower()
        object.__setattr__(self, "profile", name)
        if name not in PROFILE_NAMES:
            raise InvalidOptionError(
                f"unknown subtitle profile {self.profile!r}: use one of {', '.join(PROFILE_NAMES)}"
            )
        self.resolve(None)  # the overrides are checked once, here

    @property
    def overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in LIMITS if getattr(self, k) is not None}

    @property
    def enabled(self) -> bool:
        return self.profile != "none"

    def resolve(self, language: str | None) -> SubtitleProfile | None:
        """The profile for a transcript in ``language``, or None for ``none``."""
        if self.profile == "none":
            return None
        base = profile_for_language(language) if self.profile == "auto" else PROFILES[self.profile]
        return dataclasses.replace(base, **self.overrides) if self.overrides else base

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, **self.overrides}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubtitleSpec:
        known = {"profile", *LIMITS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidOptionError(f"unknown subtitle option(s): {', '.join(unknown)}")
        return cls(**data)


def get_profile(name: str, language: str | None = None, **overrides: Any) -> SubtitleProfile:
    """A named profile with overrides; ``auto`` picks by ``language``. Not ``none``."""
    profile = SubtitleSpec(name, **overrides).resolve(language)
    if profile is None:
        raise InvalidOptionError("profile 'none' has no limits to check or re-flow against")
    return profile
