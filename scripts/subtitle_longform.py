"""Subtitles for long recordings: cue count, reading speed, splits and extensions, lint.

Transcribes each recording with word timestamps (or reads a transcript JSON that malsori wrote),
builds cues under the profile for its language (netflix-ko for Korean, netflix-en otherwise),
checks every cue with the linter, checks that the cues' text equals the transcript's text, and
prints one Markdown row per recording. With --srt-dir it also writes the SRT files.

    PYTHONPATH=src python scripts/subtitle_longform.py -m base --srt-dir /tmp/subs \\
        /work/shared/evaldata/longform/ko_kih_longform.flac \\
        /work/shared/evaldata/longform/ljspeech_LJ001_0001-0032.flac
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from malsori.results import Transcript
from malsori.subtitles.cues import Cue, transcript_cues
from malsori.subtitles.lint import lint_cues
from malsori.subtitles.profiles import PROFILES, SubtitleSpec
from malsori.writers import get_writer


def load(path: Path, model_name: str) -> Transcript:
    if path.suffix == ".json":
        return Transcript.from_dict(json.loads(path.read_text(encoding="utf-8")))
    from malsori.model import load_model
    from malsori.options import TranscribeOptions

    model = load_model(model_name)
    return model.transcribe(str(path), TranscribeOptions(word_timestamps=True))


def squash(text: str) -> str:
    return " ".join(text.split())


def report(name: str, transcript: Transcript, cues: list[Cue], profile_name: str) -> str:
    profile = PROFILES[profile_name]
    violations = lint_cues(cues, profile)
    for v in violations:
        print(f"{name}: {v}", file=sys.stderr)
    cue_text = " ".join(" ".join(c.lines) for c in cues)
    same = squash(cue_text) == squash(transcript.text)
    cps = [sum(profile.width(ln) for ln in c.lines) / (c.end - c.start) for c in cues]
    split = sum(c.split for c in cues)
    extended = sum(c.extended for c in cues)
    return (
        f"| {name} | {transcript.duration / 60:.1f} min | {profile_name} | "
        f"{len(transcript.segments)} | {len(cues)} | {sum(cps) / len(cps):.1f} | "
        f"{max(cps):.1f} | {split / len(cues):.0%} | {extended / len(cues):.0%} | "
        f"{len(violations)} | {'yes' if same else 'NO'} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="audio files or transcript JSONs")
    parser.add_argument("-m", "--model", default="base")
    parser.add_argument("--srt-dir", type=Path, help="also write each recording's SRT here")
    args = parser.parse_args()
    print(
        "| recording | length | profile | segments | cues | mean CPS | max CPS | split | "
        "extended | lint violations | cue text = transcript text |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in args.inputs:
        transcript = load(path, args.model)
        name = "netflix-ko" if transcript.language.language == "ko" else "netflix-en"
        cues = transcript_cues(transcript.segments, PROFILES[name])
        print(report(path.stem, transcript, cues, name), flush=True)
        if args.srt_dir:
            options = replace(transcript.options, subtitles=SubtitleSpec(name))
            srt = get_writer("srt").render(replace(transcript, options=options))
            args.srt_dir.mkdir(parents=True, exist_ok=True)
            (args.srt_dir / f"{path.stem}.srt").write_text(srt, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
