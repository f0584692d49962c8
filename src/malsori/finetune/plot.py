"""The training plot: loss per step, eval loss and eval WER per evaluation, as a PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import require_extra


def save_training_plot(
    losses: Sequence[tuple[int, float]],
    evals: Sequence[tuple[int, float, float, float]],
    path: str | os.PathLike[str],
    *,
    title: str = "fine-tuning",
) -> Path:
    """Two panels: training and eval loss (left), eval WER and CER (right)."""
    require_extra("finetune", ("matplotlib",), "the training plot")
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if losses:
        left.plot([s for s, _ in losses], [v for _, v in losses], label="train loss", lw=1)
    if evals:
        steps = [e[0] for e in evals]
        left.plot(steps, [e[1] for e in evals], "o-", label="eval loss")
        right.plot(steps, [100 * e[2] for e in evals], "o-", label="eval WER")
        right.plot(steps, [100 * e[3] for e in evals], "s--", label="eval CER")
    left.set_xlabel("step")
    left.set_ylabel("loss")
    left.legend()
    right.set_xlabel("step")
    right.set_ylabel("%")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
