"""The one loaded model, behind the worker pool: options from request parameters, runs, metrics.

Every transcription the server makes, a quick request or a durable job, goes through
``Transcriber.run`` in a worker thread and so through the engine (``malsori.engine``), which
packs concurrent requests into shared windows and decodes them in batches, synchronous requests
before jobs; with batching off, through ``Model.transcribe`` in the worker itself. Either way the
same defences, post-processing and writers as the CLI.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from ..engine import Engine, Priority, PriorityDecoder, RequestCancelledError
from ..errors import InvalidOptionError
from ..languages import normalize_language
from ..model import Model
from ..options import DEFAULT_TEMPERATURES, TranscribeOptions
from ..results import Segment, Transcript
from ..subtitles.profiles import SubtitleSpec
from .exceptions import InvalidParameterError, TranscriptionCancelled, UnknownModelError
from .logs import current_request_id
from .metrics import Metrics
from .scheduler import Slot, WorkerPool, WorkItem
from .schemas import DecodeParams, Task
from .settings import DecodeSettings

logger = logging.getLogger(__name__)

SegmentCallback = Callable[[Segment], None]
_CANCEL_POLL_S = 0.1  # how often a worker waiting on the engine looks at its cancel flag


def fallback_temperatures(first: float | None) -> tuple[float, ...]:
    """OpenAI's ``temperature``: the first one tried; Whisper's higher ones follow on failure."""
    if first is None:
        return DEFAULT_TEMPERATURES
    return (first, *(t for t in DEFAULT_TEMPERATURES if t > first))


class Transcriber:
    """Runs transcriptions of files on the shared model, in the pool's worker threads."""

    def __init__(
        self,
        model: Model,
        pool: WorkerPool,
        metrics: Metrics,
        decode: DecodeSettings,
        aliases: list[str],
        *,
        engine: Engine | None = None,
    ):
        self.model = model
        self.engine = engine
        self.pool = pool
        self.metrics = metrics
        self.decode = decode
        self.model_ids: tuple[str, ...] = tuple(dict.fromkeys([model.name, *aliases]))

    def live_decoder(self) -> Model | PriorityDecoder:
        """What live streams decode with: the engine, ahead of requests and jobs (or the model
        itself when batching is off)."""
        return PriorityDecoder(self.engine) if self.engine is not None else self.model

    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested not in self.model_ids:
            raise UnknownModelError(
                f"model {requested!r} is not served here; use one of {', '.join(self.model_ids)}"
            )

    def options(self, params: DecodeParams, task: Task) -> TranscribeOptions:
        """The ``TranscribeOptions`` for a request (raises InvalidOptionError for bad values)."""
        self.check_model(params.model)
        try:
            language = normalize_language(params.language)
        except InvalidOptionError as e:
            raise InvalidParameterError(str(e), param="language") from e
        subtitles = SubtitleSpec(params.subtitle_profile) if params.subtitle_profile else None
        options = TranscribeOptions(
            task=task,
            language=language,
            initial_prompt=params.prompt,
            temperature=fallback_temperatures(params.temperature),
            # a subtitle profile builds its cues from timed words
            word_timestamps=params.words or (subtitles is not None and subtitles.enabled),
            subtitles=subtitles,
            beam_size=self.decode.beam_size,
            best_of=self.decode.best_of,
            vad=self.decode.vad,
            rescore=self.decode.rescore,
        )
        options.check_model(multilingual=self.model.multilingual, model_name=self.model.name)
        return options

    def run(
        self,
        path: Path,
        options: TranscribeOptions,
        *,
        label: str,
        cancel: threading.Event,
        on_segment: SegmentCallback | None = None,
        priority: Priority = Priority.SYNC,
    ) -> Transcript:
        """Transcribe one file, waiting in the calling (worker) thread.

        Raises TranscriptionCancelled when ``cancel`` is set before or during the run (the
        engine drops the request's windows not yet decoded; without it, the run stops at its
        next segment), and malsori's exceptions for bad audio.
        """
        if cancel.is_set():
            raise TranscriptionCancelled()
        if self.engine is not None:
            transcript = self._through_engine(path, options, label, cancel, on_segment, priority)
        else:
            transcript = self._alone(path, options, cancel, on_segment)
        self.metrics.observe_transcription(
            options.task, transcript.duration, transcript.processing_time
        )
        logger.info(
            "transcribed %.1f s of audio in %.2f s (%s)",
            transcript.duration,
            transcript.processing_time,
            options.task,
        )
        return dataclasses.replace(transcript, source=label)

    def _alone(
        self,
        path: Path,
        options: TranscribeOptions,
        cancel: threading.Event,
        on_segment: SegmentCallback | None,
    ) -> Transcript:
        def each_segment(segment: Segment) -> None:
            if cancel.is_set():
                raise TranscriptionCancelled()
            if on_segment is not None:
                on_segment(segment)

        return self.model.transcribe(path, options, on_segment=each_segment)

    def _through_engine(
        self,
        path: Path,
        options: TranscribeOptions,
        label: str,
        cancel: threading.Event,
        on_segment: SegmentCallback | None,
        priority: Priority,
    ) -> Transcript:
        assert self.engine is not None
        handle = self.engine.submit(
            path, options, priority=priority, name=label, on_segment=on_segment
        )
        while True:
            try:
                return handle.result(timeout=_CANCEL_POLL_S)
            except FutureTimeout:
                if cancel.is_set():
                    handle.cancel()
                    raise TranscriptionCancelled() from None
            except RequestCancelledError:  # the engine stopped (the server is stopping)
                raise TranscriptionCancelled() from None

    def submit(
        self,
        path: Path,
        options: TranscribeOptions,
        *,
        label: str,
        slot: Slot,
        on_segment: SegmentCallback | None = None,
    ) -> tuple[Future[Transcript], WorkItem]:
        """Queue a transcription in a reserved slot: its future and its work item (for
        ``WorkerPool.cancel``: a waiting item is dropped, a running one stops at its next
        segment).

        The file at ``path`` is deleted once the work is over, whether it ran or not.
        """
        future: Future[Transcript] = Future()
        queued = time.monotonic()

        def work() -> None:
            self.metrics.queue_wait.labels("request").observe(time.monotonic() - queued)
            try:
                future.set_result(
                    self.run(path, options, label=label, cancel=item.cancel, on_segment=on_segment)
                )
            except TranscriptionCancelled as e:
                logger.info("transcription of %s cancelled", label)
                future.set_exception(e)
            except BaseException as e:
                future.set_exception(e)
            finally:
                path.unlink(missing_ok=True)

        item = WorkItem(run=work, name=f"request {label}", request_id=current_request_id())
        slot.submit(item)
        return future, item
