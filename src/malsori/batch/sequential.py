"""The simple engine: one file at a time through ``Model.transcribe``, exactly as the CLI does.

Slower than the packed engine on many short files, but its output is byte for byte what
``malsori transcribe`` writes (including the previous text carried between windows of a long
file), which makes it the reference when comparing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import MalsoriError
from ..options import TranscribeOptions
from .engine_api import Deliver, internal_error

if TYPE_CHECKING:
    from ..model import Model
    from .inputs import BatchInput

logger = logging.getLogger(__name__)


class SequentialEngine:
    name = "sequential"

    def __init__(self, model: Model, options: TranscribeOptions):
        self.model = model
        self.options = options

    def run(self, items: Sequence[BatchInput], deliver: Deliver) -> None:
        for index, item in enumerate(items):
            try:
                transcript = self.model.transcribe(item.source, self.options)
            except MalsoriError as e:
                deliver(index, e)
                continue
            except (RuntimeError, ValueError, IndexError, MemoryError) as e:
                deliver(index, internal_error(item.source, e))
                continue
            deliver(index, transcript)
