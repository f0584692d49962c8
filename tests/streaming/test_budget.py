"""The beam governor: beam search while decodes keep within the budget, greedy while they do
not, and back to the beam once greedy decodes leave room for it."""

from __future__ import annotations

import pytest

from malsori.streaming.budget import BeamGovernor


def run(governor: BeamGovernor, times: list[float]) -> list[int]:
    """The beam of each decode, each taking its time from ``times``."""
    beams = []
    for seconds in times:
        beams.append(governor.beam_size)
        governor.record(seconds)
    return beams


def test_fast_decodes_keep_the_beam() -> None:
    governor = BeamGovernor(5, 0.5)
    assert run(governor, [0.3, 0.45, 0.2, 0.4] * 5) == [5] * 20
    assert governor.switches == 0


def test_slow_decodes_go_greedy_and_fast_greedy_decodes_come_back() -> None:
    governor = BeamGovernor(5, 0.5)
    beams = run(governor, [0.9, 0.9, 0.9])  # a slow machine: greedy after the first
    assert beams == [5, 1, 1]
    # Greedy decodes of 0.6 s: a beam would cost more than the budget, so greedy stays.
    assert run(governor, [0.6] * 10) == [1] * 10
    # The load went away: greedy decodes take 0.2 s, a beam fits again.
    beams = run(governor, [0.2] * 10)
    assert beams[0] == 1 and beams[-1] == 5
    assert governor.switches == 2


def test_one_slow_decode_among_fast_ones_does_not_switch() -> None:
    governor = BeamGovernor(5, 0.5)
    assert run(governor, [0.3, 0.3, 0.3, 1.0, 0.3, 0.3]) == [5] * 6


def test_no_budget_or_greedy_options_never_switch() -> None:
    assert run(BeamGovernor(5, None), [3.0] * 5) == [5] * 5
    assert run(BeamGovernor(1, 0.5), [3.0] * 5) == [1] * 5


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        BeamGovernor(5, 0.0)
