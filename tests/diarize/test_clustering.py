"""The clustering of speaker embeddings, on synthetic embeddings whose speakers are known.

Each synthetic voice is a direction shared by every voice (GE2E embeddings all lie in one
orthant) plus the speaker's own direction plus, per turn, one of the speaker's "moods" (a
second, smaller direction: an emotional reading) and per-window noise; so a speaker's windows
form sub-clusters, as read emotional speech does with the real encoder.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from malsori.diarize.options import KnownSpeaker
from malsori.diarize.run import KNOWN_MIN_SIMILARITY, _names
from malsori.diarize.turns import (
    MERGE_DISTANCE,
    Windows,
    cluster,
    turns_of,
)

DIM = 256
STEP_S = 0.5


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def conversation(
    speakers: int,
    seed: int,
    turns: int = 16,
    windows_a_turn: tuple[int, int] = (4, 12),
    mood: float = 0.8,
    noise: float = 0.6,
) -> tuple[Windows, np.ndarray]:
    """Windows of a conversation (one speech region a turn) and each window's true speaker."""
    rng = np.random.default_rng(seed)
    common = 1.2 * _unit(rng.normal(size=DIM))
    voices = _unit(rng.normal(size=(speakers, DIM)))
    moods = _unit(rng.normal(size=(speakers, 3, DIM)))
    order = list(range(speakers)) + [int(rng.integers(speakers)) for _ in range(turns - speakers)]
    for i in range(1, len(order)):
        while speakers > 1 and order[i] == order[i - 1]:
            order[i] = int(rng.integers(speakers))
    spans, regions, embeddings, truth = [], [], [], []
    t = 0.0
    for r, who in enumerate(order):
        centre = common + voices[who] + mood * moods[who, rng.integers(3)]
        for _ in range(int(rng.integers(*windows_a_turn))):
            embeddings.append(_unit(centre + noise * rng.normal(size=DIM) / np.sqrt(DIM)))
            spans.append((t, t + STEP_S))
            regions.append(r)
            truth.append(who)
            t += STEP_S
        t += 0.6  # the pause between turns
    windows = Windows(np.asarray(spans), np.asarray(regions), np.asarray(embeddings, np.float32))
    return windows, np.asarray(truth)


def agreement(labels: np.ndarray, truth: np.ndarray) -> float:
    """The share of windows labelled right under the best one-to-one mapping of labels."""
    from scipy.optimize import linear_sum_assignment

    counts = np.zeros((labels.max() + 1, truth.max() + 1))
    np.add.at(counts, (labels, truth), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(labels))


@pytest.mark.parametrize("speakers", [2, 3, 4, 5])
def test_the_number_of_speakers_is_found_despite_moods(speakers: int) -> None:
    found = []
    for seed in range(5):
        windows, truth = conversation(speakers, seed)
        labels = cluster(windows, 1, 8, exact=False)
        found.append(int(labels.max()) + 1)
        assert agreement(labels, truth) > 0.9
    assert found == [speakers] * 5


def test_one_speaker_in_many_moods_is_one() -> None:
    for seed in range(5):
        windows, _ = conversation(1, seed, turns=12)
        assert set(cluster(windows, 1, 8, exact=False).tolist()) == {0}


def test_moods_are_further_apart_than_noise_but_closer_than_voices() -> None:
    """The synthetic data is what the tests claim: one speaker's moods lie within the merge
    distance of each other, two speakers' voices beyond it."""
    windows, truth = conversation(2, 0)
    turns = np.stack([_unit(windows.embeddings[windows.regions == r].sum(axis=0))
                      for r in range(windows.regions.max() + 1)])  # fmt: skip
    speaker = np.asarray([truth[windows.regions == r][0] for r in range(len(turns))])
    distance = 1 - turns @ turns.T
    same = distance[(speaker[:, None] == speaker[None, :]) & ~np.eye(len(turns), dtype=bool)]
    other = distance[speaker[:, None] != speaker[None, :]]
    assert same.max() > 0.1  # moods: a speaker's turns are not alike
    assert same.mean() < MERGE_DISTANCE < other.min()


def test_the_count_keeps_within_the_bounds_given() -> None:
    windows, truth = conversation(4, 0)
    assert int(cluster(windows, 1, 8, exact=False).max()) + 1 == 4
    assert int(cluster(windows, 1, 3, exact=False).max()) + 1 == 3
    assert int(cluster(windows, 6, 8, exact=False).max()) + 1 == 6
    exact = cluster(windows, 4, 4, exact=True)
    assert int(exact.max()) + 1 == 4 and agreement(exact, truth) > 0.9


def test_a_speaker_change_inside_a_region_becomes_a_turn() -> None:
    windows, truth = conversation(2, 3)
    # join every pair of turns into one region (no pause between them)
    joined = Windows(windows.spans, windows.regions // 2, windows.embeddings)
    labels = cluster(joined, 1, 8, exact=False)
    assert int(labels.max()) + 1 == 2 and agreement(labels, truth) > 0.9
    turns = turns_of(joined, labels)
    changes = sum(a.speaker != b.speaker for a, b in itertools.pairwise(turns))
    assert changes == sum(int(a != b) for a, b in itertools.pairwise(truth))


def test_a_few_windows_of_a_cough_are_not_a_speaker() -> None:
    windows, truth = conversation(2, 4)
    rng = np.random.default_rng(9)
    odd = _unit(rng.normal(size=DIM)).astype(np.float32)
    end = float(windows.spans[-1, 1]) + 0.6
    cough = Windows(
        np.vstack([windows.spans, [[end, end + STEP_S], [end + STEP_S, end + 2 * STEP_S]]]),
        np.concatenate([windows.regions, [windows.regions.max() + 1] * 2]),
        np.vstack([windows.embeddings, [odd, odd]]),
    )
    labels = cluster(cough, 1, 8, exact=False)
    assert int(labels.max()) + 1 == 2
    assert agreement(labels[: len(truth)], truth) > 0.9


def _voice(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return _unit(rng.normal(size=DIM) * 0.3 + 1.0)


def _near(voice: np.ndarray, similarity: float, seed: int) -> np.ndarray:
    """A unit vector at exactly ``similarity`` (cosine) to ``voice``."""
    other = np.random.default_rng(seed).normal(size=DIM)
    other = _unit(other - (other @ voice) * voice)
    return similarity * voice + np.sqrt(1 - similarity**2) * other


def test_known_voices_are_named_by_calibrated_similarity() -> None:
    ann, bob = _voice(1), _voice(2)
    known = (KnownSpeaker("Ann", ann), KnownSpeaker("Bob", bob))
    close, far = KNOWN_MIN_SIMILARITY + 0.05, KNOWN_MIN_SIMILARITY - 0.05
    # clusters: Ann, Ann in another mood, Bob, and a voice like Ann but not close enough
    embeddings = np.stack(
        [_near(ann, 0.97, 3), _near(ann, close, 4), _near(bob, 0.95, 5), _near(ann, far, 6)]
    )
    labels = np.arange(4)
    assert _names(embeddings, labels, known) == ["Ann", "Ann", "Bob", "SPEAKER_1"]
    # one to one first: the best match of a name keeps it when two clusters want it
    assert _names(embeddings[[3, 0]], np.arange(2), known[:1]) == ["SPEAKER_1", "Ann"]
    # no known voices: numbered in order of first speech
    assert _names(embeddings, labels, ()) == ["SPEAKER_1", "SPEAKER_2", "SPEAKER_3", "SPEAKER_4"]
