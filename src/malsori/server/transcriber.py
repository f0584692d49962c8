"""The served models, behind the worker pool: options from request parameters, runs, metrics.

Every transcription the server makes, a quick request or a durable job, goes through
``Transcriber.run`` in a worker thread, which holds the requested model through the model
manager (``models.py``: loaded on first use, never unloaded while in use) and so goes through that
model's engine (``malsori.engine``), which packs concurrent requests into shared windows and
decodes them in batches, synchronous requests before jobs; with batching off, through
``Model.transcribe`` in the worker itself. Either way the same defences, post-processing and
writers as the CLI.
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

from ..diarize.options import DiarizeOptions
from ..diarize.run import diarize_or_keep
from ..engine import Engine, Priority, RequestCancelledError
from ..errors import InvalidOptionError
from ..languages import normalize_language
from ..model import Model
from ..options import DEFAULT_TEMPERATURES, TranscribeOptions
from ..results import Segment, Transcript
from ..subtitles.profiles import SubtitleSpec
from .exceptions import InvalidParameterError, TranscriptionCancelled
from .logs import current_request_id
from .metrics import Metrics
from .models import ManagedDecoder, ModelManager
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
    """Runs transcriptions of files on the served models, in the pool's worker threads."""

    def __init__(
        self,
        models: ModelManager,
        pool: WorkerPool,
        metrics: Metrics,
        decode: DecodeSettings,
        *,
        device: str = "cpu",
    ):
        self.models = models
        self.pool = pool
        self.metrics = metrics
        self.decode = decode
        self.device = "cuda" if device == "cuda" else "cpu"
        """Where the models run (``cpu`` or ``cuda``): the speaker encoder runs there too."""

    @property
    def model_ids(self) -> tuple[str, ...]:
        return self.models.ids

    def live_decoder(self, model: str | None = None) -> ManagedDecoder:
        """What a live stream decodes with: the model's engine, ahead of requests and jobs (or
        the model itself when batching is off), held through the manager for each decode."""
        return ManagedDecoder(self.models, model, Priority.LIVE)

    def check_model(self, requested: str | None) -> str:
        """The id of the served model a request names (UnknownModelError: a 404)."""
        return self.models.resolve(requested)

    def options(self, params: DecodeParams, task: Task) -> TranscribeOptions:
        """The ``TranscribeOptions`` for a request (raises InvalidOptionError for bad values)."""
        model = self.check_model(params.model)
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
        multilingual = self.models.multilingual(model)
        if multilingual is not None:  # else checked when it loads (the engine does)
            options.check_model(multilingual=multilingual, model_name=model)
        return options

    def run(
        self,
        path: Path,
        options: TranscribeOptions,
        *,
        label: str,
        cancel: threading.Event,
        model: str | None = None,
        on_segment: SegmentCallback | None = None,
        priority: Priority = Priority.SYNC,
        diarize: DiarizeOptions | None = None,
    ) -> Transcript:
        """Transcribe one file with ``model`` (None: the default one), waiting in the calling
        (worker) thread; the model is loaded first if it is not. With ``diarize``, label its
        speakers (when that fails the transcript comes without them, the failure in
        ``meta["diarization"]["error"]``).

        Raises TranscriptionCancelled when ``cancel`` is set before or during the run (the
        engine drops the request's windows not yet decoded; without it, the run stops at its
        next segment), and malsori's exceptions for bad audio.
        """
        if cancel.is_set():
            raise TranscriptionCancelled()
        with self.models.use(model) as loaded:
            if loaded.engine is not None:
                transcript = self._through_engine(
                    loaded.engine, path, options, label, cancel, on_segment, priority
                )
            else:
                transcript = self._alone(loaded.model, path, options, cancel, on_segment)
        self.metrics.observe_transcription(
            options.task, transcript.duration, transcript.processing_time
        )
        logger.info(
            "transcribed %.1f s of audio in %.2f s (%s)",
            transcript.duration,
            transcript.processing_time,
            options.task,
        )
        if diarize is not None:
            transcript, error = diarize_or_keep(transcript, path, diarize)
            if error is not None:
                logger.warning("no speaker labels for %s: %s", label, error)
        return dataclasses.replace(transcript, source=label)

    def _alone(
        self,
        model: Model,
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

        return model.transcribe(path, options, on_segment=each_segment)

    def _through_engine(
        self,
        engine: Engine,
        path: Path,
        options: TranscribeOptions,
        label: str,
        cancel: threading.Event,
        on_segment: SegmentCallback | None,
        priority: Priority,
    ) -> Transcript:
        handle = engine.submit(path, options, priority=priority, name=label, on_segment=on_segment)
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
        model: str | None = None,
        on_segment: SegmentCallback | None = None,
        diarize: DiarizeOptions | None = None,
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
                    self.run(
                        path,
                        options,
                        label=label,
                        cancel=item.cancel,
                        model=model,
                        on_segment=on_segment,
                        diarize=diarize,
                    )
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
