"""Audio input: audio and video files FFmpeg (through PyAV) decodes, as 16 kHz mono float32, in
blocks.

Only the demuxers in ``AUDIO_DEMUXERS`` may open an input, and only as a local file: FFmpeg's
playlists (concat, HLS), protocols and text formats would read other files or addresses named
inside the bytes, which uploads make hostile.

Long inputs are never held whole: ``AudioStream.blocks`` yields bounded blocks, so a three-hour
lecture costs a window of memory, not 691 MB of float32. Errors keep FFmpeg's own message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from . import decoding
from .errors import AudioDecodeError, AudioNotFoundError, EmptyAudioError

logger = logging.getLogger(__name__)

SAMPLE_RATE = decoding.SAMPLE_RATE  # Hz: what Whisper's feature extractor expects
FRAME_SAMPLES = 160  # 10 ms at 16 kHz
STDIN = "-"

# A decoded length this much shorter than the container's declared length means the file was cut
# short (both bounds: codecs pad or trim a few milliseconds legitimately).
_TRUNCATION_SLACK_S = 1.0
_TRUNCATION_SLACK_FRACTION = 0.05

AudioSource = str | os.PathLike[str] | bytes | BinaryIO | np.ndarray

# The only FFmpeg demuxers malsori lets open an input, whoever sent it: audio and audio-video
# containers that hold their media inside the bytes given. Left out on purpose: everything that
# reads other files or URLs (concat, hls, dash, image2, sdp, rtp, rtsp, tee, segment, ...), text
# formats (subtitles, ffmetadata, tty), virtual inputs (lavfi, data) and headerless raw PCM.
# FFmpeg matches each name against any part of a demuxer's name ("mov" allows "mov,mp4,m4a,...").
AUDIO_DEMUXERS: tuple[str, ...] = (
    "wav", "w64", "flac", "mp3", "ogg", "matroska", "webm", "mov", "aac", "aiff", "caf", "amr",
    "ac3", "eac3", "dts", "wv", "ape", "tta", "au", "voc", "mpc", "mpc8", "tak", "asf", "avi",
    "flv", "mpeg", "mpegts", "nistsphere",
)  # fmt: skip
# Protocols for the one top-level open: the local file named, nothing else.
_PROTOCOLS = "file"


@dataclass(frozen=True)
class AudioInfo:
    """What the container says about the audio, before decoding."""

    path: str
    format: str  # container format as FFmpeg names it ("wav", "mp3", "ogg", "mov,mp4,...")
    codec: str
    sample_rate: int
    channels: int
    declared_duration: float | None  # seconds, when the container states it


def check_path(path: str | os.PathLike[str]) -> Path:
    """Raise a clear error unless ``path`` is an existing, non-empty regular file."""
    p = Path(path)
    if not p.exists():
        raise AudioNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise AudioNotFoundError(f"{p}: is a directory, not an audio file")
    if not p.is_file():
        raise AudioNotFoundError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise EmptyAudioError(f"{p}: file is empty")
    return p


@contextlib.contextmanager
def materialize(source: str | os.PathLike[str] | bytes | BinaryIO) -> Iterator[Path]:
    """A path for any source: files as they are; stdin, bytes and streams spooled to a temp file.

    Spooling to disk (not memory) lets FFmpeg seek in formats that need it (MP4 with its index at
    the end) and keeps memory flat for long inputs from a pipe.
    """
    if isinstance(source, str | os.PathLike) and os.fspath(source) != STDIN:
        yield check_path(source)
        return
    with tempfile.TemporaryDirectory(prefix="malsori-in-") as tmp:
        target = Path(tmp) / "input"
        with open(target, "wb") as out:
            if isinstance(source, bytes):
                out.write(source)
            elif isinstance(source, str | os.PathLike):  # "-": standard input
                shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
            else:
                shutil.copyfileobj(source, out, 1 << 20)
        if target.stat().st_size == 0:
            raise EmptyAudioError(
                "no data" if isinstance(source, bytes) else "standard input: no data"
            )
        yield target


def demuxer_options(
    demuxers: tuple[str, ...] = AUDIO_DEMUXERS, protocols: str = _PROTOCOLS
) -> dict[str, str]:
    """FFmpeg options that confine an open to ``demuxers`` and ``protocols`` (comma-separated)."""
    return {"format_whitelist": ",".join(demuxers), "protocol_whitelist": protocols}


def allowed_demuxer(name: str, demuxers: tuple[str, ...] = AUDIO_DEMUXERS) -> bool:
    """Whether a demuxer FFmpeg reports (``"mov,mp4,m4a,..."``) is in ``demuxers``."""
    return any(part in demuxers for part in name.split(","))


def _open(path: Path) -> av.container.InputContainer:
    """Open a local file with an allowed demuxer only (never FFmpeg's playlists or protocols).

    The ``file:`` prefix keeps a name like ``concat:a|b`` or ``http://...`` a file name.
    """
    try:
        container = av.open(
            "file:" + os.path.abspath(path),
            mode="r",
            metadata_errors="ignore",
            container_options=demuxer_options(),
        )
    except av.error.ArgumentError as e:  # FFmpeg's answer to a format not on the allow-list
        raise AudioDecodeError(
            f"{path}: not a decodable audio or video file (unsupported format)"
        ) from e
    except av.error.FFmpegError as e:
        raise AudioDecodeError(f"{path}: not a decodable audio or video file ({_reason(e)})") from e
    if not allowed_demuxer(container.format.name):  # FFmpeg already refused it; checked again
        container.close()
        raise AudioDecodeError(f"{path}: not a decodable audio or video file (unsupported format)")
    return container


def _reason(e: av.error.FFmpegError) -> str:
    return getattr(e, "strerror", None) or str(e)


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the container header; raise if there is no audio stream."""
    p = Path(path)
    with _open(p) as container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{p}: has no audio stream")
        stream = container.streams.audio[0]
        declared: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            declared = container.duration / av.time_base
        return AudioInfo(
            path=str(p),
            format=container.format.name,
            codec=stream.codec_context.name,
            sample_rate=stream.codec_context.sample_rate or 0,
            channels=stream.codec_context.channels or 0,
            declared_duration=declared,
        )


def _check_wav_length(path: Path) -> None:
    """A RIFF/WAVE file whose data chunk claims more bytes than the file holds was cut short."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        chunk_id, chunk_size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if chunk_id == b"data":
            # 0 and 0xFFFFFFFF mark a stream written without knowing its length: nothing to check.
            if chunk_size not in (0, 0xFFFFFFFF) and size - (pos + 8) < chunk_size:
                have = size - (pos + 8)
                raise AudioDecodeError(
                    f"{path}: truncated WAV file ({have} of {chunk_size} data bytes present)"
                )
            return
        pos += 8 + chunk_size + (chunk_size & 1)


def _check_ogg_end(path: Path) -> None:
    """An Ogg file whose last page lacks the end-of-stream flag was cut short."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"OggS":
                return
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - 65536))
            tail = f.read()
    except OSError:
        return
    last = tail.rfind(b"OggS")
    if last < 0 or last + 6 > len(tail):
        return
    header_type = tail[last + 5]
    if not header_type & 0x04:
        raise AudioDecodeError(
            f"{path}: truncated Ogg file (its last page does not end the stream)"
        )


# Containers whose header states the length exactly (others, like raw AAC or an MP3 without a
# Xing/Info/VBRI frame, only have FFmpeg's estimate from the first frames' bitrate).
_EXACT_LENGTH_FORMATS = ("wav", "flac", "ogg", "aiff", "mov,mp4", "matroska", "webm", "caf", "w64")


def _length_is_exact(path: Path, info: AudioInfo) -> bool:
    if info.format.startswith(_EXACT_LENGTH_FORMATS):
        return True
    if info.format != "mp3":
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(10)
            start = 0
            if head[:3] == b"ID3" and len(head) == 10:  # skip the ID3v2 tag (syncsafe size)
                start = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
            f.seek(start)
            first_frame = f.read(4096)
    except OSError:
        return False
    return any(tag in first_frame for tag in (b"Xing", b"Info", b"VBRI"))


class AudioStream:
    """One input, decoded on demand to 16 kHz mono float32 in bounded blocks."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = check_path(path)
        _check_wav_length(self.path)
        _check_ogg_end(self.path)
        self.info = probe(self.path)
        self.decoded_samples = 0

    def blocks(self, block_s: float = 30.0) -> Iterator[np.ndarray]:
        """Yield float32 blocks of about ``block_s`` seconds (the last may be shorter).

        Raises AudioDecodeError on corrupt data or when the audio ends well before the length the
        container declares, and EmptyAudioError when nothing decodes at all.
        """
        block = max(1, int(block_s * SAMPLE_RATE))
        pending: list[np.ndarray] = []
        pending_len = 0
        self.decoded_samples = 0
        for frame in self._frames():
            pending.append(frame)
            pending_len += frame.size
            while pending_len >= block:
                joined = np.concatenate(pending)
                yield joined[:block]
                rest = joined[block:]
                pending, pending_len = ([rest], rest.size) if rest.size else ([], 0)
        if pending_len:
            yield np.concatenate(pending)
        self._check_complete()

    def read(self) -> np.ndarray:
        """The whole input at once (fine for clips; use ``blocks`` for long inputs)."""
        parts = list(self.blocks(block_s=600.0))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def measure(self, limit_s: float) -> float:
        """The input's length in seconds, found by decoding it, or a value over ``limit_s`` as
        soon as it is known to be longer: a check of untrusted input that costs little.

        First the packets' stated durations are summed without decoding (an input that states
        more than ``limit_s`` is refused for the price of reading it, whatever its header says);
        then every frame is decoded on one thread, without resampling, counting its samples and
        stopping once past ``limit_s``. Raises as ``blocks`` does for corrupt, truncated or
        empty input.
        """
        with _open(self.path) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{self.path}: has no audio stream")
            stream = container.streams.audio[0]
            base = float(stream.time_base) if stream.time_base is not None else 0.0
            stated = 0.0
            for packet in container.demux(stream):
                stated += (packet.duration or 0) * base
                if stated > limit_s + _TRUNCATION_SLACK_S:  # the slack of a declared length
                    return stated
        seconds = 0.0
        self.decoded_samples = 0
        with _open(self.path) as container:
            stream = container.streams.audio[0]
            stream.codec_context.thread_count = 1
            try:
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        seconds += frame.samples / (frame.sample_rate or SAMPLE_RATE)
                        self.decoded_samples = round(seconds * SAMPLE_RATE)
                    if seconds > limit_s:
                        return seconds
            except av.error.FFmpegError as e:
                raise AudioDecodeError(
                    f"{self.path}: corrupt or truncated audio after {seconds:.1f} s ({_reason(e)})"
                ) from e
        self._check_complete()
        return seconds

    def _frames(self) -> Iterator[np.ndarray]:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        with _open(self.path) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{self.path}: has no audio stream")
            stream = container.streams.audio[0]
            try:
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        yield from self._resampled(resampler, frame)
                yield from self._resampled(resampler, None)  # flush the resampler
            except av.error.FFmpegError as e:
                raise AudioDecodeError(
                    f"{self.path}: corrupt or truncated audio after "
                    f"{self.decoded_samples / SAMPLE_RATE:.1f} s ({_reason(e)})"
                ) from e

    def _resampled(
        self, resampler: av.AudioResampler, frame: av.AudioFrame | None
    ) -> Iterator[np.ndarray]:
        for out in resampler.resample(frame):
            samples = out.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
            self.decoded_samples += samples.size
            yield samples

    def _check_complete(self) -> None:
        decoded = self.decoded_samples / SAMPLE_RATE
        if self.decoded_samples == 0:
            raise EmptyAudioError(f"{self.path}: contains no audio samples")
        declared = self.info.declared_duration if _length_is_exact(self.path, self.info) else None
        if declared and declared - decoded > max(
            _TRUNCATION_SLACK_S, _TRUNCATION_SLACK_FRACTION * declared
        ):
            raise AudioDecodeError(
                f"{self.path}: truncated audio (decoded {decoded:.1f} s of {declared:.1f} s)"
            )


def as_float32(audio: np.ndarray) -> np.ndarray:
    """Check a caller's waveform: 1-D, 16 kHz mono float32 in [-1, 1]."""
    if audio.ndim != 1:
        raise AudioDecodeError(f"waveform must be 1-D (16 kHz mono), got shape {audio.shape}")
    if audio.size == 0:
        raise EmptyAudioError("waveform has no samples")
    return audio.astype(np.float32, copy=False)
