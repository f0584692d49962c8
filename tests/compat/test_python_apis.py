"""faster-whisper's and openai-whisper's Python examples with only the import changed: same
shapes, and the same text as the peers themselves on the same model where they are installed."""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

import pytest

from malsori.errors import InvalidOptionError
from malsori.options import TranscribeOptions
from rendered_audio import ENGLISH_WORDS, Audio, words_of

HAS_FASTER_WHISPER = importlib.util.find_spec("faster_whisper") is not None
HAS_OPENAI_WHISPER = importlib.util.find_spec("whisper") is not None


def test_malsori_api_names_the_option_it_means() -> None:
    with pytest.raises(InvalidOptionError) as e:
        TranscribeOptions.build(vad_filter=True, cpu_threads=2, beam_sise=3)
    message = str(e.value)
    assert "vad_filter (did you mean vad?)" in message
    assert "beam_sise (did you mean beam_size?)" in message
    assert "cpu_threads (did you mean threads (of malsori.load_model)?)" in message
    assert "malsori.compat.faster_whisper" in message


def test_faster_whisper_options_are_checked_by_name() -> None:
    from malsori.compat.faster_whisper import PARAMETERS, _check_names

    fw = pytest.importorskip("faster_whisper")
    theirs = [p for p in inspect.signature(fw.WhisperModel.transcribe).parameters][2:]
    assert sorted(theirs) == sorted(PARAMETERS)  # a new option fails here
    with pytest.raises(TypeError, match="did you mean 'vad_filter'"):
        _check_names(["vad_filtre"])


def _readme(model: Any, path: str, **options: Any) -> tuple[Any, list[Any]]:
    """faster-whisper's README example, run on ``model``."""
    segments, info = model.transcribe(path, beam_size=5, **options)
    return info, list(segments)


@pytest.fixture(scope="module")
def models(model: Any) -> tuple[Any, Any]:
    """malsori's WhisperModel and (when installed) faster-whisper's, on the same folder."""
    from malsori.compat.faster_whisper import WhisperModel

    ours = WhisperModel(model.info.path, device="cpu", compute_type="int8", cpu_threads=2)
    theirs = None
    if HAS_FASTER_WHISPER:
        import faster_whisper

        theirs = faster_whisper.WhisperModel(
            model.info.path, device="cpu", compute_type="int8", cpu_threads=2
        )
    return ours, theirs


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [{}, {"word_timestamps": True}, {"vad_filter": True,
                                     "vad_parameters": {"min_silence_duration_ms": 500}}],
    ids=["plain", "word_timestamps", "vad"],
)  # fmt: skip
def test_faster_whisper_readme_same_text(
    audio: Audio, models: tuple[Any, Any], options: dict[str, Any]
) -> None:
    ours, theirs = models
    segments, info = ours.transcribe(str(audio.english), beam_size=5, **options)
    assert inspect.isgenerator(segments)  # lazy, as faster-whisper's
    assert info.language == "en" and 0.5 < info.language_probability <= 1.0
    assert info.all_language_probs[0][0] == "en"
    assert info.duration == pytest.approx(audio.english_duration, abs=0.05)
    assert 0 < info.duration_after_vad <= info.duration
    mine = list(segments)
    assert set(ENGLISH_WORDS) <= words_of("".join(s.text for s in mine))
    first = mine[0]
    assert first.id == 1 and first.seek == 0 and first.tokens and first.temperature == 0.0
    if options.get("word_timestamps"):
        assert first.words and "".join(w.word for w in first.words) == first.text
    else:
        assert first.words is None
    if theirs is None:
        pytest.skip("faster-whisper is not installed: shapes checked only")
    their_info, theirs_segments = _readme(theirs, str(audio.english), **options)
    assert [s.text for s in mine] == [s.text for s in theirs_segments]
    assert [s.tokens for s in mine] == [s.tokens for s in theirs_segments]  # Whisper's own
    assert [s.seek for s in mine] == [s.seek for s in theirs_segments]
    assert info.language == their_info.language
    assert info.language_probability == pytest.approx(their_info.language_probability, abs=0.02)
    if options.get("word_timestamps"):
        assert [w.word for s in mine for w in s.words] == [
            w.word for s in theirs_segments for w in s.words
        ]


@pytest.mark.slow
def test_faster_whisper_batched_pipeline(audio: Audio, models: tuple[Any, Any]) -> None:
    from malsori.compat.faster_whisper import BatchedInferencePipeline

    ours, theirs = models
    segments, info = BatchedInferencePipeline(model=ours).transcribe(
        str(audio.english), batch_size=4
    )
    assert info.language == "en" and inspect.isgenerator(segments)
    text = "".join(s.text for s in segments)
    assert set(ENGLISH_WORDS) <= words_of(text)
    if theirs is not None:
        import faster_whisper

        their_segments, _ = faster_whisper.BatchedInferencePipeline(model=theirs).transcribe(
            str(audio.english), batch_size=4
        )
        # faster-whisper's batches decode without timestamps, one segment per speech chunk;
        # malsori's engine decodes timestamped windows: the same words.
        assert words_of(text) == words_of("".join(s.text for s in their_segments))


@pytest.mark.slow
def test_openai_whisper_readme(audio: Audio, model: Any) -> None:
    from malsori.compat import whisper

    assert "base" in whisper.available_models() and "turbo" in whisper.available_models()
    ours = whisper.load_model(model.info.path)
    result = ours.transcribe(str(audio.english))
    assert set(result) == {"text", "segments", "language"} and result["language"] == "en"
    assert set(ENGLISH_WORDS) <= words_of(result["text"])
    seg = result["segments"][0]
    assert set(seg) == {
        "id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
        "compression_ratio", "no_speech_prob",
    }  # fmt: skip
    assert seg["id"] == 0 and seg["seek"] == 0 and seg["tokens"]
    worded = ours.transcribe(str(audio.english), word_timestamps=True, language="en")
    words = worded["segments"][0]["words"]
    assert {"word", "start", "end", "probability"} == set(words[0])
    with pytest.raises(TypeError, match="did you mean 'word_timestamps'"):
        ours.transcribe(str(audio.english), word_timestamp=True)
    if not HAS_OPENAI_WHISPER:
        pytest.skip("openai-whisper is not installed: shapes checked only")
    import whisper as openai_whisper  # the same weights in PyTorch: the text should agree

    from malsori.bench.convert import openai_whisper_checkpoint

    # openai-whisper downloads "base" from its own site: the packaged weights instead, in its
    # checkpoint format (malsori's converter, as `malsori bench` uses it)
    checkpoint = openai_whisper_checkpoint(model.info.path)
    theirs = openai_whisper.load_model(str(checkpoint), device="cpu").transcribe(
        str(audio.english), fp16=False
    )
    assert words_of(result["text"]) == words_of(theirs["text"])


@pytest.mark.slow
def test_clip_timestamps_decode_only_the_clip(audio: Audio, model: Any) -> None:
    """faster-whisper's and whisper's ``clip_timestamps``, as malsori options: only the clip is
    decoded, in the input's time."""
    whole = model.transcribe(audio.english, vad=False)
    clipped = model.transcribe(audio.english, vad=False, clip_timestamps=(0.0, 1.2))
    assert clipped.segments and clipped.segments[0].start == 0.0
    assert words_of(clipped.text) < words_of(whole.text)  # "lazy dog" lies after the clip
    assert not {"lazy", "dog"} & words_of(clipped.text)
    late = model.transcribe(audio.english, vad=False, clip_timestamps=(1.2,))
    assert late.segments and late.segments[0].start >= 1.2 - 1e-6


def test_changed_decoding_knobs_decode_alone_on_the_engine() -> None:
    """The packed engine decodes with the defaults of Whisper's less common knobs: requests
    that change one go through the sequential pipeline, which honours it."""
    from malsori.engine.requests import Priority, Request

    def packable(**changes: Any) -> bool:
        return Request(0, "a.wav", TranscribeOptions(**changes), Priority.SYNC, "a").packable

    assert packable()
    assert not packable(length_penalty=0.5)
    assert not packable(suppress_tokens=(-1, 50))
    assert not packable(clip_timestamps=(0.0, 1.0))
