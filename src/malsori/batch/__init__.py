"""Batch transcription: many files, resumable, at throughput (``malsori batch``).

- ``inputs``: files, folders and manifests to a list of inputs with mirrored output names.
- ``runner``: skip what a previous run finished, run an engine, save each file as it finishes,
  write the summary.
- ``engine`` (packed, the default) and ``sequential``: how the transcripts are made; both end in
  the same ``Transcript`` objects, written by ``malsori.writers``.
- ``cluster``: the same job on a Ray cluster (``pip install 'malsori[cluster]'``).
"""

from __future__ import annotations

from .inputs import BatchInput, discover
from .runner import BatchOptions, load_batch_model, run_batch
from .summary import BatchSummary, FileOutcome

__all__ = [
    "BatchInput", "BatchOptions", "BatchSummary", "FileOutcome", "discover", "load_batch_model",
    "run_batch",
]  # fmt: skip
