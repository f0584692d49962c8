"""Other tools' interfaces on malsori: their names, defaults and result shapes, mapped onto
malsori's options and results and back. No decoding happens here.

- ``malsori.compat.cli``: openai-whisper's ``whisper`` and ``whisper-ctranslate2`` command-line
  spellings, taken by ``malsori transcribe`` (the anchors' option lists are data, in ``data/``).
- ``malsori.compat.faster_whisper``: faster-whisper's ``WhisperModel`` and
  ``BatchedInferencePipeline``.
- ``malsori.compat.whisper``: openai-whisper's ``load_model`` and ``transcribe``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

# What the peers do not do: malsori's defences and post-processing are off behind their APIs,
# so the same model gives the same text (the peers' own VAD switch decides VAD).
PEER_DEFAULTS: dict[str, Any] = {
    "hallucination_filter": False,
    "repetition_filter": False,
    "korean_spacing": False,
    "korean_punctuation": False,
    "rescore": False,
    "subtitles": None,
}


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


def lazy_segments(
    run: Callable[[Callable[[Any], None]], object], convert: Callable[[Any], T]
) -> Iterator[T]:
    """The peers' lazy generator of segments: decoding starts on the first ``next`` (in a
    thread that hands each segment over as soon as it is final) and errors surface there."""
    handed: queue.Queue[Any] = queue.Queue()

    def work() -> None:
        try:
            run(handed.put)
            handed.put(_DONE)
        except BaseException as e:  # handed to the caller's thread, raised there
            handed.put(_Failed(e))

    threading.Thread(target=work, name="malsori-compat", daemon=True).start()
    while (item := handed.get()) is not _DONE:
        if isinstance(item, _Failed):
            raise item.error
        yield convert(item)
