"""What the commands share: option arguments, options built from them, error lines.

Each command module (``malsori.commands.*``) adds these to its parser; ``malsori.cli`` only
builds the top-level parser and turns errors into exit codes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidOptionError
from ..glossary import Glossary, GlossaryError, load_glossary
from ..options import (
    DEFAULT_TEMPERATURES,
    FULL_ENCODER_WINDOW_S,
    NUMBER_STYLES,
    TranscribeOptions,
)
from ..registry import DEFAULT_MODEL
from ..subtitles.profiles import PROFILE_NAMES, PROFILES, SubtitleSpec
from ..writers import format_timestamp

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit with the documented code through InvalidOptionError."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        raise InvalidOptionError(message)


def _temperatures(value: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a temperature or comma-separated list: {value!r}"
        ) from None


def _phrases_file(value: str) -> tuple[str, ...]:
    try:
        lines = Path(value).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise argparse.ArgumentTypeError(f"cannot read stock phrases from {value}: {e}") from None
    return tuple(ln.strip() for ln in lines if ln.strip() and not ln.startswith("#"))


def _glossary_file(value: str) -> Glossary:
    try:
        return load_glossary(value)
    except GlossaryError as e:  # argparse would replace a ValueError's message with its own
        raise argparse.ArgumentTypeError(str(e)) from None


def _glossaries(values: list[Glossary] | None) -> Glossary | None:
    if not values:
        return None
    merged = values[0]
    for more in values[1:]:
        merged = merged.combine(more)
    return merged


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "-m",
        "--model",
        default=DEFAULT_MODEL,
        help="model name (base, tiny.en, small, large-v3, ...) or CTranslate2 folder "
        f"(default: {DEFAULT_MODEL})",
    )
    g.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to run (default: auto, CUDA when present)",
    )
    g.add_argument(
        "--compute-type",
        default="auto",
        help="CTranslate2 compute type: auto (int8 on CPU, float16 on CUDA), int8, "
        "int8_float16, int16, float16, bfloat16, float32",
    )
    g.add_argument("--threads", type=int, default=0,
                   help="CPU threads (default: 0, every core available)")  # fmt: skip


def add_decode_arguments(p: argparse.ArgumentParser) -> None:
    d = TranscribeOptions()
    g = p.add_argument_group("decoding")
    g.add_argument(
        "--task",
        choices=("transcribe", "translate"),
        default=d.task,
        help="transcribe in the spoken language, or translate to English",
    )
    g.add_argument(
        "-l",
        "--language",
        default=None,
        help="language code or name (ko, en, Japanese, ...); default: detect",
    )
    g.add_argument(
        "--vad",
        action=argparse.BooleanOptionalAction,
        default=d.vad,
        help="Silero voice activity detection before decoding (default: on)",
    )
    g.add_argument(
        "--vad-threshold",
        type=float,
        default=d.vad_threshold,
        help=f"speech probability threshold (default: {d.vad_threshold})",
    )
    g.add_argument(
        "--vad-min-silence-ms",
        type=int,
        default=d.vad_min_silence_ms,
        help=f"silence that splits speech regions (default: {d.vad_min_silence_ms})",
    )
    g.add_argument("--word-timestamps", action="store_true", help="time every word")
    g.add_argument(
        "--encoder-window",
        type=float,
        default=None,
        metavar="SECONDS",
        help="audio the encoder sees, at least, 5-30: less is faster on short inputs and less "
        "accurate (default: 30, Whisper's window; live: 15 on a CPU, 30 on a GPU)",
    )
    g.add_argument(
        "--beam-size",
        type=int,
        default=d.beam_size,
        help=f"beam width, 1 for greedy (default: {d.beam_size})",
    )
    g.add_argument(
        "--best-of",
        type=int,
        default=d.best_of,
        help=f"samples at temperatures above 0 (default: {d.best_of})",
    )
    g.add_argument(
        "--temperature",
        type=_temperatures,
        default=DEFAULT_TEMPERATURES,
        help="temperature, or comma-separated fallback temperatures (default: 0,0.2,0.4,0.6,0.8,1)",
    )
    g.add_argument(
        "--compression-ratio-threshold",
        type=float,
        default=d.compression_ratio_threshold,
        help="fall back to the next temperature above this gzip ratio (default: 2.4)",
    )
    g.add_argument(
        "--logprob-threshold",
        type=float,
        default=d.log_prob_threshold,
        help="fall back below this average log-probability (default: -1.0)",
    )
    g.add_argument(
        "--no-speech-threshold",
        type=float,
        default=d.no_speech_threshold,
        help="skip windows whose no-speech probability is above this (default: 0.6)",
    )
    g.add_argument(
        "--condition-on-previous-text",
        action=argparse.BooleanOptionalAction,
        default=d.condition_on_previous_text,
        help="prompt each window with the previous text (default: on)",
    )
    g.add_argument(
        "--initial-prompt",
        default=None,
        help="text to condition the first window on (spelling, style, vocabulary)",
    )
    g.add_argument("--hotwords", default=None, help="words or phrases to bias the decoder toward")
    h = p.add_argument_group("hallucination and repetition defences (on by default)")
    h.add_argument(
        "--hallucination-filter",
        action=argparse.BooleanOptionalAction,
        default=d.hallucination_filter,
        help="remove stock phrases and doubtful segments over non-speech",
    )
    h.add_argument(
        "--stock-phrases",
        type=_phrases_file,
        default=(),
        metavar="FILE",
        help="extra stock phrases to remove on non-speech, one per line",
    )
    h.add_argument(
        "--repetition-filter",
        action=argparse.BooleanOptionalAction,
        default=d.repetition_filter,
        help="collapse repetition loops and reset the context after one",
    )
    k = p.add_argument_group("Korean post-processing and domain vocabulary")
    k.add_argument(
        "--korean-spacing",
        action=argparse.BooleanOptionalAction,
        default=d.korean_spacing,
        help="insert missing spaces where Korean text is clearly under-spaced (default: on)",
    )
    k.add_argument(
        "--korean-punctuation",
        action=argparse.BooleanOptionalAction,
        default=d.korean_punctuation,
        help="end Korean sentences that have no final punctuation with . or ? (default: on)",
    )
    k.add_argument(
        "--number-style",
        choices=NUMBER_STYLES,
        default=d.number_style,
        help="Korean numbers: keep as decoded, digits (이십육일 -> 26일) or words "
        "(26일 -> 이십육일) (default: keep)",
    )
    k.add_argument(
        "--glossary",
        type=_glossary_file,
        action="append",
        metavar="FILE",
        help="terms to bias toward and 'wrong => right' replacement rules (docs/glossary.md); "
        "can be given more than once",
    )


def _profile_name(value: str) -> str:
    name = value.strip().lower()
    if name not in PROFILE_NAMES:
        raise argparse.ArgumentTypeError(
            f"unknown subtitle profile {value!r}: use one of {', '.join(PROFILE_NAMES)}"
        )
    return name


def add_subtitle_arguments(
    p: argparse.ArgumentParser, flags: tuple[str, ...] = ("--subtitle-profile",)
) -> None:
    """``--subtitle-profile`` and one flag per limit, for every command that writes SRT/VTT."""
    en, ko = PROFILES["netflix-en"], PROFILES["netflix-ko"]
    g = p.add_argument_group(
        "subtitles (SRT and VTT cues; see docs/subtitles.md)",
        f"Profiles: netflix-ko ({ko.max_line_width:g} per line counting Latin characters as "
        f"half, {ko.max_cps:g} per second), netflix-en and latin ({en.max_line_width:g} per "
        f"line, {en.max_cps:g} per second), cjk (as netflix-ko, for Japanese and Chinese too), "
        "auto (cjk for Korean, Japanese and Chinese, latin otherwise), none (one cue per "
        "segment). All: 2 lines, 5/6 s to 7 s, 2 frames at 24 fps between cues.",
    )
    g.add_argument(*flags, dest="subtitle_profile", type=_profile_name, default="auto",
                   metavar="NAME", help=f"{', '.join(PROFILE_NAMES)} (default: auto)")  # fmt: skip
    g.add_argument("--max-line-width", type=float, metavar="CHARS",
                   help="characters per line, in the profile's counting")  # fmt: skip
    g.add_argument("--max-lines", type=int, metavar="N", help="lines per cue")
    g.add_argument("--max-cps", type=float, metavar="CPS",
                   help="reading speed: characters per second at most")  # fmt: skip
    g.add_argument("--min-duration", type=float, metavar="SECONDS", help="shortest cue")
    g.add_argument("--max-duration", type=float, metavar="SECONDS", help="longest cue")
    g.add_argument("--min-gap", type=float, metavar="SECONDS",
                   help="least time between two cues (2 frames at 24 fps: 0.083)")  # fmt: skip


def subtitle_spec_from_args(args: argparse.Namespace) -> SubtitleSpec | None:
    """The subtitle profile and overridden limits the arguments ask for (None: not a flag here)."""
    if getattr(args, "subtitle_profile", None) is None:
        return None
    limits = ("max_line_width", "max_lines", "max_cps", "min_duration", "max_duration", "min_gap")
    overrides = {k: getattr(args, k) for k in limits if getattr(args, k, None) is not None}
    if overrides and args.subtitle_profile == "none":
        raise InvalidOptionError("subtitle limits have no effect with --subtitle-profile none")
    return SubtitleSpec(args.subtitle_profile, **overrides)


def with_subtitle_words(options: TranscribeOptions, formats: Sequence[str]) -> TranscribeOptions:
    """Time every word when a subtitle profile builds the cues of one of ``formats``."""
    spec = options.subtitles
    wanted = spec is not None and spec.enabled and {"srt", "vtt", "json"} & set(formats)
    return options.replace(word_timestamps=True) if wanted else options


def options_from_args(args: argparse.Namespace) -> TranscribeOptions:
    """The one place CLI arguments become a ``TranscribeOptions``."""
    return TranscribeOptions(
        task=args.task,
        language=args.language,
        vad=args.vad,
        vad_threshold=args.vad_threshold,
        vad_min_silence_ms=args.vad_min_silence_ms,
        word_timestamps=args.word_timestamps,
        encoder_window_s=(
            FULL_ENCODER_WINDOW_S if args.encoder_window is None else args.encoder_window
        ),
        beam_size=args.beam_size,
        best_of=args.best_of,
        temperature=args.temperature,
        compression_ratio_threshold=args.compression_ratio_threshold,
        log_prob_threshold=args.logprob_threshold,
        no_speech_threshold=args.no_speech_threshold,
        condition_on_previous_text=args.condition_on_previous_text,
        initial_prompt=args.initial_prompt,
        hotwords=args.hotwords,
        hallucination_filter=args.hallucination_filter,
        stock_phrases=args.stock_phrases,
        repetition_filter=args.repetition_filter,
        korean_spacing=args.korean_spacing,
        korean_punctuation=args.korean_punctuation,
        number_style=args.number_style,
        glossary=_glossaries(args.glossary),
        subtitles=subtitle_spec_from_args(args),
    )


def load_model_from_args(args: argparse.Namespace) -> Any:
    from ..model import load_model

    return load_model(
        args.model, device=args.device, compute_type=args.compute_type, threads=args.threads
    )


def report_error(error: BaseException | str) -> None:
    print(f"malsori: error: {error}", file=sys.stderr)


def output_stem(source: str) -> str:
    return "stdin" if source == "-" else Path(source).stem


def segment_line(start: float, end: float, text: str) -> str:
    return f"[{format_timestamp(start)} --> {format_timestamp(end)}] {text.strip()}"
