"""What this machine can compute at best: matrix-multiply throughput in float32 and int8.

Whisper's time goes to matrix products (the encoder's are large and dense), so the fastest GEMM
the machine runs bounds every engine. The probe multiplies square matrices with PyTorch
(``torch.mm`` for float32, ``torch._int_mm`` for int8 with int32 sums) on the benchmark's
threads and keeps the best of a few timed rounds. ``encoder_flops`` counts the floating-point
operations of one 30 s encoder window, so a configuration's time can be set against the time
the probe's peak would need for the encoders alone (a lower bound: the decoder is not counted).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

logger = logging.getLogger(__name__)

SIZE = 1024  # matrices SIZE x SIZE: large enough for the BLAS kernels to reach their peak
ROUNDS = 5
SECONDS_PER_ROUND = 0.4


@dataclass(frozen=True)
class GemmProbe:
    threads: int
    fp32_gflops: float
    int8_gops: float | None  # None where PyTorch has no int8 matrix product on this CPU

    def peak_for(self, precision: str) -> float:
        """Operations per second the matching probe reached (int8 configurations: the better
        of the two, since an int8 engine may still compute in float)."""
        if precision == "int8" and self.int8_gops is not None:
            return max(self.int8_gops, self.fp32_gflops) * 1e9
        return self.fp32_gflops * 1e9

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _best_rate(run: object, ops: float) -> float:
    best = 0.0
    for _ in range(ROUNDS):
        n = 0
        started = time.perf_counter()
        while time.perf_counter() - started < SECONDS_PER_ROUND:
            run()  # type: ignore[operator]
            n += 1
        best = max(best, n * ops / (time.perf_counter() - started))
    return best


def probe(threads: int = 0, size: int = SIZE) -> GemmProbe:
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        ops = 2.0 * size**3
        a, b = torch.randn(size, size), torch.randn(size, size)
        fp32 = _best_rate(lambda: torch.mm(a, b), ops)
        int8: float | None = None
        try:
            qa = torch.randint(-128, 127, (size, size), dtype=torch.int8)
            qb = torch.randint(-128, 127, (size, size), dtype=torch.int8)
            int8 = _best_rate(lambda: torch._int_mm(qa, qb), ops)
        except (RuntimeError, AttributeError) as e:
            logger.info("no int8 matrix product here: %s", e)
        return GemmProbe(torch.get_num_threads(), fp32 / 1e9, None if int8 is None else int8 / 1e9)
    finally:
        torch.set_num_threads(before)


def encoder_flops(
    n_mels: int, d_model: int, layers: int, frames: int = 1500, ffn: int | None = None
) -> float:
    """Floating-point operations (2 per multiply-add) of one encoder window: two convolutions
    (kernel 3; the first over 2 x ``frames`` mel frames), then per layer q/k/v/out projections,
    attention scores and mixing, and the feed-forward pair."""
    ffn = ffn or 4 * d_model
    conv = 3 * n_mels * d_model * 2 * frames + 3 * d_model * d_model * frames
    per_layer = frames * (4 * d_model * d_model + 2 * d_model * ffn) + 2 * frames * frames * d_model
    return 2.0 * (conv + layers * per_layer)
