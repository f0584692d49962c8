"""The real ``base`` converted to transformers decodes exactly what CTranslate2 decodes."""

from __future__ import annotations

import pytest

from malsori.finetune.equality import compare_engines
from rendered_audio import ENGLISH_WORDS, SPANISH_WORDS, Audio

pytestmark = pytest.mark.slow


def test_converted_base_decodes_the_same_tokens(audio: Audio) -> None:
    clips = [(audio.english, "en"), (audio.spanish, "es"), (audio.french, "fr")]
    results = compare_engines("base", clips, threads=2)
    for r in results:
        assert r.equal, f"{r.clip}: ct2 {r.ct2_text!r} != transformers {r.hf_text!r}"
        assert len(r.ct2_tokens) > 5
    english, spanish = results[0].hf_text.lower(), results[1].hf_text.lower()
    assert all(w in english for w in ENGLISH_WORDS), english
    assert sum(w in spanish for w in SPANISH_WORDS) >= 3, spanish
