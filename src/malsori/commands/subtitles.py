"""``malsori subtitles lint`` and ``malsori subtitles fix``: check and re-flow SRT/WebVTT files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import InvalidOptionError, MalsoriError
from ..subtitles.lint import lint_cues
from ..subtitles.parse import TextCue, read_subtitles
from ..subtitles.profiles import SubtitleProfile, SubtitleSpec
from ..subtitles.reflow import reflow, resolve_for_file
from ..writers import SrtWriter, TimedText, VttWriter, write_atomic
from .common import add_subtitle_arguments, subtitle_spec_from_args

# `malsori subtitles lint` found at least one violation (documented with the other exit codes).
EXIT_VIOLATIONS = 6


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "subtitles",
        help="check SRT/WebVTT files against a subtitle profile, or re-flow them",
        description="Check subtitle files against a profile (lint) or re-flow them to meet it "
        "(fix). See docs/subtitles.md.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    lint = actions.add_parser(
        "lint",
        help="list every cue that breaks the profile",
        description="List every violation with its cue number. Exit code 0 when there is none, "
        f"{EXIT_VIOLATIONS} when there is one, 3 when a file cannot be read.",
    )
    lint.add_argument("files", nargs="+", metavar="FILE", help=".srt or .vtt files")
    add_subtitle_arguments(lint, flags=("-p", "--profile"))
    lint.set_defaults(handler=run_lint)
    fix = actions.add_parser(
        "fix",
        help="re-flow a file's cues to meet the profile (no audio needed)",
        description="Re-flow FILE's words into new cues that meet the profile. Without the "
        "audio, the times of the words inside a cue are estimated from their length.",
    )
    fix.add_argument("file", metavar="FILE", help=".srt or .vtt file")
    fix.add_argument("-o", "--output", required=True, metavar="OUT",
                     help="where to write (.srt or .vtt; - for standard output, in FILE's "
                     "format)")  # fmt: skip
    add_subtitle_arguments(fix, flags=("-p", "--profile"))
    fix.set_defaults(handler=run_fix)
    p.set_defaults(handler=lambda _: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def _spec(args: argparse.Namespace) -> SubtitleSpec:
    spec = subtitle_spec_from_args(args)
    if spec is None or not spec.enabled:
        raise InvalidOptionError("profile 'none' has no limits to check or re-flow against")
    return spec


def _profile(spec: SubtitleSpec, cues: Sequence[TextCue]) -> SubtitleProfile:
    profile = resolve_for_file(spec, cues)
    if profile is None:
        raise InvalidOptionError("profile 'none' has no limits to check or re-flow against")
    return profile


def run_lint(args: argparse.Namespace) -> int:
    spec = _spec(args)
    code = 0
    for name in args.files:
        try:
            parsed = read_subtitles(name)
        except MalsoriError as e:
            print(f"malsori: error: {e}", file=sys.stderr)
            code = code or e.exit_code
            continue
        profile = _profile(spec, parsed.cues)
        found = lint_cues(parsed.cues, profile)
        for v in found:
            print(f"{name}: {v}")
        cues = {v.cue for v in found}
        print(
            f"{name}: {len(found)} violation(s) in {len(cues)} of {len(parsed.cues)} cues "
            f"(profile {profile.name})",
            file=sys.stderr,
        )
        if found and not code:
            code = EXIT_VIOLATIONS
    return code


def run_fix(args: argparse.Namespace) -> int:
    spec = _spec(args)
    parsed = read_subtitles(args.file)
    profile = _profile(spec, parsed.cues)
    cues = reflow(parsed.cues, profile)
    out = args.output
    fmt = parsed.format if out == "-" else Path(out).suffix.lower().lstrip(".")
    if fmt not in ("srt", "vtt"):
        raise InvalidOptionError(f"cannot tell the output format of {out!r}: use .srt or .vtt")
    writer = SrtWriter() if fmt == "srt" else VttWriter()
    text = writer.render_cues([TimedText(c.start, c.end, c.text) for c in cues])
    if out == "-":
        sys.stdout.write(text)
    else:
        write_atomic(out, text)
    left = lint_cues(cues, profile)
    print(
        f"{args.file}: {len(parsed.cues)} cues in, {len(cues)} out (profile {profile.name}); "
        f"{len(left)} violation(s) left" + (f", e.g. {left[0]}" if left else ""),
        file=sys.stderr,
    )
    return 0
