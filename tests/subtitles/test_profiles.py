"""Profiles: the counting rules, the limits, overrides and how ``auto`` picks by language."""

from __future__ import annotations

import pytest

from malsori.errors import InvalidOptionError
from malsori.options import TranscribeOptions
from malsori.subtitles.profiles import PROFILES, SubtitleSpec, get_profile, text_width


def test_korean_counts_hangul_whole_and_latin_digits_spaces_punctuation_half() -> None:
    ko = PROFILES["netflix-ko"]
    assert ko.width("안녕하세요") == 5
    assert ko.width("ENTP형 1, 2") == 0.5 * 4 + 1 + 0.5 * 5  # ENTP, 형, " 1, 2"
    assert (ko.max_line_width, ko.max_lines, ko.max_cps) == (16, 2, 12)


def test_latin_counts_every_character_once_and_full_width_twice() -> None:
    en = PROFILES["netflix-en"]
    assert en.width("Hello, world") == 12
    assert en.width("東京") == 4
    assert (en.max_line_width, en.max_lines, en.max_cps) == (42, 2, 20)
    assert text_width("e\u0301", "full") == 1  # a combining accent adds nothing


def test_shared_limits_follow_the_issue() -> None:
    for profile in PROFILES.values():
        assert profile.min_duration == pytest.approx(5 / 6)
        assert profile.max_duration == 7
        assert profile.min_gap == pytest.approx(2 / 24)
        assert profile.linger == 0.5


@pytest.mark.parametrize(
    ("language", "name"), [("ko", "cjk"), ("ja", "cjk"), ("zh", "cjk"), ("en", "latin"),
                           ("es", "latin"), (None, "latin")],
)  # fmt: skip
def test_auto_picks_full_width_counting_for_korean_japanese_chinese(
    language: str | None, name: str
) -> None:
    profile = SubtitleSpec("auto").resolve(language)
    assert profile is not None and profile.name == name
    assert profile.counting == ("half" if name == "cjk" else "full")


def test_none_resolves_to_no_profile_and_overrides_apply() -> None:
    assert SubtitleSpec("none").resolve("en") is None
    spec = SubtitleSpec("netflix-en", max_line_width=32, max_cps=17, min_gap=0.1)
    profile = spec.resolve("en")
    assert profile is not None
    assert (profile.max_line_width, profile.max_cps, profile.min_gap) == (32, 17, 0.1)
    assert profile.max_lines == 2  # not overridden


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "netflix-fr"}, "unknown subtitle profile 'netflix-fr'"),
        ({"profile": "latin", "max_lines": 0}, "lines per cue"),
        ({"profile": "latin", "max_cps": -1}, "reading speed must be positive"),
        ({"profile": "latin", "max_duration": 0.5}, "maximum cue duration"),
        ({"profile": "latin", "min_gap": -0.1}, "cannot be negative"),
    ],
)
def test_bad_profiles_and_limits_are_refused_once(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        SubtitleSpec(**kwargs)  # type: ignore[arg-type]


def test_get_profile_refuses_none() -> None:
    with pytest.raises(InvalidOptionError, match="no limits"):
        get_profile("none")


def test_options_carry_the_spec_through_json() -> None:
    options = TranscribeOptions(subtitles=SubtitleSpec("netflix-ko", max_cps=14))
    again = TranscribeOptions.from_dict(options.to_dict())
    assert again == options and again.subtitles == SubtitleSpec("netflix-ko", max_cps=14)
    assert TranscribeOptions(subtitles="netflix-en").subtitles == SubtitleSpec("netflix-en")  # type: ignore[arg-type]
    assert TranscribeOptions.from_dict(TranscribeOptions().to_dict()).subtitles is None
