"""The engine seen as a model, for the doors that decode through ``Model.transcribe``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..options import TranscribeOptions
from ..results import Transcript
from .requests import Priority

if TYPE_CHECKING:
    from ..audio import AudioSource
    from .core import Engine


class PriorityDecoder:
    """The engine seen as a model (``streaming.engine.Decoder``): each ``transcribe`` is a
    request of ``priority``, so live streams decode through the engine, ahead of other work."""

    def __init__(self, engine: Engine, priority: Priority = Priority.LIVE):
        self.engine = engine
        self.priority = priority

    @property
    def name(self) -> str:
        return self.engine.model.name

    @property
    def multilingual(self) -> bool:
        return self.engine.model.multilingual

    @property
    def info(self) -> Any:
        return self.engine.model.info

    def transcribe(
        self, source: AudioSource, options: TranscribeOptions | None = None
    ) -> Transcript:
        return self.engine.submit(source, options, priority=self.priority).result()
