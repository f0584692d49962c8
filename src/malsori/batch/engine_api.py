"""What every batch engine provides, and how it hands results back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from ..errors import MalsoriError
from ..results import Transcript
from .inputs import BatchInput

logger = logging.getLogger(__name__)

# Called once per input, from the engine's thread: the index into the engine's ``items`` and
# either the transcript or the error that stopped that file (the others go on).
Deliver = Callable[[int, Transcript | MalsoriError], None]


class FileFailedError(MalsoriError):
    """An unexpected error while transcribing one file of a batch (a bug: please report it).

    The batch goes on with the other files; the traceback is in the batch log.
    """

    exit_code = 1


def internal_error(source: object, error: BaseException) -> FileFailedError:
    """Wrap an unexpected error of one file so the batch can record it and go on."""
    logger.error("%s: unexpected %s", source, type(error).__name__, exc_info=error)
    wrapped = FileFailedError(f"{source}: internal error: {type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped


class Engine(Protocol):
    name: str

    def run(self, items: Sequence[BatchInput], deliver: Deliver) -> None:
        """Transcribe every item, calling ``deliver`` once for each, in any order."""
        ...
