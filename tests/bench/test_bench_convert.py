"""malsori's own conversions of the packaged weights, checked against the engines that read them:
openai-whisper's checkpoint, whisper.cpp's ggml file (f16, q8_0, q5_0), and the GEMM probe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from malsori.bench.configs import Setting, make
from malsori.bench.gemm import encoder_flops, probe
from malsori.bench.whispercpp import QK, quantize_q5_0, quantize_q8_0
from malsori.evaluation import error_counts, normalize_text
from malsori.manifest import load_manifest

pytest.importorskip("torch", reason="the conversions need the finetune extra")


def _dequantize_q8_0(data: bytes) -> np.ndarray:
    blocks = np.frombuffer(data, dtype=[("d", "<f2"), ("qs", "i1", QK)])
    return (blocks["d"].astype(np.float32)[:, None] * blocks["qs"]).ravel()


def _dequantize_q5_0(data: bytes) -> np.ndarray:
    blocks = np.frombuffer(data, dtype=[("d", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)])
    low = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1).astype(np.int32)
    high = (blocks["qh"][:, None] >> np.arange(QK, dtype=np.uint32)) & 1
    q = low | (high.astype(np.int32) << 4)
    return (blocks["d"].astype(np.float32)[:, None] * (q - 16)).ravel()


def test_ggml_block_quantizers_round_trip() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.05, size=(4, 256)).astype(np.float32)
    q8 = quantize_q8_0(x)
    assert len(q8) == x.size // QK * 34  # float16 scale + 32 int8 a block
    err8 = np.abs(_dequantize_q8_0(q8) - x.ravel())
    scale8 = np.abs(x.reshape(-1, QK)).max(axis=1) / 127
    assert (err8.reshape(-1, QK) <= scale8[:, None] * 0.6).all()  # half a step

    q5 = quantize_q5_0(x)
    assert len(q5) == x.size // QK * 22  # scale + 32 high bits + 16 bytes of nibbles
    err5 = np.abs(_dequantize_q5_0(q5) - x.ravel())
    scale5 = np.abs(x.reshape(-1, QK)).max(axis=1) / 16
    assert (err5.reshape(-1, QK) <= scale5[:, None] * 0.6).all()
    assert err5.mean() > err8.mean()  # 5 bits lose more than 8


def test_encoder_flops_of_whisper_base() -> None:
    base = encoder_flops(n_mels=80, d_model=512, layers=6, frames=1500, ffn=2048)
    # about 44 G multiply-adds a window: per layer and frame 12 d^2 (projections and
    # feed-forward) and 2 T d (attention), plus the convolutions; 2 FLOP each
    assert 85e9 < base < 90e9
    six_layers = base - encoder_flops(80, 512, 0, 1500, 2048)  # base less the convolutions
    assert encoder_flops(80, 512, 12, 1500, 2048) == pytest.approx(base + six_layers)


def test_gemm_probe_measures_something() -> None:
    result = probe(threads=1, size=256)
    assert result.threads == 1
    assert result.fp32_gflops > 0.1
    assert result.peak_for("fp32") == result.fp32_gflops * 1e9
    assert result.peak_for("int8") >= result.peak_for("fp32")


def _plain_ct2_texts(paths: list[Path]) -> list[str]:
    cfg = make("ct2-float32", Setting("tiny.en", threads=2))
    cfg.prepare()
    cfg.load()
    return [o.text for o in cfg.run(paths)]


def _wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER of one engine's texts against another's."""
    total = errors = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        counts = error_counts(normalize_text(ref, "en"), normalize_text(hyp, "en"))
        total, errors = total + counts.length, errors + counts.errors
    return errors / max(1, total)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["openai-whisper", "whispercpp-f16", "whispercpp-q8_0"])
def test_converted_weights_transcribe_as_ctranslate2_does(bench_manifest: Path, name: str) -> None:
    config = make(name, Setting("tiny.en", threads=2))
    reason = config.available()
    if reason is not None:
        pytest.skip(reason)
    paths = [e.audio for e in load_manifest(bench_manifest)]
    reference = _plain_ct2_texts(paths)
    config.prepare()
    config.load()
    outputs = config.run(paths)
    assert [o.language for o in outputs] == ["en", "en"]
    # The same weights decoded greedily. openai-whisper computes in float32 as CTranslate2 does
    # here: the same words. whisper.cpp computes in f16 or q8_0 with its own decoding defaults,
    # so tiny.en may take another path after a doubtful word; a broken conversion (wrong tensor
    # layout, vocabulary or filters) gives nothing like the text at all.
    limit = 0.0 if name == "openai-whisper" else 0.3
    assert _wer(reference, [o.text for o in outputs]) <= limit, (reference, outputs)


def test_openai_names_cover_every_weight_of_openai_whisper() -> None:
    whisper_model = pytest.importorskip("whisper.model", reason="needs the bench extra")
    from malsori.bench.convert import openai_dims, openai_state_dict
    from malsori.finetune.ct2_format import read_model
    from malsori.finetune.ct2_to_hf import hf_state_dict
    from malsori.registry import resolve

    ct2 = read_model(resolve("tiny.en").path)
    hf = hf_state_dict(ct2)
    dims = openai_dims(hf, (6, 6))
    assert dims["n_audio_layer"] == dims["n_text_layer"] == 4
    assert dims["n_vocab"] == 51864 and dims["n_mels"] == 80  # tiny.en: English-only
    state = openai_state_dict(hf)
    expected = whisper_model.Whisper(whisper_model.ModelDimensions(**dims)).state_dict()
    assert set(state) == set(expected)
    for name, value in state.items():
        assert tuple(value.shape) == tuple(expected[name].shape), name


def test_long_reference_reads_the_segments_file(tmp_path: Path) -> None:
    from malsori.bench.plan import long_reference

    audio = tmp_path / "talk.flac"
    assert long_reference(audio) is None
    (tmp_path / "talk.segments.tsv").write_text(
        "start_s\tend_s\ttext\n0.0\t1.5\tFirst part.\n2.0\t3.0\t Second part.\n", encoding="utf-8"
    )
    assert long_reference(audio) == "First part. Second part."
