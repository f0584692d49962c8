"""Turns of an OpenAI Realtime transcription session: audio formats, server VAD, items.

OpenAI's protocol cuts a live stream into items: each committed stretch of the input audio
buffer (committed by the client, or by server VAD when speech stops) is transcribed on its own.
``TurnEngine`` does that on malsori's live decoder: every item gets its own ``OnlineProcessor``
(each item on its own, as on OpenAI: the earlier items' text is not its prompt; with malsori's
``base`` model that prompt made turns worse, not better), fed while the item is spoken and decoded
when it is committed, all at once as a file is (a long turn is decoded ahead in pieces of
``lookahead_s``); its text goes out as ``delta`` events, then ``completed``. No HTTP here; the
events are plain dicts of OpenAI's shapes, without ``event_id`` (the connection adds it).
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import av
import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import AudioDecodeError
from ..streaming import Final, OnlineProcessor, StreamEvent
from .streams import StreamSession

logger = logging.getLogger(__name__)

AudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]
FORMAT_RATES: dict[str, int] = {"pcm16": 24000, "g711_ulaw": 8000, "g711_alaw": 8000}
VAD_FRAME = 512  # samples (32 ms at 16 kHz): Silero's frame
_CONTEXT = 64  # samples of the previous frame Silero sees with each frame
_HYSTERESIS = 0.15  # speech goes on while the probability stays above threshold - this
MIN_COMMIT_MS = 100  # OpenAI refuses to commit less audio than this


def _ulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (u >> 4) & 7, u & 0x0F
    sample = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -sample, sample).astype(np.int16)


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (a >> 4) & 7, a & 0x0F
    sample = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(a & 0x80, sample, -sample).astype(np.int16)


_G711 = {"g711_ulaw": _ulaw_table(), "g711_alaw": _alaw_table()}


class AudioConverter:
    """One session's input audio (``pcm16`` at 24 kHz, G.711 u-law or A-law at 8 kHz) to 16 kHz
    mono float32, resampled continuously across messages."""

    def __init__(self, fmt: AudioFormat):
        self.format = fmt
        self.rate = FORMAT_RATES[fmt]
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

    def samples_in(self, data: bytes) -> int:
        """Input samples in ``data`` (before resampling)."""
        return len(data) // 2 if self.format == "pcm16" else len(data)

    def convert(self, data: bytes) -> np.ndarray:
        if self.format == "pcm16":
            if len(data) % 2:
                raise AudioDecodeError("pcm16 audio must hold whole 2-byte samples")
            pcm = np.frombuffer(data, dtype="<i2")
        else:
            pcm = _G711[self.format][np.frombuffer(data, dtype=np.uint8)]
        if pcm.size == 0:
            return np.zeros(0, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm.astype(np.int16)).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self.rate
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        joined = np.concatenate(out) if out else np.zeros(0, dtype=np.int16)
        return joined.astype(np.float32) / 32768.0


@dataclass(frozen=True)
class ServerVad:
    """OpenAI's ``server_vad`` turn detection."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500


def silero_probabilities() -> Callable[[np.ndarray], np.ndarray]:
    """Speech probability of each 512-sample frame from faster-whisper's Silero model, for one
    stream: the model's state and context carry over from call to call, as if the whole stream
    had been given at once (faster-whisper's own call starts afresh each time)."""
    from faster_whisper.vad import get_vad_model

    session = get_vad_model().session
    state = {
        "h": np.zeros((1, 1, 128), dtype=np.float32),
        "c": np.zeros((1, 1, 128), dtype=np.float32),
        "context": np.zeros(_CONTEXT, dtype=np.float32),
    }

    def probabilities(frames: np.ndarray) -> np.ndarray:
        batch = frames.astype(np.float32, copy=False).reshape(-1, VAD_FRAME)
        context = np.concatenate([state["context"][None, :], batch[:-1, -_CONTEXT:]], axis=0)
        out, state["h"], state["c"] = session.run(
            None, {"input": np.concatenate([context, batch], axis=1), "h": state["h"],
                   "c": state["c"]}
        )  # fmt: skip
        state["context"] = batch[-1, -_CONTEXT:].copy()
        return np.asarray(out).reshape(-1)

    return probabilities


@dataclass
class _Item:
    id: str
    processor: OnlineProcessor | None
    audio_samples: int = 0
    committed: bool = False
    cancelled: bool = False
    held: list[dict[str, Any]] = field(default_factory=list)  # deltas before the commit
    text: list[str] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)


def _logprobs(words: Any) -> list[dict[str, Any]]:
    """Per-word log probabilities in OpenAI's token shape (malsori's decoder reports word
    probabilities, not token ones: each entry is one word)."""
    return [
        {
            "token": w.word,
            "logprob": math.log(max(w.probability, 1e-12)),
            "bytes": list(w.word.encode()),
        }
        for w in words
    ]


class TurnEngine:
    """A session's input audio buffer, turn detection and items (see the module's doc).

    ``insert_audio_chunk``, ``commit`` and ``clear`` run on the connection's loop; ``step`` on a
    scheduler thread; ``emit`` must be safe to call from both, and keep order.
    """

    def __init__(
        self,
        new_processor: Callable[[], OnlineProcessor],
        emit: Callable[[list[dict[str, Any]]], None],
        *,
        vad: ServerVad | None,
        probabilities: Callable[[np.ndarray], np.ndarray] | None = None,
        logprobs: bool = False,
        lookahead_s: float = 20.0,
    ):
        self.new_processor = new_processor
        self.emit = emit
        self.vad = vad
        self._probabilities = probabilities
        self.logprobs = logprobs
        # An item is decoded when it is committed, all at once (as a file: the most accurate);
        # a turn still being spoken is decoded ahead once this much of it waits (bounds memory
        # and the wait at its commit).
        self.lookahead_s = lookahead_s
        self.source = "<openai realtime>"
        self.decode_seconds = 0.0
        self._lock = threading.Lock()
        self._items: deque[_Item] = deque()
        self._open: _Item | None = None  # the item audio goes to (being spoken)
        self._last_committed: str | None = None
        self._received = 0  # samples of the session
        self._uncommitted = 0  # samples since the last commit or clear
        self._vad_tail = np.zeros(0, dtype=np.float32)  # samples short of a whole VAD frame
        self._prefix = np.zeros(0, dtype=np.float32)  # recent audio before speech
        self._silence = 0  # samples of silence since speech was last heard

    # -- the LiveStream side --------------------------------------------------------------------

    @property
    def received_seconds(self) -> float:
        return self._received / SAMPLE_RATE

    def pending_seconds(self) -> float:
        with self._lock:
            return sum(i.processor.pending_seconds() for i in self._items if i.processor)

    def insert_audio_chunk(self, audio: np.ndarray) -> None:
        self._received += audio.size
        self._uncommitted += audio.size
        if self.vad is None:
            self._feed(self._open_item(), audio)
            return
        frames = np.concatenate([self._vad_tail, audio])
        whole = frames.size - frames.size % VAD_FRAME
        self._vad_tail = frames[whole:]
        if whole:
            self._detect(frames[:whole])

    # -- server VAD ------------------------------------------------------------------------------

    def _detect(self, frames: np.ndarray) -> None:
        assert self.vad is not None and self._probabilities is not None
        probs = self._probabilities(frames)
        vad = self.vad
        pad = int(vad.prefix_padding_ms * SAMPLE_RATE / 1000)
        silence = int(vad.silence_duration_ms * SAMPLE_RATE / 1000)
        end_of_frames = self._received - self._vad_tail.size
        start_of_frames = end_of_frames - frames.size
        for n, p in enumerate(probs):
            frame = frames[n * VAD_FRAME : (n + 1) * VAD_FRAME]
            at = start_of_frames + n * VAD_FRAME
            if self._open is None:
                if p >= vad.threshold:
                    self._speech_started(at, frame)
                else:
                    self._remember(frame, pad)
                continue
            self._feed(self._open, frame)
            self._silence = 0 if p >= vad.threshold - _HYSTERESIS else self._silence + frame.size
            if self._silence >= silence:
                item = self._open
                end_ms = (at + frame.size) * 1000 // SAMPLE_RATE
                self.emit(
                    [
                        {
                            "type": "input_audio_buffer.speech_stopped",
                            "audio_end_ms": end_ms,
                            "item_id": item.id,
                        }
                    ]
                )
                self._commit(item)

    def _remember(self, frame: np.ndarray, pad: int) -> None:
        """Keep the last ``pad`` samples before speech (the prefix padding)."""
        self._prefix = np.concatenate([self._prefix, frame])[-pad:] if pad else frame[:0]

    def _speech_started(self, at: int, frame: np.ndarray) -> None:
        item = self._open_item()
        start = at - self._prefix.size
        self.emit(
            [
                {
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": max(start, 0) * 1000 // SAMPLE_RATE,
                    "item_id": item.id,
                }
            ]
        )
        self._feed(item, np.concatenate([self._prefix, frame]))
        self._prefix = frame[:0]
        self._silence = 0

    # -- items -----------------------------------------------------------------------------------

    def _open_item(self) -> _Item:
        if self._open is None:
            self._open = _Item("item_" + secrets.token_hex(8), self.new_processor())
            with self._lock:
                self._items.append(self._open)
        return self._open

    def _feed(self, item: _Item, samples: np.ndarray) -> None:
        if samples.size and item.processor is not None:
            item.processor.insert_audio_chunk(samples)
            item.audio_samples += samples.size

    def commit(self) -> bool:
        """The client commits the buffer; False when it holds too little audio to commit."""
        if self._uncommitted * 1000 < MIN_COMMIT_MS * SAMPLE_RATE:
            return False
        if self._open is None:  # no speech in it: an empty item
            self._open = _Item("item_" + secrets.token_hex(8), None)
            with self._lock:
                self._items.append(self._open)
        self._commit(self._open)
        return True

    def buffered_ms(self) -> float:
        return self._uncommitted * 1000 / SAMPLE_RATE

    def _commit(self, item: _Item) -> None:
        self.emit(
            [
                {
                    "type": "input_audio_buffer.committed",
                    "previous_item_id": self._last_committed,
                    "item_id": item.id,
                }
            ]
        )
        self._last_committed = item.id
        self._open = None
        self._uncommitted = 0
        self._silence = 0
        with self._lock:
            item.committed = True

    def clear(self) -> None:
        """Drop the uncommitted audio (and the item it was becoming)."""
        item, self._open = self._open, None
        self._uncommitted = 0
        self._vad_tail = self._vad_tail[:0]
        self._prefix = self._prefix[:0]
        if item is not None:
            with self._lock:
                item.cancelled = True
                if item in self._items:
                    self._items.remove(item)
        self.emit([{"type": "input_audio_buffer.cleared"}])

    def finish_open(self) -> None:
        """Commit what is being spoken (the stream is ending) when it holds enough audio."""
        item = self._open
        if item is not None and item.audio_samples * 1000 >= MIN_COMMIT_MS * SAMPLE_RATE:
            self._commit(item)

    # -- decoding (a scheduler thread) ------------------------------------------------------------

    def has_work(self) -> bool:
        with self._lock:
            head = self._items[0] if self._items else None
        if head is None:
            return False
        return head.committed or self._ahead(head)

    def _ahead(self, item: _Item) -> bool:
        """Whether an item still being spoken has enough audio waiting to be decoded ahead."""
        processor = item.processor
        return (
            processor is not None
            and processor.ready()
            and processor.pending_seconds() >= self.lookahead_s
        )

    def idle(self) -> bool:
        """Nothing committed is waiting to be transcribed."""
        with self._lock:
            return not any(i.committed for i in self._items)

    def step(self) -> None:
        with self._lock:
            head = self._items[0] if self._items else None
        if head is None:
            return
        if head.committed:
            events = head.processor.finish() if head.processor is not None else []
            self._text(head, events)
            self._complete(head)
            with self._lock:
                if self._items and self._items[0] is head:
                    self._items.popleft()
        elif head.processor is not None and self._ahead(head):
            self._text(head, head.processor.process_iter())

    def _text(self, item: _Item, events: list[StreamEvent]) -> None:
        out = []
        for event in events:
            if not isinstance(event, Final) or not event.text:
                continue
            delta = event.text if item.text else event.text.lstrip()
            item.text.append(delta)
            payload: dict[str, Any] = {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": item.id,
                "content_index": 0,
                "delta": delta,
            }
            if self.logprobs:
                payload["logprobs"] = _logprobs(event.words)
                item.logprobs += payload["logprobs"]
            out.append(payload)
        if item.processor is not None:
            self.decode_seconds = item.processor.stats.decode_seconds
        with self._lock:
            if item.cancelled:
                return
            if not item.committed:
                item.held += out
                return
            held, item.held = item.held, []
        if held or out:
            self.emit(held + out)

    def _complete(self, item: _Item) -> None:
        with self._lock:
            if item.cancelled:
                return
            held, item.held = item.held, []
        transcript = "".join(item.text).strip()
        event: dict[str, Any] = {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item.id,
            "content_index": 0,
            "transcript": transcript,
            "usage": {"type": "duration", "seconds": round(item.audio_samples / SAMPLE_RATE, 3)},
        }
        if self.logprobs:
            event["logprobs"] = item.logprobs
        self.emit([*held, event])

    def fail_head(self, error: dict[str, Any]) -> None:
        """The head item's transcription failed: a ``failed`` event, and on to the next."""
        with self._lock:
            head = self._items.popleft() if self._items else None
        if head is not None and head.committed and not head.cancelled:
            self.emit(
                [
                    {
                        "type": "conversation.item.input_audio_transcription.failed",
                        "item_id": head.id,
                        "content_index": 0,
                        "error": error,
                    }
                ]
            )


class TurnSession(StreamSession):
    """A ``StreamSession`` over a ``TurnEngine``: decodes its items, one step at a time; a
    failed transcription fails its item, not the session."""

    turns: TurnEngine

    def wants_work(self) -> bool:
        if self.done.is_set():
            return False
        return self.turns.has_work() or (self.finishing and self.turns.idle())

    def step(self) -> None:
        try:
            if self.turns.has_work():
                self.turns.step()
            elif self.finishing and self.turns.idle():
                self.done.set()
                self.emit(None)
        except AudioDecodeError as e:
            self.turns.fail_head(
                {
                    "type": "invalid_request_error",
                    "code": "audio_unreadable",
                    "message": str(e),
                    "param": None,
                }
            )
        except Exception:  # reported as the item's failure; the session goes on
            logger.exception("live stream %s: a transcription failed", self.id)
            self.turns.fail_head(
                {
                    "type": "server_error",
                    "code": "transcription_failed",
                    "message": "internal error",
                    "param": None,
                }
            )
