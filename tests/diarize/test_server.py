"""Diarization through the real app, in-process: ``diarize=true``, ``diarized_json`` in OpenAI's
shape with known speakers as data URLs, bad references as 400s naming the field, and a job."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from diarize_voices import Voices

pytest.importorskip("fastapi", reason="the server extra is not installed")

from starlette.testclient import TestClient

from malsori.server import create_app
from server.helpers import Served, settings_for, submit, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path, model: Any) -> Iterator[Served]:
    settings = settings_for(data_dir=tmp_path / "data")
    app = create_app(settings, model=model)
    with TestClient(app) as client:
        key = app.state.services.keys.create("tests")[1]
        yield Served(app, client, key, settings)


def _post(served: Served, clip: Path, **data: Any) -> Any:
    files = {"file": (clip.name, clip.read_bytes(), "audio/wav")}
    return served.client.post(
        "/v1/audio/transcriptions", files=files, data=data, headers=served.auth()
    )


def _data_url(path: Path) -> str:
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


def _known(names: list[str], references: list[str]) -> dict[str, list[str]]:
    """The form fields of known speakers, as the openai client sends them."""
    return {"known_speaker_names[]": names, "known_speaker_references[]": references}


def test_diarized_json_names_known_speakers(served: Served, voices: Voices) -> None:
    response = _post(
        served,
        voices.conversation,
        response_format="diarized_json",
        language="en",
        **_known(["Adam"], [_data_url(voices.adam_reference)]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"task", "duration", "text", "segments", "usage"}
    segments = body["segments"]
    assert {s["type"] for s in segments} == {"transcript.text.segment"}
    assert [s["id"] for s in segments] == [f"seg_{i}" for i in range(len(segments))]
    assert segments[0]["speaker"] == "Adam"
    assert {s["speaker"] for s in segments} == {"Adam", "SPEAKER_1"}
    assert "quarterly report" in " ".join(s["text"] for s in segments if s["speaker"] != "Adam")


def test_diarize_true_labels_srt_and_verbose_json(served: Served, voices: Voices) -> None:
    srt = _post(served, voices.conversation, diarize="true", response_format="srt", language="en")
    assert srt.status_code == 200, srt.text
    assert "[SPEAKER_1] " in srt.text and "[SPEAKER_2] " in srt.text
    granularities = {"timestamp_granularities[]": ["word", "segment"]}
    verbose = _post(served, voices.conversation, diarize="true", response_format="verbose_json",
                    language="en", **granularities)  # fmt: skip
    body = verbose.json()
    assert {s["speaker"] for s in body["segments"]} == {"SPEAKER_1", "SPEAKER_2"}
    assert all("speaker" in w for w in body["words"])


def test_bad_speaker_fields_are_400s_naming_the_field(served: Served, voices: Voices) -> None:
    known = _known(["Ann"], [_data_url(voices.not_audio)])
    not_audio = _post(served, voices.conversation, diarize="true", **known)
    assert not_audio.status_code == 400
    error = not_audio.json()["error"]
    assert error["param"] == "known_speaker_references"
    assert "not usable audio" in error["message"]
    known = _known(["Ann"], [_data_url(voices.silence)])
    silent = _post(served, voices.conversation, diarize="true", **known)
    assert silent.status_code == 400 and "no speech" in silent.json()["error"]["message"]
    known = _known(["Ann", "Bob"], [_data_url(voices.adam_reference)])
    unpaired = _post(served, voices.conversation, diarize="true", **known)
    assert unpaired.status_code == 400
    assert unpaired.json()["error"]["param"] == "known_speaker_names"
    not_url = _post(served, voices.conversation, diarize="true", **_known(["Ann"], ["abc"]))
    assert not_url.status_code == 400 and "data URL" in not_url.json()["error"]["message"]
    for names in (["<Ann>"], ["Ann", "Ann"]):
        refs = [_data_url(voices.adam_reference)] * len(names)
        bad_name = _post(served, voices.conversation, diarize="true", **_known(names, refs))
        assert bad_name.status_code == 400
        assert bad_name.json()["error"]["param"] == "known_speaker_names"
    crossed = _post(served, voices.conversation, diarize="true", min_speakers="3",
                    max_speakers="2")  # fmt: skip
    assert crossed.status_code == 400 and crossed.json()["error"]["param"] == "max_speakers"
    too_many = _post(served, voices.conversation, diarize="true", num_speakers="0")
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "num_speakers"


def test_a_job_keeps_its_speakers(served: Served, voices: Voices) -> None:
    known = _known(["Beth"], [_data_url(voices.beth_reference)])
    job = submit(served, voices.conversation, diarize="true", num_speakers="2", **known)
    done = wait_for(served, job["id"], "completed", "failed")
    assert done["status"] == "completed", done
    result = served.client.get(f"/v1/jobs/{job['id']}/result?format=json", headers=served.auth())
    data = result.json()
    assert {s["speaker"] for s in data["segments"]} == {"SPEAKER_1", "Beth"}
    vtt = served.client.get(f"/v1/jobs/{job['id']}/result?format=vtt", headers=served.auth())
    assert "<v Beth>" in vtt.text


def test_a_diarization_failure_is_reported_beside_the_transcript(
    served: Served, voices: Voices, monkeypatch: pytest.MonkeyPatch
) -> None:
    import malsori.diarize.run as run
    from malsori.errors import ModelLoadError

    def damaged(device: str = "cpu") -> Any:
        raise ModelLoadError("cannot load the speaker encoder: truncated")

    monkeypatch.setattr(run, "load_encoder", damaged)  # as if the weights file were damaged
    body = _post(served, voices.conversation, response_format="diarized_json", language="en")
    assert body.status_code == 200
    data = body.json()
    assert "quarterly report" in data["text"]
    assert data["diarization_error"] == "cannot load the speaker encoder: truncated"
    srt = _post(served, voices.conversation, diarize="true", response_format="srt", language="en")
    assert srt.status_code == 200 and "[SPEAKER" not in srt.text
    assert srt.headers["x-malsori-diarization-error"].startswith("cannot load the speaker")
