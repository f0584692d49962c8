"""Does anything get written where nobody speaks? malsori vs. plain faster-whisper, side by side.

Renders non-speech clips with sox (silence, white/pink/brown noise at several levels, tones,
chords, sweeps, beeps, music-like note sequences, hum, noise bursts), transcribes each with
malsori's defaults and with plain faster-whisper (its defaults, and with its VAD on), and counts
the clips on which each one emits text.

    .venv/bin/python scripts/nonspeech_bench.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (name, sox synth arguments after "-n -r 16000 -c 1 OUT"), each 8-12 s.
CLIPS: list[tuple[str, list[str]]] = [
    ("silence", ["trim", "0", "10"]),
    ("near-silence-dither", ["synth", "10", "whitenoise", "vol", "0.001"]),
    ("white-noise-quiet", ["synth", "10", "whitenoise", "vol", "0.02"]),
    ("white-noise-loud", ["synth", "10", "whitenoise", "vol", "0.3"]),
    ("pink-noise-quiet", ["synth", "10", "pinknoise", "vol", "0.05"]),
    ("pink-noise-loud", ["synth", "10", "pinknoise", "vol", "0.5"]),
    ("brown-noise-quiet", ["synth", "10", "brownnoise", "vol", "0.1"]),
    ("brown-noise-loud", ["synth", "10", "brownnoise", "vol", "0.8"]),
    ("tone-440", ["synth", "10", "sine", "440", "vol", "0.3"]),
    ("tone-1k", ["synth", "10", "sine", "1000", "vol", "0.3"]),
    ("hum-50hz", ["synth", "10", "sine", "50", "sine", "100", "vol", "0.4"]),
    ("square-220", ["synth", "10", "square", "220", "vol", "0.1"]),
    ("sweep", ["synth", "10", "sine", "100-4000", "vol", "0.3"]),
    ("chord-cmaj", ["synth", "10", "sine", "261.6", "sine", "329.6", "sine", "392", "vol", "0.2"]),
    ("tremolo-tone", ["synth", "10", "sine", "330", "tremolo", "6", "80", "vol", "0.3"]),
    ("pluck-notes", ["synth", "1", "pluck", "C4", "pluck", "E4", "pluck", "G4", "repeat", "9"]),
    ("melody", ["synth", "0.5", "sine", "440", "synth", "0.5", "sine", "mix", "523",
                "repeat", "19", "vol", "0.3"]),
    ("beeps", ["synth", "0.2", "sine", "880", "pad", "0", "0.8", "repeat", "9", "vol", "0.4"]),
    ("noise-bursts", ["synth", "0.3", "whitenoise", "pad", "0", "1.2", "repeat", "6",
                      "vol", "0.3"]),
    ("tone-in-noise", ["synth", "10", "pinknoise", "synth", "10", "sine", "mix", "600",
                       "vol", "0.2"]),
    ("organ-chord", ["synth", "10", "triangle", "130.8", "triangle", "196", "triangle", "261.6",
                     "vol", "0.2"]),
    ("am-radio-static", ["synth", "10", "whitenoise", "lowpass", "3000", "tremolo", "2", "60",
                         "vol", "0.3"]),
    ("wind-like", ["synth", "10", "brownnoise", "highpass", "200", "tremolo", "0.3", "70",
                   "vol", "0.6"]),
    ("drum-like", ["synth", "0.15", "brownnoise", "fade", "0", "0.15", "0.12", "pad", "0",
                   "0.35", "repeat", "19", "vol", "0.9"]),
]  # fmt: skip


def render(directory: Path) -> list[Path]:
    paths = []
    for name, args in CLIPS:
        out = directory / f"{name}.wav"
        subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(out), *args], check=True)
        paths.append(out)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write per-clip results here")
    args = parser.parse_args()

    from faster_whisper import WhisperModel

    import malsori

    model = malsori.load_model(args.model, threads=args.threads)
    plain = WhisperModel(model.info.path, compute_type="int8", cpu_threads=args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = render(Path(tmp))
        for clip in clips:
            started = time.perf_counter()
            ours = model.transcribe(str(clip)).text.strip()
            fw_text = " ".join(s.text.strip() for s in plain.transcribe(str(clip))[0]).strip()
            fw_vad = " ".join(
                s.text.strip() for s in plain.transcribe(str(clip), vad_filter=True)[0]
            ).strip()
            rows.append({"clip": clip.stem, "malsori": ours, "faster_whisper": fw_text,
                         "faster_whisper_vad": fw_vad,
                         "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print("| clip | malsori | faster-whisper | faster-whisper + VAD |")
    print("|---|---|---|---|")
    for r in rows:
        cells = [repr(r[k])[:60] if r[k] else "-" for k in ("malsori", "faster_whisper",
                                                          "faster_whisper_vad")]  # fmt: skip
        print(f"| {r['clip']} | {' | '.join(cells)} |")
    counts = {k: sum(bool(r[k]) for r in rows) for k in ("malsori", "faster_whisper",
                                                        "faster_whisper_vad")}  # fmt: skip
    print(
        f"\nclips with text, of {len(rows)}: malsori {counts['malsori']}, "
        f"faster-whisper {counts['faster_whisper']}, "
        f"faster-whisper with VAD {counts['faster_whisper_vad']}"
    )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "counts": counts}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
