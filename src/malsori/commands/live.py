"""``malsori live``: real-time captions from a microphone, or from a file replayed at real speed.

Partial text is shown in place on a terminal; final lines are printed with timestamps; on stop
(end of file, or Ctrl-C) the transcript and SRT are written. Microphones need the ``live`` extra.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import TextIO

import numpy as np

from ..errors import InvalidOptionError
from ..streaming.engine import StreamingOptions
from ..writers import parse_formats, write_outputs
from .common import (
    add_decode_arguments,
    add_model_arguments,
    add_subtitle_arguments,
    load_model_from_args,
    segment_line,
)
from .common import options_from_args as decode_options_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "live",
        help="real-time captions from a microphone or a file replayed at real speed",
        description="Transcribe as you speak: partial text shows in place, final lines are "
        "printed with timestamps, and the transcript and SRT are written when you stop "
        "(Ctrl-C) or the file ends. Microphones need `pip install 'malsori[live]'`.",
    )
    s = p.add_argument_group("input")
    s.add_argument("--file", metavar="FILE", help="replay this audio file instead of a microphone")
    s.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="replay --file at real speed (default: on; off: as fast as decoding)",
    )
    s.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="replay speed factor with --realtime (default: 1.0)",
    )
    s.add_argument(
        "--input-device",
        metavar="DEVICE",
        help="microphone: index or part of the name (see --list-devices)",
    )
    s.add_argument("--list-devices", action="store_true", help="list audio input devices, exit")
    add_model_arguments(p)
    add_decode_arguments(p)
    st = p.add_argument_group("streaming")
    st.add_argument(
        "--min-chunk",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="decode again after this much new audio (default: 0.5)",
    )
    st.add_argument(
        "--endpoint-ms",
        type=int,
        default=500,
        help="silence after speech that makes its text final at once (default: 500)",
    )
    st.add_argument(
        "--decode-budget",
        type=float,
        default=StreamingOptions.decode_budget_s,
        metavar="SECONDS",
        help="decode with --beam-size while decodes take at most this long on average, "
        "greedily while they take longer (default: %(default)s; 0: always --beam-size)",
    )
    st.add_argument(
        "--stream-fallback",
        action="store_true",
        help="retry a decode that fails Whisper's checks at higher temperatures, as a file "
        "decode does (default: off; the next decode is the retry, and the fallback costs "
        "seconds of latency)",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "-o",
        "--output-dir",
        default=".",
        help="where the transcript is written on stop (default: current folder)",
    )
    o.add_argument(
        "-f",
        "--output-format",
        default="txt,srt",
        help="formats written on stop (default: txt,srt; 'none' writes nothing)",
    )
    o.add_argument("--name", help="file name stem (default: the file's, or live-DATE-TIME)")
    o.add_argument("-q", "--quiet", action="store_true", help="no partial text, only final lines")
    add_subtitle_arguments(p)
    p.set_defaults(handler=run_live)


class _Display:
    """Final lines on stdout; the open line and the partial text in place on a terminal."""

    def __init__(self, out: TextIO, status: TextIO, show_partial: bool):
        self.out = out
        self.status = status
        self.in_place = show_partial and status.isatty()
        self.line: list[str] = []  # final text of the open segment
        self.line_start: float | None = None
        self.partial = ""

    def __call__(self, event: object) -> None:
        from ..streaming import Final, Partial

        if isinstance(event, Partial):
            self.partial = event.text
        elif isinstance(event, Final):
            if self.line_start is None and event.words:
                self.line_start = event.start
            self.line.append(event.text)
            if event.segment_end:
                self._clear()
                text = "".join(self.line)
                # A line that starts at 0.0 s starts there: not "unset" (falsy)
                start = event.start if self.line_start is None else self.line_start
                if text.strip():
                    self.out.write(segment_line(start, event.end, text))
                    self.out.write("\n")
                    self.out.flush()
                self.line, self.line_start = [], None
        self._show()

    def _clear(self) -> None:
        if self.in_place:
            self.status.write("\r\033[K")

    def _show(self) -> None:
        if not self.in_place:
            return
        text = ("".join(self.line) + " \033[2m" + self.partial + "\033[0m").strip()
        self.status.write("\r\033[K" + text[-200:])
        self.status.flush()


def _list_devices() -> int:
    from ..streaming.sources import list_input_devices

    devices = list_input_devices()
    if not devices:
        print("no audio input devices", file=sys.stderr)
        return 3
    for d in devices:
        mark = "*" if d.is_default else " "
        print(f"{mark} {d.index:3d}  {d.name}  ({d.channels} ch, {d.default_rate:.0f} Hz)")
    return 0


def run_live(args: argparse.Namespace) -> int:
    from ..streaming import OnlineProcessor
    from ..streaming.driver import drive
    from ..streaming.sources import FileReplay, Microphone, pick_device

    if args.list_devices:
        return _list_devices()
    formats = () if args.output_format == "none" else parse_formats(args.output_format)
    if args.speed <= 0:
        raise InvalidOptionError(f"--speed must be positive, got {args.speed}")
    options = decode_options_from_args(args)
    streaming = StreamingOptions(
        min_chunk_s=args.min_chunk,
        endpoint_silence_ms=args.endpoint_ms,
        encoder_window_s=args.encoder_window,
        fallback=args.stream_fallback,
        decode_budget_s=args.decode_budget or None,
    )
    stop = threading.Event()
    blocks: Iterable[np.ndarray]
    if args.file:
        replay = FileReplay(args.file, realtime=args.realtime, speed=args.speed)
        blocks, stem, label = replay, Path(args.file).stem, args.file
        stopper = replay.stop
    else:
        mic = Microphone(pick_device(args.input_device))
        blocks, stem, label = mic, time.strftime("live-%Y%m%d-%H%M%S"), mic.device.name
        stopper = mic.stop
    model = load_model_from_args(args)
    engine = OnlineProcessor(model, options, streaming, source=label)

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        stop.set()  # the first Ctrl-C stops capture and writes the transcript
        stopper()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second one quits

    previous = signal.signal(signal.SIGINT, on_interrupt)
    display = _Display(sys.stdout, sys.stderr, show_partial=not args.quiet)
    try:
        if isinstance(blocks, Microphone):
            with blocks:
                print(f"listening on {blocks.device.name} (Ctrl-C to stop)", file=sys.stderr)
                drive(engine, blocks, display, stop=stop)
        else:
            drive(engine, blocks, display, stop=stop, lockstep=not args.realtime)
    finally:
        signal.signal(signal.SIGINT, previous)
    transcript = engine.transcript()
    if formats:
        paths = write_outputs(transcript, args.output_dir, args.name or stem, formats)
        print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
