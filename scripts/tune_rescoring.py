"""Choose N-best rescoring's settings on a tuning split, and check them on clips it never saw.

1. ``dump``: transcribes the Korean clips of a manifest through malsori's own decoding (the
   sequential pipeline, language given, post-processing off) and records, for each window, the
   beam's hypotheses (text, Whisper's log-probability, token count) and the language model's
   score of each one rescoring may pick. Cached as JSON: the grid below needs no decoding.
2. ``grid``: for every weight, number of hypotheses and length handling, the character (without
   spaces) and word error rates the choice gives on the tuning split; the best there (the least
   sum of CER and WER, each relative to Whisper's own best) is then scored once on the
   evaluation split, against Whisper's own best, with a paired bootstrap interval.
3. ``spacing``: on the readings rescoring chooses (default settings), where the word boundaries
   still differ from the references after malsori's spacing (by kind of boundary, as
   ``korean.boundary_kind`` sees it), and a search of ``korean.standard_spacing``'s policy and
   sureness threshold on the tuning split (WER), then scored once on the evaluation split.

The split is by speaker and by sentence: the dev set's ``kih`` speaker reads 120 sentences that no
other speaker reads; the ten ``ne*`` speakers, the four ``ad*`` speakers and the KSS clips read
other sentences. Tuning on ``kih`` and evaluating on the rest means neither the voices nor the
sentences of the evaluation were seen by the tuning.

    .venv/bin/python scripts/tune_rescoring.py dump --out bench-results/nbest.json
    .venv/bin/python scripts/tune_rescoring.py grid bench-results/nbest.json
    .venv/bin/python scripts/tune_rescoring.py spacing bench-results/nbest.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from malsori.evaluation import error_counts, normalize_text
from malsori.manifest import load_manifest
from malsori.rescoring import Choice, Hypothesis, Rescorer

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = ROOT.parent / "shared" / "evaldata" / "manifest.tsv"
TUNE_SPEAKERS = ("kih",)
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5)
HYPOTHESES = (2, 3, 5)


def speaker(path: str) -> str:
    parts = Path(path).parts
    return parts[-2] if "ko_emotiontts" in parts else parts[-2] if len(parts) > 1 else "?"


def split_of(path: str) -> str:
    return "tune" if speaker(path) in TUNE_SPEAKERS else "eval"


def dump(args: argparse.Namespace) -> None:
    import malsori.transcribe as transcribe_module
    from malsori import load_model
    from malsori.options import TranscribeOptions

    root = Path(args.manifest).parent
    entries = [
        e
        for e in load_manifest(args.manifest)
        if e.language == "ko"
        and "longform" not in str(e.audio)
        and args.split in ("all", split_of(str(Path(e.audio).relative_to(root))))
    ]
    if args.limit:
        entries = entries[: args.limit]
    windows: list[Choice] = []
    original = transcribe_module.rescorer_for

    def recording(options: Any) -> Rescorer | None:
        rescorer = original(options)
        if rescorer is not None:
            rescorer.observer = windows.append
        return rescorer

    transcribe_module.rescorer_for = recording  # type: ignore[assignment]
    model = load_model(args.model, threads=args.threads)
    opts = TranscribeOptions(
        language="ko", korean_spacing=False, korean_punctuation=False, rescore=True
    )
    out = []
    start = time.perf_counter()
    for n, entry in enumerate(entries, 1):
        windows.clear()
        t = model.transcribe(entry.audio, opts)
        rel = str(Path(entry.audio).relative_to(Path(args.manifest).parent))
        out.append({
            "path": rel,
            "split": split_of(rel),
            "reference": entry.reference,
            "text": t.text,
            "windows": [
                {"hyps": [[h.text, h.logprob, len(h.tokens)] for h in w.hypotheses],
                 "lm": w.lm_scores}
                for w in windows
            ],
        })  # fmt: skip
        if n % 20 == 0:
            print(f"{n}/{len(entries)} {time.perf_counter() - start:.0f} s", file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=0))
    print(f"wrote {args.out}: {len(out)} clips", file=sys.stderr)


class _Fixed:
    """A scorer that answers from the dump (the scores Kiwi gave when it was made)."""

    def __init__(self, scores: dict[str, float | None]):
        self.scores = scores

    def score(self, text: str) -> float:
        value = self.scores.get(text)
        if value is None:
            raise ValueError("not scored")
        return value


def chosen_text(clip: dict[str, Any], weight: float, kept: int, norm: bool) -> str:
    texts = []
    for w in clip["windows"]:
        hyps = [Hypothesis([0] * n, text, lp) for text, lp, n in w["hyps"]][:kept]
        scores = {h.text: s for h, s in zip(hyps, w["lm"], strict=False) if s is not None}
        rescorer = Rescorer({"ko": _Fixed(scores)}, weight=weight, hypotheses=kept,
                            length_norm=norm)  # fmt: skip
        texts.append(hyps[rescorer.choose(hyps, "ko")].text if hyps else "")
    return "".join(texts) if clip["windows"] else clip["text"]


def counts(clips: list[dict[str, Any]], texts: list[str], unit: str) -> list[tuple[int, int]]:
    """(errors, reference length) per clip; unit "word", "char" or "char-nospace"."""
    out = []
    for clip, text in zip(clips, texts, strict=True):
        ref, hyp = normalize_text(clip["reference"], "ko"), normalize_text(text, "ko")
        if unit == "char-nospace":
            ref, hyp, unit_ = ref.replace(" ", ""), hyp.replace(" ", ""), "char"
        else:
            unit_ = unit
        c = error_counts(ref, hyp, unit=unit_)
        out.append((c.errors, c.length))
    return out


def rate(pairs: list[tuple[int, int]]) -> float:
    return 100.0 * sum(e for e, _ in pairs) / max(1, sum(n for _, n in pairs))


def bootstrap(
    base: list[tuple[int, int]], new: list[tuple[int, int]], rounds: int = 2000
) -> tuple[float, float]:
    """95 % interval of the relative change of the error rate, resampling clips (paired)."""
    rng = random.Random(0)
    n = len(base)
    changes = []
    for _ in range(rounds):
        idx = [rng.randrange(n) for _ in range(n)]
        b = rate([base[i] for i in idx])
        c = rate([new[i] for i in idx])
        changes.append(100.0 * (c - b) / b if b else 0.0)
    changes.sort()
    return changes[int(0.025 * rounds)], changes[int(0.975 * rounds)]


def grid(args: argparse.Namespace) -> None:
    clips = json.loads(Path(args.dump).read_text())
    tune = [c for c in clips if c["split"] == "tune"]
    held = [c for c in clips if c["split"] == "eval"]
    base_texts = {id(c): chosen_text(c, 0.0, 1, True) for c in clips}
    print(f"tuning split: {len(tune)} clips ({', '.join(TUNE_SPEAKERS)}); "
          f"evaluation split: {len(held)} clips (other speakers and sentences)")  # fmt: skip
    print("\n| length | hyps | weight | tune CER (no spaces) | tune WER |\n|---|---|---|---|---|")
    tb_cer = counts(tune, [base_texts[id(c)] for c in tune], "char-nospace")
    print(f"| (Whisper's best) | 1 | - | {rate(tb_cer):.2f} | "
          f"{rate(counts(tune, [base_texts[id(c)] for c in tune], 'word')):.2f} |")  # fmt: skip
    base_wer = rate(counts(tune, [base_texts[id(c)] for c in tune], "word"))
    # Both goals count: the choice minimises CER and WER relative to Whisper's own, summed.
    best: tuple[float, float, int, bool] | None = None
    curves: dict[str, list[tuple[float, float, float]]] = {}
    for norm in (False, True):
        for kept in HYPOTHESES:
            for weight in WEIGHTS:
                texts = [chosen_text(c, weight, kept, norm) for c in tune]
                cer = rate(counts(tune, texts, "char-nospace"))
                wer = rate(counts(tune, texts, "word"))
                kind = "mean" if norm else "sum"
                print(f"| {kind} | {kept} | {weight} | {cer:.2f} | {wer:.2f} |")
                curves.setdefault(f"{kind}, {kept} hypotheses", []).append((weight, cer, wer))
                criterion = cer / rate(tb_cer) + wer / base_wer
                if best is None or criterion < best[0] - 1e-9:
                    best = (criterion, weight, kept, norm)
    assert best is not None
    _, weight, kept, norm = best
    if args.plot:
        plot(curves, rate(tb_cer), base_wer, args.plot)
    print(f"\nchosen on the tuning split: weight {weight}, {kept} hypotheses, "
          f"{'mean' if norm else 'sum'} scores")  # fmt: skip
    groups: dict[str, list[dict[str, Any]]] = {"all evaluation clips": held}
    for c in held:
        groups.setdefault(speaker(c["path"])[:2], []).append(c)
    print("\n| evaluation subset | clips | CER before | CER after | change (95 % CI) | "
          "WER before | WER after |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for name, group in groups.items():
        before = [base_texts[id(c)] for c in group]
        after = [chosen_text(c, weight, kept, norm) for c in group]
        bc, ac = counts(group, before, "char-nospace"), counts(group, after, "char-nospace")
        lo, hi = bootstrap(bc, ac)
        bw, aw = counts(group, before, "word"), counts(group, after, "word")
        change = 100.0 * (rate(ac) - rate(bc)) / rate(bc) if rate(bc) else 0.0
        print(
            f"| {name} | {len(group)} | {rate(bc):.2f} | {rate(ac):.2f} | "
            f"{change:+.1f} % ({lo:+.1f}..{hi:+.1f}) | {rate(bw):.2f} | {rate(aw):.2f} |"
        )
    if args.examples:
        print("\nchanged outputs on the evaluation split (reference / before / after):")
        for c in held:
            before, after = base_texts[id(c)], chosen_text(c, weight, kept, norm)
            if before != after:
                print(f"- {c['reference']}\n  {before}\n  {after}")


# --- spacing ---------------------------------------------------------------------------------

OPTIONAL_KINDS = ("auxiliary", "compound", "unit", "dependent")
ACTIONS = ("keep", "attach", "space", "kiwi")
SURENESS = (-5.0, -6.0, -7.0, -8.0, -10.0, -13.0, -1000.0)


def _boundaries(text: str) -> tuple[str, set[int]]:
    """``text`` without spaces, and the indices of its characters that follow a space."""
    dense, marks = [], set()
    for ch in text:
        if ch == " ":
            marks.add(len(dense))
        else:
            dense.append(ch)
    marks.discard(0)
    return "".join(dense), marks


def boundary_errors(reference: str, text: str) -> list[tuple[str, str]]:
    """(``missing`` or ``extra``, kind) for every word boundary where ``text`` (normalised)
    differs from ``reference`` on characters both have; the kind is ``korean.boundary_kind``'s
    on ``text``'s morphemes (``doubtful`` when Kiwi is unsure of them, ``none:L+R`` by tags when
    no rule applies, ``inside`` within a morpheme)."""
    import difflib

    from malsori import korean

    ref, hyp = normalize_text(reference, "ko"), normalize_text(text, "ko")
    r, rb = _boundaries(ref)
    h, hb = _boundaries(hyp)
    joined = h  # Kiwi reads the text without spaces: the kind does not depend on them
    with korean._lock:
        tokens = [t for t in korean._get_kiwi().tokenize(joined) if t.len > 0]
    ends = {t.start + t.len: t for t in tokens}
    starts = {t.start: t for t in tokens}
    out = []
    for a, b, size in difflib.SequenceMatcher(None, r, h, autojunk=False).get_matching_blocks():
        for k in range(1, size):
            i, j = a + k, b + k
            if (i in rb) == (j in hb):
                continue
            left, right = ends.get(j), starts.get(j)
            if left is None or right is None:
                kind = "inside"
            elif korean._doubtful(left, korean.SURE_MORPHEME_SCORE) or korean._doubtful(
                right, korean.SURE_MORPHEME_SCORE
            ):
                kind = "doubtful"
            else:
                kind = korean.boundary_kind(left, right) or f"none:{left.tag}+{right.tag}"
            out.append(("missing" if i in rb else "extra", kind))
    return out


def spaced(texts: list[str], policy: dict[str, str], sure: float) -> list[str]:
    from malsori import korean

    return [korean.standard_spacing(korean.correct_spacing(t), sure, policy) for t in texts]


def spacing(args: argparse.Namespace) -> None:
    from collections import Counter

    from malsori import korean
    from malsori.rescoring import DEFAULT_HYPOTHESES, DEFAULT_WEIGHT

    clips = json.loads(Path(args.dump).read_text())
    raw = {id(c): chosen_text(c, DEFAULT_WEIGHT, DEFAULT_HYPOTHESES, False) for c in clips}
    tune = [c for c in clips if c["split"] == "tune"]
    held = [c for c in clips if c["split"] == "eval"]
    current = dict(korean.SPACING_POLICY), korean.SURE_MORPHEME_SCORE

    def wer(group: list[dict[str, Any]], policy: dict[str, str], sure: float) -> float:
        return rate(counts(group, spaced([raw[id(c)] for c in group], policy, sure), "word"))

    for name, group in (("tuning", tune), ("evaluation", held)):
        if not group:
            continue
        texts = spaced([raw[id(c)] for c in group], *current)
        errors: Counter[tuple[str, str]] = Counter()
        for c, t in zip(group, texts, strict=True):
            errors.update(boundary_errors(c["reference"], t))
        total = sum(errors.values())
        print(
            f"\n{name} split ({len(group)} clips): {total} word boundaries differ from the "
            f"references after malsori's spacing (WER {wer(group, *current):.2f}, unspaced "
            f"Whisper text {rate(counts(group, [raw[id(c)] for c in group], 'word')):.2f})"
        )
        print("\n| boundary | kind | count |\n|---|---|---:|")
        for (side, kind), n in errors.most_common(args.top):
            print(f"| {side} | {kind} | {n} |")
    if not tune:
        return
    # Coordinate search on the tuning split: each setting in turn, twice over.
    policy, sure = dict(current[0]), current[1]
    best = wer(tune, policy, sure)
    for _ in range(2):
        for kind in OPTIONAL_KINDS:
            for action in ACTIONS:
                trial = {**policy, kind: action}
                value = wer(tune, trial, sure)
                if value < best - 1e-9:
                    best, policy = value, trial
        for threshold in SURENESS:
            value = wer(tune, policy, threshold)
            if value < best - 1e-9:
                best, sure = value, threshold
    print(
        f"\nchosen on the tuning split: {policy}, sureness {sure} (tuning WER {best:.2f}, "
        f"current {wer(tune, *current):.2f})"
    )
    if held:
        before = counts(held, spaced([raw[id(c)] for c in held], *current), "word")
        after = counts(held, spaced([raw[id(c)] for c in held], policy, sure), "word")
        lo, hi = bootstrap(before, after)
        print(
            f"evaluation split: WER {rate(before):.2f} (current) -> {rate(after):.2f} "
            f"(chosen), change 95 % CI {lo:+.1f} % .. {hi:+.1f} %"
        )


def plot(
    curves: dict[str, list[tuple[float, float, float]]], cer0: float, wer0: float, path: str
) -> None:
    """The tuning split's CER and WER against the weight, one line per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, points in curves.items():
        w = [p[0] for p in points]
        axes[0].plot(w, [p[1] for p in points], marker="o", label=name)
        axes[1].plot(w, [p[2] for p in points], marker="o", label=name)
    for ax, base, title in ((axes[0], cer0, "CER without spaces (%)"), (axes[1], wer0, "WER (%)")):
        ax.axhline(base, color="grey", linestyle="--", label="Whisper's best")
        ax.set_xlabel("language-model weight")
        ax.set_title(f"tuning split: {title}")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--manifest", default=str(DEFAULT_MANIFEST))
    d.add_argument("--model", default="base")
    d.add_argument("--threads", type=int, default=2)
    d.add_argument("--limit", type=int, default=0)
    d.add_argument("--split", choices=("all", "tune", "eval"), default="all")
    d.add_argument("--out", default=str(ROOT / "bench-results" / "nbest.json"))
    g = sub.add_parser("grid")
    g.add_argument("dump")
    g.add_argument("--examples", action="store_true")
    g.add_argument("--plot", default=None, metavar="PNG", help="draw the tuning curves here")
    sp = sub.add_parser("spacing")
    sp.add_argument("dump")
    sp.add_argument("--top", type=int, default=25, help="kinds of differing boundary listed")
    args = parser.parse_args()
    {"dump": dump, "grid": grid, "spacing": spacing}[args.command](args)


if __name__ == "__main__":
    main()
