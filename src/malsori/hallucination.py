"""Defences against Whisper's two classic failures: text invented where nobody speaks, and
repetition loops.

- Stock phrases ("시청해주셔서 감사합니다", "Thanks for watching!", "字幕由Amara.org社区提供")
  are what Whisper writes over silence, noise and music, learnt from subtitle files. A segment
  made only of such phrases is removed when the audio under it is not speech (Silero VAD
  probabilities), so someone really saying "감사합니다" keeps their words.
- Any segment the decoder itself doubts (high no-speech probability, low log-probability) is
  removed when the audio under it is not speech either.
- Repetition loops ("네 네 네 네 네 네 ..." or one sentence ten times) are collapsed to one
  occurrence, identical segments repeating back to back are dropped, and the caller resets the
  decoding context after one (see ``transcribe``), so a loop does not run to the end of the file.

Every change is recorded: altered segments carry flags, removed ones are listed in the transcript.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .audio import SAMPLE_RATE

# Phrases Whisper is known to produce on non-speech, by language. Matching ignores case,
# punctuation and spaces; a segment is a stock phrase when it consists only of these.
STOCK_PHRASES: dict[str, tuple[str, ...]] = {
    "ko": (
        "시청해주셔서 감사합니다", "시청해 주셔서 감사합니다", "시청 감사합니다",
        "구독과 좋아요 부탁드립니다", "구독과 좋아요 알림설정 부탁드립니다", "구독 좋아요",
        "좋아요와 구독 부탁드립니다", "다음 영상에서 만나요", "다음 시간에 만나요",
        "오늘도 시청해주셔서 감사합니다", "끝까지 시청해주셔서 감사합니다",
        "MBC 뉴스 이덕영입니다", "MBC 뉴스", "KBS 뉴스", "SBS 뉴스", "자막 제공 및 자막 편집",
        "한국어 자막", "감사합니다", "고맙습니다",
    ),
    "en": (
        "Thanks for watching", "Thank you for watching", "Thank you so much for watching",
        "Thank you", "Thanks", "Please subscribe", "Subscribe to my channel",
        "Like and subscribe", "Don't forget to like and subscribe", "See you next time",
        "See you in the next video", "Subtitles by the Amara.org community",
        "Transcription by CastingWords", "Bye", "Bye bye", "you",
    ),
    "ja": (
        "ご視聴ありがとうございました", "ご視聴ありがとうございます", "チャンネル登録お願いします",
        "チャンネル登録よろしくお願いします", "最後までご視聴いただきありがとうございました",
        "お疲れ様でした", "ありがとうございました",
    ),
    "zh": (
        "字幕由Amara.org社区提供", "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
        "谢谢观看", "感谢观看", "谢谢大家", "点赞订阅", "中文字幕", "字幕志愿者",
    ),
}  # fmt: skip

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_UNSPACED = ("zh", "ja", "yue", "th", "lo", "my", "km", "bo")


# Fast speech, to tell whether some audio had room for a text: syllables of Hangul, kana and
# CJK characters at 8 per second, other letters and digits at 16 per second (about 200 words a
# minute in English). Short texts need a second all the same: the VAD widens every frame it
# hears by a quarter second each side, so a blip of noise alone reaches half a second.
_SYLLABLE_S = 1 / 8
_LETTER_S = 1 / 16
_MIN_SAYING_S = 1.0
_SYLLABIC = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af]")


def time_to_say(text: str) -> float:
    """Seconds of speech ``text`` takes at least, said fast."""
    syllables = len(_SYLLABIC.findall(text))
    letters = sum(ch.isalnum() for ch in text) - syllables
    return max(_MIN_SAYING_S, syllables * _SYLLABLE_S + letters * _LETTER_S)


def normalize_phrase(text: str) -> str:
    """Compare form: NFKC, case-folded, without punctuation or spaces."""
    return _NON_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())


def stock_phrase_pattern(extra: Iterable[str] = ()) -> re.Pattern[str]:
    phrases = {normalize_phrase(p) for group in STOCK_PHRASES.values() for p in group}
    phrases |= {normalize_phrase(p) for p in extra}
    alternation = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True) if p)
    return re.compile(f"(?:{alternation})+")


def is_stock_phrase(text: str, pattern: re.Pattern[str]) -> bool:
    norm = normalize_phrase(text)
    return bool(norm) and pattern.fullmatch(norm) is not None


@dataclass
class SpeechProbe:
    """Silero speech probabilities over one window of audio, computed on first use."""

    audio: np.ndarray
    threshold: float = 0.5
    _probs: np.ndarray | None = field(default=None, repr=False)

    _speech: np.ndarray | None = field(default=None, repr=False)

    FRAME = 512  # samples per Silero frame (32 ms)
    # Frames this close to a speech frame count as speech too: Silero's probability dips in the
    # pauses between words, and a slow speaker with pauses is still speaking (8 frames: 0.26 s).
    PAD_FRAMES = 8

    def speech_ratio(self, start: float, end: float) -> float:
        """Fraction of the frames between ``start`` and ``end`` (seconds) that hold speech."""
        speech = self._speech_frames()
        lo = int(start * SAMPLE_RATE) // self.FRAME
        hi = max(lo + 1, int(np.ceil(end * SAMPLE_RATE / self.FRAME)))
        frames = speech[lo:hi]
        return float(np.mean(frames)) if frames.size else 0.0

    def _speech_frames(self) -> np.ndarray:
        if self._speech is None:
            from faster_whisper.vad import get_vad_model

            padded = np.pad(self.audio, (0, self.FRAME - self.audio.size % self.FRAME))
            self._probs = np.asarray(get_vad_model()(padded)).reshape(-1)
            above = (self._probs >= self.threshold).astype(np.int32)
            # Widen every speech frame by PAD_FRAMES on each side (a running maximum).
            window = np.ones(2 * self.PAD_FRAMES + 1, dtype=np.int32)
            self._speech = np.convolve(above, window, mode="same") > 0
        return self._speech


def _unit_key(unit: str) -> str:
    return normalize_phrase(unit)


def _min_repeats(unit_len: int, unspaced: bool) -> int:
    """Back-to-back copies that make a loop. Short units need many: people do say "words words
    words words" or "no no no no no", while Whisper's loops run on to the end of the window."""
    if unspaced:
        return 10 if unit_len == 1 else 6 if unit_len <= 3 else 4
    return 8 if unit_len == 1 else 5 if unit_len <= 3 else 4


def find_loops(units: Sequence[str], *, unspaced: bool = False) -> list[tuple[int, int, int]]:
    """Runs of a repeated unit sequence: (start index, unit length, repeats), non-overlapping.

    ``units`` are words (or characters for unspaced scripts). A run counts as a loop when a unit
    of 1-20 items repeats back to back often enough (``_min_repeats``: 4 copies of a phrase of
    four or more words, 5 of two or three words, 8 of a single word), which speech rarely does.
    """
    keys = [_unit_key(u) for u in units]
    n = len(keys)
    loops: list[tuple[int, int, int]] = []
    i = 0
    max_len = 20 if unspaced else 12
    while i < n:
        best: tuple[int, int] | None = None  # (unit length, repeats)
        for length in range(1, min(max_len, (n - i) // 2) + 1):
            unit = keys[i : i + length]
            if not any(unit):
                continue
            repeats = 1
            while keys[i + repeats * length : i + (repeats + 1) * length] == unit:
                repeats += 1
            if repeats >= _min_repeats(length, unspaced) and (
                best is None or repeats * length > best[0] * best[1]
            ):
                best = (length, repeats)
        if best is not None:
            loops.append((i, best[0], best[1]))
            i += best[0] * best[1]
        else:
            i += 1
    return loops


def collapse_loops(units: Sequence[str], *, unspaced: bool = False) -> list[int]:
    """Indices of the units to keep: each loop reduced to its first occurrence."""
    drop: set[int] = set()
    for start, length, repeats in find_loops(units, unspaced=unspaced):
        drop.update(range(start + length, start + length * repeats))
    return [i for i in range(len(units)) if i not in drop]


def split_units(text: str, language: str | None) -> list[str]:
    """Text as units that join back to it: words with their leading spaces, or characters."""
    if language in _UNSPACED:
        return list(text)
    return re.findall(r"\s*\S+\s*$|\s*\S+", text)


def is_unspaced(language: str | None) -> bool:
    return language in _UNSPACED
