"""The packed engine as ``malsori batch`` uses it: every file submitted to one ``Engine`` as
batch work, each transcript delivered as soon as its file is done.

Files are prepared in the order given and handed to the model in that order, so a job packs the
same way every run; speech of many files (same language) shares 30 s windows, decoded in batches
(``malsori.engine``). Decoding rules are the same as ``transcribe``'s except that windows are
independent: the previous window's text is not used as a prompt.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

from ..engine import Engine, Priority
from ..errors import MalsoriError
from ..options import TranscribeOptions
from ..results import Transcript
from .engine_api import Deliver, internal_error
from .inputs import BatchInput

if TYPE_CHECKING:
    from ..model import Model

logger = logging.getLogger(__name__)


class PackedEngine:
    name = "packed"

    def __init__(self, model: Model, options: TranscribeOptions, *, batch_size: int = 8,
                 workers: int = 2):  # fmt: skip
        self.model = model
        self.options = options
        self.batch_size = batch_size
        self.workers = workers
        self.engine: Engine | None = None  # the last run's, for its statistics

    def run(self, items: Sequence[BatchInput], deliver: Deliver) -> None:
        """Submit every item; deliver each as it ends, in this thread (a ``KeyboardInterrupt``
        from ``deliver`` stops the run, and what is unfinished is dropped)."""
        finished: queue.SimpleQueue[tuple[int, Future[Transcript]]] = queue.SimpleQueue()
        with Engine(self.model, batch_size=self.batch_size, prepare_workers=self.workers) as engine:
            self.engine = engine
            for index, item in enumerate(items):
                handle = engine.submit(
                    item.source, self.options, priority=Priority.BATCH, name=str(item.source)
                )
                handle.add_done_callback(lambda f, i=index: finished.put((i, f)))  # type: ignore[misc]
            for _ in items:
                index, future = finished.get()
                error = future.exception()
                if error is None:
                    deliver(index, future.result())
                elif isinstance(error, MalsoriError):
                    deliver(index, error)
                else:  # cannot happen: the engine wraps what it does not expect
                    deliver(index, internal_error(items[index].source, error))
            logger.info("packed engine: %s", engine.stats.describe())
