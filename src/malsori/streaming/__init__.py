"""Real-time transcription: the online processor (``engine``), its commit policy (``policy``),
the events it emits (``events``), caption lines (``captions``) and audio sources (``sources``:
microphone, real-time file replay). Transports (the WebSocket, ``malsori live``) live elsewhere
and only call ``OnlineProcessor``.
"""

from __future__ import annotations

from .engine import OnlineProcessor, StreamingOptions, StreamStats
from .events import Final, Partial, StreamEvent
from .policy import LocalAgreement

__all__ = [
    "Final",
    "LocalAgreement",
    "OnlineProcessor",
    "Partial",
    "StreamEvent",
    "StreamStats",
    "StreamingOptions",
]
