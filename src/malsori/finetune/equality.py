"""Does the converted ``transformers`` model decode exactly what the CTranslate2 model decodes?

Both engines get the same log-Mel features of a clip (at most 30 s) and the same prompt (start
of transcript, language, transcribe, no timestamps) and decode greedily; the check compares the
output token ids. CTranslate2 runs in float32 so that only the conversion can make a difference.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..registry import resolve
from .data import load_audio
from .hf_engine import TransformersEngine

N_SAMPLES = 30 * SAMPLE_RATE  # one Whisper window
N_FRAMES = 3000


@dataclass(frozen=True)
class EqualityResult:
    clip: str
    language: str
    ct2_text: str
    hf_text: str
    ct2_tokens: tuple[int, ...]
    hf_tokens: tuple[int, ...]

    @property
    def equal(self) -> bool:
        return self.ct2_tokens == self.hf_tokens


def _features(audio: np.ndarray, n_mels: int) -> np.ndarray:
    """faster-whisper's log-Mel features of the clip padded to 30 s, shape (1, n_mels, 3000)."""
    from faster_whisper.feature_extractor import FeatureExtractor

    padded = np.pad(audio[:N_SAMPLES], (0, max(0, N_SAMPLES - audio.size)))
    mel = FeatureExtractor(feature_size=n_mels)(padded, padding=0)[:, :N_FRAMES]
    return np.ascontiguousarray(mel[None].astype(np.float32))


def compare_engines(
    model: str | os.PathLike[str],
    clips: Sequence[tuple[str | os.PathLike[str], str]],
    *,
    threads: int = 0,
) -> list[EqualityResult]:
    """Greedy decodes of each (clip, language) by CTranslate2 (float32) and by the model
    converted to ``transformers``, on identical features."""
    import ctranslate2
    import torch

    path = resolve(model).path
    engine = TransformersEngine.load(path)
    tok = engine.hf.tokenizer
    n_mels = int(engine.hf.model.config.num_mel_bins)
    ct2 = ctranslate2.models.Whisper(
        str(path), device="cpu", compute_type="float32", intra_threads=threads
    )
    special = set(tok.all_special_ids)
    results = []
    for clip, language in clips:
        features = _features(load_audio(Path(clip)), n_mels)
        prompt = tok.convert_tokens_to_ids(
            ["<|startoftranscript|>", f"<|{language}|>", "<|transcribe|>", "<|notimestamps|>"]
        )
        out = ct2.generate(
            ctranslate2.StorageView.from_array(features), [prompt], beam_size=1, max_length=448
        )
        ct2_tokens = tuple(t for t in out[0].sequences_ids[0] if t not in special)
        with torch.inference_mode():
            generated = engine.model.generate(
                torch.from_numpy(features),
                language=language,
                task="transcribe",
                num_beams=1,
                do_sample=False,
            )
        hf_tokens = tuple(int(t) for t in generated[0].tolist() if int(t) not in special)
        results.append(
            EqualityResult(
                str(clip),
                language,
                tok.decode(list(ct2_tokens)).strip(),
                tok.decode(list(hf_tokens)).strip(),
                ct2_tokens,
                hf_tokens,
            )
        )
    return results
