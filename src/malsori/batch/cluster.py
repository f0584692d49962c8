"""The same batch job on a Ray cluster, with Ray Data (``pip install 'malsori[cluster]'``).

The driver does what ``run_batch`` does around the engine: it finds the inputs, skips the files a
previous run finished, and writes the summary. The files to do become a Ray dataset; each worker
actor loads the model once and runs the packed engine over the blocks of files it is given,
writing every file's outputs and completion record into the shared output folder as the file
finishes (the same ``records.save`` as a local run). Inputs and the output folder must therefore
be paths every worker sees (a shared file system). GPUs are used when the workers have them:
one actor per GPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import InvalidOptionError, MalsoriError
from ..options import TranscribeOptions
from ..results import Transcript
from .inputs import BatchInput
from .progress import Progress
from .records import OutputPlan, job_lock
from .runner import (
    REPORTED,
    BatchOptions,
    make_engine,
    plan_for,
    save_result,
    split_done,
    write_summary,
)
from .summary import BatchSummary, FileOutcome

logger = logging.getLogger(__name__)

FILES_PER_CALL = 64  # files one actor packs together per call: more fill windows better


class ClusterError(MalsoriError):
    """Ray is missing, or the cluster cannot be reached or used."""

    exit_code = 2


@dataclass(frozen=True)
class RayOptions:
    """Where and how the workers run; the model is loaded once in each worker actor."""

    # "auto" (the cluster this machine belongs to), "ray://host:10001", or "local" to start one.
    address: str
    model: str = "base"
    device: str = "auto"
    compute_type: str = "auto"
    # CPU threads per actor (0: 4, or every CPU of a smaller cluster).
    threads: int = 0
    # Actors (model replicas); None: one per GPU, or as many as the CPUs allow.
    workers: int | None = None
    # Extra arguments for ``ray.init`` (tests: ``{"num_cpus": 2}``).
    init: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise InvalidOptionError(f"Ray workers must be at least 1, got {self.workers}")
        if self.threads < 0:
            raise InvalidOptionError(f"threads cannot be negative, got {self.threads}")


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # Ray Data is the part malsori needs
    except ImportError as e:
        raise ClusterError(
            "--ray needs Ray Data, which is not installed: pip install 'malsori[cluster]'"
        ) from e
    return ray


def _connect(ray: Any, options: RayOptions) -> None:
    if ray.is_initialized():
        return
    address = None if options.address == "local" else options.address
    try:
        ray.init(address=address, log_to_driver=False, **options.init)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ClusterError(f"cannot connect to the Ray cluster at {options.address}: {e}") from e


def _placement(ray: Any, options: RayOptions) -> tuple[int, float, int, str]:
    """(actors, CPUs per actor, GPUs per actor, device) for this cluster."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    if gpus and options.device != "cpu":
        return options.workers or gpus, 1.0, 1, "cuda"
    threads = options.threads or min(4, cpus)
    workers = options.workers or max(1, cpus // threads)
    return workers, float(threads), 0, "cpu"


class TranscribeActor:
    """One model replica: transcribes the files of each block it gets and saves them."""

    def __init__(
        self,
        model: str,
        device: str,
        compute_type: str,
        threads: int,
        options: TranscribeOptions,
        batch: BatchOptions,
        plan: OutputPlan,
    ):
        from .runner import load_batch_model

        self.model = load_batch_model(
            model, device=device, compute_type=compute_type, threads=threads, engine=batch.engine
        )
        self.options = options
        self.batch = batch
        self.plan = plan  # the driver's: records must match what it checks on resume

    def __call__(self, block: dict[str, Any]) -> dict[str, list[Any]]:
        items = [
            BatchInput(Path(src), PurePosixPath(stem))
            for src, stem in zip(block["source"], block["stem"], strict=True)
        ]
        outcomes: dict[int, FileOutcome] = {}

        def deliver(index: int, result: Transcript | MalsoriError) -> None:
            outcomes[index] = save_result(self.plan, items[index], result)

        make_engine(self.model, self.options, self.batch).run(items, deliver)
        rows = [outcomes[i] for i in range(len(items))]
        return {
            "source": [o.source for o in rows],
            "status": [o.status for o in rows],
            "duration": [o.duration for o in rows],
            "language": [o.language or "" for o in rows],
            "error": [o.error or "" for o in rows],
            "error_type": [o.error_type or "" for o in rows],
            "exit_code": [o.exit_code for o in rows],
        }


def _outcome(row: dict[str, Any]) -> FileOutcome:
    return FileOutcome(
        source=str(row["source"]),
        status=row["status"],
        duration=float(row["duration"]),
        language=str(row["language"]) or None,
        error=str(row["error"]) or None,
        error_type=str(row["error_type"]) or None,
        exit_code=int(row["exit_code"]),
    )


def _model_name(model: str) -> str:
    """The name a worker's loaded model will have (the driver may not have the model itself)."""
    from ..registry import resolve

    try:
        return resolve(model, download=False).name
    except MalsoriError:
        return model


def run_on_ray(
    items: Sequence[BatchInput],
    options: TranscribeOptions,
    batch: BatchOptions,
    ray_options: RayOptions,
    *,
    started: float | None = None,
    progress: Progress | None = None,
    on_outcome: Callable[[FileOutcome], None] | None = None,
) -> BatchSummary:
    """``run_batch`` on a Ray cluster: same outputs, records, summary and job lock."""
    started = time.perf_counter() if started is None else started
    ray = import_ray()
    _connect(ray, ray_options)
    with job_lock(batch.output_dir):  # the driver holds it; the actors only write files
        model_name = _model_name(ray_options.model)
        plan = plan_for(model_name, options, batch)
        todo, outcomes = split_done(plan, items, batch.force)
        bar = progress if progress is not None else Progress(enabled=False)
        bar.start([i.source for i in todo])
        actors, cpus, gpus, device = _placement(ray, ray_options)
        logger.info(
            "Ray: %d files on %d actors (%s, %g CPUs each)", len(todo), actors, device, cpus
        )
        interrupted = False
        try:
            if todo:
                placement = (actors, cpus, gpus, device)
                for row in _dataset(ray, todo, options, batch, plan, ray_options, placement):
                    outcome = _outcome(row)
                    outcomes.append(outcome)
                    if outcome.status == "failed":
                        logger.warning("failed: %s", outcome.failure, extra={REPORTED: True})
                    else:
                        logger.info("%s %s", outcome.status, outcome.source)
                    bar.advance(outcome.duration, failed=outcome.status == "failed")
                    if on_outcome is not None:
                        on_outcome(outcome)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
        done = len(outcomes) - (len(items) - len(todo))
        summary = BatchSummary(
            outcomes=tuple(outcomes),
            wall_time=time.perf_counter() - started,
            output_dir=str(batch.output_dir),
            engine=f"{batch.engine} on ray",
            model=model_name,
            options=options.to_dict(),
            interrupted=interrupted,
            pending=len(todo) - done,
        )
        write_summary(summary, batch.output_dir)
        return summary


def _dataset(
    ray: Any,
    todo: Sequence[BatchInput],
    options: TranscribeOptions,
    batch: BatchOptions,
    plan: OutputPlan,
    ray_options: RayOptions,
    placement: tuple[int, float, int, str],
) -> Any:
    actors, cpus, gpus, device = placement
    rows = [{"source": str(i.source), "stem": i.key} for i in todo]
    per_call = max(1, min(FILES_PER_CALL, -(-len(rows) // actors)))
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // per_call)))
    transcribed = dataset.map_batches(
        TranscribeActor,
        fn_constructor_kwargs={
            "model": ray_options.model,
            "device": device,
            "compute_type": ray_options.compute_type,
            "threads": int(cpus) if gpus == 0 else ray_options.threads,
            "options": options,
            "batch": batch,
            "plan": plan,
        },
        batch_size=per_call,
        batch_format="numpy",
        concurrency=actors,
        num_cpus=cpus,
        num_gpus=gpus,
    )
    return transcribed.iter_rows()
