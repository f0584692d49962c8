"""The ``onnx`` and ``onnx-int8`` configurations' worker: ONNX Runtime through Optimum.

``optimum-onnx`` pins ``transformers<4.58`` and malsori needs ``transformers>=5``, so this
worker runs in an environment of its own (``malsori bench --onnx-python PATH``), started by path
(``PATH .../malsori/bench/onnx_worker.py``). It imports nothing of malsori but its
standard-library ``protocol``; numpy, transformers and optimum come from that environment.

What the parent gives it (``malsori.bench.configs.OnnxRuntime``): a ``transformers`` folder
(malsori's own conversion of the packaged weights, ``convert.hf_folder``), where to cache the
exports, and the clips decoded by malsori into 16 kHz float32 ``.npy`` files, so every engine
hears the same samples. Requests (``protocol``):

- ``{"op": "load", "hf_folder": F, "fp32_dir": D, "onnx_dir": D2, "int8": bool,
  "threads": N}``: Optimum exports F to ONNX in ``fp32_dir`` (once; cached), for ``int8`` its
  ``ORTQuantizer`` writes dynamic int8 copies of the encoder and decoders into ``onnx_dir``
  (once), both in a child process (``onnx_worker.py export``) so that the worker's peak memory
  is the runtime's; then ``ORTModelForSpeechSeq2Seq`` loads ``onnx_dir`` on the CPU provider.
- ``{"op": "run", "paths": [npy, ...]}``: greedy decoding of each clip (one 30 s window),
  the language detected by the model (multilingual models), as the ``transformers``
  configurations decode.
- ``{"op": "stats"}``: this process's peak RSS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from .protocol import peak_rss_bytes, serve_stdio
except ImportError:  # run by path under the ONNX environment's interpreter (no package)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from protocol import peak_rss_bytes, serve_stdio  # type: ignore[no-redef]

    sys.path.pop(0)

SAMPLE_RATE = 16000
MULTILINGUAL_VOCAB = 51865  # the multilingual models' vocabulary (English-only: 51864)


def _cached(target: Path, write: Callable[[Path], None]) -> Path:
    """``target`` if it exists, else written into a temporary sibling and renamed into place
    (an interrupted export leaves nothing half-written behind)."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        write(tmp / target.name)
        os.replace(tmp / target.name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def export_fp32(hf_folder: Path, out: Path) -> None:
    """Optimum's ONNX export of the transformers folder, with its processor files."""
    from optimum.onnxruntime import ORTModelForSpeechSeq2Seq
    from transformers import WhisperProcessor

    ORTModelForSpeechSeq2Seq.from_pretrained(hf_folder, export=True).save_pretrained(out)
    WhisperProcessor.from_pretrained(hf_folder).save_pretrained(out)


def quantization_config() -> Any:
    """Optimum's dynamic int8 preset for this CPU's widest integer instructions."""
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = set(next((ln for ln in f if ln.startswith("flags")), "").split())
    except OSError:
        flags = set()
    if "avx512_vnni" in flags:
        return AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False)
    if "avx512f" in flags:
        return AutoQuantizationConfig.avx512(is_static=False, per_channel=False)
    return AutoQuantizationConfig.avx2(is_static=False, per_channel=False)


def quantize_int8(fp32_dir: Path, out: Path) -> None:
    """Dynamic int8 copies of every ONNX file of the fp32 export (Optimum's ``ORTQuantizer``)."""
    from optimum.onnxruntime import ORTQuantizer

    config = quantization_config()
    out.mkdir(parents=True)
    for model in sorted(fp32_dir.glob("*.onnx")):
        quantizer = ORTQuantizer.from_pretrained(fp32_dir, file_name=model.name)
        quantizer.quantize(save_dir=out, quantization_config=config)
        # the quantizer names its output MODEL_quantized.onnx: back to the name Optimum loads
        os.replace(out / f"{model.stem}_quantized.onnx", out / model.name)
    for other in fp32_dir.iterdir():
        if other.suffix not in (".onnx", ".onnx_data") and not (out / other.name).exists():
            shutil.copy2(other, out / other.name)


def onnx_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in (".onnx", ".onnx_data"))


class OnnxWhisper:
    def __init__(self, folder: Path, threads: int):
        import onnxruntime
        from optimum.onnxruntime import ORTModelForSpeechSeq2Seq
        from transformers import WhisperProcessor

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.model = ORTModelForSpeechSeq2Seq.from_pretrained(
            folder, session_options=options, provider="CPUExecutionProvider"
        )
        self.processor = WhisperProcessor.from_pretrained(folder)
        generation = self.model.generation_config
        self.languages = {int(i): t.strip("<|>") for t, i in (generation.lang_to_id or {}).items()}
        self.multilingual = (
            bool(getattr(generation, "is_multilingual", False))
            and int(self.model.config.vocab_size) >= MULTILINGUAL_VOCAB
        )

    def decode(self, audio: Any) -> tuple[str, str | None]:
        """Greedy text and detected language of a clip of at most 30 s (one window)."""
        if audio.size > 30 * SAMPLE_RATE:
            raise ValueError(f"decodes clips of at most 30 s, got {audio.size / SAMPLE_RATE:.1f} s")
        features = self.processor.feature_extractor(
            audio, sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features
        kwargs: dict[str, Any] = {"num_beams": 1, "do_sample": False}
        if self.multilingual:
            kwargs["task"] = "transcribe"  # no language given: generate detects it
        ids = [int(t) for t in self.model.generate(features, **kwargs)[0].tolist()]
        language: str | None = "en"
        if self.multilingual:
            language = next((self.languages[t] for t in ids[:4] if t in self.languages), None)
        text = self.processor.tokenizer.decode(ids, skip_special_tokens=True)
        return str(text).strip(), language


class OnnxWorker:
    def __init__(self) -> None:
        self.whisper: OnnxWhisper | None = None

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "load":
            started = time.perf_counter()
            folder = Path(request["onnx_dir"])
            if not folder.exists():  # in a child, so that this process's peak is the runtime's
                command = [sys.executable, str(Path(__file__).resolve()), "export",
                           request["hf_folder"], request["fp32_dir"]]  # fmt: skip
                if request.get("int8"):
                    command.append(request["onnx_dir"])
                subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=sys.stderr)
            prepared = time.perf_counter()
            self.whisper = OnnxWhisper(folder, int(request.get("threads") or 0))
            loaded = time.perf_counter()
            return {
                "ok": True,
                "prepare_s": prepared - started,
                "load_s": loaded - prepared,
                "size_bytes": onnx_bytes(folder),
            }
        if op == "run":
            import numpy as np

            if self.whisper is None:
                return {"ok": False, "error": "no configuration loaded"}
            clips = [np.load(p) for p in request["paths"]]
            started = time.perf_counter()
            outputs = [list(self.whisper.decode(a)) for a in clips]
            wall = time.perf_counter() - started
            return {"ok": True, "outputs": outputs, "wall_s": wall}
        if op == "stats":
            return {"ok": True, "peak_rss_bytes": peak_rss_bytes(), "peak_gpu_bytes": None}
        return {"ok": False, "error": f"unknown request {op!r}"}


def export(hf_folder: Path, fp32_dir: Path, int8_dir: Path | None) -> None:
    """The ONNX files the configuration loads, each made once (cached)."""
    fp32 = _cached(fp32_dir, lambda out: export_fp32(hf_folder, out))
    if int8_dir is not None:
        _cached(int8_dir, lambda out: quantize_int8(fp32, out))


def main(argv: list[str]) -> None:
    if argv[:1] == ["export"]:  # HF_FOLDER FP32_DIR [INT8_DIR]
        paths = [Path(a) for a in argv[1:]]
        export(paths[0], paths[1], paths[2] if len(paths) > 2 else None)
        return
    serve_stdio(OnnxWorker().handle)


if __name__ == "__main__":
    main(sys.argv[1:])
