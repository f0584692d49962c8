"""Measure Korean post-processing (spacing, punctuation) on real speech and on unspaced text.

(a) Transcribes the Korean clips of a manifest once with post-processing off (cached as JSON, so
    reruns are instant), then scores the raw hypotheses, the post-processed ones and, for
    comparison, Kiwi's ``space()`` applied to every segment. Exits with status 1 if
    post-processing raises the word error rate.
(b) Removes every space from the references, restores them with ``korean.correct_spacing`` and
    reports how much of the reference spacing comes back (WER against the reference, and the
    recall/precision of the reference's word boundaries); also checks that the references as
    written are left unchanged.

Scoring uses ``malsori.evaluation`` (NFKC, punctuation removed, Hangul kept; jiwer counts).

    .venv/bin/python scripts/korean_postprocess_eval.py --limit 100
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from malsori import korean
from malsori.evaluation import ErrorCounts, error_counts, normalize_text
from malsori.manifest import ManifestEntry, load_manifest
from malsori.options import TranscribeOptions
from malsori.postprocess import FLAGS, postprocess_segments
from malsori.results import Segment, Transcript

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = ROOT.parent / "shared" / "evaldata" / "manifest.tsv"
DEFAULT_CACHE = ROOT / "bench-results" / "korean_postprocess_raw.json"
RAW = TranscribeOptions(
    language="ko", word_timestamps=True, korean_spacing=False, korean_punctuation=False
)

log = logging.getLogger("korean_postprocess_eval")


def spread(entries: Sequence[ManifestEntry], limit: int, longform: bool) -> list[ManifestEntry]:
    """``limit`` short clips evenly spaced over the list (every speaker and style, not just the
    first), plus the long recordings when asked (many segments, sentences cut across them)."""
    long = [e for e in entries if "longform" in e.audio.parts]
    short = [e for e in entries if e not in long]
    if limit < len(short):
        step = len(short) / limit
        short = [short[int(i * step)] for i in range(limit)]
    return short + (long if longform else [])


def transcribe_raw(entries: list[ManifestEntry], args: argparse.Namespace) -> list[Transcript]:
    """Raw transcripts (post-processing off), from the cache where it has them."""
    cache: dict[str, dict] = {}
    key = f"{args.model}|beam={args.beam_size}"
    if args.cache.exists():
        data = json.loads(args.cache.read_text(encoding="utf-8"))
        if data.get("key") == key:
            cache = data["clips"]
    missing = [e for e in entries if str(e.audio) not in cache]
    if missing:
        import malsori

        model = malsori.load_model(args.model, threads=args.threads)
        opts = RAW.replace(beam_size=args.beam_size)
        started = time.perf_counter()
        for i, entry in enumerate(missing, start=1):
            cache[str(entry.audio)] = model.transcribe(entry.audio, opts).to_dict()
            log.info("%d/%d %.0f s %s", i, len(missing), time.perf_counter() - started, entry.id)
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        payload = {"key": key, "clips": cache}
        args.cache.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return [Transcript.from_dict(cache[str(e.audio)]) for e in entries]


def joined(segments: Sequence[Segment]) -> str:
    return " ".join(s.text.strip() for s in segments if s.text.strip())


def score(refs: Sequence[str], hyps: Sequence[str]) -> dict[str, float]:
    words, chars, nospace = ErrorCounts(), ErrorCounts(), ErrorCounts()
    for ref, hyp in zip(refs, hyps, strict=True):
        r, h = normalize_text(ref, "ko"), normalize_text(hyp, "ko")
        words += error_counts(r, h, unit="word")
        chars += error_counts(r, h, unit="char")
        nospace += error_counts(r.replace(" ", ""), h.replace(" ", ""), unit="char")
    return {"wer": words.rate or 0.0, "cer": chars.rate or 0.0, "cer_nospace": nospace.rate or 0.0}


def words_consistent(segments: Sequence[Segment]) -> bool:
    for s in segments:
        if not s.words:
            continue
        if s.text != "".join(w.word for w in s.words):
            return False
        starts = [w.start for w in s.words]
        if starts != sorted(starts) or any(
            w.start < s.start or w.end > s.end or w.end < w.start for w in s.words
        ):
            return False
    return True


@functools.cache
def _kiwi() -> Any:
    from kiwipiepy import Kiwi

    return Kiwi()


def blind_space(segments: Sequence[Segment]) -> str:
    """Kiwi's ``space()`` on every segment, as without malsori's decision (for comparison)."""
    return " ".join(_kiwi().space(s.text.strip()) for s in segments if s.text.strip())


def part_a(entries: list[ManifestEntry], args: argparse.Namespace) -> bool:
    transcripts = transcribe_raw(entries, args)
    refs = [e.reference for e in entries]
    default = TranscribeOptions(language="ko")
    variants: dict[str, Callable[[Sequence[Segment]], Sequence[Segment]]] = {
        "raw (post-processing off)": lambda segs: segs,
        "spacing only": lambda segs: postprocess_segments(
            segs, "ko", default.replace(korean_punctuation=False)
        ),
        "punctuation only": lambda segs: postprocess_segments(
            segs, "ko", default.replace(korean_spacing=False)
        ),
        "post-processed (default)": lambda segs: postprocess_segments(segs, "ko", default),
    }
    print(f"(a) {len(entries)} Korean clips, model {args.model}, beam {args.beam_size}")
    print(f"    {'':30} {'WER':>7} {'CER':>7} {'CER-nospace':>12}")
    results: dict[str, dict[str, float]] = {}
    flags: Counter[str] = Counter()
    consistent = True
    for name, run in variants.items():
        processed = [run(t.segments) for t in transcripts]
        if name.startswith("post-processed"):
            flags.update(f for segs in processed for s in segs for f in s.flags if f in FLAGS)
            consistent = all(words_consistent(segs) for segs in processed)
        results[name] = score(refs, [joined(segs) for segs in processed])
    results["Kiwi space() on every segment"] = score(
        refs, [blind_space(t.segments) for t in transcripts]
    )
    for name, r in results.items():
        print(f"    {name:30} {r['wer']:7.2%} {r['cer']:7.2%} {r['cer_nospace']:12.2%}")
    segments = sum(len(t.segments) for t in transcripts)
    changed = ", ".join(f"{f} {n}" for f, n in sorted(flags.items())) or "none"
    print(f"    segments: {segments}; changed: {changed}")
    print(f"    words consistent with text, in order, inside segments: {consistent}")
    agreement = marks(entries, transcripts)
    print(f"    final punctuation added, same mark as the reference: {agreement}")
    raw, post = results["raw (post-processing off)"], results["post-processed (default)"]
    ok = post["wer"] <= raw["wer"] + 1e-12 and consistent
    print(f"    post-processing raises WER: {'no' if ok else 'YES'}")
    return ok


def final_mark(text: str) -> str:
    text = text.rstrip()
    return text[-1] if text and text[-1] in ".?!" else ""


def marks(entries: Sequence[ManifestEntry], transcripts: Sequence[Transcript]) -> str:
    """How often the mark added at the end of a clip's last segment is the reference's."""
    default = TranscribeOptions(language="ko")
    same = added = 0
    for entry, t in zip(entries, transcripts, strict=True):
        if not t.segments or final_mark(t.segments[-1].text):
            continue
        last = postprocess_segments(t.segments[-1:], "ko", default)[0]
        if final_mark(last.text):
            added += 1
            same += final_mark(last.text) == final_mark(entry.reference)
    return f"{same}/{added}"


def boundaries(text: str) -> set[int]:
    """Positions (in non-space characters) where a space separates two words."""
    points, count = set(), 0
    for word in text.split():
        if count:
            points.add(count)
        count += len(word)
    return points


def part_b(references: list[str]) -> None:
    norm = [normalize_text(r, "ko") for r in references]
    squashed = [r.replace(" ", "") for r in references]
    restored = [korean.correct_spacing(s) for s in squashed]
    unchanged = sum(korean.correct_spacing(r) == r for r in references)
    hits = ref_total = out_total = 0
    for ref, out in zip(norm, restored, strict=True):
        want, got = boundaries(ref), boundaries(normalize_text(out, "ko"))
        hits += len(want & got)
        ref_total += len(want)
        out_total += len(got)
    recall, precision = hits / max(ref_total, 1), hits / max(out_total, 1)
    nospace_wer = score(references, squashed)["wer"]
    restored_wer = score(references, restored)["wer"]
    print(f"(b) {len(references)} distinct Korean references with every space removed")
    print(f"    WER of the unspaced text:        {nospace_wer:7.2%}")
    print(f"    WER after correct_spacing:       {restored_wer:7.2%}")
    print(f"    word boundaries restored:        {recall:7.2%} ({hits}/{ref_total})")
    print(f"    restored boundaries correct:     {precision:7.2%} ({hits}/{out_total})")
    print(f"    references as written unchanged: {unchanged}/{len(references)}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    p.add_argument("--limit", type=int, default=100, help="short Korean clips to transcribe")
    p.add_argument(
        "--longform",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the long Korean recordings (default: on)",
    )
    p.add_argument("--model", default="base")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="raw hypotheses (JSON)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    korean_entries = [e for e in load_manifest(args.manifest) if e.language == "ko"]
    ok = part_a(spread(korean_entries, args.limit, args.longform), args)
    part_b(list(dict.fromkeys(e.reference for e in korean_entries)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
