"""Bad requests over plain HTTP: each a clear 4xx in OpenAI's envelope, with nothing stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from malsori.server.forms import FORM_OVERHEAD_BYTES

from .helpers import NOTHING, Clips, Served

ENDPOINTS = ("/v1/audio/transcriptions", "/v1/jobs")


@pytest.fixture
def served(serve: Any) -> Served:
    return serve(limits={"max_upload_bytes": 200_000, "max_audio_seconds": 15})  # type: ignore[no-any-return]


def post(served: Served, url: str, path: Path | None, key: str | None = None, **data: Any) -> Any:
    files = None
    if path is not None:
        files = {"file": (path.name, path.read_bytes(), "audio/wav")}
    return served.client.post(url, files=files, data=data, headers=served.auth(key))


def assert_error(response: Any, status: int, code: str, param: str | None = "file") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code, error
    assert error["param"] == param, error
    assert error["message"] and "/tmp/" not in error["message"]  # no server path leaks


@pytest.mark.parametrize("url", ENDPOINTS)
def test_not_audio_is_400(served: Served, clips: Clips, url: str) -> None:
    # OpenAI answers 400 (clients catch BadRequestError); malsori's reason stays in ``code``
    assert_error(post(served, url, clips.not_audio), 400, "unsupported_media_type")
    assert served.stored() == NOTHING


@pytest.mark.parametrize("url", ENDPOINTS)
def test_random_bytes_are_refused(served: Served, clips: Clips, url: str) -> None:
    response = post(served, url, clips.garbage)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "file"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["code"] in ("unsupported_media_type", "invalid_audio")
    assert served.stored() == NOTHING


@pytest.mark.parametrize("url", ENDPOINTS)
def test_empty_file_is_400(served: Served, clips: Clips, url: str) -> None:
    assert_error(post(served, url, clips.empty), 400, "empty_audio")
    assert served.stored() == NOTHING


@pytest.mark.parametrize("url", ENDPOINTS)
def test_truncated_audio_is_400(served: Served, clips: Clips, url: str) -> None:
    assert_error(post(served, url, clips.truncated), 400, "invalid_audio")
    assert served.stored() == NOTHING


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("size", [300_000, 700_000])  # over the file limit; over the body limit
def test_oversize_upload_is_413(served: Served, tmp_path: Path, url: str, size: int) -> None:
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * size)
    assert_error(post(served, url, big), 413, "file_too_large")
    assert served.stored() == NOTHING


def test_oversize_chunked_upload_stops_being_read(served: Served) -> None:
    """No Content-Length: the body is counted as it arrives and reading stops past the limit.

    Driven at the ASGI level (the test client would buffer the whole body first), counting how
    many of the 200 chunks of 64 KiB the server asked for.
    """
    boundary = "malsoriboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    chunks = [head] + [b"\0" * 65536] * 200
    asked = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        more = asked < len(chunks)
        return {"type": "http.request", "body": chunks[asked - 1], "more_body": more}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/audio/transcriptions", "raw_path": b"", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("testserver", 80),
        "headers": [
            (b"authorization", f"Bearer {served.key}".encode()),
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        ],
    }  # fmt: skip
    assert served.client.portal is not None
    served.client.portal.call(served.app, scope, receive, send)
    assert sent[0]["status"] == 413
    # The 200 KB limit plus the form's allowance (room for four known-speaker references):
    # reading stops after about that many 64 KiB chunks, not after all 200.
    assert asked < (200_000 + FORM_OVERHEAD_BYTES) / 65536 + 3
    assert served.stored() == NOTHING


@pytest.mark.parametrize("url", ENDPOINTS)
def test_audio_longer_than_the_limit_is_413(serve: Any, clips: Clips, url: str) -> None:
    served = serve(limits={"max_audio_seconds": 2.0})
    assert_error(post(served, url, clips.speech), 413, "audio_too_long")
    assert served.stored() == NOTHING


@pytest.mark.parametrize("url", ENDPOINTS)
def test_wrong_missing_and_revoked_keys_are_401(served: Served, clips: Clips, url: str) -> None:
    assert_error(post(served, url, clips.speech, key="msk-nope"), 401, "invalid_api_key", None)
    response = served.client.post(url, files={"file": ("a.wav", b"x")})
    assert_error(response, 401, "invalid_api_key", None)
    key = served.new_key("to revoke")
    key_id = next(k.id for k in served.services.keys.list() if k.name == "to revoke")
    served.services.keys.revoke(key_id)
    assert_error(post(served, url, clips.speech, key=key), 401, "invalid_api_key", None)
    assert served.stored() == NOTHING


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "docx"}, "response_format"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": "1.5"}, "temperature"),
        ({"timestamp_granularities[]": "syllable"}, "timestamp_granularities"),
        ({"stream": "maybe"}, "stream"),
        ({"language": "klingon"}, "language"),
        ({"subtitle_profile": "netflix-fr"}, "subtitle_profile"),
    ],
)
def test_malformed_fields_are_400_naming_the_field(
    served: Served, clips: Clips, fields: dict[str, str], param: str
) -> None:
    response = post(served, "/v1/audio/transcriptions", clips.speech, **fields)
    code = "invalid_option" if param == "language" else "invalid_request"
    assert_error(response, 400, code, param)
    assert served.stored() == NOTHING


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"task": "summarize"}, "task"),
        ({"callback_url": "file:///etc/passwd"}, "callback_url"),
        ({"subtitle_profile": "cinema"}, "subtitle_profile"),
    ],
)
def test_malformed_job_fields_are_400(
    served: Served, clips: Clips, fields: dict[str, str], param: str
) -> None:
    assert_error(post(served, "/v1/jobs", clips.speech, **fields), 400, "invalid_request", param)
    assert served.stored() == NOTHING


@pytest.mark.parametrize("url", ENDPOINTS)
def test_missing_file_and_non_multipart_are_400(served: Served, url: str) -> None:
    response = served.client.post(url, data={"model": "whisper-1"}, headers=served.auth())
    assert_error(response, 400, "invalid_request")
    response = served.client.post(url, json={"file": "a.wav"}, headers=served.auth())
    assert_error(response, 400, "invalid_request")
    assert served.stored() == NOTHING


def test_two_files_are_refused(served: Served, clips: Clips) -> None:
    data = clips.speech.read_bytes()
    files = [("file", ("a.wav", data)), ("file", ("b.wav", data))]
    response = served.client.post("/v1/audio/transcriptions", files=files, headers=served.auth())
    assert response.status_code == 400
    assert "error" in response.json()
    assert served.stored() == NOTHING


def test_client_file_name_never_becomes_a_path(served: Served, clips: Clips) -> None:
    name = "../../../../tmp/evil\x00\n.wav"
    files = {"file": (name, clips.not_audio.read_bytes())}
    response = served.client.post("/v1/jobs", files=files, headers=served.auth())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert not Path("/tmp/evil").exists()
    assert served.stored() == NOTHING


def test_unknown_route_and_method_use_the_envelope(served: Served) -> None:
    response = served.client.get("/v1/nothing", headers=served.auth())
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = served.client.get("/v1/audio/transcriptions", headers=served.auth())
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_unknown_result_format_is_400(served: Served) -> None:
    response = served.client.get("/v1/jobs/job_x/result?format=docx", headers=served.auth())
    assert_error(response, 400, "invalid_request", "format")
