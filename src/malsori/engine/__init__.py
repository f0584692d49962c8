"""One engine behind every door: a loaded model that takes work from anyone at any time and
decodes it in shared batches (``Engine``), with Whisper's rules from ``malsori.decoding``."""

from .core import Engine
from .decoders import PriorityDecoder
from .intake import InternalError
from .requests import Priority, RequestCancelledError, RequestHandle

__all__ = [
    "Engine",
    "InternalError",
    "Priority",
    "PriorityDecoder",
    "RequestCancelledError",
    "RequestHandle",
]
