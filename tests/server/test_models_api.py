"""``/v1/models`` with several served models: ``model=`` picks one (loaded on its first request),
admin keys preload and unload, the others get 403, unknown ids 404 in OpenAI's envelope, and the
model metrics follow. In-process app, real ``base`` (the default) and ``tiny.en``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from malsori.errors import ModelNotFoundError
from malsori.server.db import Database, make_private_dir
from malsori.server.keys import KeyStore
from malsori.server.services import served_models

from .helpers import SPEECH_WORDS, Clips, Served, submit, wait_for, words_of


@pytest.fixture
def two_models(serve: Any, tmp_path: Path) -> tuple[Served, str]:
    """base (default, preloaded) and tiny.en (on demand); and an admin key's secret."""
    data = tmp_path / "two-models"
    make_private_dir(data)
    admin, secret = KeyStore(Database(f"sqlite:///{data / 'malsori.db'}")).create("admin")
    served = serve(
        data_dir=data,
        model={"others": ["tiny.en"]},
        auth={"admin_keys": [admin.id]},
        engine={"max_active": 2},
    )
    return served, secret


def listed(served: Served) -> dict[str, dict[str, Any]]:
    response = served.client.get("/v1/models", headers=served.auth())
    assert response.status_code == 200, response.text
    return {m["id"]: m for m in response.json()["data"]}


def test_models_load_on_their_first_request(two_models: tuple[Served, str], clips: Clips) -> None:
    served, _ = two_models
    models = listed(served)
    assert list(models) == ["base", "tiny.en", "whisper-1"]
    assert (models["base"]["loaded"], models["base"]["default"]) == (True, True)
    assert (models["tiny.en"]["loaded"], models["tiny.en"]["load_seconds"]) == (False, None)
    assert (models["whisper-1"]["root"], models["whisper-1"]["loaded"]) == ("base", True)

    client = openai.OpenAI(api_key=served.key, base_url="http://testserver/v1",
                           http_client=served.client, max_retries=0)  # fmt: skip
    with clips.speech.open("rb") as f:
        text = client.audio.transcriptions.create(model="tiny.en", file=f).text
    assert len(set(SPEECH_WORDS) & words_of(text)) >= 2, text  # tiny.en, greedy: a word may go
    models = listed(served)
    assert models["tiny.en"]["loaded"] and models["tiny.en"]["device"] == "cpu"
    assert models["tiny.en"]["load_seconds"] > 0

    metrics = served.client.get("/metrics").text
    assert 'malsori_model_loads_total{model="tiny.en"} 1.0' in metrics
    assert 'malsori_model_loaded{model="tiny.en"} 1.0' in metrics
    assert 'malsori_model_load_seconds_count{model="tiny.en"} 1.0' in metrics
    ready = served.client.get("/ready").json()
    assert (ready["model"], ready["models_loaded"]) == ("base", ["base", "tiny.en"])


def test_a_job_runs_with_the_model_it_named(two_models: tuple[Served, str], clips: Clips) -> None:
    served, _ = two_models
    job = submit(served, clips.speech, model="tiny.en")
    assert job["model"] == "tiny.en"
    done = wait_for(served, job["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert listed(served)["tiny.en"]["loaded"]  # loaded by the job
    default_job = submit(served, clips.speech)
    assert default_job["model"] == "base"


def test_english_only_model_refuses_translation_once_known(
    two_models: tuple[Served, str], clips: Clips
) -> None:
    served, secret = two_models
    assert served.client.post("/v1/models/tiny.en", headers=served.auth(secret)).status_code == 200
    files = {"file": ("speech.wav", clips.speech.read_bytes())}
    response = served.client.post("/v1/audio/transcriptions", files=files,
                                  data={"model": "tiny.en", "language": "ko"},
                                  headers=served.auth())  # fmt: skip
    assert response.status_code == 400, response.text
    assert "English-only" in response.json()["error"]["message"]


def test_admin_keys_preload_and_unload(two_models: tuple[Served, str]) -> None:
    served, secret = two_models
    for method in ("POST", "DELETE"):  # another valid key: 403 in OpenAI's envelope
        response = served.client.request(method, "/v1/models/tiny.en", headers=served.auth())
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert (error["code"], error["type"]) == ("permission_denied", "invalid_request_error")
        assert "auth.admin_keys" in error["message"]
    assert not listed(served)["tiny.en"]["loaded"]

    response = served.client.post("/v1/models/tiny.en", headers=served.auth(secret))
    assert response.status_code == 200 and response.json()["loaded"] is True
    response = served.client.delete("/v1/models/tiny.en", headers=served.auth(secret))
    assert response.status_code == 200 and response.json()["loaded"] is False
    response = served.client.delete("/v1/models/whisper-1", headers=served.auth(secret))
    assert response.json()["root"] == "base" and response.json()["loaded"] is False
    assert not any(m["loaded"] for m in listed(served).values())
    metrics = served.client.get("/metrics").text
    assert 'malsori_model_unloads_total{model="tiny.en",reason="admin"} 1.0' in metrics
    assert 'malsori_model_loaded{model="base"} 0.0' in metrics


def test_unknown_models_are_404_everywhere(two_models: tuple[Served, str], clips: Clips) -> None:
    served, secret = two_models
    for method in ("GET", "POST", "DELETE"):
        response = served.client.request(method, "/v1/models/large-v9", headers=served.auth(secret))
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("model_not_found", "model")
        assert "base, tiny.en, whisper-1" in error["message"]
    files = {"file": ("speech.wav", clips.speech.read_bytes())}
    response = served.client.post("/v1/audio/transcriptions", files=files,
                                  data={"model": "large-v9"}, headers=served.auth())  # fmt: skip
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


def test_without_auth_anyone_may_manage_models(serve: Any) -> None:
    served = serve(auth={"enabled": False}, model={"others": ["tiny.en"]})
    local = {"Host": "127.0.0.1:8000"}  # without auth, only loopback Host names are answered
    assert served.client.post("/v1/models/tiny.en", headers=local).json()["loaded"] is True
    assert served.client.delete("/v1/models/tiny.en", headers=local).json()["loaded"] is False


def test_served_models_must_be_installed() -> None:
    assert served_models(["base", "tiny.en", "base"]) == {"base": "base", "tiny.en": "tiny.en"}
    with pytest.raises(ModelNotFoundError, match="unknown model 'nope'"):
        served_models(["base", "nope"])


def test_a_live_stream_decodes_with_the_model_it_named(serve: Any, clips: Clips) -> None:
    from .test_realtime import CHUNK, check_events, collect, pcm16

    served = serve(model={"others": ["tiny.en"]}, realtime={"burst_s": 60.0})
    url = "/v1/realtime?language=en&model=tiny.en"
    with served.client.websocket_connect(url, headers=served.auth()) as ws:
        ready = ws.receive_json()
        assert ready["session"]["model"] == "tiny.en"
        data = pcm16(clips.speech)
        for i in range(0, len(data), CHUNK):
            ws.send_bytes(data[i : i + CHUNK])
        ws.send_json({"type": "stop"})
        events = collect(ws)
    assert len(set(SPEECH_WORDS) & words_of(check_events(events))) >= 2
    models = listed(served)
    assert models["tiny.en"]["loaded"] and models["tiny.en"]["in_use"] == 0  # held per decode
    metrics = served.client.get("/metrics").text
    assert 'malsori_model_loads_total{model="tiny.en"} 1.0' in metrics


def test_serve_flags_for_several_models() -> None:
    from malsori import cli
    from malsori.commands.serve import _overrides, load_settings

    args = cli.build_parser().parse_args(
        ["serve", "-m", "tiny.en", "-m", "base", "--max-loaded", "1", "--model-ttl", "600"]
    )
    m = load_settings(_overrides(args)).model
    assert (m.name, m.others, m.max_loaded, m.idle_ttl_s) == ("tiny.en", ["base"], 1, 600.0)


def test_a_real_server_swaps_models_within_its_budget(tmp_path: Path, clips: Clips) -> None:
    import signal

    import httpx

    from .test_real_server import ServerProcess

    server = ServerProcess(tmp_path / "data", "--no-auth", "-m", "tiny.en", "-m", "base",
                           "--max-loaded", "1")  # fmt: skip
    try:
        models = {m["id"]: m["loaded"] for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
        assert models == {"tiny.en": True, "base": False, "whisper-1": True}
        files = {"file": ("speech.wav", clips.speech.read_bytes())}
        response = httpx.post(f"{server.url}/v1/audio/transcriptions", files=files,
                              data={"model": "base", "language": "en"}, timeout=120)  # fmt: skip
        assert response.status_code == 200, response.text
        assert set(SPEECH_WORDS) <= words_of(response.json()["text"])
        models = {m["id"]: m["loaded"] for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
        assert models == {"tiny.en": False, "base": True, "whisper-1": False}  # tiny.en evicted
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'malsori_model_unloads_total{model="tiny.en",reason="evicted"} 1.0' in metrics
    finally:
        assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal


def test_serve_refuses_a_model_that_is_not_installed(tmp_path: Path) -> None:
    import subprocess

    from .test_real_server import MALSORI

    done = subprocess.run([*MALSORI, "serve", "--data-dir", str(tmp_path), "-m", "base",
                           "-m", "nope"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 4
    assert done.stderr.strip().splitlines()[-1].startswith("malsori: error: unknown model 'nope'")


def test_an_openai_realtime_session_switches_to_a_served_model(
    serve: Any, clips: Clips, tmp_path: Path
) -> None:
    from .test_openai_realtime import DONE, chunks, ga_update, raw, send, until

    served = serve(model={"others": ["tiny.en"]}, realtime={"burst_s": 60.0})
    speech = raw(clips.speech, tmp_path / "speech.raw", "pcm16")
    with served.client.websocket_connect(
        "/v1/realtime?intent=transcription", headers=served.auth()
    ) as ws:
        assert ws.receive_json()["type"] == "session.created"
        send(ws, ga_update(turn_detection=None, transcription={"model": "tiny.en",
                                                               "language": "en"}))  # fmt: skip
        assert ws.receive_json()["type"] == "session.updated"
        for audio in chunks(speech, "pcm16"):
            send(ws, {"type": "input_audio_buffer.append", "audio": audio})
        send(ws, {"type": "input_audio_buffer.commit"})
        done = until(ws, DONE)[-1]
        assert len(set(SPEECH_WORDS) & words_of(done["transcript"])) >= 2, done
        send(ws, ga_update(transcription={"model": "large-v9"}))
        error = until(ws, "error")[-1]["error"]
    assert "'large-v9' is not served here" in error["message"]
    metrics = served.client.get("/metrics").text
    assert 'malsori_model_loads_total{model="tiny.en"} 1.0' in metrics  # the turn used tiny.en


def test_serve_says_in_one_line_what_would_stop_its_startup(tmp_path: Path) -> None:
    import subprocess

    from .test_real_server import MALSORI

    done = subprocess.run([*MALSORI, "serve", "--data-dir", str(tmp_path), "--device", "cpu",
                           "--compute-type", "float16"], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("malsori: error: compute type 'float16' is not supported on cpu")
    )
