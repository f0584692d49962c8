"""The spellings of openai-whisper's ``whisper`` and of ``whisper-ctranslate2`` on malsori's
command line.

Their options are snake_case, their switches take a value (``--word_timestamps True``) and
``None`` means "off" or "detect". Before argparse sees the arguments, ``translate_args``
rewrites each of their spellings into malsori's own (``--word_timestamps True`` becomes
``--word-timestamps``, ``--vad_filter False`` becomes ``--no-vad``), following the table
``SPELLINGS``; options malsori cannot honour stop there with one line saying why. The anchors'
option lists, as their parsers define them, are in ``data/*.json``; the tests check that every
one of them is in the table or is malsori's own spelling.
"""

from __future__ import annotations

import argparse
import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from ..errors import InvalidOptionError

# "value": the option and its value; "bool": a switch that may take True/False; "enable": an
# option whose value only switches ``target`` on (any value but "" or None); "refuse": one line.
Kind = Literal["value", "bool", "enable", "refuse"]

# Words a switch may be followed by (whisper takes True/False, whisper-ctranslate2 any case).
BOOL_WORDS: dict[str, bool] = {
    "true": True, "false": False, "yes": True, "no": False, "on": True, "off": False,
}  # fmt: skip
DROP = "<drop>"  # the option (with its "None") is left out: malsori's default is that meaning
ANCHOR_DATA = ("whisper_cli.json", "whisper_ctranslate2_cli.json")


@dataclass(frozen=True)
class Spelling:
    """One of the anchors' options and what it becomes on malsori's command line."""

    option: str  # the anchor's spelling, "--beam_size"
    target: str  # malsori's option ("--beam-size"); for "refuse", the reason
    kind: Kind = "value"
    # What a value of "None" becomes: DROP, a replacement value, or None to pass it on
    # (malsori's option takes "None" itself).
    none: str | None = None


_SPEAKER_NAME = (
    "malsori labels speakers SPEAKER_1, SPEAKER_2 ...; to name them, give their voices with "
    "--speaker NAME=FILE (docs/diarization.md)"
)
_LIVE = "live transcription from a microphone is `malsori live` (see malsori live --help)"

SPELLINGS: dict[str, Spelling] = {
    s.option: s
    for s in (
        # model
        Spelling("--model_dir", "--model-dir"),
        Spelling("--model_directory", "--model"),
        Spelling("--local_files_only", "--local-files-only", "bool"),
        Spelling("--device_index", "--device-index"),
        Spelling("--compute_type", "--compute-type"),
        Spelling("--threads", "--threads", none="0"),
        Spelling("--fp16", "--fp16", "bool"),
        # output
        Spelling("--output_dir", "--output-dir"),
        Spelling("--output_format", "--output-format"),
        Spelling("--verbose", "--verbose", "bool"),
        Spelling("--pretty_json", "--pretty-json", "bool"),
        Spelling("-p", "--pretty-json", "bool"),  # whisper-ctranslate2's short form
        Spelling("--print_colors", "--print-colors", "bool"),
        Spelling("--highlight_words", "--highlight-words", "bool"),
        Spelling("--max_line_width", "--max_line_width", none=DROP),
        Spelling("--max_line_count", "--max-line-count", none=DROP),
        Spelling("--max_words_per_line", "--max-words-per-line", none=DROP),
        # decoding
        Spelling("--language", "--language", none=DROP),
        Spelling("--temperature_increment_on_fallback", "--temperature-increment-on-fallback"),
        Spelling("--prompt_reset_on_temperature", "--prompt-reset-on-temperature"),
        Spelling("--best_of", "--best-of", none="1"),
        Spelling("--beam_size", "--beam-size", none="1"),
        Spelling("--patience", "--patience", none=DROP),
        Spelling("--length_penalty", "--length-penalty", none=DROP),
        Spelling("--suppress_blank", "--suppress-blank", "bool"),
        Spelling("--suppress_tokens", "--suppress-tokens"),
        Spelling("--initial_prompt", "--initial-prompt"),
        Spelling("--carry_initial_prompt", "--carry-initial-prompt", "bool"),
        Spelling("--condition_on_previous_text", "--condition-on-previous-text", "bool"),
        Spelling("--compression_ratio_threshold", "--compression-ratio-threshold"),
        Spelling("--logprob_threshold", "--logprob-threshold"),
        Spelling("--no_speech_threshold", "--no-speech-threshold"),
        Spelling("--word_timestamps", "--word-timestamps", "bool"),
        Spelling("--prepend_punctuations", "--prepend-punctuations"),
        Spelling("--append_punctuations", "--append-punctuations"),
        Spelling("--repetition_penalty", "--repetition-penalty"),
        Spelling("--no_repeat_ngram_size", "--no-repeat-ngram-size"),
        Spelling("--clip_timestamps", "--clip-timestamps"),
        Spelling("--hallucination_silence_threshold", "--hallucination-silence-threshold"),
        Spelling("--batched", "--batched", "bool"),
        Spelling("--batch_size", "--batch-size", none=DROP),
        Spelling("--multilingual", "--multilingual", "bool"),
        # voice activity detection
        Spelling("--vad_filter", "--vad", "bool"),
        Spelling("--vad_threshold", "--vad-threshold", none=DROP),
        Spelling("--vad_min_speech_duration_ms", "--vad-min-speech-ms", none=DROP),
        Spelling("--vad_max_speech_duration_s", "--vad-max-speech-s", none=DROP),
        Spelling("--vad_min_silence_duration_ms", "--vad-min-silence-ms", none=DROP),
        Spelling("--vad_speech_pad_ms", "--vad-speech-pad-ms", none=DROP),
        # speaker diarization: whisper-ctranslate2 diarizes when given a Hugging Face token (for
        # pyannote's weights); malsori's speaker encoder is installed, so the token only says
        # "diarize". whisperX's spellings too.
        Spelling("--hf_token", "--diarize", "enable"),
        Spelling("--speaker_num", "--num-speakers", none=DROP),
        Spelling("--min_speakers", "--min-speakers", none=DROP),
        Spelling("--max_speakers", "--max-speakers", none=DROP),
        # what malsori cannot do here
        Spelling("--speaker_name", _SPEAKER_NAME, "refuse"),
        Spelling("--live_transcribe", _LIVE, "refuse"),
        Spelling("--live_volume_threshold", _LIVE, "refuse"),
        Spelling("--live_input_device", _LIVE, "refuse"),
        Spelling("--live_input_device_sample_rate", _LIVE, "refuse"),
    )
}


def anchor_options() -> dict[str, dict[str, Any]]:
    """Every anchor's data file: {"openai-whisper": {"version": ..., "options": [...]}, ...}."""
    found = {}
    for name in ANCHOR_DATA:
        data = json.loads(resources.files(__package__).joinpath("data", name).read_text("utf-8"))
        found[data["anchor"]] = data
    return found


def _bool_word(value: str, option: str) -> bool:
    try:
        return BOOL_WORDS[value.lower()]
    except KeyError:
        raise InvalidOptionError(f"{option} takes True or False, got {value!r}") from None


def _switch(target: str, on: bool, negatable: set[str]) -> list[str]:
    """malsori's switch ``target`` set to ``on``: itself, its --no- form, or nothing."""
    if on:
        return [target]
    if target in negatable:
        return ["--no-" + target[2:]]
    if target.startswith("--no-") and "--" + target[5:] in negatable:
        return ["--" + target[5:]]
    return []  # a plain switch left out is off


@dataclass(frozen=True)
class Switches:
    """malsori's switches on a parser: plain ones and the ones with a --no- form."""

    plain: frozenset[str]
    negatable: frozenset[str]

    @classmethod
    def of(cls, parser: argparse.ArgumentParser) -> Switches:
        plain: set[str] = set()
        negatable: set[str] = set()
        for action in parser._actions:
            if isinstance(action, argparse.BooleanOptionalAction):
                negatable.update(s for s in action.option_strings if not s.startswith("--no-"))
                plain.update(action.option_strings)
            elif isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
                plain.update(action.option_strings)
        return cls(frozenset(plain), frozenset(negatable))


def translate_args(args: Sequence[str], switches: Switches) -> list[str]:
    """The anchors' spellings among ``args`` rewritten into malsori's (see the module
    docstring); a True/False after any switch is taken by the switch, never as a file."""
    out: list[str] = []
    i = 0
    negatable = set(switches.negatable)
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            out += args[i - 1 :]
            break
        name, eq, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        following = args[i] if i < len(args) else None
        spelling = SPELLINGS.get(name)
        if spelling is None:
            word = (following or "").lower()
            if name in switches.plain and not eq and word in BOOL_WORDS:  # --word-timestamps True
                out += _switch(name, BOOL_WORDS[word], negatable)
                i += 1
                continue
            out.append(token)
            continue
        if spelling.kind == "refuse":
            raise InvalidOptionError(f"{name}: {spelling.target}")
        if spelling.kind == "bool":
            if eq:
                out += _switch(spelling.target, _bool_word(inline, name), negatable)
            elif following is not None and following.lower() in BOOL_WORDS:
                out += _switch(spelling.target, BOOL_WORDS[following.lower()], negatable)
                i += 1
            else:  # a bare switch: on
                out += _switch(spelling.target, True, negatable)
            continue
        if eq:
            value: str | None = inline
        elif following is not None:
            value, i = following, i + 1
        else:
            value = None  # argparse says the value is missing
        if spelling.kind == "enable":
            if value not in (None, "", "None") and spelling.target not in out:
                out.append(spelling.target)
            continue
        if value == "None" and spelling.none is not None:
            if spelling.none != DROP:
                out += [spelling.target, spelling.none]
            continue
        out += [spelling.target] if value is None else [f"{spelling.target}={value}"]
    return out


def nearest_spelling(unknown: str, parser: argparse.ArgumentParser) -> str | None:
    """The known option closest to ``unknown`` (malsori's or an anchor's), if one is close."""
    name = unknown.partition("=")[0]
    known = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    known += [s for s, sp in SPELLINGS.items() if sp.kind != "refuse"]
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not match:  # a spelling with the other separator: --output-dirr -> --output_dir
        flipped = name.replace("_", "-") if "_" in name else name.replace("-", "_")
        match = difflib.get_close_matches(flipped, known, n=1, cutoff=0.6)
    return match[0] if match else None


def unrecognized_message(extras: Iterable[str], parser: argparse.ArgumentParser) -> str:
    extras = list(extras)
    message = f"unrecognized arguments: {' '.join(extras)}"
    options = [e for e in extras if e.startswith("-")]
    near = nearest_spelling(options[0], parser) if options else None
    return f"{message} (did you mean {near}?)" if near else message
