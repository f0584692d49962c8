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


@pytest.mark.parametrize(("fmt", "writer"), [("srt", "srt"), ("vtt", "vtt")])
def test_subtitle_formats_equal_the_cli(
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


def test_segments_carry_whispers_tokens(client: OpenAI, clips: Clips, server_model: Any) -> None:
    with clips.speech_mp3.open("rb") as f:
        result = client.audio.transcriptions.create(
            file=f, model="whisper-1", response_format="verbose_json", language="en"
        )
    assert result.segments
    eot = server_model.whisper.hf_tokenizer.token_to_id("<|endoftext|>")
    for segment in result.segments:
        text_tokens = [t for t in segment.tokens if t < eot]
        assert text_tokens, "a segment without Whisper's tokens"
        decoded = server_model.whisper.hf_tokenizer.decode(text_tokens)
        assert decoded.strip() == segment.text.strip()
        assert segment.seek >= 0


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
        body = json.loads(result.model_dump_json())  # type: ignore[union-attr]
        assert body["task"] == "translate" and body["language"] == "english"  # as OpenAI says


def test_text_is_the_transcript_as_one_string(served: Served, clips: Clips) -> None:
    files = {"file": ("long.wav", clips.long.read_bytes(), "audio/wav")}
    common = {"language": "en"}
    auth = served.auth()
    text = served.client.post("/v1/audio/transcriptions", files=files,
                              data={**common, "response_format": "text"}, headers=auth)  # fmt: skip
    as_json = served.client.post("/v1/audio/transcriptions", files=files, data=common,
                                 headers=auth).json()  # fmt: skip
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == as_json["text"] + "\n"  # one line, however many segments
    assert text.text.count("\n") == 1


def test_json_carries_usage_and_logprobs(served: Served, clips: Clips) -> None:
    files = {"file": ("speech.wav", clips.speech.read_bytes(), "audio/wav")}
    plain = served.client.post("/v1/audio/transcriptions", files=files,
                               data={"language": "en"}, headers=served.auth()).json()  # fmt: skip
    usage = plain["usage"]  # whole seconds, rounded up, as OpenAI reports whisper-1
    assert usage["type"] == "duration" and isinstance(usage["seconds"], int)
    assert 2 <= usage["seconds"] <= 5
    assert "logprobs" not in plain
    data = {"language": "en", "include[]": "logprobs"}
    body = served.client.post("/v1/audio/transcriptions", files=files, data=data,
                              headers=served.auth()).json()  # fmt: skip
    tokens = body["logprobs"]
    assert "".join(t["token"] for t in tokens).strip() == body["text"].strip()
    assert all(t["logprob"] <= 0 and bytes(t["bytes"]).decode() == t["token"] for t in tokens)


def test_stream_done_names_the_language_and_carries_logprobs(served: Served, clips: Clips) -> None:
    files = {"file": ("speech.wav", clips.speech.read_bytes(), "audio/wav")}
    data = {"stream": "true", "include[]": "logprobs"}
    response = served.client.post("/v1/audio/transcriptions", files=files, data=data,
                                  headers=served.auth())  # fmt: skip
    events = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: ")]  # fmt: skip
    assert events[-1]["type"] == "transcript.text.done"
    assert events[-1]["language"] == "english"  # as verbose_json names it
    deltas = [e for e in events if e["type"] == "transcript.text.delta"]
    assert deltas and all(e["logprobs"] for e in deltas)


@pytest.mark.parametrize(
    ("chunking", "expect"),
    [
        ("auto", {"vad": True}),
        ('{"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 200, '
         '"silence_duration_ms": 700}',
         {"vad": True, "vad_threshold": 0.6, "vad_speech_pad_ms": 200, "vad_min_silence_ms": 700}),
    ],
)  # fmt: skip
def test_chunking_strategy_maps_onto_vad(chunking: str, expect: dict[str, Any]) -> None:
    from malsori.options import TranscribeOptions
    from malsori.server.schemas import TranscriptionParams

    params = TranscriptionParams.model_validate({"chunking_strategy": chunking})
    options = params.apply(TranscribeOptions(vad=False))
    assert {k: getattr(options, k) for k in expect} == expect


def test_chunking_strategy_from_the_openai_client(client: OpenAI, served: Served,
                                                  clips: Clips) -> None:  # fmt: skip
    with clips.speech.open("rb") as f:
        result = client.audio.transcriptions.create(
            file=f, model="whisper-1", language="en",
            chunking_strategy={"type": "server_vad", "threshold": 0.5,
                               "silence_duration_ms": 500},
        )  # fmt: skip
    assert set(SPEECH_WORDS) <= words_of(result.text)
    with clips.speech.open("rb") as f, pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(
            file=f, model="whisper-1",
            chunking_strategy={"type": "server_vad", "threshold": 3},  # type: ignore[typeddict-item]
        )  # fmt: skip
    assert "chunking_strategy" in str(caught.value.body["param"])  # type: ignore[index]


def test_undecodable_upload_is_a_bad_request_for_the_client(client: OpenAI, clips: Clips) -> None:
    for path in (clips.not_audio, clips.truncated):
        with path.open("rb") as f, pytest.raises(openai.BadRequestError) as caught:
            client.audio.transcriptions.create(file=f, model="whisper-1")
        assert caught.value.body["code"] in ("unsupported_media_type", "invalid_audio")  # type: ignore[index]


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
