"""The C allocator's settings for a process that decodes on several threads.

glibc's ``malloc`` gives each thread that allocates while another holds the lock an arena of its
own, up to eight per core. CTranslate2's encoder and beam search, the prepare threads (audio
decoding, Silero VAD) and the server's worker threads all allocate and free buffers of megabytes;
memory freed in one thread's arena cannot serve another thread, so the process's resident memory
climbs well above what it holds at any moment. Two arenas keep that in check at no measured cost
in speed: ``malsori batch`` on a 13-minute recording with ``base`` on two cores peaked at 1297 MiB
with glibc's default (16 arenas) and 1059 MiB with two, in 24.2 s and 22.4 s (``docs/batch.md``).

``cap_malloc_arenas`` is called by ``malsori.load_model``, before CTranslate2 starts its threads.
A ``MALLOC_ARENA_MAX`` in the environment is the user's choice (glibc reads it at start) and is
left alone, as is every C library other than glibc.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys
import threading

logger = logging.getLogger(__name__)

DEFAULT_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h

_lock = threading.Lock()
_capped: int | None = None


def _glibc() -> ctypes.CDLL | None:
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt  # noqa: B018 - present in every glibc; checked, not assumed
    except (OSError, AttributeError):
        return None
    return libc


def cap_malloc_arenas(limit: int = DEFAULT_ARENAS) -> int | None:
    """Cap glibc's malloc arenas at ``limit`` for the rest of the process; the cap in force
    (an earlier call's), or None when nothing was set (not glibc, or ``MALLOC_ARENA_MAX`` set).

    Arenas that already exist stay; threads that start allocating later share the capped ones.
    """
    global _capped
    if limit < 1:
        raise ValueError(f"arena limit must be at least 1, got {limit}")
    with _lock:
        if _capped is not None:
            return _capped
        if "MALLOC_ARENA_MAX" in os.environ:
            return None
        libc = _glibc()
        if libc is None:
            return None
        if libc.mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(limit)) != 1:
            logger.debug("mallopt(M_ARENA_MAX, %d) was refused", limit)
            return None
        logger.debug("malloc arenas capped at %d", limit)
        _capped = limit
        return limit


def trim_free_memory() -> bool:
    """Give the memory glibc holds free (after a model is unloaded) back to the system, with
    ``malloc_trim(0)``: without it the process's resident size stays at its peak. Whether
    anything was returned (False on other C libraries)."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    return bool(libc.malloc_trim(ctypes.c_size_t(0)))
