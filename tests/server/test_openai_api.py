"""The official ``openai`` client against the app in-process: every response format, both
endpoints, streaming, models; outputs equal the CLI's byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from .helpers import SPEECH_WORDS, Clips, Served, cli_output, words_of


@pytest.fixture
def served(serve: Any) -> Served:
    return serve()  # type: ignore[no-any-return]


@pytest.fixture
def client(served: Served) -> OpenAI:
    return OpenAI(base_url="http://testserver/v1", api_key=served.key, http_client=served.client)


def test_json_is_default_and_text_matches_speech(client: OpenAI, clips: Clips) -> None:
    with clips.speech.open("rb") as f:
        result = client.audio.transcriptions.create(file=f, model="whisper-1", language="en")
    assert isinstance(result, openai.types.audio.Transcription)
    assert set(SPEECH_WORDS) <= words_of(result.text)


@pytest.mark.parametrize(("fmt", "writer"), [("srt", "srt"), ("vtt", "vtt"), ("text", "txt")])
def test_subtitle_and_text_formats_equal_the_cli(
    client: OpenAI, clips: Clips, server_model: Any, tmp_path: Path, fmt: str, writer: str
) -> None:
    with clips.speech.open("rb") as f:
        served = client.audio.transcriptions.create(
            file=f,
            model="whisper-1",
            language="en",
            response_format=fmt,  # type: ignore[arg-type]
        )
    assert isinstance(served, str)
    # the server's default cues are OpenAI's (one per segment): the CLI's with profile none
    cli = cli_output(server_model, clips.speech, writer, tmp_path, "-l", "en",
                     "--subtitle-profile", "none")  # fmt: skip
    assert served == cli


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitle_profile_field_gives_the_cli_cues(
    serve: Any, clips: Clips, server_model: Any, tmp_path: Path, fmt: str
) -> None:
    # Byte for byte with the CLI's sequential pipeline: batching off (with it, word times come
    # from the engine's alignment of the packed window: the same words, times within a frame
    # or three).
    served = serve(engine={"batching": False})
    files = {"file": ("speech.wav", clips.speech.read_bytes(), "audio/wav")}
    data = {"language": "en", "response_format": fmt, "subtitle_profile": "Netflix-EN"}
    response = served.client.post(
        "/v1/audio/transcriptions", files=files, data=data, headers=served.auth()
    )
    assert response.status_code == 200, response.text
    cli = cli_output(server_model, clips.speech, fmt, tmp_path, "-l", "en",
                     "--subtitle-profile", "netflix-en")  # fmt: skip
    assert response.text == cli
    assert cli != cli_output(server_model, clips.speech, fmt, tmp_path, "-l", "en",
                             "--subtitle-profile", "none")  # fmt: skip


def test_verbose_json_with_words_and_segments(client: OpenAI, clips: Clips) -> None:
    with clips.speech_mp3.open("rb") as f:
        result = client.audio.transcriptions.create(
            file=f,
            model="whisper-1",
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            prompt="Foxes and dogs.",
            temperature=0.0,
        )
    assert result.language == "english"
    assert result.duration == pytest.approx(2.9, abs=0.5)
    assert result.segments and result.words
    assert set(SPEECH_WORDS) <= words_of(result.text)
    assert "".join(s.text for s in result.segments).strip() == result.text
    last = 0.0
    for word in result.words:
        assert last <= word.start <= word.end <= result.duration + 0.05
        last = word.start
    assert all(s.start <= s.end for s in result.segments)


def test_verbose_json_words_only_has_no_segments(client: OpenAI, clips: Clips) -> None:
    with clips.speech.open("rb") as f:
        result = client.audio.transcriptions.create(
            file=f,
            model="whisper-1",
            language="en",
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
    assert result.words and not result.segments


def test_stream_sends_segments_then_done(client: OpenAI, clips: Clips) -> None:
    with clips.speech.open("rb") as f:
        stream = client.audio.transcriptions.create(
            file=f, model="whisper-1", language="en", stream=True
        )
        events = list(stream)
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    assert deltas and events[-1].type == "transcript.text.done"
    done = events[-1]
    assert "".join(d.delta for d in deltas).strip() == done.text  # type: ignore[union-attr]
    segment = deltas[0].model_extra["segment"]  # type: ignore[index]
    assert 0.0 <= segment["start"] < segment["end"]


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the client's, for whisper-1
@pytest.mark.parametrize("fmt", ["json", "text", "srt", "verbose_json", "vtt"])
def test_translation_every_format(client: OpenAI, clips: Clips, fmt: str) -> None:
    with clips.speech.open("rb") as f:
        result = client.audio.translations.create(
            file=f,
            model="whisper-1",
            response_format=fmt,  # type: ignore[arg-type]
        )
    text = result if isinstance(result, str) else result.text
    assert {"fox", "dog"} <= words_of(text)
    if fmt == "verbose_json":
        assert json.loads(result.model_dump_json())["task"] == "translate"  # type: ignore[union-attr]


def test_models_list_and_retrieve(client: OpenAI, served: Served) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["base", "whisper-1"]
    assert client.models.retrieve("whisper-1").owned_by == "malsori"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-5")
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_unknown_model_is_404(client: OpenAI, clips: Clips, served: Served) -> None:
    with clips.speech.open("rb") as f, pytest.raises(openai.NotFoundError) as caught:
        client.audio.transcriptions.create(file=f, model="large-v9")
    assert caught.value.body["param"] == "model"  # type: ignore[index]
    assert served.stored() == {"uploads": 0, "audio": 0, "jobs": 0}


def test_wrong_key_is_401_for_the_client(served: Served, clips: Clips) -> None:
    client = OpenAI(base_url="http://testserver/v1", api_key="msk-wrong", http_client=served.client)
    with clips.speech.open("rb") as f, pytest.raises(openai.AuthenticationError) as caught:
        client.audio.transcriptions.create(file=f, model="whisper-1")
    assert caught.value.body["code"] == "invalid_api_key"  # type: ignore[index]
