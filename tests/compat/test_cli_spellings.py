"""The anchors' command lines on ``malsori transcribe``: every option of openai-whisper's
``whisper`` and of ``whisper-ctranslate2`` (their parsers' lists, as data in
``malsori/compat/data``) is accepted with its spelling and value forms, and means the same."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from malsori.cli import _parse, _prepare, build_parser, route
from malsori.commands.common import options_from_args
from malsori.compat.cli import SPELLINGS, anchor_options
from malsori.errors import InvalidOptionError

PARSER = build_parser()
ANCHORS = anchor_options()
SAMPLES = {  # a value each option takes, where its type says too little
    "--model": "base", "--device": "cpu", "--language": "en", "--output_format": "srt",
    "--compute_type": "int8", "--task": "translate", "--suppress_tokens": "-1,50",
    "--clip_timestamps": "0,10", "--output_dir": "out", "--model_dir": "models",
    "--model_directory": "base", "--initial_prompt": "Hello.", "--prefix": "The",
    "--hotwords": "fox", "--prepend_punctuations": "([", "--append_punctuations": ".,",
    "--temperature": "0.2", "--batch_size": "4", "--threads": "2",
}  # fmt: skip
TYPE_SAMPLES = {"bool": "True", "int": "2", "float": "0.5", "optional_int": "3",
                "optional_float": "0.5", "str": "x"}  # fmt: skip


def parse(*argv: str) -> argparse.Namespace:
    return _parse(PARSER, _prepare(PARSER, list(argv)))


def anchor_cases() -> list[Any]:
    cases = []
    for anchor, data in ANCHORS.items():
        for option in data["options"]:
            if option["type"] == "version":
                continue
            values = [SAMPLES.get(option["name"], TYPE_SAMPLES[option["type"]])]
            if option["type"].startswith("optional_"):
                values.append("None")
            for value in values:
                cases.append(pytest.param(option, value, id=f"{anchor} {option['name']} {value}"))
    return cases


def test_the_data_holds_each_anchors_version_and_options() -> None:
    assert ANCHORS["openai-whisper"]["version"] and ANCHORS["whisper-ctranslate2"]["version"]
    names = {o["name"] for o in ANCHORS["openai-whisper"]["options"]}
    assert {"--word_timestamps", "--output_dir", "--temperature_increment_on_fallback"} <= names
    assert len(ANCHORS["whisper-ctranslate2"]["options"]) > 50


@pytest.mark.parametrize(("option", "value"), anchor_cases())
def test_every_anchor_option_is_accepted(option: dict[str, Any], value: str) -> None:
    """Parse only (no model): each option with a value of its type, and None where the anchor
    takes it; the options malsori cannot honour say why in one line."""
    name = option["name"]
    spelling = SPELLINGS.get(name)
    known_to_malsori = name in PARSER.get_default("subparsers")["transcribe"]._option_string_actions
    assert spelling is not None or known_to_malsori, f"{name} is not mapped (compat/cli.py)"
    argv = ["transcribe", "a.wav", name, value]
    if spelling is not None and spelling.kind == "refuse":
        with pytest.raises(InvalidOptionError, match=name):
            parse(*argv)
        return
    args = parse(*argv)
    assert args.inputs == ["a.wav"]  # the value was never taken for a file
    options_from_args(args)  # and makes valid options
    for short in option["short"]:
        assert parse("transcribe", "a.wav", short, value).inputs == ["a.wav"]


def test_version_is_accepted_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse("transcribe", "--version")
    assert e.value.code == 0 and "malsori" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("--word_timestamps", "True"), {"word_timestamps": True}),
        (("--word_timestamps", "False"), {"word_timestamps": False}),
        (("--word-timestamps", "True"), {"word_timestamps": True}),
        (("--vad_filter", "False"), {"vad": False}),
        (("--vad_filter", "True", "--vad_threshold", "0.5"), {"vad": True, "vad_threshold": 0.5}),
        (("--vad_min_silence_duration_ms", "500", "--vad_speech_pad_ms", "100"),
         {"vad_min_silence_ms": 500, "vad_speech_pad_ms": 100}),
        (("--vad_min_speech_duration_ms", "250", "--vad_max_speech_duration_s", "20"),
         {"vad_min_speech_ms": 250, "vad_max_speech_s": 20.0}),
        (("--language", "None"), {"language": None}),
        (("--language", "Japanese"), {"language": "ja"}),
        (("--beam_size", "None", "--best_of", "None"), {"beam_size": 1, "best_of": 1}),
        (("--compression_ratio_threshold", "None", "--logprob_threshold", "None",
          "--no_speech_threshold", "None"),
         {"compression_ratio_threshold": None, "log_prob_threshold": None,
          "no_speech_threshold": None}),
        (("--temperature", "0"), {"temperature": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)}),
        (("--temperature", "0.4", "--temperature_increment_on_fallback", "0.3"),
         {"temperature": (0.4, 0.7, 1.0)}),
        (("--temperature_increment_on_fallback", "None"), {"temperature": (0.0,)}),
        (("--temperature", "0,0.5"), {"temperature": (0.0, 0.5)}),
        (("--patience", "2", "--length_penalty", "0.5", "--repetition_penalty", "1.2",
          "--no_repeat_ngram_size", "3"),
         {"patience": 2.0, "length_penalty": 0.5, "repetition_penalty": 1.2,
          "no_repeat_ngram_size": 3}),
        (("--suppress_tokens", "-1,50", "--suppress_blank", "False"),
         {"suppress_tokens": (-1, 50), "suppress_blank": False}),
        (("--prefix", "The", "--clip_timestamps", "1.5,4"),
         {"prefix": "The", "clip_timestamps": (1.5, 4.0)}),
        (("--hallucination_silence_threshold", "2", "--prompt_reset_on_temperature", "0.4"),
         {"hallucination_silence_threshold": 2.0, "prompt_reset_on_temperature": 0.4}),
        (("--prepend_punctuations", "(", "--append_punctuations", "."),
         {"prepend_punctuations": "(", "append_punctuations": "."}),
        (("--initial_prompt", "Fox.", "--carry_initial_prompt", "True"),
         {"initial_prompt": "Fox.", "hotwords": "Fox."}),
        (("--condition_on_previous_text", "False", "--multilingual", "True"),
         {"condition_on_previous_text": False, "multilingual": True}),
        (("--whisper-defaults",),
         {"vad": False, "korean_spacing": False, "hallucination_filter": False,
          "repetition_filter": False, "subtitles": None}),
        (("--whisper-defaults", "--vad_filter", "True"), {"vad": True}),
    ],
    ids=lambda a: " ".join(a) if isinstance(a, tuple) else "",
)  # fmt: skip
def test_anchor_values_mean_the_same(argv: tuple[str, ...], expected: dict[str, Any]) -> None:
    options = options_from_args(parse("transcribe", "a.wav", *argv))
    assert {k: getattr(options, k) for k in expected} == expected


def test_model_output_and_engine_spellings() -> None:
    args = parse(
        "a.wav", "--model_directory", "/models/x", "--model_dir", "/m", "--device_index", "1",
        "--compute_type", "int8", "--fp16", "False", "--local_files_only", "True",
        "--output_dir", "o", "-f", "all", "--batched", "True", "--batch_size", "4",
        "--max_line_width", "20", "--max_line_count", "2", "--max_words_per_line", "3",
        "--highlight_words", "True", "--verbose", "False", "--pretty_json", "True",
    )  # fmt: skip
    assert (args.model, args.model_dir, args.device_index, args.compute_type) == (
        "/models/x", "/m", 1, "int8",
    )  # fmt: skip
    assert args.fp16 is False and args.local_files_only and args.live_verbose is False
    assert (args.output_dir, args.output_format, args.batched, args.batch_size) == (
        "o", "all", True, 4,
    )  # fmt: skip
    assert (args.whisper_line_width, args.max_line_count, args.max_words_per_line) == (20, 2, 3)
    assert args.highlight_words and args.pretty_json


@pytest.mark.parametrize(
    ("argv", "routed"),
    [
        (["a.mp3"], ["transcribe", "a.mp3"]),
        (["--model", "base", "a.mp3"], ["transcribe", "--model", "base", "a.mp3"]),
        (["-v", "a.mp3", "b.wav"], ["-v", "transcribe", "a.mp3", "b.wav"]),
        (["-"], ["transcribe", "-"]),
        (["frobnicate"], ["frobnicate"]),  # not a file: argparse says it is not a command
        (["models", "list"], ["models", "list"]),
        (["--help"], ["--help"]),
    ],
)
def test_a_file_first_runs_transcribe(argv: list[str], routed: list[str]) -> None:
    assert route(argv, list(PARSER.get_default("subparsers"))) == routed


def test_verbose_after_the_command_and_true_after_a_switch() -> None:
    args = parse("transcribe", "--word-timestamps", "True", "a.flac", "-v")
    assert args.inputs == ["a.flac"] and args.live_verbose is True
    args = parse("transcribe", "a.flac", "--verbose", "True", "--vad", "False")
    assert args.inputs == ["a.flac"] and args.live_verbose is True and args.vad is False


def test_diarization_spellings_of_whisper_ctranslate2_and_whisperx() -> None:
    args = parse("transcribe", "a.wav", "--hf_token", "hf_abc", "--speaker_num", "3")
    assert args.diarize is True and args.num_speakers == 3
    args = parse("transcribe", "a.wav", "--diarize", "--min_speakers", "2", "--max_speakers", "4")
    assert args.diarize is True and (args.min_speakers, args.max_speakers) == (2, 4)
    assert parse("transcribe", "a.wav", "--hf_token", "").diarize is False  # no token: none


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--speaker_num", "2"), "speaker options need --diarize"),
    ],
)
def test_speaker_options_without_diarization(argv: tuple[str, ...], message: str) -> None:
    from malsori.commands.speakers import diarize_options_from_args

    with pytest.raises(InvalidOptionError, match=message):
        diarize_options_from_args(parse("transcribe", "a.wav", *argv))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--speaker_name", "Talker"), "--speaker_name: malsori labels speakers"),
        (("--live_transcribe", "True"), "malsori live"),
        (("--vad_filter=maybe",), "--vad_filter takes True or False, got 'maybe'"),
    ],
)
def test_what_cannot_be_honoured_is_one_line(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        parse("transcribe", "a.wav", *argv)
