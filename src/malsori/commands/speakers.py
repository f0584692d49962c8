"""``malsori speakers add|list|remove`` and the ``--diarize`` options of transcribe and batch."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from ..diarize.options import DiarizeOptions, KnownSpeaker, check_speaker_name
from ..errors import InvalidOptionError
from ..results import Transcript


def add_diarize_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "speakers (see docs/diarization.md; needs the diarize extra)",
        "Speakers enrolled with `malsori speakers add` are recognised by name.",
    )
    g.add_argument("--diarize", action="store_true",
                   help="label who speaks: [SPEAKER_1] or the name in every format")  # fmt: skip
    g.add_argument("--num-speakers", type=int, metavar="N", help="exactly N speakers")
    g.add_argument("--min-speakers", type=int, default=1, metavar="N",
                   help="at least N speakers (default: 1)")  # fmt: skip
    g.add_argument("--max-speakers", type=int, metavar="N", help="at most N speakers (default: 8)")
    g.add_argument("--speaker", action="append", default=[], metavar="NAME=FILE",
                   help="a known voice: label it NAME (repeatable)")  # fmt: skip
    g.add_argument("--no-enrolled-speakers", dest="enrolled_speakers", action="store_false",
                   help="ignore the speakers enrolled with `malsori speakers add`")  # fmt: skip


def _named_file(value: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep or not name.strip() or not path:
        raise InvalidOptionError(f"--speaker {value!r}: give NAME=FILE")
    return name.strip(), path


def diarize_options_from_args(args: argparse.Namespace) -> DiarizeOptions | None:
    """The diarization the arguments ask for (None: no --diarize); known voices embedded here,
    so that a bad reference fails before anything is transcribed."""
    asked = (args.num_speakers, args.max_speakers, *args.speaker)
    if not args.diarize:
        if any(a is not None for a in asked) or args.min_speakers != 1:
            raise InvalidOptionError("speaker options need --diarize")
        return None
    from ..diarize import SpeakerStore, reference_speaker
    from ..diarize.encoder import require_diarize_extra
    from ..model import resolve_device

    require_diarize_extra()  # before anything is transcribed
    device = resolve_device(args.device)
    counts = DiarizeOptions(args.num_speakers, args.min_speakers, args.max_speakers, device=device)
    given = [_named_file(v) for v in args.speaker]
    if len(given) != len({n for n, _ in given}):
        raise InvalidOptionError("--speaker: a name is given twice")
    for name, _ in given:
        check_speaker_name(name)
    known: dict[str, KnownSpeaker] = {}
    if args.enrolled_speakers:
        known.update((k.name, k) for k in SpeakerStore().load())
    for name, path in given:  # a name given here wins over the same name enrolled
        known[name] = reference_speaker(name, path, device=device)
    return dataclasses.replace(counts, known=tuple(known.values()))


def diarize_for_cli(
    transcript: Transcript, audio: Any, options: DiarizeOptions | None, source: str
) -> Transcript:
    """The transcript with speakers; on failure the transcript without them and a warning."""
    if options is None:
        return transcript
    from ..diarize import diarize_or_keep

    labelled, error = diarize_or_keep(transcript, audio, options)
    if error is not None:
        print(f"malsori: warning: {source}: no speaker labels: {error}", file=sys.stderr)
    return labelled


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "speakers",
        help="enrol voices that --diarize labels by name",
        description="Keep named voices (their embeddings, never the audio) so that --diarize "
        "names them in every file. Stored in the user's data folder (MALSORI_SPEAKERS overrides).",
    )
    s = p.add_subparsers(dest="speakers_command", required=True, metavar="COMMAND")
    add = s.add_parser("add", help="enrol NAME from a recording of their voice (10 s or more)")
    add.add_argument("name")
    add.add_argument("file", help="audio or video with NAME speaking alone")
    add.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    add.set_defaults(handler=run_add)
    ls = s.add_parser("list", help="show the enrolled speakers")
    ls.set_defaults(handler=run_list)
    rm = s.add_parser("remove", help="forget an enrolled speaker")
    rm.add_argument("name")
    rm.set_defaults(handler=run_remove)


def run_add(args: argparse.Namespace) -> int:
    from ..diarize import SpeakerStore, reference_speaker
    from ..model import resolve_device

    check_speaker_name(args.name)
    speaker = reference_speaker(args.name, args.file, device=resolve_device(args.device))
    store = SpeakerStore()
    replaced = store.add(speaker)
    print(f"{'replaced' if replaced else 'enrolled'} {args.name} in {store.path}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from ..diarize import SpeakerStore

    for speaker in SpeakerStore().load():
        print(speaker.name)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from ..diarize import SpeakerStore

    SpeakerStore().remove(args.name)
    print(f"removed {args.name}")
    return 0
