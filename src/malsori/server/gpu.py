"""GPU memory in use, read through NVML (the NVIDIA driver's own library) when it is present.

No Python dependency: ``libnvidia-ml.so.1`` ships with the driver that CUDA needs anyway. On a
machine without it ``gpu_memory_used`` returns an empty list and /metrics has no GPU series.
"""

from __future__ import annotations

import ctypes
import logging

logger = logging.getLogger(__name__)


class _Memory(ctypes.Structure):
    _fields_ = (
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    )


class Nvml:
    """A minimal NVML binding: device count and memory per device."""

    def __init__(self) -> None:
        self._lib: ctypes.CDLL | None = None
        try:
            lib = ctypes.CDLL("libnvidia-ml.so.1")
            if lib.nvmlInit_v2() == 0:
                self._lib = lib
        except (OSError, AttributeError):
            self._lib = None

    @property
    def available(self) -> bool:
        return self._lib is not None

    def memory_used(self) -> list[tuple[int, int]]:
        """(device index, bytes used) for each GPU; empty without NVML."""
        if self._lib is None:
            return []
        count = ctypes.c_uint(0)
        if self._lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return []
        used = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            memory = _Memory()
            if self._lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                continue
            if self._lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) == 0:
                used.append((index, int(memory.used)))
        return used
