"""Whisper's decoding rules (malsori.decoding), which every engine uses."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from malsori.decoding import (
    MAX_CONTEXT_TOKENS,
    WINDOW_FRAMES,
    WINDOW_SAMPLES,
    FallbackRule,
    avg_logprob,
    compression_ratio,
    fit_budget,
    max_new_tokens,
    sampling,
)
from malsori.options import FULL_ENCODER_WINDOW_S, TranscribeOptions
from malsori.results import LanguageInfo

RULE = TranscribeOptions().fallback_rule()


@dataclass
class Try:
    compression_ratio: float = 1.5
    avg_logprob: float = -0.3
    no_speech_prob: float = 0.1


def test_constants_agree() -> None:
    assert WINDOW_FRAMES == 3000 and WINDOW_SAMPLES == 480_000 and FULL_ENCODER_WINDOW_S == 30.0


def test_rule_takes_the_options_thresholds() -> None:
    opts = TranscribeOptions(temperature=(0.0, 0.5), log_prob_threshold=-0.8)
    rule = opts.fallback_rule()
    assert rule.temperatures == (0.0, 0.5) and rule.log_prob_threshold == -0.8
    assert rule.compression_ratio_threshold == 2.4 and rule.no_speech_threshold == 0.6


@pytest.mark.parametrize(
    ("attempt", "fallback"),
    [
        (Try(), False),
        (Try(compression_ratio=2.6), True),  # a loop
        (Try(avg_logprob=-1.2), True),  # unlikely text
        (Try(avg_logprob=-1.2, no_speech_prob=0.9), False),  # silence: no point trying harder
        (Try(compression_ratio=2.6, avg_logprob=-1.2, no_speech_prob=0.9), False),
    ],
)
def test_needs_fallback(attempt: Try, fallback: bool) -> None:
    assert RULE.needs_fallback(attempt) is fallback


def test_a_decode_that_used_its_budget_falls_back_even_over_silence() -> None:
    assert RULE.needs_fallback(Try(avg_logprob=-1.2, no_speech_prob=0.9), used_budget=True)


def test_thresholds_switched_off_never_fall_back() -> None:
    rule = FallbackRule((0.0, 0.2), None, None, None)
    assert not rule.needs_fallback(Try(compression_ratio=9.0, avg_logprob=-9.0))
    assert not rule.skip(1.0, -9.0)


def test_best_of_failed_prefers_non_repetitive_tries() -> None:
    loop = Try(compression_ratio=3.0, avg_logprob=-0.2)
    unlikely = Try(avg_logprob=-1.5)
    less_unlikely = Try(avg_logprob=-1.1)
    assert RULE.best_of_failed([loop, unlikely, less_unlikely]) is less_unlikely
    loops = [Try(compression_ratio=3.0, avg_logprob=-0.9), Try(compression_ratio=2.9)]
    assert RULE.best_of_failed(loops) is loops[1]  # all repetitive: the likeliest


@pytest.mark.parametrize(
    ("no_speech", "logprob", "skip"),
    [(0.5, -2.0, False), (0.61, -1.0, True), (0.9, -1.5, True), (0.9, -0.5, False)],
)
def test_no_speech_skip(no_speech: float, logprob: float, skip: bool) -> None:
    """As Whisper: skipped when the model hears no speech, unless the text is likely."""
    assert RULE.skip(no_speech, logprob) is skip
    assert FallbackRule((0.0,), 2.4, None, 0.6).skip(0.9, -0.5)  # no log-prob test: skipped


def test_sampling_arguments() -> None:
    assert sampling(0.0, 5, 5, 1.0) == {"beam_size": 5, "patience": 1.0, "num_hypotheses": 1}
    # N-best rescoring keeps several of the beam's readings, at most the beam's width
    assert sampling(0.0, 5, 5, 1.0, 5)["num_hypotheses"] == 5
    assert sampling(0.0, 3, 5, 1.0, 5)["num_hypotheses"] == 3
    assert sampling(0.4, 5, 3, 1.0) == {
        "beam_size": 1, "num_hypotheses": 3, "sampling_topk": 0, "sampling_temperature": 0.4,
    }  # fmt: skip


def test_token_budget() -> None:
    assert max_new_tokens(2 * 16000) == 30 + 16  # 15 tokens a second and a margin
    assert max_new_tokens(20 * 16000) is None  # long audio: the context's own limit
    assert fit_budget(10, 50, MAX_CONTEXT_TOKENS) == 50
    assert fit_budget(420, 50, MAX_CONTEXT_TOKENS) == 28  # cut to the room the prompt leaves
    assert fit_budget(448, 50, MAX_CONTEXT_TOKENS) is None  # no room: the model's own handling
    assert fit_budget(10, None, MAX_CONTEXT_TOKENS) is None


def test_compression_ratio_and_logprob_are_whispers() -> None:
    from faster_whisper.transcribe import get_compression_ratio

    for text in ("", "hello there", "네 " * 40, "안녕하세요, 말소리입니다."):
        assert compression_ratio(text) == pytest.approx(get_compression_ratio(text))
    assert avg_logprob(-0.5, 9) == pytest.approx(-0.5 * 9 / 10)


def test_language_info_keeps_the_top_ten() -> None:
    probs = [(f"l{i}", 0.5 / (i + 1)) for i in range(20)]
    info = LanguageInfo.detected_from(probs)
    assert info.language == "l0" and info.probability == 0.5 and info.detected
    assert len(info.candidates) == 10
