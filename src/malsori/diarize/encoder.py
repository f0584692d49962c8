"""The speaker encoder: a GE2E voice encoder (3-layer LSTM over 40 mel bands, 256-dimensional
unit embeddings), its weights from the ``resemblyzer`` wheel (Apache-2.0), loaded here once per
process and shared by every door.

Only the weights file is taken from the wheel: importing the ``resemblyzer`` package itself pulls
in ``webrtcvad``, which needs ``pkg_resources``, and ``librosa``'s feature code, which takes many
seconds to compile. The mel spectrogram is computed with PyTorch (power spectrum of 25 ms Hann
windows every 10 ms, centred, then librosa's Slaney mel filter bank), which is what the encoder
was trained on.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import ModelLoadError, require_extra

log = logging.getLogger(__name__)

N_FFT = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms: one mel frame
N_MELS = 40
HIDDEN = 256
TARGET_DBFS = -30.0  # loudness the encoder's training audio was normalised to (quiet raised only)
# PyTorch threads for the encoder on CPU. The LSTM's small matrix products gain nothing from a
# second thread and, on a machine whose cores are busy decoding, lose many times over to threads
# waiting for each other (measured: 4 ms a window on one thread, 20-300 ms on two).
CPU_THREADS = 1

_lock = threading.Lock()
_encoders: dict[str, SpeakerEncoder] = {}


def require_diarize_extra() -> None:
    """A one-line error naming the ``diarize`` extra when its packages are missing."""
    require_extra("diarize", ("resemblyzer", "torch", "librosa", "scipy"), "diarization")


def weights_path() -> Path:
    """The encoder's weights inside the installed ``resemblyzer`` wheel (not imported)."""
    require_diarize_extra()
    spec = importlib.util.find_spec("resemblyzer")
    assert spec is not None and spec.submodule_search_locations  # checked by require_extra
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise ModelLoadError(f"the speaker encoder's weights are missing: {path}")
    return path


class SpeakerEncoder:
    """Embeddings of mel-spectrogram windows; one instance per device per process."""

    def __init__(self, device: str = "cpu", threads: int = CPU_THREADS):
        import librosa.filters
        import torch

        self._lock = threading.Lock()  # one batch at a time: PyTorch's CPU pool is shared
        self.threads = threads
        path = weights_path()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
        except Exception as e:  # torch raises many kinds for a damaged file
            raise ModelLoadError(f"cannot load the speaker encoder from {path}: {e}") from e
        self.device = torch.device(device)
        self.lstm = torch.nn.LSTM(N_MELS, HIDDEN, 3, batch_first=True)
        self.linear = torch.nn.Linear(HIDDEN, HIDDEN)
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.to(self.device).eval()
        self.linear.to(self.device).eval()
        fbank = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)
        self.fbank = torch.from_numpy(fbank.astype(np.float32)).to(self.device)
        self.window = torch.hann_window(N_FFT, periodic=True, device=self.device)

    def mel(self, audio: np.ndarray) -> Any:
        """Mel frames of ``audio`` (16 kHz mono float32), shape (frames, 40), frame k at k*10 ms."""
        import torch

        wav = normalize_volume(audio)
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).to(self.device)
        spec = torch.stft(x, N_FFT, HOP, window=self.window, center=True, pad_mode="constant",
                          return_complex=True)  # fmt: skip
        return (self.fbank @ spec.abs().pow(2)).T

    def embed(self, windows: list[Any]) -> np.ndarray:
        """Unit embeddings (n, 256) of mel windows; windows of equal length run as one batch."""
        import torch

        out = np.zeros((len(windows), HIDDEN), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            by_length.setdefault(int(w.shape[0]), []).append(i)
        with self._lock, _torch_threads(self.threads), torch.inference_mode():
            for idx in by_length.values():
                for k in range(0, len(idx), 256):
                    part = idx[k : k + 256]
                    _, (hidden, _) = self.lstm(torch.stack([windows[i] for i in part]))
                    raw = torch.relu(self.linear(hidden[-1]))
                    unit = raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-8)
                    out[part] = unit.cpu().numpy()
        return out


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """PyTorch's CPU thread count set to ``threads`` for the block, then put back."""
    import torch

    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if before != threads:
            torch.set_num_threads(before)


def normalize_volume(audio: np.ndarray) -> np.ndarray:
    """Raise quiet audio to ``TARGET_DBFS`` (RMS); loud audio is left as it is."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    if rms <= 1e-6:
        return audio
    gain_db = TARGET_DBFS - 20 * np.log10(rms)
    return audio * (10 ** (gain_db / 20)) if gain_db > 0 else audio


def load_encoder(device: str = "cpu") -> SpeakerEncoder:
    """The process's encoder for ``device`` (``cpu`` or ``cuda``), loaded on first use."""
    with _lock:
        encoder = _encoders.get(device)
        if encoder is None:
            log.info("loading the speaker encoder on %s", device)
            encoder = _encoders[device] = SpeakerEncoder(device)
        return encoder
