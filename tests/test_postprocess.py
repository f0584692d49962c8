"""The post-processing stage: which steps run for which language, flags on changed segments, and
timed words that follow the text (joined words equal the text, times in order and inside)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from malsori.cli import main
from malsori.glossary import Glossary, Rule, parse_glossary
from malsori.options import TranscribeOptions
from malsori.postprocess import postprocess_segment, postprocess_segments, realign_words
from malsori.results import Segment, Transcript, Word
from rendered_audio import Audio


def check_words(segment: Segment) -> None:
    """The invariants every segment keeps."""
    if not segment.words:
        return
    assert segment.text == "".join(w.word for w in segment.words)
    starts = [w.start for w in segment.words]
    assert starts == sorted(starts)
    for w in segment.words:
        assert segment.start <= w.start <= w.end <= segment.end
        assert w.word.strip(), "no word is only spaces"


def seg(words: Sequence[tuple[float, float, str]], start: float = 0.0, end: float = 3.0) -> Segment:
    timed = tuple(Word(a, b, w, 0.8) for a, b, w in words)
    return Segment(0, start, end, "".join(w.word for w in timed), timed)


def test_split_word_shares_its_time() -> None:
    s = seg([(1.0, 2.2, " 아버지가방에들어가신다")], 1.0, 2.5)
    out = postprocess_segment(s, "ko", TranscribeOptions(korean_punctuation=False))
    assert out.text == " 아버지가 방에 들어가신다"
    assert [w.word for w in out.words] == [" 아버지가", " 방에", " 들어가신다"]
    assert out.words[0].start == 1.0 and out.words[-1].end == pytest.approx(2.2)
    # 11 syllables over 1.2 s: 4, 2 and 5 of them.
    assert out.words[1].start == pytest.approx(1.0 + 1.2 * 4 / 11)
    assert out.words[1].end == pytest.approx(1.0 + 1.2 * 6 / 11)
    assert out.flags == ("spacing_corrected",)
    check_words(out)


def test_merged_words_take_first_start_and_last_end() -> None:
    s = seg([(0.0, 0.5, " 헤모"), (0.6, 1.2, " 글로빈이"), (1.3, 2.0, " 낮아요.")])
    g = Glossary(rules=(Rule("헤모 글로빈", "헤모글로빈"),))
    out = postprocess_segment(s, "ko", TranscribeOptions(glossary=g))
    assert out.text == " 헤모글로빈이 낮아요."
    assert [(w.word, w.start, w.end) for w in out.words] == [
        (" 헤모글로빈이", 0.0, 1.2),
        (" 낮아요.", 1.3, 2.0),
    ]
    assert out.flags == ("glossary_replaced",)
    check_words(out)


def test_punctuation_joins_the_last_word() -> None:
    s = seg([(0.0, 0.4, " 밥"), (0.5, 1.0, " 먹었니")])
    out = postprocess_segment(s, "ko", TranscribeOptions())
    assert [w.word for w in out.words] == [" 밥", " 먹었니?"]
    assert out.words[-1].end == 1.0
    assert out.flags == ("punctuation_added",)


def test_unspaced_languages_keep_separate_words() -> None:
    s = seg([(0.0, 0.5, "今日"), (0.5, 0.7, "は"), (0.7, 1.5, "東京"), (1.5, 2.0, "です")])
    g = Glossary(rules=(Rule("東京", "大阪"),))
    out = postprocess_segment(s, "ja", TranscribeOptions(glossary=g))
    assert [w.word for w in out.words] == ["今日", "は", "大阪", "です"]
    assert (out.words[2].start, out.words[2].end) == (0.7, 1.5)


def test_flags_accumulate_and_keep_existing_ones() -> None:
    s = Segment(0, 0.0, 2.0, " 헤모글로빈수치가낮아서걱정입니다", flags=("low_confidence",))
    g = parse_glossary("헤모글로빈 => 헤모글로빈(Hb)\n")
    out = postprocess_segment(s, "ko", TranscribeOptions(glossary=g))
    assert out.text == " 헤모글로빈(Hb) 수치가 낮아서 걱정입니다."
    assert out.flags == (
        "low_confidence",
        "spacing_corrected",
        "punctuation_added",
        "glossary_replaced",
    )
    assert out.words == ()  # no word timestamps asked for: nothing to realign


def test_other_languages_only_get_the_glossary() -> None:
    s = seg([(0.0, 1.0, " hello"), (1.0, 2.0, " worldwideweb")])
    opts = TranscribeOptions(glossary=parse_glossary("worldwideweb => World Wide Web\n"))
    out = postprocess_segment(s, "en", opts)
    assert out.text == " hello World Wide Web"  # no "." added, nothing Korean done
    check_words(out)
    assert postprocess_segment(s, "en", TranscribeOptions()) is s


def test_translation_output_is_not_treated_as_korean() -> None:
    s = Segment(0, 0.0, 1.0, " 아버지가방에들어가신다")
    assert postprocess_segment(s, "ko", TranscribeOptions(task="translate")) is s


def test_everything_off_returns_the_same_segments() -> None:
    segments = (seg([(0.0, 1.0, " 아버지가방에들어가신다")]), Segment(1, 1.0, 2.0, " 밥 먹었니"))
    off = TranscribeOptions(korean_spacing=False, korean_punctuation=False)
    assert postprocess_segments(segments, "ko", off) == segments
    on = postprocess_segments(segments, "ko", TranscribeOptions())
    assert [s.text for s in on] == [" 아버지가 방에 들어가신다.", " 밥 먹었니?"]


def test_rule_that_deletes_everything_leaves_empty_text_and_no_words() -> None:
    s = seg([(0.0, 1.0, " 음"), (1.0, 1.5, " 어")])
    out = postprocess_segment(
        s, "en", TranscribeOptions(glossary=Glossary(rules=(Rule("음 어", ""),)))
    )
    assert (out.text, out.words) == ("", ())


def _random_edit(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chars) + 1)
        op = rng.choice(("space", "unspace", "insert", "delete", "replace"))
        if op == "space":
            chars.insert(i, " ")
        elif op == "unspace" and " " in chars[1:]:
            chars.pop(chars.index(" ", 1))
        elif op == "insert":
            chars.insert(i, rng.choice("가나다.?!xyz"))
        elif op == "delete" and i < len(chars):
            chars.pop(i)
        elif op == "replace" and i < len(chars):
            chars[i] = rng.choice("라마바XYZ")
    return "".join(chars)


def test_realignment_keeps_the_invariants_on_random_edits() -> None:
    rng = random.Random(0)
    vocabulary = [" 아버지가", " 방에", " 들어가신다", " hello", " world", "今日", "は", "."]
    for _ in range(500):
        words, t = [], 1.0
        for _ in range(rng.randint(1, 6)):
            length = rng.uniform(0.0, 0.6)
            words.append(Word(t, t + length, rng.choice(vocabulary), rng.random()))
            t += length + rng.uniform(0.0, 0.2)
        s = Segment(0, 1.0, t + 0.1, "".join(w.word for w in words), tuple(words))
        new_text = _random_edit(s.text, rng)
        new_words = realign_words(s.words, new_text, s.start, s.end)
        if new_text.strip():
            check_words(Segment(0, s.start, s.end, new_text, new_words))
        else:
            assert new_words == ()


def _words_ok(transcript: Transcript) -> None:
    for s in transcript.segments:
        check_words(s)


@pytest.mark.slow
def test_glossary_through_the_cli_on_real_speech(audio: Audio, tmp_path: Path) -> None:
    glossary = tmp_path / "animals.txt"
    glossary.write_text(
        "# terms and rules for the test clip\nvixen\nlazy => sleepy\nre: (?i)\\bfox\\b => vixen\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    code = main(
        ["transcribe", str(audio.english), "--threads", "2", "--word-timestamps",
         "--glossary", str(glossary), "-o", str(out), "-f", "json,txt", "-q"]
    )  # fmt: skip
    assert code == 0
    t = Transcript.from_dict(json.loads((out / "english.json").read_text()))
    text = t.text.lower()
    assert "sleepy" in text and "vixen" in text and "fox" not in text and "lazy" not in text
    assert any("glossary_replaced" in s.flags for s in t.segments)
    assert t.options.glossary is not None and t.options.glossary.terms == ("vixen",)
    assert "vixen" in (out / "english.txt").read_text().lower()
    _words_ok(t)


@pytest.mark.slow
def test_live_segments_are_already_post_processed(audio: Audio) -> None:
    import malsori

    model = malsori.load_model("base", threads=2)
    live: list[Segment] = []
    g = parse_glossary("lazy dog => sleepy hound\n")
    t = model.transcribe(audio.english, glossary=g, word_timestamps=True, on_segment=live.append)
    assert tuple(live) == t.segments
    assert "sleepy hound" in t.text.lower()
    _words_ok(t)
