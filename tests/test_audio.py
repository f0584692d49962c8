"""Audio input: every container decodes to 16 kHz mono float32; bad inputs fail precisely;
long inputs are cut into bounded windows at quiet points."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from malsori.audio import SAMPLE_RATE, AudioStream, as_float32, materialize, probe
from malsori.errors import (
    AudioDecodeError,
    AudioNotFoundError,
    EmptyAudioError,
    InputError,
)
from malsori.transcribe import iter_windows
from rendered_audio import Audio, run_tool

FORMAT_NAMES = ["stereo-44k-wav", "mp3", "opus", "webm", "m4a", "mp4-video", "aiff", "flac"]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def english_pcm(audio: Audio) -> np.ndarray:
    return AudioStream(audio.english).read()


def test_wav_decodes_to_16k_mono_float32(audio: Audio, english_pcm: np.ndarray) -> None:
    stream = AudioStream(audio.english)
    assert (stream.info.format, stream.info.sample_rate, stream.info.channels) == ("wav", 22050, 1)
    assert np.array_equal(stream.read(), english_pcm)
    assert english_pcm.dtype == np.float32 and english_pcm.ndim == 1
    assert english_pcm.size / SAMPLE_RATE == pytest.approx(audio.english_duration, abs=0.01)
    assert 0.1 < float(np.abs(english_pcm).max()) <= 1.0
    assert stream.decoded_samples == english_pcm.size


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_every_container_decodes_like_the_wav(
    audio: Audio, english_pcm: np.ndarray, name: str
) -> None:
    pcm = AudioStream(audio.formats[name]).read()
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    assert pcm.size / SAMPLE_RATE == pytest.approx(audio.english_duration, abs=0.1)
    assert float(np.abs(pcm).max()) <= 1.0
    # Same speech: same loudness within what lossy codecs and resampling change.
    assert _rms(pcm) == pytest.approx(_rms(english_pcm), rel=0.15)


def test_probe_reads_the_container(audio: Audio) -> None:
    stereo = probe(audio.stereo)
    assert (stereo.sample_rate, stereo.channels) == (44100, 2)
    video = probe(audio.mp4)
    assert video.codec == "aac" and "mp4" in video.format
    assert video.declared_duration == pytest.approx(audio.english_duration, abs=0.1)
    assert probe(audio.opus).codec == "opus"


def test_stereo_is_mixed_down_not_doubled(audio: Audio, english_pcm: np.ndarray) -> None:
    pcm = AudioStream(audio.stereo).read()
    assert pcm.size == pytest.approx(english_pcm.size, abs=SAMPLE_RATE * 0.01)


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("missing", AudioNotFoundError, "no such file"),
        ("directory", AudioNotFoundError, "directory"),
        ("empty", EmptyAudioError, "empty"),
        ("zero_wav", EmptyAudioError, "no audio samples"),
        ("text_as_mp3", AudioDecodeError, "not a decodable"),
        ("video_only", AudioDecodeError, "no audio stream"),
        ("truncated_wav", AudioDecodeError, "truncated"),
        ("truncated_flac", AudioDecodeError, "truncated"),
        ("truncated_mp3", AudioDecodeError, "truncated"),
        ("truncated_opus", AudioDecodeError, "truncated"),
    ],
)
def test_bad_inputs_raise_the_right_error(
    audio: Audio, name: str, error: type[InputError], message: str
) -> None:
    path = {"missing": audio.root / "missing.wav", "directory": audio.root}.get(name)
    path = path or getattr(audio, name)
    with pytest.raises(error, match=message) as info:
        AudioStream(path).read()
    assert info.value.exit_code == 3
    assert str(path) in str(info.value)


def test_truncated_files_fail_at_the_end_after_decoding_what_is_there(audio: Audio) -> None:
    """Blocks come out as they decode; the truncation is reported when the data runs out."""
    stream = AudioStream(audio.truncated_mp3)
    blocks = stream.blocks(block_s=1.0)
    first = next(blocks)
    assert first.size == SAMPLE_RATE
    with pytest.raises(AudioDecodeError, match="truncated"):
        list(blocks)


def test_blocks_are_bounded_and_join_to_the_whole(audio: Audio) -> None:
    stream = AudioStream(audio.long)
    blocks = list(stream.blocks(block_s=10.0))
    assert all(b.size == 10 * SAMPLE_RATE for b in blocks[:-1])
    assert 0 < blocks[-1].size <= 10 * SAMPLE_RATE
    whole = np.concatenate(blocks)
    assert np.array_equal(whole, AudioStream(audio.long).read())
    assert whole.size / SAMPLE_RATE == pytest.approx(stream.info.declared_duration, abs=0.01)


@pytest.mark.parametrize("kind", ["bytes", "file", "bytesio", "stdin"])
def test_bytes_streams_and_stdin_decode_like_the_file(
    audio: Audio, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    data = audio.mp3.read_bytes()
    expected = AudioStream(audio.mp3).read()
    if kind == "bytes":
        source: object = data
    elif kind == "file":
        source = open(audio.mp3, "rb")  # noqa: SIM115 - closed below
    elif kind == "bytesio":
        source = io.BytesIO(data)
    else:
        monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(data)))
        source = "-"
    try:
        with materialize(source) as path:  # type: ignore[arg-type]
            assert path != audio.mp3 and path.read_bytes() == data
            pcm = AudioStream(path).read()
    finally:
        if kind == "file":
            source.close()  # type: ignore[attr-defined]
    assert np.array_equal(pcm, expected)
    assert not path.exists()  # the spooled copy is gone


def test_paths_are_used_in_place(audio: Audio) -> None:
    with materialize(audio.flac) as path:
        assert path == audio.flac
    with materialize(str(audio.flac)) as path:
        assert path == audio.flac
    assert audio.flac.exists()


@pytest.mark.parametrize("source", [b"", io.BytesIO(b"")])
def test_empty_bytes_and_streams(source: object) -> None:
    with pytest.raises(EmptyAudioError), materialize(source):  # type: ignore[arg-type]
        pass


def test_waveforms_must_be_1d_and_non_empty() -> None:
    assert as_float32(np.zeros(10, dtype=np.float64)).dtype == np.float32
    with pytest.raises(AudioDecodeError, match="1-D"):
        as_float32(np.zeros((2, 16000), dtype=np.float32))
    with pytest.raises(EmptyAudioError):
        as_float32(np.zeros(0, dtype=np.float32))


# --- windowing ----------------------------------------------------------------------------------


def tone_bursts(
    bursts: int, tone_s: float, gap_s: float, noise: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``bursts`` tones separated by quiet gaps; returns the audio and the (start, end) of gaps."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(tone_s * SAMPLE_RATE)) / SAMPLE_RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    gap_len = int(gap_s * SAMPLE_RATE)
    parts, gaps, pos = [], [], 0
    for _ in range(bursts):
        parts.append(tone)
        pos += tone.size
        gap = (noise * rng.standard_normal(gap_len)).astype(np.float32)
        parts.append(gap)
        gaps.append((pos, pos + gap_len))
        pos += gap_len
    return np.concatenate(parts), gaps


def _check_windows(
    windows: list[tuple[int, np.ndarray]], whole: np.ndarray, window_s: float
) -> None:
    window = int(window_s * SAMPLE_RATE)
    search = int(min(60.0, window_s / 4) * SAMPLE_RATE)
    starts = [start for start, _ in windows]
    assert starts[0] == 0
    for (start, w), next_start in zip(windows, [*starts[1:], whole.size], strict=True):
        assert start + w.size == next_start  # contiguous: no gap, no overlap
    assert np.array_equal(np.concatenate([w for _, w in windows]), whole)
    for _, w in windows[:-1]:
        assert window - search <= w.size <= window
    assert windows[-1][1].size <= window + search


@pytest.mark.parametrize("noise", [0.0, 0.002])
def test_windows_cut_at_quiet_points(noise: float) -> None:
    # 1.3 s tones with 0.7 s gaps, 8 s windows: every cut must land inside a gap.
    audio, gaps = tone_bursts(30, tone_s=1.3, gap_s=0.7, noise=noise)
    windows = list(iter_windows([audio], 8.0))
    assert len(windows) >= 6
    _check_windows(windows, audio, 8.0)
    for start, _ in windows[1:]:
        assert any(lo + 800 <= start <= hi - 800 for lo, hi in gaps), f"cut at {start} in a tone"


def test_windows_do_not_depend_on_how_the_decoder_chunked() -> None:
    audio, _ = tone_bursts(40, tone_s=0.9, gap_s=0.6, noise=0.001, seed=1)
    rng = np.random.default_rng(2)
    blocks, pos = [], 0
    while pos < audio.size:
        n = int(rng.integers(1, 5 * SAMPLE_RATE))
        blocks.append(audio[pos : pos + n])
        pos += n
    one = list(iter_windows([audio], 6.0))
    many = list(iter_windows(iter(blocks), 6.0))
    assert [s for s, _ in one] == [s for s, _ in many]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(one, many, strict=True))
    _check_windows(many, audio, 6.0)


def test_windows_without_a_quiet_point_stay_bounded() -> None:
    t = np.arange(30 * SAMPLE_RATE) / SAMPLE_RATE
    steady = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    windows = list(iter_windows([steady], 4.0))
    _check_windows(windows, steady, 4.0)


def test_short_input_is_one_window_and_nothing_gives_none() -> None:
    audio = np.ones(3 * SAMPLE_RATE, dtype=np.float32)
    windows = list(iter_windows([audio[:SAMPLE_RATE], audio[SAMPLE_RATE:]], 60.0))
    assert len(windows) == 1 and windows[0][0] == 0
    assert np.array_equal(windows[0][1], audio)
    assert list(iter_windows([], 60.0)) == []


def test_long_file_windows_at_the_minimum_window(audio: Audio) -> None:
    stream = AudioStream(audio.long)
    whole = AudioStream(audio.long).read()
    windows = list(iter_windows(stream.blocks(), 60.0))
    assert len(windows) == 3
    _check_windows(windows, whole, 60.0)
    for start, _ in windows[1:]:  # the cuts fall in the silences between the sentences
        assert np.abs(whole[start - 1600 : start + 1600]).max() < 0.01


def test_complete_vbr_mp3_without_xing_header_is_not_truncated(
    audio: Audio, tmp_path: Path
) -> None:
    # Quiet start (low-bitrate first frame) then speech: the estimate from the first frame's
    # bitrate is about twice the real length. Such files come from streams and stripped tags.
    source, mp3 = tmp_path / "quiet-start.wav", tmp_path / "vbr-no-xing.mp3"
    silence = tmp_path / "silence.wav"
    run_tool("sox", "-n", "-r", "22050", "-c", "1", "-b", "16", silence, "trim", "0", "3")
    run_tool("sox", silence, audio.english, audio.english, audio.english, source)
    run_tool("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", source,
         "-c:a", "libmp3lame", "-q:a", "2", "-write_xing", "0", mp3)  # fmt: skip
    pcm = AudioStream(mp3).read()
    assert pcm.size / SAMPLE_RATE == pytest.approx(3 + 3 * audio.english_duration, abs=0.2)


def _playlists(target: Path) -> dict[str, bytes]:
    """Text FFmpeg would follow to other files or addresses, were it allowed to guess."""
    name = str(target).encode()
    return {
        "ffconcat": b"ffconcat version 1.0\nfile " + name + b"\n",
        "ffconcat relative": b"ffconcat version 1.0\nfile '" + target.name.encode() + b"'\n",
        "ffconcat missing": b"ffconcat version 1.0\nfile /nonexistent/nothing.wav\n",
        "hls": b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://" + name
        + b"\n#EXT-X-ENDLIST\n",
        "sdp": b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\n"
        b"m=audio 5004 RTP/AVP 0\n",
        "subtitles": b"1\n00:00:01,000 --> 00:00:02,000\nhello\n",
        "ffmetadata": b";FFMETADATA1\ntitle=x\n",
    }  # fmt: skip


def test_playlists_and_text_formats_are_refused(audio: Audio, tmp_path: Path) -> None:
    """Only allowed demuxers open an input: a playlist naming a real audio file next to it is
    refused with the same message as one naming no file, and the file is never read."""
    target = tmp_path / "secret.wav"
    target.write_bytes(audio.english.read_bytes())
    messages = {}
    for name, data in _playlists(target).items():
        suffix = {"hls": ".m3u8", "sdp": ".sdp", "subtitles": ".srt"}.get(name, ".txt")
        path = tmp_path / f"{name.replace(' ', '_')}{suffix}"
        path.write_bytes(data)
        with pytest.raises(AudioDecodeError) as refused:
            AudioStream(path)
        messages[name] = str(refused.value).replace(str(path), "<input>")
        with pytest.raises(AudioDecodeError):
            probe(path)
    generic = {
        "<input>: not a decodable audio or video file (unsupported format)",
        "<input>: not a decodable audio or video file (Invalid data found when processing input)",
    }
    assert set(messages.values()) <= generic, messages
    assert messages["ffconcat missing"] == messages["ffconcat"] == messages["hls"]


def test_a_file_name_is_never_a_protocol(audio: Audio, tmp_path: Path) -> None:
    """``concat:...`` or ``subfile:...`` as a local file name is that file, not FFmpeg's
    protocol (which would read the files it names)."""
    odd = tmp_path / "concat:x.wav"
    odd.write_bytes(audio.english.read_bytes())
    assert AudioStream(odd).read().size / SAMPLE_RATE == pytest.approx(
        audio.english_duration, abs=0.01
    )
