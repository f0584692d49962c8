"""The ``malsori`` command line. Thin: parse arguments, call the library, report.

Every library error becomes one line on stderr (``malsori: error: ...``) and the exit code of
its class (see ``malsori.errors``); tracebacks only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import logging
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
    return parser


def _set_up_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # faster-whisper warns on every silent file; malsori reports that itself
        logging.getLogger("faster_whisper").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _set_up_logging(args.verbose)
        if not getattr(args, "handler", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except MalsoriError as e:
        if verbose:
            logger.exception("failed")
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
