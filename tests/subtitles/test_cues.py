"""The cue builder: property tests over random word streams, then one test per rule."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from malsori.results import Segment, Word
from malsori.subtitles.cues import Cue, build_cues, estimate_words, transcript_cues
from malsori.subtitles.lint import lint_cues
from malsori.subtitles.profiles import PROFILES, SubtitleProfile

ENGLISH_TEXT = (
    "the a of and to in we have been there for years, but nobody knew. it was strange; "
    "people said otherwise! why? because the river moved north every winter"
)
KOREAN_TEXT = (
    "오늘은 날씨가 정말 좋습니다. 그 사람은 어제 학교에 갔어요. 할 수 있다고 생각했지만, "
    "아무도 몰랐습니다. 왜요? 우리는 공원에서 산책을 하고 점심을 먹었습니다"
)
ENGLISH, KOREAN = ENGLISH_TEXT.split(), KOREAN_TEXT.split()
LONG_ENGLISH = ("internationalization-and-localization-requirements", "pneumonoultramicroscopic")
LONG_KOREAN = ("대한민국국가대표축구선수단공식후원사", "초고속인터넷서비스")


def _is_korean(word: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in word)


@st.composite
def word_streams(draw: st.DrawFn, vocabulary: Sequence[str]) -> list[Word]:
    """Words at a speaking rate people use, with short gaps, some pauses and long silences."""
    count = draw(st.integers(1, 70))
    t = draw(st.floats(0, 3))
    words = []
    for _ in range(count):
        text = draw(st.sampled_from(vocabulary))
        # Korean: 0.15-0.3 s a syllable; Latin letters: 0.07-0.11 s each
        unit = draw(st.floats(0.15, 0.3) if _is_korean(text) else st.floats(0.07, 0.11))
        duration = max(0.05, unit * len(text.strip(".,;!?")))
        words.append(Word(t, t + duration, " " + text, 1.0))
        pause = draw(st.one_of(st.floats(0, 0.15), st.floats(0.2, 1.2), st.floats(2, 8)))
        t += duration + pause
    return words


STREAMS = {
    "english": word_streams(ENGLISH + list(LONG_ENGLISH[:1])),
    "korean": word_streams(KOREAN + list(LONG_KOREAN[:1])),
    "mixed": word_streams(ENGLISH + KOREAN + list(LONG_ENGLISH) + list(LONG_KOREAN)),
}


def _check(words: list[Word], cues: list[Cue], profile: SubtitleProfile) -> None:
    # words out == words in: none dropped, duplicated or reordered
    assert [w for c in cues for w in c.words] == words
    for cue in cues:
        assert cue.start >= cue.words[0].start - 1e-3  # never before its first word
        assert cue.end > cue.start
        shown = " ".join(" ".join(cue.lines).split())
        spoken = " ".join("".join(w.word for w in cue.words).split())
        assert shown == spoken  # lines are the cue's words, broken between words only
    violations = lint_cues(cues, profile)
    impossible = {v.cue for v in violations if v.impossible}
    assert all(v.cue in impossible for v in violations), [str(v) for v in violations]
    for number in impossible:  # only a word wider than a line makes a cue impossible
        cue = cues[number - 1]
        assert any(profile.width(w.word.strip()) > profile.max_line_width for w in cue.words)


_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@pytest.mark.parametrize("profile_name", ["netflix-ko", "netflix-en"])
@pytest.mark.parametrize("kind", sorted(STREAMS))
def test_every_cue_meets_the_profile_or_is_impossible(kind: str, profile_name: str) -> None:
    profile = PROFILES[profile_name]

    @_SETTINGS
    @given(STREAMS[kind])
    def check(words: list[Word]) -> None:
        _check(words, build_cues(words, profile), profile)

    check()


def _timed(text: str, start: float = 0.0, per_char: float = 0.08, gap: float = 0.05) -> list[Word]:
    words, t = [], start
    for token in text.split():
        d = per_char * len(token)
        words.append(Word(t, t + d, " " + token, 1.0))
        t += d + gap
    return words


EN = PROFILES["netflix-en"]
KO = PROFILES["netflix-ko"]


def test_sentences_get_their_own_cues() -> None:
    words = _timed("We came home late that night. Then we slept until noon.")
    cues = build_cues(words, EN)
    assert [c.text for c in cues] == ["We came home late that night.", "Then we slept until noon."]


def test_a_long_sentence_breaks_at_its_comma_before_a_bare_word_boundary() -> None:
    text = (
        "When the committee finally met on the third day of the conference, "
        "everyone in the room expected a decision about the budget for next year"
    )
    cues = build_cues(_timed(text, per_char=0.06), EN)
    assert len(cues) >= 2
    assert cues[0].words[-1].word.strip() == "conference,"


def test_a_pause_is_a_better_break_than_a_bare_word_boundary() -> None:
    first = _timed("the children were playing in the garden behind the old stone house")
    second = _timed(
        "while their parents talked about the weather and the harvest", first[-1].end + 0.7
    )
    cues = build_cues(first + second, EN)
    assert cues[0].words == tuple(first)


def test_two_lines_are_balanced_and_no_line_ends_with_an_article() -> None:
    words = _timed("She told me that she had seen the man with the hat near the station today.")
    (cue,) = build_cues(words, EN)
    assert len(cue.lines) == 2
    assert abs(EN.width(cue.lines[0]) - EN.width(cue.lines[1])) <= 20
    for line in cue.lines[:-1]:
        assert line.split()[-1] not in ("the", "a", "with", "that")


def test_korean_lines_break_between_eojeol_and_never_after_a_determiner() -> None:
    words = _timed("저는 어제 오후에 그 사람을 시장에서 우연히 만났습니다.", per_char=0.25)
    (cue,) = build_cues(words, KO)
    assert len(cue.lines) == 2 and all(KO.width(line) <= 16 for line in cue.lines)
    assert cue.lines[0].split()[-1] != "그"
    eojeol = [w.word.strip() for w in words]
    assert [tok for line in cue.lines for tok in line.split()] == eojeol


def test_a_fast_cue_is_lengthened_into_the_silence_after_it() -> None:
    # 41 characters spoken in 1.2 s (34 per second), then 4 s of silence
    words = _timed("Quick words, spoken much too fast to read", per_char=0.03, gap=0.0)
    (cue,) = build_cues(words, EN)
    assert cue.extended and cue.end - cue.start >= EN.width(cue.text.replace("\n", "")) / 20
    assert lint_cues([cue], EN) == []


def test_a_cue_too_short_to_stand_alone_is_merged_with_its_neighbour() -> None:
    yes = [Word(0.0, 0.25, " Yes.", 1.0)]
    rest = _timed("I will be there at nine tomorrow morning.", start=0.35)
    cues = build_cues(yes + rest, EN)
    assert cues[0].words[0].word == " Yes." and len(cues[0].words) > 1
    assert lint_cues(cues, EN) == []


def test_short_gaps_are_closed_and_touching_cues_opened_to_two_frames() -> None:
    one = _timed("This is the first sentence of the two.")
    two = _timed("And this is the second one.", start=one[-1].end + 0.3)
    cues = build_cues(one + two, EN)
    assert len(cues) == 2
    assert cues[1].start - cues[0].end == pytest.approx(2 / 24, abs=1.5e-3)  # closed
    touching = _timed("And this is the second one.", start=one[-1].end - 0.05)  # words overlap
    cues = build_cues(one + touching, EN)
    assert cues[1].start - cues[0].end == pytest.approx(2 / 24, abs=1.5e-3)  # opened
    assert cues[1].start >= touching[0].start


def test_cues_last_at_most_seven_seconds_and_never_start_before_their_words() -> None:
    words = _timed(" ".join(["word"] * 60), start=1.234, per_char=0.12, gap=0.1)
    cues = build_cues(words, EN)
    assert all(c.end - c.start <= 7.0 + 1e-3 for c in cues)
    assert cues[0].start == pytest.approx(1.234, abs=1e-3)
    assert lint_cues(cues, EN) == []


def test_segments_without_word_times_get_words_timed_by_length() -> None:
    segment = Segment(0, 2.0, 8.0, " First part of it, then the second part of the long text.")
    cues = transcript_cues([segment], PROFILES["latin"])
    assert " ".join(" ".join(c.lines) for c in cues) == segment.text.strip()
    assert cues[0].start == 2.0 and all(c.end <= 8.0 + 1.5 for c in cues)
    words = estimate_words(segment.text, 2.0, 8.0)
    assert words[0].start == 2.0 and words[-1].end == pytest.approx(8.0)
    assert [w.end for w in words] == sorted(w.end for w in words)


def test_japanese_without_spaces_is_broken_between_characters_within_the_width() -> None:
    text = "今日はとても良い天気ですね。明日も晴れるといいですね。公園に行きましょう。"
    cues = transcript_cues([Segment(0, 0.0, 12.0, text)], PROFILES["cjk"])
    assert "".join("".join(c.lines) for c in cues) == text
    assert all(PROFILES["cjk"].width(line) <= 16 for c in cues for line in c.lines)


def test_split_marks_cues_that_hold_part_of_a_segment() -> None:
    long = _timed("one two three four five six seven eight nine ten " * 4)
    seg = Segment(0, long[0].start, long[-1].end, "".join(w.word for w in long), tuple(long))
    cues = transcript_cues([seg], EN)
    assert len(cues) > 1 and all(c.split for c in cues)
    short = _timed("Just this.")
    seg = Segment(0, short[0].start, short[-1].end, "".join(w.word for w in short), tuple(short))
    assert [c.split for c in transcript_cues([seg], EN)] == [False]
