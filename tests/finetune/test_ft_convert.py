"""CTranslate2 <-> transformers conversion and CTranslate2 re-quantization, on a tiny random
Whisper (exact round trips) and on the packaged ``base`` (int8 copy, registered by name)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from malsori.cli import main
from malsori.errors import InvalidOptionError
from malsori.finetune.ct2_format import read_model, weights_dtype
from malsori.finetune.ct2_to_hf import ct2_to_hf, load_hf
from malsori.finetune.store import check_name, read_marker
from malsori.quantize import quantize_ct2
from malsori.registry import resolve


def test_ct2_to_hf_gives_back_the_exact_weights(tiny_hf: Path, tiny_ct2: Path) -> None:
    """HF -> CTranslate2 (ctranslate2's converter, float32) -> HF (ours): every tensor equal."""
    original = load_hf(tiny_hf).model.state_dict()
    converted = ct2_to_hf(tiny_ct2)
    again = converted.model.state_dict()
    assert set(again) == set(original)
    for name, tensor in original.items():
        assert again[name].shape == tensor.shape, name
        assert np.array_equal(again[name].numpy(), tensor.numpy()), name
    gen = converted.model.generation_config
    assert gen.lang_to_id["<|ko|>"] == 50264 and gen.task_to_id["transcribe"] == 50359
    assert gen.alignment_heads == [[0, 0], [0, 1]]
    assert gen.no_timestamps_token_id == 50363
    # parameters that CTranslate2 stored once (equal values) are separate tensors again
    layer_norms = [
        p for n, p in converted.model.named_parameters() if n.endswith("layer_norm.weight")
    ]
    assert len({p.data_ptr() for p in layer_norms}) == len(layer_norms)


def test_convert_commands_round_trip(tiny_ct2: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MALSORI_HOME", str(tmp_path / "home"))
    hf_dir = tmp_path / "hf"
    assert main(["convert", "to-hf", str(tiny_ct2), "-o", str(hf_dir)]) == 0
    for name in (
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
        "generation_config.json",
    ):
        assert (hf_dir / name).is_file(), name
    assert (
        main(["convert", "to-ct2", str(hf_dir), "--name", "tiny-rt", "--quantization", "float32"])
        == 0
    )
    registered = resolve("tiny-rt")
    assert registered.source == "cache"
    assert read_marker(registered.path)["source"] == "convert"
    a, b = read_model(tiny_ct2), read_model(registered.path)
    for name, value in a.resolved().items():
        assert np.array_equal(value, b.resolved()[name]), name
    # a second registration under the same name needs --force
    assert main(["convert", "to-ct2", str(hf_dir), "--name", "tiny-rt"]) == 5


def test_quantize_base_to_int8_is_registered_and_close(
    base_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MALSORI_HOME", str(tmp_path))
    result = quantize_ct2(str(base_dir), "int8", name="base-q8")
    assert result.path == resolve("base-q8").path
    assert weights_dtype(result.path) == "int8" and weights_dtype(base_dir) == "float16"
    assert result.size_bytes < 0.6 * (base_dir / "model.bin").stat().st_size
    marker = json.loads((result.path / "malsori-model.json").read_text())
    assert marker["source"] == "quantize" and marker["quantization"] == "int8"
    original, quantized = read_model(base_dir), read_model(result.path)
    w0 = original.variables["decoder/layer_0/self_attention/linear_0/weight"]
    w1 = quantized.variables["decoder/layer_0/self_attention/linear_0/weight"]
    row_max = np.abs(w0).max(axis=1, keepdims=True)
    assert np.all(np.abs(w1 - w0) <= row_max / 127 * 0.51 + 1e-6)  # half an int8 step per row
    assert not np.array_equal(w0, w1)


def test_names_that_cannot_be_registered() -> None:
    for bad in ("base", "../x", "a/b", ".hidden", ""):
        with pytest.raises(InvalidOptionError):
            check_name(bad)
    assert check_name("base-ko_v2.1") == "base-ko_v2.1"


def test_quantize_command_both_engines(tiny_ct2: Path, clips: Path, tmp_path: Path,
                                       monkeypatch, capsys) -> None:  # fmt: skip
    monkeypatch.setenv("MALSORI_HOME", str(tmp_path / "home"))
    code = main(["quantize", str(tiny_ct2), "--to", "int16", "--name", "tiny-i16",
                 "--eval", str(clips / "train.tsv"), "--threads", "1"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "registered as tiny-i16" in out
    assert out.count("ctranslate2") >= 3  # the result line and two table rows
    assert weights_dtype(resolve("tiny-i16").path) == "int16"
    hf_dir = tmp_path / "hf-int8"
    code = main(["quantize", str(tiny_ct2), "--engine", "transformers", "--to", "int8",
                 "-o", str(hf_dir)])  # fmt: skip
    assert code == 0
    assert json.loads((hf_dir / "malsori-engine.json").read_text())["dynamic_int8"] is True
    assert main(["quantize", str(tiny_ct2), "--engine", "transformers", "--to", "int16",
                 "-o", str(tmp_path / "x")]) == 2  # fmt: skip


def test_transformers_engine_dynamic_int8_runs(tiny_hf: Path, clips: Path) -> None:
    from malsori.finetune.data import load_audio
    from malsori.finetune.hf_engine import EngineOptions, TransformersEngine

    engine = TransformersEngine.load(tiny_hf, EngineOptions(dynamic_int8=True, max_new_tokens=5))
    dynamic = [m for m in engine.model.modules() if ".quantized.dynamic." in type(m).__module__]
    assert len(dynamic) >= 10  # every Linear of the tiny model (attention, FFN, projection)
    tokens = engine.token_ids(load_audio(clips / "zorblax.wav"), "en")
    assert len(tokens) <= 5
