"""What every batch engine provides, and how it hands results back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ..engine.intake import InternalError
from ..engine.intake import internal_error as internal_error
from ..errors import MalsoriError
from ..results import Transcript
from .inputs import BatchInput

# Called once per input, from the engine's thread: the index into the engine's ``items`` and
# either the transcript or the error that stopped that file (the others go on).
Deliver = Callable[[int, Transcript | MalsoriError], None]


# An unexpected error in one file (a bug): the engine's, so that batch and server say the same.
FileFailedError = InternalError


class Engine(Protocol):
    name: str

    def run(self, items: Sequence[BatchInput], deliver: Deliver) -> None:
        """Transcribe every item, calling ``deliver`` once for each, in any order."""
        ...
