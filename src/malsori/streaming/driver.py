"""Runs an ``OnlineProcessor`` against a live source: a feeder thread inserts blocks as they
arrive while the caller's thread decodes as soon as enough new audio is there. When decoding is
slower than real time the next iteration simply takes all the audio that arrived meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import numpy as np

from .engine import OnlineProcessor
from .events import StreamEvent

logger = logging.getLogger(__name__)

_POLL_S = 0.02  # how often the decoding loop looks for new audio when it has none


def drive(
    engine: OnlineProcessor,
    blocks: Iterable[np.ndarray],
    on_event: Callable[[StreamEvent], None],
    *,
    stop: threading.Event | None = None,
    lockstep: bool = False,
) -> None:
    """Feed ``blocks`` into ``engine`` and decode until they end or ``stop`` is set, then
    ``finish``. Every event goes to ``on_event`` in the calling thread, in order.

    ``lockstep``: no feeder thread; each block is inserted and decoded as soon as enough has
    arrived, as if decoding took no time (replaying a file as fast as it decodes, tests).
    """
    stop = stop or threading.Event()
    if lockstep:
        for block in blocks:
            if stop.is_set():
                break
            engine.insert_audio_chunk(block)
            for event in engine.process_iter():
                on_event(event)
        for event in engine.finish():
            on_event(event)
        return
    fed_all = threading.Event()
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            for block in blocks:
                if stop.is_set():
                    break
                engine.insert_audio_chunk(block)
        except BaseException as e:  # reported in the calling thread below
            failure.append(e)
        finally:
            fed_all.set()

    feeder = threading.Thread(target=feed, name="malsori-stream-feed", daemon=True)
    feeder.start()
    try:
        while not stop.is_set():
            if engine.ready():
                for event in engine.process_iter():
                    on_event(event)
            elif fed_all.is_set():
                break
            else:
                fed_all.wait(_POLL_S)
    finally:
        stop.set()
        feeder.join(timeout=5)
    if failure:
        raise failure[0]
    for event in engine.finish():
        on_event(event)
