"""Test audio rendered at test time with espeak-ng, sox and ffmpeg, and what is said in it.

Nothing reads a checked-in recording: every clip is synthesised (``render_audio``), so the
expected words are known exactly. Test modules import the constants from here (a module with a
unique name, unlike ``conftest``); ``conftest.py`` turns ``render_audio`` into a session fixture.
"""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

# What espeak-ng says, and the words the base model reliably recognises in it (lower case).
ENGLISH_TEXT = "The quick brown fox jumps over the lazy dog."
ENGLISH_WORDS = ("quick", "brown", "fox", "lazy", "dog")
FRENCH_TEXT = "Bonjour. Je voudrais acheter un billet de train pour Paris."
SPANISH_TEXT = "Buenos días. Me gustaría comprar un billete de tren para Madrid, por favor."
SPANISH_WORDS = ("buenos", "días", "gustaría", "comprar", "billete")
# One sentence per 60 s window of the long file, with the words recognised in each.
LONG_SENTENCES = (
    ("The yellow submarine sailed across the ocean.", ("submarine", "ocean")),
    ("My grandmother baked chocolate cookies on Sunday.", ("chocolate", "cookies")),
    ("The orchestra played beautiful music in the theatre.", ("orchestra", "music")),
)
# Seconds of silence before each long-file sentence: the sentences sit at about 10, 70 and 130 s.
LONG_LEADS = (10.0, 57.5, 57.0)
LONG_TAIL_S = 10.0

TOOLS = ("espeak-ng", "sox", "ffmpeg")


def run_tool(*cmd: str | Path) -> None:
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True)


def _ffmpeg(*args: str | Path) -> None:
    run_tool("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args)


def _speak(voice: str, text: str, out: Path) -> Path:
    run_tool("espeak-ng", "-v", voice, "-w", out, text)
    return out


def _silence(seconds: float, out: Path, rate: int = 22050) -> Path:
    run_tool("sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", out, "trim", "0", str(seconds))
    return out


def _duration(wav: Path) -> float:
    with wave.open(str(wav)) as w:
        return w.getnframes() / w.getframerate()


def _cut_in_half(src: Path, out: Path) -> Path:
    data = src.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


@dataclass(frozen=True)
class Audio:
    """Paths of the rendered clips (see ``audio`` below for what each one is)."""

    root: Path
    english: Path  # espeak-ng WAV, 22.05 kHz mono, ENGLISH_TEXT
    french: Path
    spanish: Path
    stereo: Path  # English, 44.1 kHz stereo WAV
    mp3: Path
    opus: Path  # Ogg Opus
    webm: Path
    m4a: Path
    mp4: Path  # H.264 video with the English speech as AAC
    video_only: Path  # H.264 video without an audio track
    aiff: Path
    flac: Path
    silence: Path  # 5 s of digital silence
    noise: Path  # 5 s of white noise at a moderate level
    text_as_mp3: Path  # a text file named .mp3
    empty: Path  # 0 bytes
    zero_wav: Path  # a valid WAV header and no samples
    truncated_wav: Path  # each: the first half of a longer file's bytes
    truncated_flac: Path
    truncated_mp3: Path
    truncated_opus: Path
    long: Path  # about 2.5 minutes: LONG_SENTENCES separated by silence
    long_starts: tuple[float, ...]  # where each of LONG_SENTENCES begins in ``long``, seconds
    english_duration: float

    @property
    def formats(self) -> dict[str, Path]:
        """The English speech in every container the README promises."""
        return {
            "stereo-44k-wav": self.stereo,
            "mp3": self.mp3,
            "opus": self.opus,
            "webm": self.webm,
            "m4a": self.m4a,
            "mp4-video": self.mp4,
            "aiff": self.aiff,
            "flac": self.flac,
        }


def render_audio(d: Path) -> Audio:
    """Render every clip into the folder ``d``."""
    english = _speak("en-us", ENGLISH_TEXT, d / "english.wav")
    french = _speak("fr", FRENCH_TEXT, d / "french.wav")
    spanish = _speak("es", SPANISH_TEXT, d / "spanish.wav")

    stereo = d / "stereo-44k.wav"
    run_tool("sox", english, "-r", "44100", "-c", "2", stereo)
    mp3, opus, webm, m4a = d / "english.mp3", d / "english.opus", d / "english.webm", d / "e.m4a"
    _ffmpeg("-i", english, "-c:a", "libmp3lame", "-b:a", "64k", mp3)
    _ffmpeg("-i", english, "-c:a", "libopus", "-b:a", "32k", opus)
    _ffmpeg("-i", english, "-c:a", "libopus", "-b:a", "32k", webm)
    _ffmpeg("-i", english, "-c:a", "aac", "-b:a", "64k", m4a)
    mp4 = d / "video.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", "color=c=blue:s=64x48:r=5", "-i", english, "-shortest",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", mp4,
    )  # fmt: skip
    video_only = d / "video-only.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x48:r=5", "-t", "2", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", video_only)  # fmt: skip
    aiff, flac = d / "english.aiff", d / "english.flac"
    run_tool("sox", english, aiff)
    run_tool("sox", english, flac)

    silence = _silence(5.0, d / "silence.wav", rate=16000)
    noise = d / "noise.wav"
    run_tool("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", noise, "synth", "5", "whitenoise",
         "vol", "0.1")  # fmt: skip
    text_as_mp3 = d / "notes.mp3"
    text_as_mp3.write_text("These are meeting notes, not audio.\n" * 20)
    empty = d / "empty.wav"
    empty.write_bytes(b"")
    zero_wav = d / "zero.wav"
    with wave.open(str(zero_wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)

    # Truncations need a source long enough that half of it is clearly missing (> 1 s).
    pieces = [english, _silence(0.5, d / "gap.wav"), english, _silence(0.5, d / "gap2.wav")]
    twice = d / "twice.wav"
    run_tool("sox", *pieces, twice)
    twice_flac, twice_mp3, twice_opus = d / "twice.flac", d / "twice.mp3", d / "twice.opus"
    run_tool("sox", twice, twice_flac)
    _ffmpeg("-i", twice, "-c:a", "libmp3lame", "-b:a", "64k", twice_mp3)
    _ffmpeg("-i", twice, "-c:a", "libopus", "-b:a", "32k", twice_opus)
    truncated_wav = _cut_in_half(twice, d / "truncated.wav")
    truncated_flac = _cut_in_half(twice_flac, d / "truncated.flac")
    truncated_mp3 = _cut_in_half(twice_mp3, d / "truncated.mp3")
    truncated_opus = _cut_in_half(twice_opus, d / "truncated.opus")

    parts: list[Path] = []
    long_starts: list[float] = []
    position = 0.0
    for i, ((sentence, _), lead) in enumerate(zip(LONG_SENTENCES, LONG_LEADS, strict=True)):
        parts.append(_silence(lead, d / f"lead{i}.wav"))
        parts.append(_speak("en-us", sentence, d / f"sentence{i}.wav"))
        long_starts.append(position + _duration(parts[-2]))
        position = long_starts[-1] + _duration(parts[-1])
    parts.append(_silence(LONG_TAIL_S, d / "tail.wav"))
    long = d / "long.wav"
    run_tool("sox", *parts, long)
    return Audio(
        root=d,
        english=english,
        french=french,
        spanish=spanish,
        stereo=stereo,
        mp3=mp3,
        opus=opus,
        webm=webm,
        m4a=m4a,
        mp4=mp4,
        video_only=video_only,
        aiff=aiff,
        flac=flac,
        silence=silence,
        noise=noise,
        text_as_mp3=text_as_mp3,
        empty=empty,
        zero_wav=zero_wav,
        truncated_wav=truncated_wav,
        truncated_flac=truncated_flac,
        truncated_mp3=truncated_mp3,
        truncated_opus=truncated_opus,
        long=long,
        long_starts=tuple(long_starts),
        english_duration=_duration(english),
    )


def words_of(text: str) -> set[str]:
    """Lower-case words of a transcript, punctuation stripped."""
    cleaned = "".join(c.lower() if c.isalnum() else " " for c in text)
    return set(cleaned.split())
