"""Who speaks when: speaker embeddings over sliding windows of the speech regions, clustered.

Each speech region (Silero VAD, with a short minimum silence so that a pause between two
speakers splits them) is covered by windows of ``WINDOW_S`` every ``STEP_S``; a region shorter
than a window is one window. Each window's embedding speaks for the stretch around its centre, so
a speaker change inside a region becomes a turn boundary within about ``STEP_S / 2``. Windows are
clustered by average-linkage agglomerative clustering on cosine distance (SciPy): cut at
``num_speakers`` clusters when that is given, otherwise where the closest two clusters are further
apart than ``MERGE_DISTANCE``, kept within ``min_speakers``..``max_speakers``. Each window then
goes to its nearest cluster centre, a lone window between two of another speaker is smoothed away,
and clusters with less than ``MIN_SPEAKER_S`` of speech are folded into their nearest neighbour
(a cough or a lone "yes" is not a speaker) unless the number of speakers was given.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from .encoder import HOP, SpeakerEncoder

WINDOW_S = 1.5  # seconds of speech one embedding sees
STEP_S = 0.5  # seconds between windows: the resolution of a speaker change
MIN_REGION_S = 0.2  # shorter speech regions get no embedding of their own (they join a neighbour)
# Mean cosine distance between the windows of two clusters beyond which they are two people
# (measured on 1.5 s windows of read Korean speech: one voice's windows lie a median 0.25 apart,
# two voices' 0.44; the two overlap, so the number of speakers is an estimate).
MERGE_DISTANCE = 0.33
MIN_SPEAKER_S = 3.0  # a "speaker" with less speech than this is folded into the nearest one

_FRAMES_PER_S = SAMPLE_RATE // HOP  # mel frames a second (100)


@dataclass(frozen=True)
class Turn:
    """A stretch of speech by one speaker (cluster index, before labels are given)."""

    start: float
    end: float
    speaker: int


@dataclass(frozen=True)
class Windows:
    """The embedded windows: the span each speaks for, its region, and its embedding."""

    spans: np.ndarray  # (n, 2) seconds
    regions: np.ndarray  # (n,) index of the speech region
    embeddings: np.ndarray  # (n, 256) unit vectors


def embed_regions(
    encoder: SpeakerEncoder, audio: np.ndarray, regions: list[tuple[float, float]]
) -> Windows:
    """Windows over each speech region (seconds) of ``audio``, embedded in batches."""
    mel = encoder.mel(audio)
    win, step = round(WINDOW_S * _FRAMES_PER_S), round(STEP_S * _FRAMES_PER_S)
    spans, owners, windows = [], [], []
    for r, (start, end) in enumerate(regions):
        a, b = int(start * _FRAMES_PER_S), min(int(end * _FRAMES_PER_S), mel.shape[0])
        if b - a < MIN_REGION_S * _FRAMES_PER_S:
            continue
        starts = [a] if b - a <= win else [*range(a, b - win, step), b - win]
        centres = [s + min(win, b - a) / 2 for s in starts]
        cuts = [a, *((c + d) / 2 for c, d in itertools.pairwise(centres)), b]
        for k, s in enumerate(starts):
            windows.append(mel[s : min(s + win, b)])
            spans.append((cuts[k] / _FRAMES_PER_S, cuts[k + 1] / _FRAMES_PER_S))
            owners.append(r)
    embeddings = encoder.embed(windows) if windows else np.zeros((0, 256), np.float32)
    return Windows(np.asarray(spans).reshape(-1, 2), np.asarray(owners, dtype=int), embeddings)


def cluster(windows: Windows, fewest: int, most: int, exact: bool) -> np.ndarray:
    """A cluster index for every window (0, 1, ...; empty for no windows)."""
    n = len(windows.embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1 or most == 1:
        return np.zeros(n, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(windows.embeddings, method="average", metric="cosine")
    if exact:
        labels = fcluster(tree, t=min(fewest, n), criterion="maxclust")
    else:
        labels = fcluster(tree, t=MERGE_DISTANCE, criterion="distance")
        count = len(set(labels))
        if count > most or count < fewest:
            labels = fcluster(tree, t=min(max(count, fewest), most, n), criterion="maxclust")
    labels = _refine(windows, np.asarray(labels) - 1)
    if not exact:
        labels = _fold_small(windows, labels, max(1, fewest))
    return _renumber(labels)


def _centres(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    centres = np.stack([embeddings[labels == k].mean(axis=0) for k in range(labels.max() + 1)])
    return centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-8)


def _refine(windows: Windows, labels: np.ndarray) -> np.ndarray:
    """Each window to its nearest cluster centre, then lone windows smoothed within a region."""
    labels = _renumber(labels)
    labels = np.argmax(windows.embeddings @ _centres(windows.embeddings, labels).T, axis=1)
    out = labels.copy()
    for i in range(1, len(labels) - 1):
        same_region = windows.regions[i - 1] == windows.regions[i] == windows.regions[i + 1]
        if same_region and labels[i - 1] == labels[i + 1] != labels[i]:
            out[i] = labels[i - 1]
    return _renumber(out)


def _fold_small(windows: Windows, labels: np.ndarray, fewest: int) -> np.ndarray:
    """Clusters with less than ``MIN_SPEAKER_S`` of speech join their nearest cluster."""
    while labels.max() + 1 > fewest:
        durations = np.bincount(labels, weights=windows.spans[:, 1] - windows.spans[:, 0])
        small = int(np.argmin(durations))
        if durations[small] >= MIN_SPEAKER_S:
            break
        centres = _centres(windows.embeddings, labels)
        similarity = centres @ centres[small]
        similarity[small] = -np.inf
        labels = _renumber(np.where(labels == small, int(np.argmax(similarity)), labels))
    return labels


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Cluster indices 0, 1, ... in order of first appearance."""
    order: dict[int, int] = {}
    for k in labels.tolist():
        order.setdefault(k, len(order))
    return np.asarray([order[k] for k in labels.tolist()], dtype=int)


def turns_of(windows: Windows, labels: np.ndarray) -> list[Turn]:
    """Consecutive windows of one speaker in one region joined into turns."""
    turns: list[Turn] = []
    for (start, end), speaker in zip(windows.spans.tolist(), labels.tolist(), strict=True):
        last = turns[-1] if turns else None
        if last is not None and last.speaker == speaker and abs(last.end - start) < 1e-6:
            turns[-1] = Turn(last.start, end, speaker)
        else:
            turns.append(Turn(start, end, speaker))  # a new region or a new speaker
    return turns
