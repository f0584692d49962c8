"""The ``malsori`` command line. Thin: parse arguments, call the library, report.

Every library error becomes one line on stderr (``malsori: error: ...``) and the exit code of
its class (see ``malsori.errors``); tracebacks of internal errors only with ``--verbose``.
openai-whisper's and whisper-ctranslate2's spellings are rewritten first (``malsori.compat.cli``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .commands.common import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    add_decode_arguments,
    options_from_args,
    report_error,
    with_subtitle_words,
)
from .compat.cli import BOOL_WORDS, Switches, translate_args, unrecognized_message
from .errors import MalsoriError

__all__ = ["add_decode_arguments", "build_parser", "main", "options_from_args",
           "with_subtitle_words"]  # fmt: skip

logger = logging.getLogger("malsori")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="malsori",
        description="Speech recognition with Whisper: transcribe, translate, detect language.",
        epilog="Exit codes: 0 ok, 1 internal error, 2 bad usage, 3 bad input, 4 model problem, "
        "5 output not writable, 6 subtitle lint found violations, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"malsori {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log details and show tracebacks")  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    from .commands import register_all

    register_all(sub)
    parser.set_defaults(subparsers=sub.choices)
    return parser


_TOP_SWITCHES = ("-v", "--verbose")
_TOP_EXITS = ("-h", "--help", "--version")


def _command_at(argv: list[str]) -> int:
    """Where the command (or the first argument that is not a top-level switch) is."""
    i = 0
    while i < len(argv) and argv[i] in _TOP_SWITCHES:
        i += 1
        if i < len(argv) and argv[i].lower() in BOOL_WORDS:  # --verbose True
            i += 1
    return i


def route(argv: list[str], commands: Sequence[str]) -> list[str]:
    """``malsori FILE... [OPTIONS]`` and ``malsori --model X FILE`` run ``transcribe``, as
    ``whisper FILE`` does; a word that is neither a command nor a file stays for argparse."""
    i = _command_at(argv)
    if i >= len(argv) or argv[i] in commands or argv[i] in _TOP_EXITS:
        return argv
    word = argv[i]
    looks_like_file = (
        word == "-" or os.path.exists(word) or "." in os.path.basename(word) or os.sep in word
    )
    if word.startswith("-") or looks_like_file:
        return [*argv[:i], "transcribe", *argv[i:]]
    return argv


def _prepare(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The command routed, and the anchors' spellings rewritten for ``transcribe``."""
    commands: dict[str, argparse.ArgumentParser] = parser.get_default("subparsers")
    argv = route(argv, list(commands))
    at = _command_at(argv)
    if at >= len(argv) or argv[at] != "transcribe":
        return argv
    head = [a for a in argv[:at] if a.lower() not in BOOL_WORDS]  # -v True before the command
    return [
        *head,
        "transcribe",
        *translate_args(argv[at + 1 :], Switches.of(commands["transcribe"])),
    ]


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    args, extras = parser.parse_known_args(argv)
    if extras:
        command = getattr(args, "command", None)
        sub = parser.get_default("subparsers").get(command) if command else None
        target = sub or parser
        target.error(unrecognized_message(extras, target))
    return args


def _wants_details(argv: Sequence[str]) -> bool:
    """-v/--verbose (or --verbose True) anywhere: tracebacks on errors."""
    for i, a in enumerate(argv):
        if a in ("-v", "--verbose"):
            following = argv[i + 1].lower() if i + 1 < len(argv) else ""
            if BOOL_WORDS.get(following, True):
                return True
        if a.lower() in ("--verbose=true", "-v=true"):
            return True
    return False


def _set_up_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # faster-whisper warns on every silent file; malsori reports that itself
        logging.getLogger("faster_whisper").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    verbose = _wants_details(raw)
    try:
        parser = build_parser()
        args = _parse(parser, _prepare(parser, raw))
        _set_up_logging(bool(args.verbose) or getattr(args, "live_verbose", None) is True)
        if not getattr(args, "handler", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except MalsoriError as e:  # an expected error: its one line says it all, even with -v
        report_error(e)
        return e.exit_code
    except KeyboardInterrupt:
        print("malsori: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `malsori ... | head`
        sys.stderr.close()
        return EXIT_OK
    except Exception as e:  # the last line of defence: one line, not a traceback
        if verbose:
            logger.exception("internal error")
        print(
            f"malsori: internal error: {type(e).__name__}: {e} (rerun with --verbose for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
