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


def _optional_float(value: str) -> float | None:
    """A number, or None/none (the check is off), as whisper's thresholds take it."""
    if value.strip().lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or None: {value!r}") from None


def _token_ids(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of token ids: {value!r}"
        ) from None


def _clips(value: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of start,end times in seconds: {value!r}"
        ) from None


def fallback_temperatures(
    temperature: tuple[float, ...] | None, increment: float | None
) -> tuple[float, ...]:
    """Whisper's rule: one temperature T falls back from T upward in steps of ``increment``
    up to 1 (``increment`` None or 0: T alone); a comma list is taken as it is."""
    if temperature is None:
        temperature = (0.0,)
    if len(temperature) != 1 or not increment:
        return temperature
    if increment < 0:
        raise InvalidOptionError(f"temperature increment must be positive, got {increment}")
    start = temperature[0]
    steps = int((1.0 + 1e-6 - start) // increment) + 1 if start <= 1.0 else 1
    return tuple(round(start + k * increment, 6) for k in range(max(1, steps)))


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
        default="auto",
        help="where to run: auto, cpu or cuda (default: auto, CUDA when present)",
    )
    g.add_argument("--device-index", type=int, default=0, metavar="N",
                   help="which CUDA device (default: 0)")  # fmt: skip
    g.add_argument(
        "--model-dir",
        default=None,
        metavar="DIR",
        help="where models are kept and downloaded to (default: $MALSORI_HOME)",
    )
    g.add_argument("--local-files-only", action="store_true",
                   help="never download: use the models already here")  # fmt: skip
    g.add_argument(
        "--fp16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--no-fp16 decodes in float32 on CUDA (whisper's --fp16 False)",
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
        default=None,
        help="Silero voice activity detection before decoding (default: on; off with "
        "--whisper-defaults)",
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
    g.add_argument(
        "--vad-speech-pad-ms",
        type=int,
        default=d.vad_speech_pad_ms,
        help=f"padding around each speech region (default: {d.vad_speech_pad_ms})",
    )
    g.add_argument("--vad-min-speech-ms", type=int, default=d.vad_min_speech_ms,
                   help="speech regions shorter than this are dropped (default: 0)")  # fmt: skip
    g.add_argument("--vad-max-speech-s", type=float, default=None,
                   help="speech regions longer than this are split (default: never)")  # fmt: skip
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
    g.add_argument("--patience", type=float, default=d.patience,
                   help="beam search patience (default: 1.0)")  # fmt: skip
    g.add_argument(
        "--temperature",
        type=_temperatures,
        default=None,
        help="first temperature, falling back upward by the increment as whisper does, or an "
        "explicit comma-separated list (default: 0, that is 0,0.2,0.4,0.6,0.8,1)",
    )
    g.add_argument("--temperature-increment-on-fallback", type=_optional_float, default=0.2,
                   metavar="STEP", help="fallback step from --temperature up to 1; 0 or None: "
                   "no fallback (default: 0.2)")  # fmt: skip
    g.add_argument(
        "--compression-ratio-threshold",
        type=_optional_float,
        default=d.compression_ratio_threshold,
        help="fall back to the next temperature above this gzip ratio (default: 2.4)",
    )
    g.add_argument(
        "--logprob-threshold",
        type=_optional_float,
        default=d.log_prob_threshold,
        help="fall back below this average log-probability (default: -1.0)",
    )
    g.add_argument(
        "--no-speech-threshold",
        type=_optional_float,
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
    _add_whisper_knobs(p, d)
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
        "--rescore",
        action=argparse.BooleanOptionalAction,
        default=d.rescore,
        help="re-rank each window's best Whisper readings with a language model: Korean "
        "(Kiwi's); other languages as Whisper ranks them (default: on)",
    )
    k.add_argument(
        "--rescore-weight",
        type=float,
        default=d.rescore_weight,
        metavar="W",
        help="weight of the language model's score against Whisper's (default: the tuned one)",
    )
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


def _add_whisper_knobs(p: argparse.ArgumentParser, d: TranscribeOptions) -> None:
    """Whisper's and faster-whisper's other decoding options (their meaning and defaults)."""
    w = p.add_argument_group("more of Whisper's decoding options (docs/migrating.md)")
    w.add_argument("--carry-initial-prompt", action="store_true",
                   help="give the initial prompt to every window, not only the first")  # fmt: skip
    w.add_argument("--prefix", default=None, help="text the first window's output starts with")
    w.add_argument("--length-penalty", type=float, default=d.length_penalty,
                   help="length normalisation exponent of beam scores (default: 1)")  # fmt: skip
    w.add_argument(
        "--repetition-penalty",
        type=float,
        default=d.repetition_penalty,
        help="penalty on tokens already generated, >1 penalises (default: 1)",
    )
    w.add_argument("--no-repeat-ngram-size", type=int, default=d.no_repeat_ngram_size,
                   help="never repeat n-grams of this size (default: 0, off)")  # fmt: skip
    w.add_argument("--suppress-blank", action=argparse.BooleanOptionalAction,
                   default=d.suppress_blank, help="no blank first token (default: on)")  # fmt: skip
    w.add_argument("--suppress-tokens", type=_token_ids, default=d.suppress_tokens,
                   metavar="IDS", help="comma-separated token ids never generated; -1: "
                   "Whisper's symbols (default: -1)")  # fmt: skip
    w.add_argument("--prepend-punctuations", default=d.prepend_punctuations,
                   help="with word timestamps: marks joined to the next word")  # fmt: skip
    w.add_argument("--append-punctuations", default=d.append_punctuations,
                   help="with word timestamps: marks joined to the previous word")  # fmt: skip
    w.add_argument("--prompt-reset-on-temperature", type=float,
                   default=d.prompt_reset_on_temperature,
                   help="no previous text as prompt after a window decoded above this "
                   "temperature (default: 0.5)")  # fmt: skip
    w.add_argument("--hallucination-silence-threshold", type=_optional_float, default=None,
                   metavar="SECONDS", help="with word timestamps: skip silences longer than this "
                   "around a likely hallucination")  # fmt: skip
    w.add_argument(
        "--clip-timestamps",
        type=_clips,
        default=(),
        metavar="START,END,...",
        help="decode only these clips (seconds; the last end defaults to the end)",
    )
    w.add_argument("--multilingual", action="store_true",
                   help="detect the language again on every window")  # fmt: skip


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


def _carried_hotwords(args: argparse.Namespace) -> str | None:
    """``--carry-initial-prompt``: the initial prompt goes before every window's context, where
    malsori puts hotwords."""
    carried = args.initial_prompt if getattr(args, "carry_initial_prompt", False) else None
    parts = [p for p in (carried, args.hotwords) if p]
    return " ".join(parts) if parts else None


def _knobs(args: argparse.Namespace) -> dict[str, Any]:
    """The options only some commands have (``_add_whisper_knobs``, VAD details)."""
    names = (
        "patience", "prefix", "length_penalty", "repetition_penalty", "no_repeat_ngram_size",
        "suppress_blank", "suppress_tokens", "prepend_punctuations", "append_punctuations",
        "prompt_reset_on_temperature", "hallucination_silence_threshold", "multilingual",
        "vad_speech_pad_ms", "clip_timestamps",
    )  # fmt: skip
    found = {n: getattr(args, n) for n in names if hasattr(args, n)}
    if hasattr(args, "vad_min_speech_ms"):
        found["vad_min_speech_ms"] = args.vad_min_speech_ms
        found["vad_max_speech_s"] = args.vad_max_speech_s
    return found


def options_from_args(args: argparse.Namespace) -> TranscribeOptions:
    """The one place CLI arguments become a ``TranscribeOptions``."""
    whisper = getattr(args, "whisper_defaults", False)
    return TranscribeOptions(
        task=args.task,
        language=args.language,
        vad=(not whisper) if args.vad is None else args.vad,
        vad_threshold=args.vad_threshold,
        vad_min_silence_ms=args.vad_min_silence_ms,
        word_timestamps=args.word_timestamps,
        encoder_window_s=(
            FULL_ENCODER_WINDOW_S if args.encoder_window is None else args.encoder_window
        ),
        beam_size=args.beam_size,
        best_of=args.best_of,
        temperature=fallback_temperatures(
            args.temperature, getattr(args, "temperature_increment_on_fallback", 0.2)
        ),
        compression_ratio_threshold=args.compression_ratio_threshold,
        log_prob_threshold=args.logprob_threshold,
        no_speech_threshold=args.no_speech_threshold,
        condition_on_previous_text=args.condition_on_previous_text,
        initial_prompt=args.initial_prompt,
        hotwords=_carried_hotwords(args),
        hallucination_filter=args.hallucination_filter and not whisper,
        stock_phrases=args.stock_phrases,
        repetition_filter=args.repetition_filter and not whisper,
        korean_spacing=args.korean_spacing and not whisper,
        korean_punctuation=args.korean_punctuation and not whisper,
        number_style=args.number_style,
        rescore=args.rescore and not whisper,
        rescore_weight=args.rescore_weight,
        glossary=_glossaries(args.glossary),
        subtitles=None if whisper else subtitle_spec_from_args(args),
        **_knobs(args),
    )


def load_model_from_args(args: argparse.Namespace) -> Any:
    import os

    from ..model import load_model, resolve_device

    model_dir = getattr(args, "model_dir", None)
    if model_dir:  # whisper's download root: malsori keeps its models there for this run
        os.environ["MALSORI_HOME"] = model_dir
    compute_type = args.compute_type
    if getattr(args, "fp16", None) is False and compute_type == "auto":
        compute_type = "float32" if resolve_device(args.device) == "cuda" else "auto"
    return load_model(
        args.model,
        device=args.device,
        compute_type=compute_type,
        threads=args.threads,
        device_index=getattr(args, "device_index", 0),
        download=not getattr(args, "local_files_only", False),
    )


def report_error(error: BaseException | str) -> None:
    print(f"malsori: error: {error}", file=sys.stderr)


def output_stem(source: str) -> str:
    return "stdin" if source == "-" else Path(source).stem


def segment_line(start: float, end: float, text: str) -> str:
    return f"[{format_timestamp(start)} --> {format_timestamp(end)}] {text.strip()}"
