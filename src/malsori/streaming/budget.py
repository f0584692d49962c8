"""Beam search when the machine can afford it, greedy decoding when it cannot.

A word is final about two decodes after it is spoken (LocalAgreement needs two decodes to agree),
so the commit latency follows the time of one decode. Beam search is more accurate than greedy
decoding (greedy decodes of short Korean utterances stutter and miss words), and costs about a
quarter more per decode on a CPU. Whether that fits depends on the machine, on the load, and on
how many streams share the model, so it is measured, not assumed: ``BeamGovernor`` keeps a
running mean of the decode times and decodes with the beam while that mean stays within the
budget, greedily while it does not, and goes back to the beam once greedy decodes leave room
for it again.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

# Weight of the newest decode time in the running mean: the last few decodes decide.
_SMOOTHING = 0.2
# What a beam decode is taken to cost against a greedy one when deciding to go back to the beam
# (measured: about 1.25x with beam 5 on two CPU cores; the margin keeps it from flapping).
_BEAM_COST = 1.5


class BeamGovernor:
    """The beam width for the next decode, from how long the recent decodes took."""

    def __init__(self, beam_size: int, budget_s: float | None):
        if budget_s is not None and budget_s <= 0:
            raise ValueError(f"the decode budget must be positive, got {budget_s}")
        self.beam = beam_size
        self.budget_s = budget_s
        self.greedy = False  # decoding greedily because beam decodes were over budget
        self.mean_s: float | None = None  # running mean decode time in the current mode
        self.switches = 0

    @property
    def beam_size(self) -> int:
        """The beam for the next decode."""
        return 1 if self.greedy else self.beam

    def record(self, seconds: float) -> None:
        """One decode, made with ``beam_size``, took ``seconds``."""
        if self.budget_s is None or self.beam == 1:
            return
        mean = seconds
        if self.mean_s is not None:
            mean = self.mean_s + _SMOOTHING * (seconds - self.mean_s)
        self.mean_s = mean
        if not self.greedy and mean > self.budget_s:
            self._switch(mean, greedy=True)
        elif self.greedy and mean * _BEAM_COST < self.budget_s:
            self._switch(mean, greedy=False)

    def _switch(self, mean: float, *, greedy: bool) -> None:
        logger.info(
            "stream decodes %s: mean decode %.2f s, budget %.2f s",
            "greedy" if greedy else f"with beam {self.beam}",
            mean,
            self.budget_s,
        )
        self.greedy = greedy
        self.switches += 1
        # The new mode's own times decide from here; start it from what it is expected to cost.
        self.mean_s = mean / _BEAM_COST if greedy else mean * _BEAM_COST
