"""The hallucination and repetition defences, on hand-made segments and on real audio."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from malsori.hallucination import (
    collapse_loops,
    find_loops,
    is_stock_phrase,
    normalize_phrase,
    split_units,
    stock_phrase_pattern,
    time_to_say,
)
from malsori.options import TranscribeOptions
from malsori.transcribe import Assembler


@dataclass
class RawWord:
    start: float
    end: float
    word: str
    probability: float = 0.9


@dataclass
class RawSegment:
    start: float
    end: float
    text: str
    words: list[RawWord] | None = None
    avg_logprob: float = -0.3
    no_speech_prob: float = 0.05
    compression_ratio: float = 1.2
    temperature: float = 0.0
    tokens: tuple[int, ...] = ()
    window_start: float | None = None


class FixedProbe:
    """Stands in for SpeechProbe: every span has the same speech ratio."""

    def __init__(self, ratio: float):
        self.ratio = ratio
        self.calls = 0

    def speech_ratio(self, start: float, end: float) -> float:
        self.calls += 1
        return self.ratio


PATTERN = stock_phrase_pattern()


@pytest.mark.parametrize(
    "text",
    [
        "시청해주셔서 감사합니다.",
        " 구독과 좋아요 부탁드립니다!",
        "Thanks for watching!",
        " Thank you. Thank you.",
        "字幕由Amara.org社区提供",
        "ご視聴ありがとうございました",
    ],
)
def test_stock_phrases_are_recognised(text: str) -> None:
    assert is_stock_phrase(text, PATTERN)


@pytest.mark.parametrize(
    "text", ["오늘 회의를 시작하겠습니다.", "Thanks for watching the game with me, Tom.", "", "  "]
)
def test_ordinary_text_is_not_a_stock_phrase(text: str) -> None:
    assert not is_stock_phrase(text, PATTERN)


def test_user_phrases_extend_the_list() -> None:
    pattern = stock_phrase_pattern(["말소리 방송이었습니다"])
    assert is_stock_phrase("말소리 방송이었습니다.", pattern)
    assert not is_stock_phrase("말소리 방송이었습니다.", PATTERN)


def test_normalize_phrase_ignores_case_punctuation_and_spaces() -> None:
    assert normalize_phrase(" Thanks, for WATCHING! ") == "thanksforwatching"
    assert normalize_phrase("ＡＢＣ 감사") == "abc감사"  # NFKC folds full-width letters


def test_word_loop_collapsed_to_one_occurrence() -> None:
    units = split_units(" 네" * 9 + " 좋아요.", "ko")
    kept = "".join(units[i] for i in collapse_loops(units))
    assert kept == " 네 좋아요."


def test_sentence_loop_collapsed() -> None:
    text = " I said that." * 6 + " Then we left."
    units = split_units(text, "en")
    assert "".join(units[i] for i in collapse_loops(units)) == " I said that. Then we left."


def test_unspaced_scripts_loop_on_characters() -> None:
    units = split_units("ありがとうありがとうありがとうありがとうございます", "ja")
    kept = "".join(units[i] for i in collapse_loops(units, unspaced=True))
    assert kept == "ありがとうございます"


@pytest.mark.parametrize(
    "text",
    [
        " no, no, no, I said",
        " very very good",
        " 하나 둘 셋 넷 다섯",
        " ha ha ha ha",
        " more words words words words words",  # a speaker really said this
        " no no no no no no",
    ],
)
def test_natural_repetition_is_kept(text: str) -> None:
    units = split_units(text, "en")
    assert find_loops(units) == []


def test_stock_phrase_over_non_speech_is_removed() -> None:
    asm = Assembler(TranscribeOptions())
    seg, looped = asm.add(
        RawSegment(0.0, 2.0, " 시청해주셔서 감사합니다."), 0.0, FixedProbe(0.0), 0.0, "ko"
    )  # type: ignore[arg-type]
    assert seg is None and not looped
    assert [(r.reason, r.text) for r in asm.removed] == [
        ("stock_phrase", " 시청해주셔서 감사합니다.")
    ]


def test_stock_phrase_over_speech_is_kept() -> None:
    asm = Assembler(TranscribeOptions())
    probe = FixedProbe(0.9)
    seg, _ = asm.add(RawSegment(0.0, 2.0, " 감사합니다."), 0.0, probe, 0.0, "ko")  # type: ignore[arg-type]
    assert seg is not None and seg.text == " 감사합니다." and probe.calls == 1
    assert asm.removed == []


def test_confident_ordinary_segment_never_probes_the_audio() -> None:
    asm = Assembler(TranscribeOptions())
    probe = FixedProbe(0.0)
    seg, _ = asm.add(RawSegment(0.0, 2.0, " 회의를 시작합니다."), 0.0, probe, 0.0, "ko")  # type: ignore[arg-type]
    assert seg is not None and probe.calls == 0


def test_doubtful_segment_over_non_speech_is_removed() -> None:
    asm = Assembler(TranscribeOptions())
    raw = RawSegment(0.0, 2.0, " 1,5kg", avg_logprob=-1.4, no_speech_prob=0.7)
    seg, _ = asm.add(raw, 0.0, FixedProbe(0.05), 0.0, "en")  # type: ignore[arg-type]
    assert seg is None and asm.removed[0].reason == "no_speech"


def test_doubtful_segment_stretched_over_pauses_is_kept_when_it_holds_its_speech() -> None:
    """Whisper may time a short text across a long pause: 3.5 s of speech in 12 s is under the
    ratio, but more than the time the words take to say."""
    asm = Assembler(TranscribeOptions())
    raw = RawSegment(0.0, 12.0, " Montreal, forced aligner.", avg_logprob=-1.2)
    seg, _ = asm.add(raw, 0.0, FixedProbe(0.29), 0.0, "en")  # type: ignore[arg-type]
    assert seg is not None and asm.removed == []
    # The same text with a blip of speech under it (less than it takes to say) goes.
    raw = RawSegment(12.0, 24.0, " Montreal, forced aligner.", avg_logprob=-1.2)
    seg, _ = asm.add(raw, 0.0, FixedProbe(0.1), 0.0, "en")  # type: ignore[arg-type]
    assert seg is None and asm.removed[0].reason == "no_speech"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("you", 1.0),  # short texts need a second
        (" Thanks for watching! Please subscribe.", 32 / 16),
        ("시청해주셔서 감사합니다.", 11 / 8),
        ("ご視聴ありがとうございました", 14 / 8),
        ("2,000원 Wi-Fi 카드 12장", 10 / 16 + 4 / 8),
    ],
)
def test_time_to_say_counts_syllables_and_letters(text: str, seconds: float) -> None:
    assert time_to_say(text) == pytest.approx(seconds)


def test_filter_off_keeps_everything_and_flags_suspicion() -> None:
    asm = Assembler(TranscribeOptions(hallucination_filter=False))
    raw = RawSegment(0.0, 2.0, " Thanks for watching!", avg_logprob=-1.4, no_speech_prob=0.7)
    seg, _ = asm.add(raw, 0.0, FixedProbe(0.0), 0.0, "en")  # type: ignore[arg-type]
    assert seg is not None
    assert set(seg.flags) == {"low_confidence", "maybe_no_speech"}


def test_loop_inside_segment_collapses_words_and_asks_for_reset() -> None:
    asm = Assembler(TranscribeOptions())
    words = [RawWord(0.1 * i, 0.1 * i + 0.1, " go") for i in range(8)] + [
        RawWord(0.8, 1.0, " home.")
    ]
    raw = RawSegment(0.0, 1.0, "".join(w.word for w in words), words=words)
    seg, looped = asm.add(raw, 10.0, FixedProbe(1.0), 10.0, "en")  # type: ignore[arg-type]
    assert looped and seg is not None
    assert seg.text == " go home." == "".join(w.word for w in seg.words)
    assert seg.flags[0] == "repetition_collapsed"
    assert seg.words[0].start == pytest.approx(10.0)  # offsets applied


def test_third_identical_segment_in_a_row_is_dropped() -> None:
    asm = Assembler(TranscribeOptions())
    probe = FixedProbe(1.0)
    results = [
        asm.add(RawSegment(i, i + 1, " We will be right back."), 0.0, probe, 0.0, "en")  # type: ignore[arg-type]
        for i in range(4)
    ]
    kept = [s for s, _ in results if s is not None]
    assert len(kept) == 2
    assert results[2] == (None, True)
    assert [r.reason for r in asm.removed] == ["repetition", "repetition"]


def test_repetition_filter_off_keeps_loops() -> None:
    asm = Assembler(TranscribeOptions(repetition_filter=False))
    raw = RawSegment(0.0, 3.0, " go" * 10)
    seg, looped = asm.add(raw, 0.0, FixedProbe(1.0), 0.0, "en")  # type: ignore[arg-type]
    assert seg is not None and seg.text == " go" * 10 and not looped


def test_segments_stay_monotonic_and_words_inside() -> None:
    asm = Assembler(TranscribeOptions())
    probe = FixedProbe(1.0)
    first = RawSegment(0.0, 2.0, " one two", [RawWord(0.0, 1.0, " one"), RawWord(1.0, 2.2, " two")])
    second = RawSegment(1.5, 3.0, " three", [RawWord(1.4, 2.9, " three")])
    a, _ = asm.add(first, 0.0, probe, 0.0, "en")  # type: ignore[arg-type]
    b, _ = asm.add(second, 0.0, probe, 0.0, "en")  # type: ignore[arg-type]
    assert a is not None and b is not None
    assert a.words[-1].end <= a.end == 2.0
    assert b.start >= a.end and b.words[0].start >= b.start
    assert [a.id, b.id] == [0, 1]


class HallucinatingWhisper:
    """A decoder stand-in that writes what Whisper writes over noise on some CPUs: a doubtful
    sentence and a stock phrase, whatever the audio. What any decoder emits on noise depends on
    the machine (CTranslate2's kernels differ between CPUs), so the defence is tested on known
    output, and the real model only for the property that holds everywhere (below)."""

    def transcribe(self, audio: np.ndarray, **kwargs: object):  # type: ignore[no-untyped-def]
        from types import SimpleNamespace

        seconds = audio.size / 16000
        segments = [
            RawSegment(0.0, seconds / 2, " And the next one is 1,5kg.", avg_logprob=-1.3,
                       no_speech_prob=0.7),
            RawSegment(seconds / 2, seconds, " Thanks for watching!"),
        ]  # fmt: skip
        info = SimpleNamespace(language="en", language_probability=0.6, all_language_probs=None)
        return iter(segments), info


def _stand_in_model():  # type: ignore[no-untyped-def]
    from malsori.model import Model, ModelInfo

    info = ModelInfo("stand-in", "", "test", "cpu", "int8", 1, True, 0.0)
    return Model(HallucinatingWhisper(), info)


def test_noise_without_vad_gives_no_text_only_with_the_filter() -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, 16000 * 10).astype(np.float32)
    model = _stand_in_model()
    unfiltered = model.transcribe(noise, vad=False, hallucination_filter=False)
    filtered = model.transcribe(noise, vad=False)
    assert unfiltered.text.strip() == "And the next one is 1,5kg. Thanks for watching!"
    assert filtered.text == ""
    assert [r.reason for r in filtered.removed] == ["no_speech", "stock_phrase"]
    assert [r.text for r in filtered.removed] == [s.text for s in unfiltered.segments]
    assert filtered.to_dict()["removed_segments"]


@pytest.mark.slow
def test_real_model_writes_no_text_over_noise_with_the_filter(model) -> None:  # type: ignore[no-untyped-def]
    """Whatever the real model invents over noise on this CPU (text on some, none on others),
    the filter leaves no text, and whatever it took out is listed with its reason."""
    noise = np.random.default_rng(0).normal(0, 0.1, 16000 * 10).astype(np.float32)
    filtered = model.transcribe(noise, vad=False)
    assert filtered.text == "" and filtered.segments == ()
    assert all(r.reason in ("no_speech", "stock_phrase") for r in filtered.removed)
    assert all(r.text.strip() for r in filtered.removed)


@pytest.mark.slow
def test_spoken_thank_you_is_kept(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wav = tmp_path / "thanks.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-w", str(wav), "Thank you very much. Thank you."], check=True
    )
    t = model.transcribe(str(wav), language="en")
    assert "thank you" in t.text.lower()
    assert t.removed == ()


def test_speech_probe_counts_pauses_between_words_as_speech(tmp_path: Path) -> None:
    """A slow speaker with pauses between words is speech; the silence after is not."""
    from faster_whisper.audio import decode_audio

    from malsori.hallucination import SpeechProbe
    from rendered_audio import run_tool

    wav = tmp_path / "slow.wav"
    run_tool("espeak-ng", "-v", "en", "-s", "110", "-g", "40", "-w", wav,
             "Montreal. forced. aligner. is. like. putty.")  # fmt: skip
    speech = decode_audio(str(wav))
    audio = np.concatenate([speech, np.zeros(5 * 16000, dtype=np.float32)])
    probe = SpeechProbe(audio, threshold=TranscribeOptions().vad_threshold)
    spoken = speech.size / 16000
    raw = probe.speech_ratio(0.0, spoken)
    assert probe._probs is not None
    frames = probe._probs[: int(spoken * 16000) // SpeechProbe.FRAME]
    assert raw > 0.5 > float(np.mean(frames >= probe.threshold))  # the pauses dip below
    assert probe.speech_ratio(spoken + 0.5, spoken + 5.0) == 0.0
