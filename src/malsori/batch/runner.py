"""Running a batch job: skip what is done, run an engine over the rest, save, summarise.

Every finished file is saved the moment it is delivered (outputs atomically, then its completion
record), so an interruption loses at most the files in flight, never a finished one. A file that
fails is recorded with its error and the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..diarize.options import DiarizeOptions
from ..diarize.run import diarize_or_keep
from ..errors import InvalidOptionError, MalsoriError, OutputError
from ..options import FULL_ENCODER_WINDOW_S, TranscribeOptions
from ..results import Transcript
from ..writers import FORMATS
from . import records
from .engine_api import Engine
from .inputs import BatchInput
from .progress import Progress
from .summary import BatchSummary, FileOutcome

if TYPE_CHECKING:
    from ..model import Model

logger = logging.getLogger(__name__)

EngineName = Literal["packed", "sequential"]
ENGINES: tuple[str, ...] = ("packed", "sequential")
SUMMARY_FILE = "summary.json"
LOG_FILE = "batch.log"
# A log record attribute: the batch command reports this record on screen in its own words.
REPORTED = "malsori_reported"


@dataclass(frozen=True)
class BatchOptions:
    """How a batch job runs; what each file's decoding does is ``TranscribeOptions``."""

    # Folder the outputs go to, mirroring the input tree.
    output_dir: Path
    # Output formats written for every file.
    formats: tuple[str, ...] = FORMATS
    # "packed": speech of many files packed into shared 30 s windows, decoded in batches;
    # "sequential": one file at a time through Model.transcribe, as `malsori transcribe` does.
    engine: EngineName = "packed"
    # Redo every file, even those a previous run finished.
    force: bool = False
    # 30-second windows decoded together in one model call (packed engine).
    batch_size: int = 8
    # Threads decoding audio and running VAD ahead of the model (packed engine).
    decode_workers: int = 2
    # Label speakers in every file's outputs (None: no diarization).
    diarize: DiarizeOptions | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        if self.engine not in ENGINES:
            raise InvalidOptionError(f"unknown engine {self.engine!r}: use packed or sequential")
        if not self.formats:
            raise InvalidOptionError("no output format given")
        if self.batch_size < 1:
            raise InvalidOptionError(f"batch size must be at least 1, got {self.batch_size}")
        if self.decode_workers < 1:
            raise InvalidOptionError(
                f"decode workers must be at least 1, got {self.decode_workers}"
            )
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise InvalidOptionError(f"output folder {self.output_dir} is a file")


def model_layout(device: str, threads: int, engine: str = "packed") -> tuple[int, int]:
    """(model workers, CPU threads each) for a batch job on ``device`` with ``threads`` CPU
    threads in all (0: every core).

    On a CPU the packed engine decodes two batches at once, each on half of the threads:
    CTranslate2's beam search gains little from a second thread (a batch of 8 windows of
    ``base``: 3.5 s on one thread, 3.2-3.4 s on two), while two batches side by side on one
    thread each do 16 windows in 8.8 s against 11.0 s one after the other on two threads (encoder
    and decoder; ``docs/batch.md``). On a GPU, and for the sequential engine, one worker.
    """
    from ..model import default_threads, resolve_device

    total = threads or default_threads()
    if engine != "packed" or resolve_device(device) != "cpu" or total < 2:
        return 1, total
    return 2, total // 2


def load_batch_model(
    name: str, *, device: str = "auto", compute_type: str = "auto", threads: int = 0,
    engine: str = "packed",
) -> Model:  # fmt: skip
    """The model for a batch job, loaded with the workers ``model_layout`` gives."""
    from ..model import load_model

    workers, each = model_layout(device, threads, engine)
    return load_model(name, device=device, compute_type=compute_type, threads=each, workers=workers)


def make_engine(model: Model, options: TranscribeOptions, batch: BatchOptions) -> Engine:
    if batch.engine == "sequential":
        from .sequential import SequentialEngine

        return SequentialEngine(model, options)
    if options.without_timestamps:  # its windows hold several files: they are cut by timestamps
        raise InvalidOptionError(
            "the packed engine needs timestamps; use the sequential engine for without_timestamps"
        )
    if options.encoder_window_s < FULL_ENCODER_WINDOW_S:  # its windows are full: nothing to cut
        raise InvalidOptionError(
            "the packed engine fills every 30 s window; --encoder-window needs --engine sequential"
        )
    from .engine import PackedEngine

    return PackedEngine(model, options, batch_size=batch.batch_size, workers=batch.decode_workers)


def plan_for(
    model_name: str, options: TranscribeOptions, batch: BatchOptions
) -> records.OutputPlan:
    return records.OutputPlan.build(batch.output_dir, batch.formats, model_name, options)


def split_done(
    plan: records.OutputPlan, items: Sequence[BatchInput], force: bool
) -> tuple[list[BatchInput], list[FileOutcome]]:
    """Files to transcribe, and outcomes for those a previous run finished (unless ``force``)."""
    todo: list[BatchInput] = []
    skipped: list[FileOutcome] = []
    for item in items:
        record = None if force else records.finished_record(plan, item)
        if record is None:
            todo.append(item)
        else:
            skipped.append(
                FileOutcome(str(item.source), "skipped", record.duration, record.language)
            )
    return todo, skipped


def save_result(
    plan: records.OutputPlan, item: BatchInput, result: Transcript | MalsoriError
) -> FileOutcome:
    """Write one file's outputs and record (or note its failure); never raises MalsoriError."""
    if isinstance(result, Transcript):
        try:
            records.remove_stale(plan, item)
            record = records.save(plan, item, result)
        except OutputError as e:
            result = e
        else:
            logger.info(
                "done %s: %.1f s, %s, %d segments, %.2f s",
                item.source, result.duration, record.language, record.segments,
                result.processing_time,
            )  # fmt: skip
            return FileOutcome(str(item.source), "done", result.duration, record.language)
    outcome = FileOutcome(
        str(item.source),
        "failed",
        error=str(result),
        error_type=type(result).__name__,
        exit_code=result.exit_code,
    )
    # ``malsori batch`` shows failures on screen itself, above its progress bar: REPORTED keeps
    # this record out of its console (not out of the log file, nor other handlers).
    logger.warning("failed: %s", outcome.failure, extra={REPORTED: True})
    return outcome


def with_speakers(transcript: Transcript, item: BatchInput, diarize: DiarizeOptions) -> Transcript:
    """The transcript with speakers; without them (and a warning) when diarization fails."""
    labelled, error = diarize_or_keep(transcript, item.source, diarize)
    if error is not None:
        logger.warning("no speaker labels for %s: %s", item.source, error)
    return labelled


def run_batch(
    model: Model,
    items: Sequence[BatchInput],
    options: TranscribeOptions,
    batch: BatchOptions,
    *,
    progress: Progress | None = None,
    on_outcome: Callable[[FileOutcome], None] | None = None,
    started: float | None = None,
) -> BatchSummary:
    """Transcribe ``items`` into ``batch.output_dir``; write and return the summary.

    Ctrl-C stops the job cleanly: finished files stay saved and the summary says how many were
    not reached (``interrupted``); the caller exits with 130. One job at a time per output
    folder: another one writing there raises ``OutputBusyError`` (``records.job_lock``).
    """
    started = time.perf_counter() if started is None else started
    options.check_model(multilingual=model.multilingual, model_name=model.name)
    with records.job_lock(batch.output_dir):
        plan = plan_for(model.name, options, batch)
        todo, outcomes = split_done(plan, items, batch.force)
        if outcomes:
            logger.info("%d of %d files already done: skipped", len(outcomes), len(items))
        bar = progress if progress is not None else Progress(enabled=False)
        bar.start([i.source for i in todo])
        delivered: set[int] = set()

        def deliver(index: int, result: Transcript | MalsoriError) -> None:
            if isinstance(result, Transcript) and batch.diarize is not None:
                result = with_speakers(result, todo[index], batch.diarize)
            outcome = save_result(plan, todo[index], result)
            delivered.add(index)
            outcomes.append(outcome)
            bar.advance(outcome.duration, failed=outcome.status == "failed")
            if on_outcome is not None:
                on_outcome(outcome)

        interrupted = False
        try:
            if todo:
                make_engine(model, options, batch).run(todo, deliver)
        except KeyboardInterrupt:
            interrupted = True
            logger.warning("interrupted: %d files not finished", len(todo) - len(delivered))
        finally:
            bar.close()
        summary = BatchSummary(
            outcomes=tuple(outcomes),
            wall_time=time.perf_counter() - started,
            output_dir=str(batch.output_dir),
            engine=batch.engine,
            model=model.name,
            options=options.to_dict(),
            interrupted=interrupted,
            pending=len(todo) - len(delivered),
        )
        write_summary(summary, batch.output_dir)
        return summary


def write_summary(summary: BatchSummary, directory: Path) -> Path:
    path = summary.write(Path(directory) / SUMMARY_FILE)
    logger.info("summary: %s", summary.render().replace("\n", "; "))
    return path
