"""Where live audio comes from: a microphone (sounddevice/PortAudio, the ``live`` extra) or a file
replayed at real speed. Both yield 16 kHz mono float32 blocks as they become available.

``sounddevice`` is imported only when a microphone is used; without it the error names the extra.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from ..audio import SAMPLE_RATE, AudioStream
from ..errors import InputError, MissingExtraError, require_extra

logger = logging.getLogger(__name__)

BLOCK_S = 0.1  # seconds of audio per block handed on


class NoInputDeviceError(InputError):
    """No microphone (audio input device) exists, or the one asked for cannot be used."""


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_rate: float
    is_default: bool


def _sounddevice() -> Any:
    require_extra("live", ("sounddevice",), "microphone capture")
    try:
        import sounddevice
    except OSError as e:  # the module is there but the PortAudio library is not
        raise MissingExtraError(
            f"microphone capture needs the PortAudio library ({e}): "
            "apt-get install libportaudio2 (or your system's PortAudio package)"
        ) from e
    return sounddevice


def list_input_devices() -> list[InputDevice]:
    """Audio input devices PortAudio knows, the default one marked."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
    except sd.PortAudioError as e:
        raise NoInputDeviceError(f"cannot list audio devices: {e}") from e
    return [
        InputDevice(i, str(d["name"]), int(d["max_input_channels"]),
                    float(d["default_samplerate"]), i == default_in)
        for i, d in enumerate(devices)
        if int(d["max_input_channels"]) > 0
    ]  # fmt: skip


def pick_device(spec: str | None) -> InputDevice:
    """The device named by ``spec`` (an index or part of a name), else the default input."""
    devices = list_input_devices()
    if not devices:
        raise NoInputDeviceError(
            "no audio input device found: connect a microphone, or replay a file with "
            "`malsori live --file FILE --realtime`"
        )
    if spec is None:
        return next((d for d in devices if d.is_default), devices[0])
    if spec.isdigit():
        found = [d for d in devices if d.index == int(spec)]
    else:
        found = [d for d in devices if spec.lower() in d.name.lower()]
    if not found:
        names = ", ".join(f"{d.index}: {d.name}" for d in devices)
        raise NoInputDeviceError(f"no input device matches {spec!r} (inputs: {names})")
    return found[0]


def _to_mono(block: np.ndarray) -> np.ndarray:
    block = np.asarray(block, dtype=np.float32)
    return block.mean(axis=1) if block.ndim == 2 else block.reshape(-1)


class Microphone:
    """Captures one input device at 16 kHz mono; iterate for blocks, ``stop()`` to end.

    PortAudio resamples to 16 kHz when the device cannot record at that rate itself. Blocks are
    queued from PortAudio's thread; a consumer that falls far behind loses the oldest audio
    (logged) rather than growing memory without bound.
    """

    def __init__(self, device: InputDevice, *, max_queued_s: float = 60.0):
        self.device = device
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(
            maxsize=max(1, int(max_queued_s / BLOCK_S))
        )
        self._stream: Any = None
        self.dropped_blocks = 0

    def __enter__(self) -> Microphone:
        sd = _sounddevice()
        try:
            self._stream = sd.InputStream(
                device=self.device.index,
                channels=1,
                samplerate=SAMPLE_RATE,
                dtype="float32",
                blocksize=int(BLOCK_S * SAMPLE_RATE),
                callback=self._callback,
            )
            self._stream.start()
        except sd.PortAudioError as e:
            raise NoInputDeviceError(f"cannot record from {self.device.name!r}: {e}") from e
        return self

    def _callback(self, data: np.ndarray, frames: int, when: Any, status: Any) -> None:
        if status:
            logger.warning("audio input: %s", status)
        try:
            self._queue.put_nowait(_to_mono(data).copy())
        except queue.Full:
            self.dropped_blocks += 1

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
        self._queue.put(None)

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            block = self._queue.get()
            if block is None:
                return
            yield block


class FileReplay:
    """A file decoded and handed on block by block, at real speed when ``realtime``.

    ``clock`` and ``sleep`` are injectable for tests. Iterating yields each block when its audio
    would have been heard; ``position`` is the audio time handed on so far.
    """

    def __init__(
        self,
        path: str,
        *,
        realtime: bool = True,
        speed: float = 1.0,
        block_s: float = BLOCK_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.stream = AudioStream(path)
        self.realtime = realtime
        self.speed = speed
        self.block = max(1, int(block_s * SAMPLE_RATE))
        self.clock = clock
        self.sleep = sleep
        self.samples = 0
        self.started_at: float | None = None
        self._stop = threading.Event()

    @property
    def position(self) -> float:
        return self.samples / SAMPLE_RATE

    def stop(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[np.ndarray]:
        self.started_at = self.clock()
        for big in self.stream.blocks(block_s=5.0):
            for i in range(0, big.size, self.block):
                if self._stop.is_set():
                    return
                part = big[i : i + self.block]
                if self.realtime:
                    due = self.started_at + (self.samples + part.size) / SAMPLE_RATE / self.speed
                    wait = due - self.clock()
                    if wait > 0:
                        self.sleep(wait)
                self.samples += part.size
                yield part
