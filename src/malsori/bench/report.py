"""The benchmark's results on disk: a markdown table, the JSON, and PNG charts.

``results.md`` has one table per workload (a row per configuration, skipped ones with their
reason), ``results.json`` everything measured, ``speed-accuracy.png`` RTFx against CER (one
point per configuration and workload) and ``memory-size.png`` peak RSS and size on disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from .runner import SHORT, BenchReport, ConfigResult, WorkloadResult

TABLE = "results.md"
JSON = "results.json"
SPEED_CHART = "speed-accuracy.png"
MEMORY_CHART = "memory-size.png"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _mb(v: int | None) -> str:
    return "-" if v is None else f"{v / 1e6:.0f}"


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _row(c: ConfigResult, w: WorkloadResult) -> str:
    bound = "-" if w.times_bound is None else f"{w.times_bound:.0f}x"
    cells = [
        f"`{c.name}`",
        f"{w.rtfx:.1f}",
        f"{w.median_seconds:.1f} ± {w.spread_seconds / 2:.1f}",
        _pct(w.wer),
        _pct(w.cer),
        _pct(w.cer_nospace),
        _pct(w.language_id_accuracy),
        _s(c.load_seconds),
        _mb(c.peak_rss_bytes),
        _mb(c.peak_gpu_bytes),
        _mb(c.size_bytes),
        bound,
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| configuration | RTFx | wall s (median ± half range) | WER | CER | CER no spaces | "
    "LID acc | load s | peak RSS MB | peak GPU MB | size MB | × encoder bound |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def markdown(report: BenchReport) -> str:
    meta = report.meta
    lines = ["# malsori bench", ""]
    if meta.get("command_line"):
        lines += [f"`{meta['command_line']}`", ""]
    for key in ("model", "device", "threads", "repeats", "created", "platform", "cpu_count"):
        if key in meta:
            lines.append(f"- {key}: {meta[key]}")
    if report.probe is not None:
        int8 = "-" if report.probe.int8_gops is None else f"{report.probe.int8_gops:.0f}"
        lines.append(
            f"- GEMM probe ({report.probe.threads} threads): fp32 {report.probe.fp32_gflops:.0f} "
            f"GFLOP/s, int8 {int8} GOP/s"
        )
    workloads: list[tuple[str, int, float]] = []
    for c in report.configs:
        for w in c.workloads:
            if w.workload not in [n for n, _, _ in workloads]:
                workloads.append((w.workload, w.clips, w.audio_seconds))
    for name, clips, seconds in workloads:
        lines += ["", f"## {name} workload: {clips} file(s), {seconds:.0f} s of audio", "", HEADER]
        for c in report.configs:
            found = c.workload(name)
            if found is not None:
                lines.append(_row(c, found))
    skipped = [c for c in report.configs if c.status != "ok" or c.notes]
    if skipped:
        lines += ["", "## Not run", ""]
        for c in report.configs:
            if c.status != "ok":
                lines.append(f"- `{c.name}` {c.status}: {c.reason}")
            for note in c.notes:
                lines.append(f"- `{c.name}`: {note}")
    lines += [
        "",
        "RTFx: seconds of audio per second of wall time (median over repeats). "
        "× encoder bound: the median time over the time the encoders alone would take at the "
        "GEMM probe's peak (int8 or fp32, as the configuration computes). "
        "WER/CER: corpus-level, `malsori eval`'s normalisation; LID acc: languages detected "
        "right.",
    ]
    return "\n".join(lines) + "\n"


def _points(report: BenchReport) -> list[tuple[str, str, WorkloadResult]]:
    return [(c.name, w.workload, w) for c in report.configs for w in c.workloads]


def speed_chart(report: BenchReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    for workload, marker in ((SHORT, "o"), ("long", "s")):
        pts = [(n, w.cer * 100, w.rtfx) for n, wl, w in _points(report)
               if wl == workload and w.cer is not None]  # fmt: skip
        if not pts:
            continue
        ax.scatter([x for _, x, _ in pts], [y for _, _, y in pts], marker=marker,
                   label=f"{workload} workload")  # fmt: skip
        for name, x, y in pts:
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("CER, % (lower is better)")
    ax.set_yscale("log")  # engines differ by orders of magnitude
    ax.set_ylabel("RTFx, audio s per wall s (higher is better; log scale)")
    ax.set_title("Speed against accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def memory_chart(report: BenchReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    ran = [c for c in report.configs if c.status == "ok"]
    fig, ax = plt.subplots(figsize=(10, 5))
    xs = range(len(ran))
    ax.bar([x - 0.2 for x in xs], [(c.peak_rss_bytes or 0) / 1e6 for c in ran], 0.4,
           label="peak RSS")  # fmt: skip
    ax.bar([x + 0.2 for x in xs], [(c.size_bytes or 0) / 1e6 for c in ran], 0.4,
           label="size on disk")  # fmt: skip
    ax.set_xticks(list(xs), [c.name for c in ran], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("MB")
    ax.set_title("Memory and size")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_all(report: BenchReport, output_dir: Path) -> Sequence[Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    table, data = output_dir / TABLE, output_dir / JSON
    _atomic_write(table, markdown(report))
    _atomic_write(data, json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    speed_chart(report, output_dir / SPEED_CHART)
    memory_chart(report, output_dir / MEMORY_CHART)
    return [table, data, output_dir / SPEED_CHART, output_dir / MEMORY_CHART]
