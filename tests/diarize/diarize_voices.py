"""Synthetic voices for the diarization tests: two espeak-ng voices that differ (a low male
voice and a higher female variant), rendered with sox joining them (``render_voices``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rendered_audio import run_tool

ADAM = ("en-us", "35", "150")  # espeak-ng voice, pitch, words per minute
BETH = ("en-us+f4", "75", "160")
# The conversation: who says what, in order, with PAUSE_S between turns.
TURNS = (
    (ADAM, "The meeting will start at nine o'clock tomorrow morning in the main office."),
    (BETH, "Thank you. I will bring the quarterly report and the budget numbers."),
    (ADAM, "Good. Please also send the slides to everyone before lunch."),
    (BETH, "Of course. I will share them with the whole team this afternoon."),
)
PAUSE_S = 0.6
ADAM_REFERENCE = (
    "My name is Adam and I work in the finance department of this company, "
    "where we plan the yearly budget."
)
BETH_REFERENCE = (
    "Hello, this is Beth speaking. I lead the marketing group and I organise our campaigns."
)


@dataclass(frozen=True)
class Voices:
    conversation: Path  # TURNS, Adam first
    spans: tuple[tuple[float, float, str], ...]  # (start, end, "adam"|"beth") of each turn
    adam_reference: Path
    beth_reference: Path
    adam_alone: Path  # Adam's two turns only, one speaker
    silence: Path
    not_audio: Path


def _speak(voice: tuple[str, str, str], text: str, out: Path) -> Path:
    name, pitch, speed = voice
    run_tool("espeak-ng", "-v", name, "-p", pitch, "-s", speed, "-w", out, text)
    return out


def _seconds(path: Path) -> float:
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def render_voices(d: Path) -> Voices:
    """Every clip of ``Voices``, rendered into ``d``."""
    pause = d / "pause.wav"
    run_tool("sox", "-n", "-r", "22050", "-c", "1", "-b", "16", pause, "trim", "0", str(PAUSE_S))
    parts: list[Path] = []
    spans, t = [], 0.0
    for i, (voice, text) in enumerate(TURNS):
        turn = _speak(voice, text, d / f"turn{i}.wav")
        spans.append((t, t + _seconds(turn), "adam" if voice == ADAM else "beth"))
        t += _seconds(turn) + PAUSE_S
        parts += [turn, pause]
    conversation = d / "conversation.wav"
    run_tool("sox", *parts[:-1], conversation)
    alone = d / "adam-alone.wav"
    run_tool("sox", parts[0], pause, parts[4], alone)
    silence = d / "silence.wav"
    run_tool("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", silence, "trim", "0", "5")
    not_audio = d / "notes.wav"
    not_audio.write_text("These are meeting notes, not a recording.\n" * 20)
    return Voices(
        conversation,
        tuple(spans),
        _speak(ADAM, ADAM_REFERENCE, d / "adam-ref.wav"),
        _speak(BETH, BETH_REFERENCE, d / "beth-ref.wav"),
        alone,
        silence,
        not_audio,
    )
