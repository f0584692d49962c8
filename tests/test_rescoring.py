"""N-best rescoring (malsori.rescoring): the choice rule, its guards, the Kiwi scorer, the
options that switch it, and the decoding paths that use it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from malsori import rescoring
from malsori.korean import KiwiScorer
from malsori.options import TranscribeOptions
from malsori.rescoring import Choice, Hypothesis, Rescorer, ScorerError, rescorer_for


class TableScorer:
    """A language model that knows a few sentences (and raises on anything else)."""

    def __init__(self, table: dict[str, float]):
        self.table = table
        self.calls: list[str] = []

    def score(self, text: str) -> float:
        self.calls.append(text)
        if text.strip() not in self.table:
            raise ScorerError("unknown")
        return self.table[text.strip()]


def hyp(text: str, logprob: float, tokens: int = 10) -> Hypothesis:
    return Hypothesis([0] * tokens, text, logprob)


def test_the_language_model_can_overturn_whispers_ranking() -> None:
    scorer = TableScorer({"석굴암은": -20.0, "석굴함은": -40.0})
    rescorer = Rescorer({"ko": scorer}, weight=0.5)
    hyps = [hyp("석굴함은", -3.0), hyp("석굴암은", -4.0)]
    # -3 + 0.5 * -40 = -23 against -4 + 0.5 * -20 = -14
    assert rescorer.choose(hyps, "ko") == 1
    # with a small weight Whisper's margin wins
    assert Rescorer({"ko": scorer}, weight=0.01).choose(hyps, "ko") == 0


def test_weight_zero_with_length_normalisation_is_whispers_own_ranking() -> None:
    # beam search ranks by log-probability over length: the first hypothesis is the best so
    hyps = [hyp("가나다라마", -5.0, 20), hyp("가나다", -4.0, 10)]
    scorer = TableScorer({"가나다라마": -30.0, "가나다": -10.0})
    assert Rescorer({"ko": scorer}, weight=0.0, length_norm=True).choose(hyps, "ko") == 0
    # comparing sums instead favours the shorter reading
    assert Rescorer({"ko": scorer}, weight=0.0, length_norm=False).choose(hyps, "ko") == 1


def test_a_reading_in_another_script_is_never_chosen_on_the_model_alone() -> None:
    scorer = TableScorer({"두 시간 걸려요": -50.0, "2시간 걸려요": -5.0, "KTX 타요": -1.0})
    rescorer = Rescorer({"ko": scorer}, weight=5.0)
    hyps = [hyp("두 시간 걸려요", -3.0), hyp("2시간 걸려요", -3.5), hyp("KTX 타요", -3.6)]
    assert rescorer.choose(hyps, "ko") == 0
    # the other way round (Whisper's best has the digits) the model may choose words
    hyps = [hyp("2시간 걸려요", -3.0), hyp("두 시간 걸려요", -3.5)]
    scorer.table["두 시간 걸려요"] = -5.0
    scorer.table["2시간 걸려요"] = -50.0
    assert rescorer.choose(hyps, "ko") == 1


def test_empty_failing_and_looping_readings_are_skipped() -> None:
    loop = "네 " * 40
    scorer = TableScorer({"좋아요": -30.0, loop.strip(): -1.0})
    rescorer = Rescorer({"ko": scorer}, weight=1.0, max_compression_ratio=2.4)
    hyps = [hyp("좋아요", -2.0), hyp("", 0.0), hyp("모르는 말", -1.0), hyp(loop, -2.1)]
    assert rescorer.choose(hyps, "ko") == 0


def test_whispers_best_is_kept_when_the_model_cannot_read_it() -> None:
    scorer = TableScorer({"안녕하세요": -1.0})
    hyps = [hyp("hello there", -1.0), hyp("안녕하세요", -5.0)]
    assert Rescorer({"ko": scorer}, weight=1.0).choose(hyps, "ko") == 0
    assert Rescorer({"ko": scorer}).choose([hyp("", 0.0), hyp("안녕하세요", -1.0)], "ko") == 0
    assert Rescorer({"ko": scorer}).choose([hyp("안녕하세요", -1.0)], "ko") == 0


def test_latin_letters_are_no_change_of_script_in_a_latin_text() -> None:
    scorer = TableScorer({"the quick fox": -9.0, "the quick fax 2": -1.0, "the quick fix": -1.0})
    rescorer = Rescorer({"en": scorer}, weight=1.0)
    hyps = [hyp("the quick fox", -1.0), hyp("the quick fax 2", -1.1), hyp("the quick fix", -1.2)]
    assert rescorer.choose(hyps, "en") == 2  # more digits: never; other letters: the model


def test_other_languages_are_untouched() -> None:
    scorer = TableScorer({"b": 100.0})
    assert Rescorer({"ko": scorer}).choose([hyp("a", -1.0), hyp("b", -2.0)], "en") == 0
    assert scorer.calls == []


def test_the_observer_sees_every_rescored_window() -> None:
    seen: list[Choice] = []
    scorer = TableScorer({"가": -1.0, "나": -9.0})
    rescorer = Rescorer({"ko": scorer}, observer=seen.append)
    rescorer.choose([hyp("나", -1.0), hyp("가", -1.5)], "ko")
    assert len(seen) == 1 and seen[0].chosen == 1 and seen[0].lm_scores == [-9.0, -1.0]


def test_kiwi_scores_what_korean_readers_find_likelier() -> None:
    kiwi = KiwiScorer()
    right = "불국사와 석굴암은 유네스코 세계문화유산으로 등재되어 있어."
    wrong = "불국사와 석굴함은 유네스코 세계문화유산으로 등재대어 있어."
    assert kiwi.score(right) > kiwi.score(wrong)


def test_kiwi_scores_numbers_in_one_notation() -> None:
    kiwi = KiwiScorer("keep")
    assert kiwi.normalize("이십육일에 만나") == kiwi.normalize("26일에 만나")
    words = KiwiScorer("words")
    assert words.normalize("26일에 만나") == words.normalize("이십육일에 만나")


@pytest.mark.parametrize(
    "text", ["hello", "", "🙂🙂", "abc 123", "가" * 500, "가나 😀 abc 다라 " * 30, "\x00가"]
)
def test_kiwi_scorer_raises_only_scorer_errors_on_odd_text(text: str) -> None:
    rescorer = Rescorer({"ko": KiwiScorer()}, weight=0.5)
    # whatever the scorer does with it, choosing never fails and falls back to Whisper's best
    assert rescorer.choose([hyp(text, -1.0), hyp("안녕하세요", -1.2)], "ko") in (0, 1)
    with contextlib.suppress(ScorerError):
        KiwiScorer().score(text)


def test_options_switch_rescoring() -> None:
    assert rescorer_for(TranscribeOptions()) is not None
    assert rescorer_for(TranscribeOptions(language="ko")) is not None
    assert rescorer_for(TranscribeOptions(rescore=False)) is None
    assert rescorer_for(TranscribeOptions(task="translate")) is None
    assert rescorer_for(TranscribeOptions(beam_size=1)) is None
    assert rescorer_for(TranscribeOptions(language="en")) is None  # no English model ships
    r = rescorer_for(TranscribeOptions(rescore_weight=0.3, rescore_hypotheses=9, beam_size=4))
    assert r is not None and r.weight == 0.3 and r.hypotheses == 4
    assert TranscribeOptions(rescore=False).decoding_key() != TranscribeOptions().decoding_key()


@pytest.fixture
def english_scorer() -> Iterator[TableScorer]:
    scorer = TableScorer({})
    rescoring.use_scorer("en", scorer)
    yield scorer
    rescoring.use_scorer("en", None)


def test_a_users_scorer_plugs_in(english_scorer: TableScorer) -> None:
    r = rescorer_for(TranscribeOptions(language="en"))
    assert r is not None and r.scorers["en"] is english_scorer
    assert rescorer_for(TranscribeOptions()) is not None


def _recorded(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[Choice]:
    seen: list[Choice] = []
    original = module.rescorer_for

    def recording(options: TranscribeOptions) -> Rescorer | None:
        r = original(options)
        if r is not None:
            r.observer = seen.append
        return r

    monkeypatch.setattr(module, "rescorer_for", recording)
    return seen


class Longest:
    """Prefers the reading with the most characters: not Whisper's choice on its own."""

    def score(self, text: str) -> float:
        return 100.0 * len(text.replace(" ", ""))


def test_the_sequential_pipeline_writes_the_chosen_reading(
    model: Any, audio: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import malsori.transcribe as transcribe_module

    seen = _recorded(monkeypatch, transcribe_module)
    rescoring.use_scorer("fr", Longest())
    try:
        # the rendered French has readings that differ in words, not only in timestamps
        opts = TranscribeOptions(language="fr", hallucination_filter=False)
        rescored = model.transcribe(audio.french, opts)
        plain = model.transcribe(audio.french, opts.replace(rescore=False))
    finally:
        rescoring.use_scorer("fr", None)
    assert seen, "no window was rescored"
    chosen = [c.hypotheses[c.chosen].text.strip() for c in seen]
    assert rescored.text.strip().startswith(chosen[0][:10])
    assert plain.text.strip().startswith(seen[0].hypotheses[0].text.strip()[:10])
    assert any(c.chosen for c in seen), "the scorer never overturned Whisper"
    assert rescored.text != plain.text


def test_the_packed_engine_rescores_with_the_same_rule(
    model: Any, audio: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import malsori.engine.decoder as decoder_module
    from malsori.engine import Engine, Priority

    seen = _recorded(monkeypatch, decoder_module)
    rescoring.use_scorer("fr", Longest())
    try:
        opts = TranscribeOptions(language="fr", hallucination_filter=False)
        with Engine(model, batch_size=4) as engine:
            rescored = engine.submit(audio.french, opts, priority=Priority.SYNC).result(timeout=300)
            plain = engine.submit(audio.french, opts.replace(rescore=False), priority=Priority.SYNC)
            plain_text = plain.result(timeout=300).text
    finally:
        rescoring.use_scorer("fr", None)
    assert seen, "no window was rescored"
    assert any(c.chosen for c in seen), "the scorer never overturned Whisper"
    assert rescored.text != plain_text
    assert rescored.text.strip()


# --- language found once -----------------------------------------------------------------------


def test_language_is_detected_on_the_encoder_pass_the_first_window_decodes_from(
    model: Any, audio: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faster_whisper

    passes: list[tuple[int, ...]] = []
    encode = faster_whisper.WhisperModel.encode

    def counting(self: Any, features: Any) -> Any:
        passes.append(tuple(features.shape))
        return encode(self, features)

    monkeypatch.setattr(faster_whisper.WhisperModel, "encode", counting)
    detected = model.transcribe(audio.french, TranscribeOptions(rescore=False))
    assert detected.language.language == "fr" and detected.language.detected
    assert len(passes) == 1  # faster-whisper: one for detection, one for the window
    passes.clear()
    given = model.transcribe(audio.french, TranscribeOptions(language="fr", rescore=False))
    assert len(passes) == 1
    assert given.text == detected.text


@pytest.mark.parametrize("clip", ["french", "spanish", "english", "noise"])
def test_detection_gives_exactly_faster_whispers_language_and_probability(
    model: Any, audio: Any, clip: str
) -> None:
    import faster_whisper

    samples = faster_whisper.decode_audio(str(getattr(audio, clip)))  # the same samples for both
    ours = model.transcribe(samples, TranscribeOptions(vad=False, rescore=False)).language
    plain = faster_whisper.WhisperModel(
        model.info.path, device="cpu", compute_type=model.info.compute_type, cpu_threads=2
    )
    _, info = plain.transcribe(samples, vad_filter=False, beam_size=5)
    assert ours.language == info.language
    assert ours.probability == pytest.approx(info.language_probability, abs=1e-6)


@pytest.mark.parametrize("clip", ["silence", "noise", "english"])
def test_korean_rescoring_on_audio_with_no_korean_in_it(model: Any, audio: Any, clip: str) -> None:
    """Silence, noise, and speech in another language decoded as Korean: nothing fails, and
    the rescored transcript is never worse off than the plain one (no text where it had none)."""
    opts = TranscribeOptions(language="ko")
    rescored = model.transcribe(getattr(audio, clip), opts)
    plain = model.transcribe(getattr(audio, clip), opts.replace(rescore=False))
    if not plain.text.strip():
        assert not rescored.text.strip()
    assert rescored.language.language == "ko"
