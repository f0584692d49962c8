"""The online processor: audio in, partial and final text out, as the audio arrives.

``OnlineProcessor`` keeps a rolling buffer of the audio not yet settled, decodes the whole
buffer again with the loaded model each time enough new audio has arrived (through
``Model.transcribe``: the same options, VAD, defences and post-processing as a file), and hands
each hypothesis to ``LocalAgreement`` (``policy``), which commits the words two consecutive
decodes agree on. The committed text that has left the buffer is the prompt of the next decode.

Silence costs nothing: Silero VAD (``malsori.vad``) looks at the buffer first; a buffer without
speech is never decoded, and when speech is followed by ``endpoint_silence_ms`` of silence the
speaker has stopped, so the last hypothesis is committed at once and the buffer restarts after
the speech. The buffer is trimmed once it is longer than ``trim_s``, at the end of a committed
sentence (or word), and never grows past ``max_buffer_s``. When decoding falls behind real time
(a decode starts with more than ``catch_up_s`` of new audio), the words it decodes up to a little
before the end of the audio are committed at once, as for a file, so the stream catches up
instead of lagging more.

Each decode is one encoder pass (``without_timestamps``: see ``malsori._whisper``), on a CPU
with a 15 s encoder window instead of Whisper's padded 30 s (``encoder_window_s``).

Interface (as whisper_streaming's): ``insert_audio_chunk`` (any thread), ``process_iter`` and
``finish`` (one thread at a time), then ``transcript()`` for the writers.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..audio import SAMPLE_RATE
from ..captions import CaptionBuilder
from ..errors import InvalidOptionError
from ..options import FULL_ENCODER_WINDOW_S, TranscribeOptions, check_encoder_window
from ..results import LanguageInfo, Transcript, Word
from ..sentences import is_sentence_end
from ..vad import speech_regions
from .budget import BeamGovernor
from .events import Final, Partial, StreamEvent
from .policy import LocalAgreement, join_words

logger = logging.getLogger(__name__)


# Committing without agreement (catching up, or a full buffer) when Whisper gave one segment:
# the words in this last stretch of the buffer wait, as they may be cut off (seconds).
_UNAGREED_TAIL_S = 2.0
# The encoder window on a CPU, where the encoder is about half of a decode (see StreamingOptions).
CPU_ENCODER_WINDOW_S = 15.0


class Decoder(Protocol):
    """What the engine needs of a model: ``malsori.Model`` is one."""

    @property
    def name(self) -> str: ...

    @property
    def multilingual(self) -> bool: ...

    def transcribe(self, source: Any, options: TranscribeOptions | None = None) -> Transcript: ...


@dataclass(frozen=True)
class StreamingOptions:
    """How the online processor buffers, commits and trims. Decoding itself is the
    ``TranscribeOptions`` given beside these."""

    # Decode again once at least this much new audio has arrived (seconds).
    min_chunk_s: float = 0.5
    # Consecutive hypotheses that must agree before a word is final (LocalAgreement-n).
    agreement: int = 2
    # Once the buffer is longer than this, cut it at the end of a committed segment (seconds).
    trim_s: float = 12.0
    # The buffer never grows past this: the oldest hypothesis words are committed and cut.
    max_buffer_s: float = 25.0
    # Look for speech with VAD first: silence is never decoded and ends an utterance.
    vad: bool = True
    # Silence after speech that ends an utterance: everything decoded is committed (ms).
    endpoint_silence_ms: int = 500
    # Padding kept around speech by the utterance detector (ms).
    speech_pad_ms: int = 100
    # Words ending this close to the end of the audio are not committed yet, even when two
    # decodes agree (seconds): the last word may be cut in half, and Whisper hears a word
    # reliably only with some audio after it. With 0.3 s, two decodes of a second or two of
    # Korean agreed on words that later decodes heard otherwise ("있어 주지" as "써주지"); 0.8 s
    # costs about 0.25 s of latency (scripts/bench_streaming.py, docs/streaming.md).
    commit_guard_s: float = 0.8
    # Characters of committed text (already out of the buffer) used as the decoder's prompt.
    prompt_chars: int = 200
    # Seconds of audio the encoder sees, at least (TranscribeOptions.encoder_window_s): None
    # picks 15 on a CPU, where the encoder is half of a decode's time, and 30 (Whisper's full
    # window, no cut) on a GPU. 30 is the most accurate; 15 about halves the commit latency.
    encoder_window_s: float | None = None
    # Catching up: when a decode starts with more than this much new audio (decoding is slower
    # than real time), the Whisper segments it completes are final at once, as in a file,
    # instead of waiting for a second decode to agree (seconds).
    catch_up_s: float = 4.0
    # Temperature fallback (``TranscribeOptions.temperature`` past its first value) in stream
    # decodes. Off: a decode that fails Whisper's checks stands as it is, since it is only a
    # hypothesis: nothing is final until the next decode agrees with it, and the next decode
    # comes within a second. With it, about 1 decode in 30 sampled five candidates at higher
    # temperatures, at 1.5 times the cost of a greedy decode, delaying every word in the buffer.
    fallback: bool = False
    # Beam width of the decode that ends an utterance (the speaker stopped): its words are final
    # at once, without a second decode to agree with, so it is decoded with care. None: the
    # beam of the decoding options, as every other decode.
    endpoint_beam_size: int | None = 5
    # The other decodes use the decoding options' beam while their running mean time stays
    # within this budget (seconds), and decode greedily while it does not (a slow CPU, a busy
    # server): the latency stays low on any machine, and a fast one gets the more accurate
    # beam search (``malsori.streaming.budget``). None: always the options' beam.
    decode_budget_s: float | None = 0.5

    def __post_init__(self) -> None:
        if self.min_chunk_s <= 0:
            raise InvalidOptionError(f"min_chunk_s must be positive, got {self.min_chunk_s}")
        if self.agreement < 2:
            raise InvalidOptionError(f"agreement needs at least 2, got {self.agreement}")
        if not 0 < self.trim_s < self.max_buffer_s <= 30.0:
            raise InvalidOptionError(
                "need 0 < trim_s < max_buffer_s <= 30 (one Whisper window), "
                f"got {self.trim_s} and {self.max_buffer_s}"
            )
        if self.endpoint_silence_ms < 100 or self.speech_pad_ms < 0:
            raise InvalidOptionError("endpoint silence must be at least 100 ms, padding >= 0")
        if self.commit_guard_s < 0:
            raise InvalidOptionError("commit_guard_s cannot be negative")
        if self.prompt_chars < 0:
            raise InvalidOptionError("prompt_chars cannot be negative")
        if self.encoder_window_s is not None:
            check_encoder_window(self.encoder_window_s)
        if self.endpoint_beam_size is not None and self.endpoint_beam_size < 1:
            raise InvalidOptionError("endpoint_beam_size must be at least 1")
        if self.decode_budget_s is not None and self.decode_budget_s <= 0:
            raise InvalidOptionError(
                f"decode_budget_s must be positive (or None), got {self.decode_budget_s}"
            )
        if self.catch_up_s <= self.min_chunk_s:
            raise InvalidOptionError("catch_up_s must be longer than min_chunk_s")

    def window_for(self, model: Any) -> float:
        """The encoder window for decoding on ``model``'s device."""
        if self.encoder_window_s is not None:
            return self.encoder_window_s
        info = getattr(model, "info", None)
        on_gpu = getattr(info, "device", "cpu") == "cuda"
        return FULL_ENCODER_WINDOW_S if on_gpu else CPU_ENCODER_WINDOW_S


@dataclass
class StreamStats:
    """Counters for benchmarks and logs."""

    decodes: int = 0
    decode_seconds: float = 0.0
    silent_skips: int = 0  # iterations where VAD found no speech: nothing decoded
    endpoints: int = 0  # utterances ended by silence
    forced_commits: int = 0  # words committed because the buffer reached max_buffer_s
    catch_up_commits: int = 0  # words committed without agreement while catching up
    greedy_decodes: int = 0  # decodes made greedily because beam decodes were over budget
    iteration_seconds: list[float] = field(default_factory=list)


class OnlineProcessor:
    """One audio stream: feed audio, call ``process_iter`` often, ``finish`` at the end."""

    def __init__(
        self,
        model: Decoder,
        options: TranscribeOptions | None = None,
        streaming: StreamingOptions | None = None,
        *,
        source: str = "<stream>",
    ):
        self.model = model
        self.options = options or TranscribeOptions()
        self.options.check_model(multilingual=model.multilingual, model_name=model.name)
        self.streaming = streaming or StreamingOptions()
        self.source = source
        # Every decode times words, and is one pass without timestamp tokens: with them Whisper
        # leaves out the sentence still being spoken and faster-whisper decodes it again in a
        # second window, twice the work per step. VAD runs once per step, here (the utterance
        # detector, with its own silence and padding), not again in the decoder.
        self._decode_options = self.options.replace(
            word_timestamps=True,
            without_timestamps=True,
            vad=False,
            encoder_window_s=self.streaming.window_for(model),
            temperature=(
                self.options.temperature
                if self.streaming.fallback
                else self.options.temperature[:1]
            ),
        )
        self._vad_options = self.options.replace(
            vad_min_silence_ms=self.streaming.endpoint_silence_ms,
            vad_speech_pad_ms=self.streaming.speech_pad_ms,
        )
        self.language: str | None = self.options.language
        self.beam = BeamGovernor(self._decode_options.beam_size, self.streaming.decode_budget_s)
        self.policy = LocalAgreement(self.streaming.agreement)
        self.captions = CaptionBuilder()
        self.stats = StreamStats()
        self._lock = threading.Lock()
        self._incoming: list[np.ndarray] = []
        self._received = 0  # samples inserted so far
        self._buffer = np.zeros(0, dtype=np.float32)
        self._offset = 0  # stream sample where the buffer starts
        self._decoded_until = 0  # stream sample up to which the buffer was last decoded
        self._partial = ""
        self._finished = False

    # -- audio in -------------------------------------------------------------------------------

    def insert_audio_chunk(self, audio: np.ndarray) -> None:
        """Append 16 kHz mono float32 samples (safe to call from another thread)."""
        if audio.ndim != 1:
            raise InvalidOptionError(f"audio chunks must be 1-D (16 kHz mono), got {audio.shape}")
        with self._lock:
            if self._finished:
                raise InvalidOptionError("the stream is finished: no more audio can be added")
            self._incoming.append(audio.astype(np.float32, copy=False))
            self._received += audio.size

    @property
    def received_seconds(self) -> float:
        return self._received / SAMPLE_RATE

    def pending_seconds(self) -> float:
        """Audio received but not yet decoded (how far the engine lags behind the stream)."""
        return (self._received - self._decoded_until) / SAMPLE_RATE

    def ready(self) -> bool:
        """Enough new audio has arrived for ``process_iter`` to decode."""
        return self.pending_seconds() >= self.streaming.min_chunk_s

    def _take_incoming(self) -> float:
        """Move received audio into the buffer, never past ``max_buffer_s`` (the rest waits for
        the next decode, so one decode is one Whisper window); returns the seconds taken."""
        room = int(self.streaming.max_buffer_s * SAMPLE_RATE) - self._buffer.size
        with self._lock:
            parts, self._incoming = self._incoming, []
            joined = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
            if joined.size > room:
                self._incoming = [joined[max(room, 0) :]]
                joined = joined[: max(room, 0)]
        if joined.size:
            self._buffer = np.concatenate([self._buffer, joined])
        return joined.size / SAMPLE_RATE

    def _has_incoming(self) -> bool:
        with self._lock:
            return any(part.size for part in self._incoming)

    # -- processing -----------------------------------------------------------------------------

    def process_iter(self) -> list[StreamEvent]:
        """Decode the buffer if enough new audio arrived; the events that follow from it."""
        if not self.ready():
            return []
        started = time.perf_counter()
        taken = self._take_incoming()
        catch_up = taken > self.streaming.catch_up_s or self._has_incoming()
        events = self._step(final=False, catch_up=catch_up)
        self.stats.iteration_seconds.append(time.perf_counter() - started)
        return events

    def finish(self) -> list[StreamEvent]:
        """The stream ended: decode what is left, commit everything, close the last segment."""
        with self._lock:
            self._finished = True
        events: list[StreamEvent] = []
        self._take_incoming()
        while self._has_incoming():  # more than one window left: decode it in windows first
            events += self._step(final=False, catch_up=True)
            self._take_incoming()
        if self._received > self._decoded_until or self.policy.pending:
            events += self._step(final=True)
        return events

    def _step(self, *, final: bool, catch_up: bool = False) -> list[StreamEvent]:
        end = self._offset + self._buffer.size
        self._decoded_until = end
        regions = self._speech_regions()
        if not regions:  # silence, noise or music: nothing to decode
            self.stats.silent_skips += 1
            # Words still pending were decoded from speech that has ended: they are final now.
            events = self._end_utterance(self.policy.commit_pending())
            self.policy.reset_hypotheses()
            keep = 0 if final else int(self.streaming.speech_pad_ms * SAMPLE_RATE / 1000) * 3
            self._cut(max(self._offset, end - keep))
            return events + self._partial_event()
        speech_end = self._offset + regions[-1]["end"]
        stopped = final or speech_end < end  # the speaker stopped (or the stream did)
        # Silence after the speech is not decoded: Whisper invents text there ("Thank you").
        segment_ends = (
            self._decode(upto=regions[-1]["end"], beam_size=self.streaming.endpoint_beam_size)
            if stopped
            else self._decode()
        )
        committed = self.policy.flush(until=end / SAMPLE_RATE - self.streaming.commit_guard_s)
        logger.debug(
            "step: buffer %.2f-%.2f s, speech to %.2f, stopped %s, catch-up %s, agreed %d, "
            "pending %r",
            self._offset / SAMPLE_RATE,
            end / SAMPLE_RATE,
            speech_end / SAMPLE_RATE,
            stopped,
            catch_up,
            len(committed),
            join_words(self.policy.pending),
        )
        if stopped:
            committed += self.policy.commit_pending()
            self.stats.endpoints += 0 if final else 1
            events = self._end_utterance(committed)
            self.policy.reset_hypotheses()
            self._cut(end if final else speech_end)
        else:
            if catch_up and segment_ends:
                caught = self.policy.commit_pending(until=self._settled_until(segment_ends))
                self.stats.catch_up_commits += len(caught)
                committed += caught
            events = self._final_events(committed)
            events += self._trim(segment_ends)
        return events + self._partial_event()

    def _speech_regions(self) -> list[dict[str, int]]:
        if self._buffer.size == 0:
            return []
        if not self.streaming.vad:
            return [{"start": 0, "end": self._buffer.size}]
        return speech_regions(self._buffer, self._vad_options)

    def _decode(self, upto: int | None = None, beam_size: int | None = None) -> list[float]:
        """Decode the buffer (up to sample ``upto`` of it) into a hypothesis; returns the Whisper
        segments' end times. Without ``beam_size``, the governor picks the beam."""
        governed = beam_size is None
        beam = self.beam.beam_size if beam_size is None else beam_size
        options = self._decode_options.replace(
            initial_prompt=self._prompt(), language=self.language, beam_size=beam
        )
        started = time.perf_counter()
        transcript = self.model.transcribe(self._buffer[:upto], options)
        seconds = time.perf_counter() - started
        if governed:
            self.beam.record(seconds)
        self.stats.decodes += 1
        if beam < self._decode_options.beam_size:
            self.stats.greedy_decodes += 1
        self.stats.decode_seconds += seconds
        if self.language is None and transcript.segments and transcript.language.language:
            self.language = transcript.language.language  # later decodes keep this language
            logger.info("stream language: %s", self.language)
        base = self._offset / SAMPLE_RATE
        words = [
            Word(w.start + base, w.end + base, w.word, w.probability)
            for s in transcript.segments
            for w in s.words
        ]
        self.policy.insert(words)
        logger.debug(
            "decode: %.2f s of audio in %.2f s, beam %d, temperature %s",
            (self._buffer[:upto].size) / SAMPLE_RATE,
            seconds,
            beam,
            ",".join(f"{s.temperature:g}" for s in transcript.segments) or "-",
        )
        return [s.end + base for s in transcript.segments]

    def _prompt(self) -> str | None:
        """The user's prompt, then the committed text whose audio has left the buffer."""
        start = self._offset / SAMPLE_RATE
        before = [w for w in self.policy.committed[-100:] if w.end <= start]
        tail = (
            join_words(before)[-self.streaming.prompt_chars :]
            if self.streaming.prompt_chars
            else ""
        )
        parts = [p for p in (self.options.initial_prompt, tail) if p]
        return " ".join(parts) or None

    def _trim(self, segment_ends: list[float]) -> list[StreamEvent]:
        """Cut the buffer once it is long: at a committed segment end, else at a committed
        sentence end, else after the committed words (they become the prompt); force a cut at
        the limit."""
        events: list[StreamEvent] = []
        seconds = self._buffer.size / SAMPLE_RATE
        start_s = self._offset / SAMPLE_RATE
        if seconds > self.streaming.trim_s:
            committed_end = self.policy.committed_end
            done = [e for e in segment_ends[:-1] if start_s < e <= committed_end]
            inside = [w for w in self.policy.committed[-200:] if w.end > start_s]
            sentences = [w.end for w in inside if is_sentence_end(w.word)]
            cut_s = max(done or sentences or [committed_end])
            if cut_s > start_s:
                self._cut(int(cut_s * SAMPLE_RATE))
                return events
        if seconds >= self.streaming.max_buffer_s - 0.01:
            # Nothing settled in a whole window: commit what is decoded up to a segment end.
            forced = self.policy.commit_pending(until=self._settled_until(segment_ends))
            self.stats.forced_commits += len(forced)
            events += self._final_events(forced)
            cut_s = self.policy.committed_end
            if cut_s <= start_s + 1.0:  # no words to cut after (noise): drop the older half
                cut_s = start_s + seconds / 2
            self._cut(int(cut_s * SAMPLE_RATE))
        return events

    def _settled_until(self, segment_ends: list[float]) -> float:
        """Where words may be committed without agreement: the end of the last complete
        Whisper segment, or some way before the end of the audio when there is only one."""
        if len(segment_ends) > 1:
            return segment_ends[-2]
        return (self._offset + self._buffer.size) / SAMPLE_RATE - _UNAGREED_TAIL_S

    def _cut(self, sample: int) -> None:
        """Drop buffered audio before stream sample ``sample``."""
        sample = min(max(sample, self._offset), self._offset + self._buffer.size)
        self._buffer = self._buffer[sample - self._offset :].copy()
        self._offset = sample

    # -- events ---------------------------------------------------------------------------------

    def _final_events(self, words: list[Word]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for segment, run, complete in self.captions.add(words):
            events.append(
                Final(
                    text="".join(w.word for w in run),
                    start=run[0].start,
                    end=run[-1].end,
                    words=tuple(run),
                    segment=segment,
                    segment_end=complete,
                )
            )
        return events

    def _end_utterance(self, words: list[Word]) -> list[StreamEvent]:
        """Final events for ``words``, the last one closing its segment."""
        events = self._final_events(words)
        open_words = self.captions.open_words
        closed = self.captions.close()
        if closed is None:
            return events
        if events and isinstance(events[-1], Final) and events[-1].segment == closed.id:
            last = events[-1]
            events[-1] = Final(last.text, last.start, last.end, last.words, last.segment, True)
        else:  # the segment's words were sent earlier: an empty final closes it
            end = open_words[-1].end
            events.append(Final("", end, end, (), closed.id, True))
        return events

    def _partial_event(self) -> list[StreamEvent]:
        pending = self.policy.pending
        text = join_words(pending)
        if text == self._partial:
            return []
        self._partial = text
        if not pending:
            now = self.policy.committed_end
            return [Partial("", now, now)]
        return [Partial(text, pending[0].start, pending[-1].end)]

    # -- results --------------------------------------------------------------------------------

    @property
    def committed_text(self) -> str:
        return join_words(self.policy.committed)

    def transcript(self) -> Transcript:
        """Everything committed so far as a ``Transcript`` (segments are the caption lines)."""
        segments = list(self.captions.segments)
        open_words = self.captions.open_words
        if open_words:  # still open: shown as it stands, without closing it
            from ..results import Segment

            text = "".join(w.word for w in open_words)
            segments.append(
                Segment(len(segments), open_words[0].start, open_words[-1].end, text, open_words)
            )
        language = self.language or ""
        info = LanguageInfo(language, 1.0, (), detected=self.options.language is None)
        return Transcript(
            segments=tuple(segments),
            language=info,
            duration=self._received / SAMPLE_RATE,
            processing_time=self.stats.decode_seconds,
            options=self._decode_options,
            model=self.model.name,
            source=self.source,
        )
