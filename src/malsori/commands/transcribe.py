"""``malsori transcribe``, ``malsori detect-language`` and ``malsori languages``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..audio import STDIN, check_path, probe
from ..compat.whisper_output import WhisperLayout, whisper_writers
from ..diarize.options import DiarizeOptions
from ..errors import InvalidOptionError, MalsoriError, OutputError
from ..languages import LANGUAGES, language_name
from ..model import DEVICES, resolve_device
from ..options import TranscribeOptions
from ..results import Segment
from ..writers import FORMATS, Writer, get_writer, parse_formats, speaker_tag, write_outputs
from .common import (
    add_decode_arguments,
    add_model_arguments,
    add_subtitle_arguments,
    load_model_from_args,
    options_from_args,
    output_stem,
    report_error,
    segment_line,
    with_subtitle_words,
)
from .speakers import add_diarize_arguments, diarize_for_cli, diarize_options_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transcribe",
        help="transcribe or translate audio and video files",
        description="Transcribe (or translate to English) audio or video files. Prints the "
        "transcript as it is decoded; writes files with -o/-f. The options of openai-whisper's "
        "`whisper` and of `whisper-ctranslate2` are taken with their spelling too "
        "(--word_timestamps True, --vad_filter False, --language None; docs/migrating.md).",
    )
    p.add_argument("inputs", nargs="+", metavar="FILE", help="audio/video files, or - for stdin")
    add_model_arguments(p)
    add_decode_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument(
        "-o",
        "--output-dir",
        default=None,
        help="write transcript files here (- writes one format to stdout)",
    )
    o.add_argument(
        "-f",
        "--output-format",
        default=None,
        help=f"all, or a comma-separated list of {','.join(FORMATS)} "
        "(default: all when -o is given; -f alone writes to the current folder)",
    )
    o.add_argument("-q", "--quiet", action="store_true",
                   help="no live transcript, no progress bar")  # fmt: skip
    o.add_argument("--whisper-defaults", action="store_true",
                   help="openai-whisper's defaults and output files: no VAD, no post-processing "
                   "or filters, one cue per segment, whisper's SRT/VTT/JSON, every format into "
                   "the current folder")  # fmt: skip
    o.add_argument("-v", "--verbose", dest="live_verbose", default=None,
                   action=argparse.BooleanOptionalAction,
                   help="log details and show tracebacks; --no-verbose: no live transcript "
                   "(whisper's --verbose False)")  # fmt: skip
    o.add_argument("--pretty-json", action="store_true",
                   help="with --whisper-defaults: indent whisper's JSON")  # fmt: skip
    o.add_argument(
        "--print-colors",
        action="store_true",
        help="colour the live transcript's words by confidence (word timestamps)",
    )
    add_subtitle_arguments(p)
    add_diarize_arguments(p)
    w = p.add_argument_group(
        "whisper's subtitle layout (its meaning; turns word timestamps on)",
        "--max_line_width N: characters per line (whisper's spelling only: malsori's "
        "--max-line-width is the profile's limit).",
    )
    w.add_argument("--max_line_width", dest="whisper_line_width", type=int, default=None,
                   help=argparse.SUPPRESS)  # fmt: skip
    w.add_argument(
        "--max-line-count",
        type=int,
        default=None,
        metavar="N",
        help="lines per subtitle (with --max_line_width; else segments stay whole)",
    )
    w.add_argument("--max-words-per-line", type=int, default=None, metavar="N",
                   help="words per subtitle (without --max_line_width)")  # fmt: skip
    w.add_argument(
        "--highlight-words",
        action="store_true",
        help="repeat each subtitle per word, underlining the word being said",
    )
    b = p.add_argument_group("the packed engine")
    b.add_argument(
        "--batched",
        action="store_true",
        help="decode through the engine, windows in batches (as `malsori batch`)",
    )
    b.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="windows per batch with --batched (default: 8)")  # fmt: skip
    p.add_argument("--version", action="version", version=f"malsori {__version__}")
    p.set_defaults(handler=run_transcribe)

    d = sub.add_parser(
        "detect-language",
        help="show the most likely spoken languages",
        description="Detect the spoken language from the first speech in each file.",
    )
    d.add_argument("inputs", nargs="+", metavar="FILE", help="audio/video files, or - for stdin")
    d.add_argument("--top", type=int, default=5, help="languages to show (default: 5)")
    d.add_argument("--segments", type=int, default=1,
                   help="30-second windows to average over (default: 1)")  # fmt: skip
    d.add_argument("--vad", action=argparse.BooleanOptionalAction, default=True,
                   help="skip non-speech before detecting (default: on)")  # fmt: skip
    add_model_arguments(d)
    d.set_defaults(handler=run_detect_language)

    lang = sub.add_parser("languages", help="list Whisper's language codes")
    lang.set_defaults(handler=run_languages)


@dataclass
class _Failures:
    codes: list[int] = field(default_factory=list)

    def add(self, error: MalsoriError, source: str | None = None) -> None:
        message = str(error)
        bare = source is None or source == STDIN or source in message
        report_error(message if bare else f"{source}: {message}")
        self.codes.append(error.exit_code)

    @property
    def exit_code(self) -> int:
        return self.codes[0] if self.codes else 0


def _check_inputs(inputs: list[str], failures: _Failures) -> list[str]:
    if inputs.count(STDIN) > 1:
        raise InvalidOptionError("standard input (-) can be given only once")
    good = []
    for source in inputs:
        if source == STDIN:
            good.append(source)
            continue
        try:
            check_path(source)
            good.append(source)
        except MalsoriError as e:
            failures.add(e)
    return good


def _output_plan(args: argparse.Namespace, inputs: list[str]) -> tuple[str | None, tuple[str, ...]]:
    if args.output_dir is None and args.output_format is None and not args.whisper_defaults:
        return None, ()
    formats = parse_formats(args.output_format or "all")
    directory = args.output_dir or "."
    if directory == "-":
        if len(formats) != 1:
            raise InvalidOptionError("-o - writes to stdout: choose exactly one format with -f")
        if len(inputs) != 1:
            raise InvalidOptionError("-o - writes to stdout: give exactly one input")
        return directory, formats
    stems = [output_stem(s) for s in inputs]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        raise InvalidOptionError(
            f"several inputs would write the same output name ({', '.join(clash)}); "
            "use `malsori batch`, which mirrors the input folders"
        )
    _check_writable(Path(directory))
    return directory, formats


def _check_writable(out: Path) -> None:
    """Fail before loading the model and transcribing, not after (the folder is made later)."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write to {out}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {out}: {existing} is not writable")


def _coloured(seg: Segment) -> str:
    """whisper-ctranslate2's --print_colors: words red to green by probability."""
    colours = ("\033[31m", "\033[33m", "\033[32m")  # below 0.5, below 0.8, above
    parts = [
        f"{colours[(w.probability >= 0.5) + (w.probability >= 0.8)]}{w.word}\033[0m"
        for w in seg.words
    ]
    return "".join(parts).strip() if parts else seg.text


class _Live:
    """Prints segments as they are decoded and keeps a progress bar over audio time."""

    def __init__(self, source: str, enabled: bool, show_lines: bool, colours: bool = False):
        self.bar = None
        self.show_lines = show_lines
        self.colours = colours
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            total = None
            if source != STDIN:
                try:
                    total = probe(source).declared_duration
                except MalsoriError:
                    total = None
            self.bar = tqdm(
                total=round(total, 1) if total else None,
                unit="s",
                unit_scale=False,
                desc=Path(source).name if source != STDIN else "stdin",
                file=sys.stderr,
                leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s "
                "[{elapsed}<{remaining}]"
                if total
                else None,
            )

    def __call__(self, seg: Segment) -> None:
        if self.show_lines:
            line = segment_line(seg.start, seg.end, _coloured(seg) if self.colours else seg.text)
            if self.bar is not None:
                self.bar.write(line, file=sys.stdout)
            else:
                print(line, flush=True)
        if self.bar is not None:
            target = min(seg.end, self.bar.total or seg.end)
            self.bar.update(max(0.0, target - self.bar.n))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _layout(args: argparse.Namespace) -> WhisperLayout:
    layout = WhisperLayout(
        args.whisper_line_width, args.max_line_count, args.max_words_per_line,
        args.highlight_words,
    )  # fmt: skip
    for name, value in (("--max_line_width", layout.max_line_width),
                        ("--max-line-count", layout.max_line_count),
                        ("--max-words-per-line", layout.max_words_per_line)):  # fmt: skip
        if value is not None and value < 1:
            raise InvalidOptionError(f"{name} must be at least 1, got {value}")
    return layout


@contextmanager
def _decoder(args: argparse.Namespace, model: Any) -> Iterator[Any]:
    """What transcribes each input: the model itself, or the packed engine (``--batched``)."""
    if not args.batched:
        yield model
        return
    from ..engine import Engine

    size = args.batch_size or 8
    if size < 1:
        raise InvalidOptionError(f"--batch-size must be at least 1, got {size}")
    with Engine(model, batch_size=size) as engine:
        yield engine


def run_transcribe(args: argparse.Namespace) -> int:
    if args.device not in DEVICES:  # before anything is read: mps, xpu, ... cannot be honoured
        resolve_device(args.device)
    if args.live_verbose is False:  # whisper's --verbose False: no text as it is decoded
        args.quiet = True
    directory, formats = _output_plan(args, args.inputs)
    layout = _layout(args)
    options = with_subtitle_words(options_from_args(args), formats)
    diarize = diarize_options_from_args(args)
    if (layout.active or diarize is not None) and not options.word_timestamps:
        options = options.replace(word_timestamps=True)  # speakers are given word by word
    writers = whisper_writers(
        layout, whisper_files=args.whisper_defaults, pretty_json=args.pretty_json
    )
    failures = _Failures()
    inputs = _check_inputs(args.inputs, failures)
    if not inputs:
        return failures.exit_code
    model = load_model_from_args(args)
    options.check_model(multilingual=model.multilingual, model_name=model.name)
    with _decoder(args, model) as decoder:
        plan = _Plan(directory, formats, writers, diarize)
        return _transcribe_all(args, decoder, inputs, options, plan, failures)


@dataclass(frozen=True)
class _Plan:
    """Where and how each transcript goes: folder, formats, writers, speakers."""

    directory: str | None
    formats: tuple[str, ...]
    writers: dict[str, Writer]
    diarize: DiarizeOptions | None


def _transcribe_all(
    args: argparse.Namespace,
    decoder: Any,
    inputs: list[str],
    options: TranscribeOptions,
    plan: _Plan,
    failures: _Failures,
) -> int:
    directory, formats, writers = plan.directory, plan.formats, plan.writers
    to_stdout = directory == "-"
    for source in inputs:
        if len(inputs) > 1 and not args.quiet:
            print(f"==> {source}", file=sys.stderr, flush=True)
        # With --diarize the lines are printed once the speakers are known.
        show_lines = not args.quiet and not to_stdout and plan.diarize is None
        live = _Live(source, enabled=not args.quiet, show_lines=show_lines,
                     colours=args.print_colors)  # fmt: skip
        try:
            # Diarization reads the audio again: standard input is read once, for both.
            audio = sys.stdin.buffer.read() if source == STDIN and plan.diarize else source
            transcript = decoder.transcribe(audio, options, on_segment=live)
        except MalsoriError as e:
            live.close()
            failures.add(e, source)
            continue
        live.close()
        transcript = diarize_for_cli(transcript, audio, plan.diarize, source)
        if not transcript.segments and not args.quiet:
            print(f"malsori: {source}: no speech found", file=sys.stderr)
        if to_stdout:
            sys.stdout.write((writers.get(formats[0]) or get_writer(formats[0])).render(transcript))
            sys.stdout.flush()
        elif directory is not None:
            try:
                paths = write_outputs(transcript, directory, output_stem(source), formats, writers)
            except MalsoriError as e:
                failures.add(e, source)
                continue
            if not args.quiet:
                print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
        elif args.quiet:  # nothing printed live and no files: print the text itself
            text = get_writer("txt").render(transcript) if plan.diarize else transcript.text + "\n"
            sys.stdout.write(text)
        elif plan.diarize is not None:
            for seg in transcript.segments:
                print(segment_line(seg.start, seg.end, speaker_tag(seg.speaker) + seg.text))
        if not args.quiet:
            lang = transcript.language
            how = f"detected, p={lang.probability:.2f}" if lang.detected else "given"
            print(
                f"{source}: {transcript.duration:.1f} s of audio in "
                f"{transcript.processing_time:.1f} s (RTFx {transcript.rtfx:.1f}), "
                f"language {lang.language} ({how})",
                file=sys.stderr,
            )
    return failures.exit_code


def run_detect_language(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise InvalidOptionError("--top must be at least 1")
    failures = _Failures()
    inputs = _check_inputs(args.inputs, failures)
    if not inputs:
        return failures.exit_code
    model = load_model_from_args(args)
    for source in inputs:
        try:
            info = model.detect_language(
                source, vad=args.vad, language_detection_segments=args.segments
            )
        except MalsoriError as e:
            failures.add(e, source)
            continue
        if len(inputs) > 1:
            print(f"==> {source}")
        for code, p in info.candidates[: args.top]:
            print(f"{code:<4} {language_name(code):<16} {p:7.2%}")
    return failures.exit_code


def run_languages(args: argparse.Namespace) -> int:
    for code, name in sorted(LANGUAGES.items()):
        print(f"{code:<4} {name.title()}")
    return 0
