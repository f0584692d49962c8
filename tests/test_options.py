"""TranscribeOptions: validated once, frozen, replaced not mutated; errors map to exit codes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

import malsori
from malsori.errors import (
    AudioDecodeError,
    AudioNotFoundError,
    EmptyAudioError,
    InputError,
    InvalidOptionError,
    MalsoriError,
    ModelDownloadError,
    ModelError,
    ModelLoadError,
    ModelNotFoundError,
    NoSpeechError,
    OutputError,
)
from malsori.languages import LANGUAGES, language_name, normalize_language
from malsori.options import DEFAULT_TEMPERATURES, TranscribeOptions


def test_defaults_follow_whisper_with_vad_on() -> None:
    o = TranscribeOptions()
    assert o.task == "transcribe"
    assert o.language is None
    assert o.vad is True
    assert o.beam_size == 5 and o.best_of == 5
    assert o.temperature == DEFAULT_TEMPERATURES == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert o.compression_ratio_threshold == 2.4
    assert o.log_prob_threshold == -1.0
    assert o.no_speech_threshold == 0.6
    assert o.stream_window_s == 1200.0


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("ko", "ko"),
        ("KO", "ko"),
        (" Ja ", "ja"),
        ("Korean", "ko"),
        ("english", "en"),
        ("Castilian", "es"),
        ("한국어", "ko"),
        ("auto", None),
        ("detect", None),
        ("", None),
        (None, None),
    ],
)
def test_language_codes_and_names_normalise(given: str | None, code: str | None) -> None:
    assert normalize_language(given) == code
    assert TranscribeOptions(language=given).language == code


@pytest.mark.parametrize("bad", ["xx", "klingon", "en-US", "eng"])
def test_unknown_language_is_a_usage_error(bad: str) -> None:
    with pytest.raises(InvalidOptionError, match=repr(bad)) as info:
        TranscribeOptions(language=bad)
    assert info.value.exit_code == 2
    assert isinstance(info.value, ValueError)


def test_every_language_code_round_trips_and_has_a_name() -> None:
    for code, name in LANGUAGES.items():
        assert normalize_language(code) == code
        assert normalize_language(name) == code
        assert language_name(code) == name.title()


def test_languages_are_exactly_the_decoders() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    assert set(LANGUAGES) == set(_LANGUAGE_CODES)  # Whisper's 99 plus large-v3's Cantonese
    assert normalize_language("Hawaiian") == "haw"


@pytest.mark.parametrize(
    "overrides",
    [
        {"task": "summarize"},
        {"beam_size": 0},
        {"best_of": 0},
        {"patience": 0},
        {"temperature": ()},
        {"temperature": (0.5, 0.2)},
        {"temperature": (0.0, 1.5)},
        {"temperature": -0.1},
        {"vad_threshold": 0.0},
        {"vad_threshold": 1.0},
        {"vad_min_silence_ms": -1},
        {"vad_speech_pad_ms": -1},
        {"no_speech_threshold": 1.5},
        {"hallucination_speech_ratio": -0.1},
        {"language_detection_segments": 0},
        {"stream_window_s": 59.9},
        {"encoder_window_s": 4.9},
        {"encoder_window_s": 30.1},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_impossible_values_are_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptionError):
        TranscribeOptions(**overrides)
    with pytest.raises(InvalidOptionError):  # replace() validates again
        TranscribeOptions().replace(**overrides)


def test_scalar_temperature_becomes_a_tuple_of_floats() -> None:
    assert TranscribeOptions(temperature=0).temperature == (0.0,)
    assert TranscribeOptions(temperature=[0, 0.5, 1]).temperature == (0.0, 0.5, 1.0)
    assert all(isinstance(t, float) for t in TranscribeOptions(temperature=(0, 1)).temperature)


def test_blank_prompt_and_hotwords_mean_none() -> None:
    o = TranscribeOptions(initial_prompt="   ", hotwords="\n")
    assert o.initial_prompt is None and o.hotwords is None
    assert TranscribeOptions(initial_prompt=" Kim ").initial_prompt == " Kim "


def test_blank_stock_phrases_are_dropped() -> None:
    assert TranscribeOptions(stock_phrases=("Bye now", "  ", "")).stock_phrases == ("Bye now",)


def test_options_are_frozen() -> None:
    o = TranscribeOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.beam_size = 1  # type: ignore[misc]


def test_build_replaces_single_fields_and_leaves_the_original() -> None:
    base = TranscribeOptions(language="ko", beam_size=3)
    changed = TranscribeOptions.build(base, word_timestamps=True, language="Japanese")
    assert changed.word_timestamps is True and changed.language == "ja"
    assert changed.beam_size == 3  # carried over
    assert base.word_timestamps is False and base.language == "ko"
    assert TranscribeOptions.build(base) is base
    assert TranscribeOptions.build(None) == TranscribeOptions()
    assert base.replace(task="translate") == dataclasses.replace(base, task="translate")


def test_unknown_override_names_the_option() -> None:
    with pytest.raises(InvalidOptionError, match="beamsize"):
        TranscribeOptions.build(None, beamsize=3)


def test_to_dict_is_json_and_round_trips() -> None:
    o = TranscribeOptions(
        task="translate",
        language="fr",
        temperature=(0.0, 0.5),
        initial_prompt="Glossary: SNCF.",
        stock_phrases=("Merci d'avoir regardé",),
        word_timestamps=True,
        no_speech_threshold=None,
    )
    data = json.loads(json.dumps(o.to_dict()))
    assert data["temperature"] == [0.0, 0.5]
    assert data["stock_phrases"] == ["Merci d'avoir regardé"]
    assert set(data) == {f.name for f in dataclasses.fields(TranscribeOptions)}
    assert TranscribeOptions.from_dict(data) == o


def test_english_only_model_cannot_translate_or_transcribe_other_languages() -> None:
    TranscribeOptions().check_model(multilingual=False, model_name="tiny.en")
    TranscribeOptions(language="en").check_model(multilingual=False, model_name="tiny.en")
    with pytest.raises(InvalidOptionError, match=r"tiny\.en.*English-only.*translate"):
        TranscribeOptions(task="translate").check_model(multilingual=False, model_name="tiny.en")
    with pytest.raises(InvalidOptionError, match="'fr'"):
        TranscribeOptions(language="fr").check_model(multilingual=False, model_name="tiny.en")
    # A multilingual model can do both.
    TranscribeOptions(task="translate", language="fr").check_model(
        multilingual=True, model_name="base"
    )


@pytest.mark.parametrize(
    ("error", "code", "also"),
    [
        (MalsoriError, 1, ()),
        (InvalidOptionError, 2, (ValueError,)),
        (InputError, 3, ()),
        (AudioNotFoundError, 3, (InputError, FileNotFoundError)),
        (AudioDecodeError, 3, (InputError,)),
        (EmptyAudioError, 3, (InputError,)),
        (NoSpeechError, 3, (InputError,)),
        (ModelError, 4, ()),
        (ModelNotFoundError, 4, (ModelError,)),
        (ModelDownloadError, 4, (ModelError,)),
        (ModelLoadError, 4, (ModelError,)),
        (OutputError, 5, (OSError,)),
    ],
)
def test_error_classes_carry_the_documented_exit_codes(
    error: type[MalsoriError], code: int, also: tuple[type[BaseException], ...]
) -> None:
    # The README's exit-code table: 2 usage, 3 input, 4 model, 5 output, 1 anything else.
    assert error.exit_code == code
    assert issubclass(error, MalsoriError)
    for parent in also:
        assert issubclass(error, parent)
    assert getattr(malsori, error.__name__) is error  # exported from the package
