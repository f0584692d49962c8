"""Fine-tuning end to end on a tiny random Whisper: train -> merge -> export -> register ->
``malsori transcribe --model NAME``; plus the training loss really falling, and the extra check."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from malsori.cli import main
from malsori.finetune.ct2_format import read_model
from malsori.finetune.options import FinetuneOptions
from malsori.finetune.run import PLOT_FILE, REPORT_FILE, finetune
from malsori.options import TranscribeOptions
from malsori.registry import resolve

# Cheap decoding for the before/after measurement of a random model (it never stops on its own).
FAST_DECODE = TranscribeOptions(beam_size=1, best_of=1, temperature=(0.0,), vad=False)


def test_lora_train_merge_export_transcribe(
    tiny_ct2: Path, clips: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("MALSORI_HOME", str(tmp_path / "home"))
    options = FinetuneOptions(
        method="lora",
        lora_rank=4,
        lora_alpha=8,
        max_steps=2,
        eval_steps=1,
        batch_size=2,
        learning_rate=1e-2,
        generation_max_length=8,
        quantization="int8",
        language="en",
    )
    result = finetune(
        clips / "train.tsv",
        clips,
        base=str(tiny_ct2),
        name="tiny-lora",
        options=options,
        eval_options=FAST_DECODE,
        progress=False,
    )
    assert result.path == resolve("tiny-lora").path
    assert result.train_clips == 2 and result.eval_clips == 2
    history = result.history
    assert history["steps"] == 2 and len(history["losses"]) == 2
    assert [e["step"] for e in history["evals"]] == [1, 2]
    assert all(e["wer"] >= 0.0 for e in history["evals"])
    assert result.before is not None and result.after is not None
    assert result.before["utterances"] == result.after["utterances"] == 2
    for name in (PLOT_FILE, REPORT_FILE, "eval-before.json", "eval-after.json"):
        assert (result.path / name).is_file(), name
    assert (result.path / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((result.path / REPORT_FILE).read_text())
    assert report["options"]["method"] == "lora" and report["base"] == str(tiny_ct2)
    # the merged LoRA update reached the exported weights: q/v changed, k and the FFN did not
    before, after = read_model(tiny_ct2), read_model(result.path)
    assert after.stored_dtype == "int8"
    fused = "decoder/layer_0/self_attention/linear_0/weight"  # q|k|v
    q0, k0, _ = np.split(before.variables[fused], 3)
    q1, k1, _ = np.split(after.variables[fused], 3)
    assert np.abs(q1 - q0).max() > 10 * np.abs(k1 - k0).max()
    # served by name through the normal command (a random model: any text, even none)
    out = tmp_path / "out"
    code = main(
        [
            "transcribe",
            "--model",
            "tiny-lora",
            "-l",
            "en",
            "--beam-size",
            "1",
            "--temperature",
            "0",
            "--no-vad",
            "-q",
            "-o",
            str(out),
            "-f",
            "json",
            str(clips / "zorblax.wav"),
        ]
    )
    assert code == 0
    transcript = json.loads((out / "zorblax.json").read_text())
    assert transcript["duration"] == pytest.approx(2.0, abs=0.5)


def test_full_finetuning_from_the_command_line_loss_falls(
    tiny_ct2: Path, clips: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("MALSORI_HOME", str(tmp_path / "home"))
    code = main([
        "finetune", "--data", str(clips / "train.tsv"), "--eval", str(clips / "train.tsv"),
        "--base", str(tiny_ct2), "-o", "tiny-full", "--method", "full", "--max-steps", "6",
        "--eval-steps", "6", "--batch-size", "2", "--learning-rate", "1e-2",
        "--generation-max-length", "8", "--quantization", "float32", "--no-before-after", "-q",
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "registered as tiny-full" in out and "training loss:" in out
    path = resolve("tiny-full").path
    report = json.loads((path / REPORT_FILE).read_text())
    losses = [loss for _, loss in report["history"]["losses"]]
    assert len(losses) == 6
    assert losses[-1] < losses[0] - 1.0  # nats per token: the two clips are being learnt
    assert report["eval_before"] is None and report["options"]["method"] == "full"
    assert read_model(path).stored_dtype == "float32"


def test_existing_name_fails_before_training(
    tiny_ct2: Path, clips: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MALSORI_HOME", str(tmp_path))
    (tmp_path / "models" / "taken").mkdir(parents=True)
    code = main(
        [
            "finetune",
            "--data",
            str(clips / "train.tsv"),
            "--eval",
            str(clips),
            "--base",
            str(tiny_ct2),
            "-o",
            "taken",
            "-q",
        ]
    )
    assert code == 5


def test_missing_extra_names_it(monkeypatch, capsys) -> None:
    real = importlib.util.find_spec

    def without_peft(name: str, *args: object) -> object:
        return None if name == "peft" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_peft)
    code = main(["finetune", "--data", "x.tsv", "--eval", "y.tsv", "-o", "n"])
    assert code == 2
    err = capsys.readouterr().err
    assert "finetune extra" in err and "peft" in err and "malsori[finetune]" in err


def test_bad_options_are_usage_errors() -> None:
    from malsori.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="method"):
        FinetuneOptions(method="qlora")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="lora rank"):
        FinetuneOptions(lora_rank=0)
    with pytest.raises(InvalidOptionError, match="quantization"):
        FinetuneOptions(quantization="int4")
    with pytest.raises(InvalidOptionError, match="klingon"):
        FinetuneOptions(language="klingon")
