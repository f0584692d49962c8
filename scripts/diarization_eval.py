"""Measure speaker diarization on conversations built from real recordings.

Conversations are built (seeded) from the Korean clips of the evaluation set, one speaker a
corpus folder (``ko_emotiontts/<speaker>/`` and ``ko_kss/``: different folders are different
people): 2, 3 and 4 speakers, every speaker speaks, turns of 1-3 utterances of one speaker,
pauses of 0.2-1.0 s between turns, and about one turn in five cut to 1.0-1.8 s (shorter than 2 s).
The reference says who speaks where: each utterance's own speech regions (Silero VAD on the clip
alone) at its place in the conversation.

Reported:
  - DER (missed speech + false alarm + confusion) with pyannote.metrics, with a collar of 0.25 s
    either side of each reference boundary (pyannote's ``collar=0.5``) and without any collar,
    the number of speakers not given;
  - how often the number of speakers found is right;
  - word attribution: the transcribed words (model ``--model``, Korean, word timestamps) whose
    speaker, under the DER's optimal label mapping, is the speaker of the utterance they lie in;
  - known speakers: 3-speaker conversations with two of them enrolled from other clips of theirs
    (``reference_speaker``): the share of the enrolled speakers' turns named right (the label
    covering most of the turn is their name), and of the third speaker's turns not given a name;
  - time: diarization's time against transcription's on the same conversations (the encoder's
    one-time load reported apart);
  - the long-form recordings (one speaker each): speakers found and DER.

Splits (``--split``): the speakers are divided in two disjoint sets, so that values chosen on
one set are measured on people they were not chosen on. ``tune`` is ``kih`` and every other of
the remaining speakers in sorted order (ada, adc, kss, neb, ned, nek, nem, neo); ``eval`` is the
rest (adb, add, nea, nec, nee, nel, nen). ``all`` is every speaker (the measure before the split).
Values in ``malsori.diarize`` are tuned on ``tune`` only; the numbers reported are ``eval``'s.

    PYTHONPATH=src .venv/bin/python scripts/diarization_eval.py --split eval \
        --conversations 20 --transcribe 6

``--cache DIR`` keeps each audio's speech regions and window embeddings on disk (keyed by the
audio, the regions and the window settings), so that a second run changes only the clustering.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from malsori.audio import SAMPLE_RATE, AudioStream
from malsori.diarize import DiarizeOptions, diarize_audio, label_transcript, reference_speaker
from malsori.diarize import run as diarize_run
from malsori.diarize import turns as diarize_turns
from malsori.diarize.encoder import load_encoder
from malsori.diarize.run import Diarization, speech_spans
from malsori.options import TranscribeOptions

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "evaldata"
LONGFORM = ("longform/ko_kih_longform.flac", "longform/ljspeech_LJ001_0001-0032.flac")


@dataclass
class Conversation:
    audio: np.ndarray
    speakers: list[str]
    # (start, end, speaker) of each utterance's span and of its speech regions
    utterances: list[tuple[float, float, str]] = field(default_factory=list)
    speech: list[tuple[float, float, str]] = field(default_factory=list)
    turns: list[tuple[float, float, str]] = field(default_factory=list)


def speakers_of(data: Path) -> dict[str, list[Path]]:
    """Korean clips by speaker: one speaker per corpus folder."""
    found: dict[str, list[Path]] = defaultdict(list)
    for line in (data / "manifest.tsv").read_text(encoding="utf-8").splitlines():
        path, lang = line.split("\t")[:2]
        parts = path.split("/")
        if lang != "ko" or parts[0] not in ("ko_emotiontts", "ko_kss"):
            continue
        found[parts[1] if parts[0] == "ko_emotiontts" else "kss"].append(data / path)
    return {s: sorted(c) for s, c in found.items() if len(c) >= 4}


TUNE_FIRST = "kih"  # the tuning split: this speaker and every other of the rest, sorted


def split_pool(pool: dict[str, list[Path]], split: str) -> dict[str, list[Path]]:
    """The speakers of ``split``: ``tune`` and ``eval`` are disjoint, ``all`` is everyone."""
    if split == "all":
        return pool
    others = sorted(s for s in pool if s != TUNE_FIRST)
    tune = {TUNE_FIRST, *others[0::2]}
    return {s: c for s, c in pool.items() if (s in tune) == (split == "tune")}


def cache_embeddings(folder: Path) -> None:
    """Speech regions and window embeddings of each audio kept in ``folder`` between runs."""
    folder.mkdir(parents=True, exist_ok=True)
    spans, embed = diarize_run.speech_spans, diarize_run.embed_regions

    def key(*parts: Any) -> str:
        h = hashlib.sha1()
        for p in parts:
            h.update(p.tobytes() if isinstance(p, np.ndarray) else repr(p).encode())
        return h.hexdigest()

    def cached_spans(audio: np.ndarray, vad: TranscribeOptions) -> list[tuple[float, float]]:
        path = folder / f"vad-{key(audio)}.json"
        if path.exists():
            return [tuple(r) for r in json.loads(path.read_text())]  # type: ignore[misc]
        regions = spans(audio, vad)
        path.write_text(json.dumps(regions))
        return regions

    def cached_embed(encoder: Any, audio: np.ndarray, regions: list[tuple[float, float]]) -> Any:
        settings = (diarize_turns.WINDOW_S, diarize_turns.STEP_S, diarize_turns.MIN_REGION_S)
        path = folder / f"emb-{key(audio, regions, settings)}.npz"
        if path.exists():
            with np.load(path) as z:
                return diarize_turns.Windows(z["spans"], z["regions"], z["embeddings"])
        w = embed(encoder, audio, regions)
        np.savez(path, spans=w.spans, regions=w.regions, embeddings=w.embeddings)
        return w

    diarize_run.speech_spans = cached_spans  # type: ignore[assignment]
    diarize_run.embed_regions = cached_embed  # type: ignore[assignment]


class Clips:
    """Clip samples and their speech regions, read once."""

    def __init__(self) -> None:
        self.cache: dict[Path, tuple[np.ndarray, list[tuple[float, float]]]] = {}

    def get(self, path: Path) -> tuple[np.ndarray, list[tuple[float, float]]]:
        if path not in self.cache:
            audio = AudioStream(path).read()
            self.cache[path] = (audio, speech_spans(audio, TranscribeOptions()))
        return self.cache[path]


def build(rng: random.Random, pool: dict[str, list[Path]], k: int, clips: Clips) -> Conversation:
    speakers = rng.sample(sorted(pool), k)
    order = list(speakers) + [rng.choice(speakers) for _ in range(rng.randint(4, 8))]
    for i in range(1, len(order)):  # a turn is one speaker: no speaker twice in a row
        while order[i] == order[i - 1]:
            order[i] = rng.choice(speakers)
    conv = Conversation(np.zeros(0, np.float32), speakers)
    parts, t = [], 0.0
    for who in order:
        turn_start = t
        short = rng.random() < 0.2
        for u in range(1 if short else rng.randint(1, 3)):
            audio, regions = clips.get(rng.choice(pool[who]))
            if short:  # the first 1.0-1.8 s of its speech
                first = regions[0][0] if regions else 0.0
                cut = int((first + rng.uniform(1.0, 1.8)) * SAMPLE_RATE)
                audio = audio[:cut].copy()
                fade = min(320, audio.size)
                audio[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
                regions = [
                    (a, min(b, cut / SAMPLE_RATE)) for a, b in regions if a < cut / SAMPLE_RATE
                ]
            if u:
                gap = np.zeros(int(rng.uniform(0.05, 0.2) * SAMPLE_RATE), np.float32)
                parts.append(gap)
                t += gap.size / SAMPLE_RATE
            parts.append(audio)
            conv.utterances.append((t, t + audio.size / SAMPLE_RATE, who))
            conv.speech.extend((t + a, t + b, who) for a, b in regions)
            t += audio.size / SAMPLE_RATE
        conv.turns.append((turn_start, t, who))
        pause = np.zeros(int(rng.uniform(0.2, 1.0) * SAMPLE_RATE), np.float32)
        parts.append(pause)
        t += pause.size / SAMPLE_RATE
    conv.audio = np.concatenate(parts)
    return conv


def annotation(spans: list[tuple[float, float, str]]) -> Any:
    from pyannote.core import Annotation, Segment

    a = Annotation()
    for i, (s, e, who) in enumerate(spans):
        if e > s:
            a[Segment(s, e), i] = who
    return a


def der(reference: Any, hypothesis: Any) -> tuple[float, float]:
    """DER with a 0.25 s collar either side, and with none."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    collar = DiarizationErrorRate(collar=0.5)(reference, hypothesis)
    exact = DiarizationErrorRate(collar=0.0)(reference, hypothesis)
    return float(collar), float(exact)


def hyp_spans(d: Diarization) -> list[tuple[float, float, str]]:
    return [(t.start, t.end, t.speaker) for t in d.turns]


def majority(d: Diarization, start: float, end: float) -> str | None:
    cover: dict[str, float] = defaultdict(float)
    for t in d.turns:
        cover[t.speaker] += max(0.0, min(end, t.end) - max(start, t.start))
    return max(cover, key=lambda s: cover[s]) if cover and max(cover.values()) > 0 else None


def run_der(args: argparse.Namespace, pool: dict[str, list[Path]], clips: Clips) -> dict[str, Any]:
    rng = random.Random(args.seed)
    out: dict[str, Any] = {}
    for k in (2, 3, 4):
        ders, exact, right, found_counts, secs, dur = [], [], 0, [], 0.0, 0.0
        for _ in range(args.conversations):
            conv = build(rng, pool, k, clips)
            d = diarize_audio(conv.audio, DiarizeOptions())
            secs += d.seconds
            dur += conv.audio.size / SAMPLE_RATE
            c, e = der(annotation(conv.speech), annotation(hyp_spans(d)))
            ders.append(c)
            exact.append(e)
            found_counts.append(len(d.speakers))
            right += len(d.speakers) == k
            if args.verbose:
                print(f"  {k} speakers: found {len(d.speakers)}, DER {c:.3f}", file=sys.stderr)
        out[f"{k}_speakers"] = {
            "conversations": args.conversations,
            "der_collar_0.25": round(float(np.mean(ders)), 4),
            "der_no_collar": round(float(np.mean(exact)), 4),
            "der_worst": round(float(np.max(ders)), 4),
            "count_right": round(right / args.conversations, 3),
            "counts_found": found_counts,
            "audio_s": round(dur, 1),
            "diarize_s": round(secs, 2),
        }
        print(f"{k} speakers: {out[f'{k}_speakers']}", file=sys.stderr)
    return out


def run_words(
    args: argparse.Namespace, pool: dict[str, list[Path]], clips: Clips
) -> dict[str, Any]:
    """Word attribution and time added, on transcribed 2-speaker conversations."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    import malsori

    model = malsori.load_model(args.model)
    rng = random.Random(args.seed + 1)
    words = right = 0
    t_transcribe = t_diarize = 0.0
    for _ in range(args.transcribe):
        conv = build(rng, pool, 2, clips)
        transcript = model.transcribe(conv.audio, language="ko", word_timestamps=True)
        t_transcribe += transcript.processing_time
        began = time.perf_counter()
        d = diarize_audio(conv.audio, DiarizeOptions(), transcript.options)
        labelled = label_transcript(transcript, d)
        t_diarize += time.perf_counter() - began
        mapping = DiarizationErrorRate().optimal_mapping(
            annotation(conv.speech), annotation(hyp_spans(d))
        )
        for w in labelled.words:
            mid = (w.start + w.end) / 2
            truth = next((who for s, e, who in conv.utterances if s <= mid <= e), None)
            if truth is None or not w.word.strip():
                continue
            words += 1
            right += mapping.get(w.speaker) == truth
    result = {
        "conversations": args.transcribe,
        "words": words,
        "word_attribution": round(right / max(words, 1), 4),
        "transcribe_s": round(t_transcribe, 2),
        "diarize_s": round(t_diarize, 2),
        "time_added": round(t_diarize / max(t_transcribe, 1e-9), 4),
    }
    print(f"words: {result}", file=sys.stderr)
    return result


def run_known(
    args: argparse.Namespace, pool: dict[str, list[Path]], clips: Clips
) -> dict[str, Any]:
    """3-speaker conversations, two speakers enrolled from clips not in the conversation."""
    rng = random.Random(args.seed + 2)
    named = enrolled_turns = unknown_turns = unknown_unnamed = 0
    for _ in range(args.conversations):
        speakers = rng.sample(sorted(pool), 3)
        enrol = speakers[:2]
        held = {s: rng.sample(pool[s], 3) for s in enrol}  # reference clips, kept out
        rest = {s: [c for c in pool[s] if c not in held.get(s, [])] for s in speakers}
        conv = build(rng, rest, 3, clips)
        known = tuple(
            reference_speaker(s, np.concatenate([clips.get(c)[0] for c in held[s]])) for s in enrol
        )
        d = diarize_audio(conv.audio, DiarizeOptions(known=known))
        for s, e, who in conv.turns:
            label = majority(d, s, e)
            if who in enrol:
                enrolled_turns += 1
                named += label == who
            else:
                unknown_turns += 1
                unknown_unnamed += label not in enrol
    result = {
        "conversations": args.conversations,
        "enrolled_turns": enrolled_turns,
        "named_right": round(named / max(enrolled_turns, 1), 4),
        "other_turns": unknown_turns,
        "other_left_unnamed": round(unknown_unnamed / max(unknown_turns, 1), 4),
    }
    print(f"known speakers: {result}", file=sys.stderr)
    return result


def run_longform(args: argparse.Namespace, clips: Clips) -> dict[str, Any]:
    out = {}
    for rel in LONGFORM:
        path = args.data / rel
        if not path.exists():
            continue
        audio, regions = clips.get(path)
        d = diarize_audio(audio, DiarizeOptions())
        c, _ = der(annotation([(a, b, "A") for a, b in regions]), annotation(hyp_spans(d)))
        out[path.name] = {
            "audio_s": round(audio.size / SAMPLE_RATE, 1),
            "speakers_found": len(d.speakers),
            "der_collar_0.25": round(c, 4),
            "diarize_s": round(d.seconds, 2),
        }
        print(f"{path.name}: {out[path.name]}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation set folder")
    p.add_argument("--conversations", type=int, default=20, help="per speaker count (default 20)")
    p.add_argument("--transcribe", type=int, default=6,
                   help="2-speaker conversations transcribed (word attribution)")  # fmt: skip
    p.add_argument("--model", default="base")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=("eval", "tune", "all"), default="eval",
                   help="speakers used: eval (reported), tune (values chosen on), all")  # fmt: skip
    p.add_argument("--cache", type=Path, default=None, help="keep embeddings in this folder")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: der,words,known,long")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    pool = split_pool(speakers_of(args.data), args.split)
    if args.cache:
        cache_embeddings(args.cache)
    skip = set(args.skip.split(","))
    began = time.perf_counter()
    load_encoder()
    report: dict[str, Any] = {
        "split": args.split,
        "speakers": sorted(pool),
        "speakers_in_pool": len(pool),
        "encoder_load_s": round(time.perf_counter() - began, 2),
    }
    clips = Clips()
    if "der" not in skip:
        report["der"] = run_der(args, pool, clips)
    if "known" not in skip:
        report["known"] = run_known(args, pool, clips)
    if "long" not in skip:
        report["longform"] = run_longform(args, clips)
    if "words" not in skip and args.transcribe > 0:
        report["words"] = run_words(args, pool, clips)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
