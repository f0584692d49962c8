"""Decoding packed 30 s windows in batches with CTranslate2: one encoder call for the batch, one
beam-search call, temperature fallback for the windows that need it, word timing by alignment.

The decoding rules are faster-whisper's (``WhisperModel.generate_with_fallback``): the same
prompt, suppressed tokens, compression-ratio and log-probability checks, no-speech skip and
fallback temperatures from ``TranscribeOptions``; only several windows go through each call.
Windows can be decoded without timestamp tokens (one segment each, as faster-whisper's batched
pipeline decodes): ``split_untimed`` then cuts it into segments by its aligned words.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..captions import CaptionBuilder
from ..decoding import (
    FRAMES_PER_SECOND,
    LENGTH_PENALTY,
    MAX_INITIAL_TIMESTAMP_S,
    TIME_PRECISION,
    WINDOW_FRAMES,
    avg_logprob,
    compression_ratio,
    parse_tokens,
    sampling,
)
from ..options import TranscribeOptions
from ..rescoring import rescorer_for
from ..results import Word
from ..transcribe import whisper_kwargs

if TYPE_CHECKING:
    from ..model import Model

logger = logging.getLogger(__name__)

# A window decoded without timestamps whose words end this long before its content does was
# ended early by Whisper: what follows is decoded again (seconds).
EARLY_END_S = 2.0
MAX_SEGMENT_S = 10.0  # segments cut from an untimed window are at most this long (seconds)


@dataclass
class DecodedSegment:
    """One segment of a window, in window time; ``words`` filled when aligned."""

    start: float
    end: float
    tokens: list[int]
    text: str
    words: list[dict[str, Any]] | None = None


@dataclass
class WindowResult:
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    segments: list[DecodedSegment] = field(default_factory=list)
    complete_until: float | None = None  # window time where an unfinished decode stopped
    truncated: bool = False  # the decode stopped at the length limit
    silent: bool = False  # skipped as no speech (no-speech and log-prob thresholds)
    nbest: Any = None  # CTranslate2's result with the beam's best hypotheses (for rescoring)


def shares_compression_ratio(
    tok: Any, tokens: list[int], content_end: float, cuts: Sequence[float]
) -> float:
    """Whisper's compression ratio (its test for a decoding loop) of a window's output, taken
    over each file's share of the window on its own: the highest.

    ``cuts`` are the window times between the files of a shared window (none: one file). Two
    clips that say the same thing ("네, 알겠습니다") are not a loop, but their text together
    compresses like one, and a window of such clips would be decoded again at higher
    temperatures. Each file's share gets the test ``transcribe`` gives the file alone. Segments
    go to the share their middle falls in.
    """
    if not cuts:
        return compression_ratio(tok.decode(tokens).strip())
    shares: list[list[int]] = [[] for _ in range(len(cuts) + 1)]
    segments, _ = parse_tokens(tokens, tok.timestamp_begin, content_end)
    for start, end, part in segments:
        shares[bisect.bisect(cuts, (start + end) / 2)] += part
    return max(compression_ratio(tok.decode(share).strip()) for share in shares)


def take(encoder_output: Any, indices: list[int], size: int) -> Any:
    """The encoder output of some windows of a batch (CTranslate2 has no slicing)."""
    if len(indices) == size:
        return encoder_output
    import ctranslate2

    view = encoder_output
    if view.device != "cpu":
        view = view.to_device(ctranslate2.Device.cpu)
    array = np.asarray(view)[indices]
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))


class WindowDecoder:
    """Runs windows through one loaded model with the decoding options of ``TranscribeOptions``."""

    def __init__(self, model: Model, options: TranscribeOptions):
        self.whisper = model.whisper  # faster_whisper.WhisperModel
        self.ct2 = self.whisper.model  # ctranslate2.models.Whisper
        self.options = options
        # The decoding settings ``malsori transcribe`` passes to faster-whisper, from one place.
        self.kw = whisper_kwargs(options)
        self.rule = options.fallback_rule()
        self.rescorer = rescorer_for(options)  # N-best rescoring (malsori.rescoring), or None
        self._tokenizers: dict[str, Any] = {}
        self._lock = threading.Lock()  # batches are decoded from several threads
        self._suppress: list[int] | None = None
        self._initial: list[int] = []
        self.fallbacks = 0  # windows decoded again at a higher temperature

    def tokenizer(self, language: str) -> Any:
        with self._lock:
            return self._tokenizer(language)

    def _tokenizer(self, language: str) -> Any:
        tok = self._tokenizers.get(language)
        if tok is None:
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens

            tok = Tokenizer(
                self.whisper.hf_tokenizer,
                self.ct2.is_multilingual,
                task=self.kw["task"],
                language=language,
            )
            self._tokenizers[language] = tok
            if self._suppress is None:
                self._suppress = list(get_suppressed_tokens(tok, [-1]) or [])
                prompt = self.options.initial_prompt
                self._initial = tok.encode(" " + prompt.strip()) if prompt else []
        return tok

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel features of a window's content, zero-padded to 3000 frames (30 s).

        Padded as faster-whisper pads a window (``pad_or_trim`` on the features, not silence
        in the audio), so a clip alone in a window sees what ``malsori transcribe`` gives it.
        """
        feats = self.whisper.feature_extractor(audio)
        if feats.shape[-1] < WINDOW_FRAMES:
            feats = np.pad(feats, ((0, 0), (0, WINDOW_FRAMES - feats.shape[-1])))
        return np.ascontiguousarray(feats[:, :WINDOW_FRAMES], dtype=np.float32)

    def encode(self, features: np.ndarray) -> Any:
        """Encoder output for a batch of features (batch, mels, frames).

        On CPU the windows go through one at a time: a batched encoder call is no faster there
        and its attention buffers grow with the batch (about 60 MB a window for ``base``). The
        outputs (3 MB a window) are joined for the batched decoding, which is what gains.
        """
        if self.ct2.device != "cpu" or features.shape[0] == 1:
            return self.whisper.encode(features)
        import ctranslate2

        parts = [np.asarray(self.whisper.encode(f[None])) for f in features]
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(parts)))

    def prompt(self, language: str, timed: bool) -> list[int]:
        tok = self.tokenizer(language)
        prompt: list[int] = self.whisper.get_prompt(
            tok, self._initial, without_timestamps=not timed, hotwords=self.kw["hotwords"]
        )
        return prompt

    def generate(
        self,
        encoder_output: Any,
        languages: list[str],
        content_ends: list[float],
        timed: list[bool],
        cuts: Sequence[Sequence[float]],
    ) -> list[WindowResult]:
        """Decode every window of an encoded batch, falling back to higher temperatures for the
        windows whose output is too repetitive or too unlikely (each file's share of a shared
        window tested on its own: ``cuts``, see ``shares_compression_ratio``). Windows not
        ``timed`` are decoded without timestamp tokens, as one segment (``split_untimed`` cuts
        it after alignment)."""
        n = len(languages)
        prompts = [self.prompt(lang, t) for lang, t in zip(languages, timed, strict=True)]
        final: dict[int, WindowResult] = {}
        # One call per kind of prompt: CTranslate2 needs the same task tokens across a batch.
        for kind in sorted(set(timed)):
            group = [i for i in range(n) if timed[i] == kind]
            final.update(self._with_fallback(
                encoder_output, n, group, prompts, content_ends, cuts, languages
            ))  # fmt: skip
        out = [final[i] for i in range(n)]
        for i, result in enumerate(out):
            self._split(result, self.tokenizer(languages[i]), content_ends[i], timed[i])
        return out

    def _with_fallback(
        self,
        encoder_output: Any,
        n: int,
        indices: list[int],
        prompts: list[list[int]],
        content_ends: list[float],
        cuts: Sequence[Sequence[float]],
        languages: list[str],
    ) -> dict[int, WindowResult]:
        """The windows ``indices`` of a batch of ``n``, each at the first temperature that
        passes Whisper's checks (or its likeliest non-repetitive try); at temperature 0 the
        hypothesis rescoring picks (``malsori.rescoring``) among the beam's best."""
        rescored = self.rescorer is not None and any(
            self.rescorer.applies(languages[i]) for i in indices
        )
        tries: dict[int, list[WindowResult]] = {i: [] for i in indices}
        final: dict[int, WindowResult] = {}
        pending = indices
        for temperature in self.rule.temperatures:
            if not pending:
                break
            if temperature > 0:
                with self._lock:
                    self.fallbacks += len(pending)
            results = self._generate_once(
                take(encoder_output, pending, n), temperature,
                [prompts[i] for i in pending], [content_ends[i] for i in pending],
                [cuts[i] for i in pending], rescored,
            )  # fmt: skip
            still = []
            for i, result in zip(pending, results, strict=True):
                tries[i].append(result)
                if self.rule.needs_fallback(result):
                    still.append(i)
                else:
                    final[i] = self._rescore(result, languages[i])
            pending = still
        for i in pending:  # every temperature failed: the likeliest non-repetitive try
            final[i] = self.rule.best_of_failed(tries[i])
            final[i].temperature = tries[i][-1].temperature
        return final

    def _generate_once(
        self,
        encoder_output: Any,
        t: float,
        prompts: list[list[int]],
        content_ends: list[float],
        cuts: list[Sequence[float]],
        rescored: bool = False,
    ) -> list[Any]:
        """One CTranslate2 call at temperature ``t``; per window (in the order of ``prompts``)
        where its content ends and the times between its files, for the compression test;
        ``rescored``: the beam keeps the hypotheses rescoring needs."""
        kw = self.kw
        kept = self.rescorer.hypotheses if rescored and self.rescorer is not None else 1
        raw = self.ct2.generate(
            encoder_output,
            prompts,
            length_penalty=LENGTH_PENALTY,
            max_length=self.whisper.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
            max_initial_timestamp_index=round(MAX_INITIAL_TIMESTAMP_S / TIME_PRECISION),
            **sampling(t, kw["beam_size"], kw["best_of"], kw["patience"], kept),
        )
        with self._lock:  # any tokenizer decodes text: the vocabulary is the model's
            tok = next(iter(self._tokenizers.values()))
        results = []
        for r, prompt, end, between in zip(raw, prompts, content_ends, cuts, strict=True):
            tokens = list(r.sequences_ids[0])
            avg = avg_logprob(r.scores[0], len(tokens), LENGTH_PENALTY)
            ratio = shares_compression_ratio(tok, tokens, end, between)
            result = WindowResult(tokens, avg, float(r.no_speech_prob), ratio, t)
            result.truncated = len(prompt) + len(tokens) >= self.whisper.max_length - 1
            if t == 0 and len(r.sequences_ids) > 1:
                result.nbest = r
            results.append(result)
        return results

    def _rescore(self, result: WindowResult, language: str) -> WindowResult:
        """``result`` with the hypothesis rescoring picks (itself when none is better)."""
        if self.rescorer is None or result.nbest is None:
            return result
        tok = self.tokenizer(language)
        chosen = self.rescorer.choose_result(result.nbest, language, tok.decode)
        if chosen:
            result.tokens = list(result.nbest.sequences_ids[chosen])
        result.nbest = None
        return result

    def _split(self, result: WindowResult, tok: Any, content_end: float, timed: bool) -> None:
        if self.rule.skip(result.no_speech_prob, result.avg_logprob):
            result.silent = True
            return
        if not timed:
            text = tok.decode(result.tokens)
            if text.strip():
                result.segments.append(DecodedSegment(0.0, content_end, result.tokens, text))
            return
        parts, result.complete_until = parse_tokens(
            result.tokens, tok.timestamp_begin, content_end, keep_open=not result.truncated
        )
        for start, end, tokens in parts:
            text = tok.decode(tokens)
            if text.strip():
                result.segments.append(DecodedSegment(start, end, tokens, text))

    def align(
        self, encoder_output: Any, results: list[WindowResult], languages: list[str],
        content_ends: list[float], only: list[int],
    ) -> None:  # fmt: skip
        """Word timings (window time) for every segment of the windows ``only`` of a batch.

        One window at a time, over its content's frames: CTranslate2 aligns a batch padded to
        its longest window, which took twice as long (8 windows of ``base``: 0.82 s against
        0.41 s one by one).
        """
        for i in only:
            segments = results[i].segments
            if not segments:
                continue
            subsegments: list[dict[str, Any]] = [
                {"start": s.start, "end": s.end, "tokens": s.tokens, "seek": 0} for s in segments
            ]
            frames = min(WINDOW_FRAMES, int(content_ends[i] * FRAMES_PER_SECOND) + 100)
            # Any tokenizer serves the alignment: it only needs the shared special tokens.
            self.whisper.add_word_timestamps(
                [subsegments],
                self.tokenizer(languages[i]),
                take(encoder_output, [i], len(results)),
                [frames + frames % 2],
                "\"'“¿([{-",
                "\"'.。,，!！?？:：”)]}、",
                0.0,
            )
            for seg, aligned in zip(segments, subsegments, strict=True):
                seg.words = list(aligned.get("words", []))


def split_untimed(result: WindowResult, content_end: float) -> None:
    """A window decoded without timestamps, once aligned: its one segment cut into caption
    segments at sentence ends, pauses and length limits (the rules of live captions), and
    ``complete_until`` set when its words stop well before its speech does (Whisper without
    timestamps sometimes ends a window early: the rest is decoded again)."""

    words = [w for seg in result.segments for w in (seg.words or ())]
    if not words:
        return
    builder = CaptionBuilder(max_seconds=MAX_SEGMENT_S)
    builder.add([Word(w["start"], w["end"], w["word"], w["probability"]) for w in words])
    builder.close()
    result.segments = [
        DecodedSegment(
            seg.start, seg.end, [], seg.text,
            [{"start": w.start, "end": w.end, "word": w.word, "probability": w.probability}
             for w in seg.words],
        )
        for seg in builder.segments
    ]  # fmt: skip
    if content_end - words[-1]["end"] > EARLY_END_S:
        result.complete_until = float(words[-1]["end"])
