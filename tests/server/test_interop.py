"""Interoperability with clients that follow the RFCs rather than curl's habits: the media type in
any case, a file part with an empty or absent file name, cursor pagination of ``GET /v1/jobs``
(SQLite, and PostgreSQL when ``MALSORI_TEST_POSTGRES_URL`` is set), ``WWW-Authenticate`` on 401s.
In-process first, then the same requests as raw bytes against a real ``malsori serve``."""

from __future__ import annotations

import signal
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from malsori.server.db import JobRow

from .helpers import SPEECH_WORDS, Blocker, Clips, Served, words_of
from .test_postgres import URL as POSTGRES_URL
from .test_postgres import postgres  # noqa: F401  (the fixture, used through getfixturevalue)
from .test_real_server import ServerProcess, make_key

BOUNDARY = "xYzZY-interop"
Part = tuple[str, bytes]  # the Content-Disposition parameters after "form-data", the content


def multipart(*parts: Part, boundary: str = BOUNDARY) -> bytes:
    """A multipart body built by hand, so each header is exactly what a test says."""
    out = b""
    for params, content in parts:
        out += f"--{boundary}\r\nContent-Disposition: form-data{params}\r\n\r\n".encode()
        out += content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def file_part(content: bytes, filename: str | None) -> Part:
    params = '; name="file"' if filename is None else f'; name="file"; filename="{filename}"'
    return params, content


def field(name: str, value: str) -> Part:
    return f'; name="{name}"', value.encode()


def content_type(media_type: str = "multipart/form-data", boundary: str = BOUNDARY) -> str:
    return f"{media_type}; boundary={boundary}"


@pytest.fixture
def served(serve: Any) -> Served:
    return serve()  # type: ignore[no-any-return]


def post_job(served: Served, body: bytes, ctype: str, **headers: str) -> Any:
    headers = {**served.auth(), "Content-Type": ctype, **headers}
    return served.client.post("/v1/jobs", content=body, headers=headers)


# --- (a) the media type in any case ---------------------------------------------------------------


@pytest.mark.parametrize(
    "ctype",
    [
        "Multipart/Form-Data; boundary=" + BOUNDARY,
        "MULTIPART/FORM-DATA; BOUNDARY=" + BOUNDARY,
        " multipart/form-data ;boundary=" + BOUNDARY,
    ],
)
def test_media_type_is_case_insensitive(served: Served, clips: Clips, ctype: str) -> None:
    blocker = Blocker(served)  # keeps the job queued: this checks acceptance, not decoding
    body = multipart(field("language", "en"), file_part(clips.speech.read_bytes(), "speech.wav"))
    response = post_job(served, body, ctype)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["filename"] == "speech.wav" and job["duration"] == pytest.approx(2.9, abs=0.5)
    served.client.delete(f"/v1/jobs/{job['id']}", headers=served.auth())
    blocker.release.set()


def test_capitalised_media_type_transcribes(served: Served, clips: Clips) -> None:
    body = multipart(field("language", "en"), file_part(clips.speech.read_bytes(), "s.wav"))
    headers = {**served.auth(), "Content-Type": content_type("Multipart/Form-Data")}
    response = served.client.post("/v1/audio/transcriptions", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert set(SPEECH_WORDS) <= words_of(response.json()["text"])


@pytest.mark.parametrize(
    "ctype", ["multipart/form-datax; boundary=" + BOUNDARY, "text/plain", "Multipart/Mixed"]
)
def test_other_media_types_stay_400(served: Served, clips: Clips, ctype: str) -> None:
    body = multipart(file_part(clips.speech.read_bytes(), "s.wav"))
    response = post_job(served, body, ctype)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"
    assert "multipart/form-data" in response.json()["error"]["message"]


# --- (b) a file part with an empty or absent file name --------------------------------------------


@pytest.mark.parametrize("filename", ["", None], ids=["empty", "absent"])
def test_file_part_without_a_name_is_the_upload(
    served: Served, clips: Clips, filename: str | None
) -> None:
    blocker = Blocker(served)
    audio = clips.speech.read_bytes()
    assert len(audio) > 64 * 1024  # more than a text field may hold: it must be read as a file
    response = post_job(served, multipart(file_part(audio, filename)), content_type())
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["filename"] == "audio" and job["duration"] == pytest.approx(2.9, abs=0.5)
    served.client.delete(f"/v1/jobs/{job['id']}", headers=served.auth())
    blocker.release.set()


def test_openai_client_with_an_empty_file_name(served: Served, clips: Clips) -> None:
    """httpx (under the openai client) leaves ``filename`` out of the part when it is empty."""
    client = OpenAI(base_url="http://testserver/v1", api_key=served.key, http_client=served.client)
    result = client.audio.transcriptions.create(
        file=("", clips.speech.read_bytes()), model="whisper-1", language="en"
    )
    assert set(SPEECH_WORDS) <= words_of(result.text)


def test_missing_file_part_stays_400(served: Served) -> None:
    body = multipart(field("language", "en"), field("model", "whisper-1"))
    response = post_job(served, body, content_type())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "file" and error["message"] == "file: an audio file upload is required"
    assert served.stored()["jobs"] == 0


# --- (c) cursor pagination of GET /v1/jobs --------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def listing(request: pytest.FixtureRequest, serve: Any) -> Served:
    if request.param == "sqlite":
        return serve()  # type: ignore[no-any-return]
    if not POSTGRES_URL:
        pytest.skip("MALSORI_TEST_POSTGRES_URL is not set")
    return serve(database_url=request.getfixturevalue("postgres"))  # type: ignore[no-any-return]


def key_id(served: Served, name: str) -> str:
    return next(k.id for k in served.services.keys.list() if k.name == name)


def add_jobs(served: Served, owner: str, jobs: list[tuple[datetime, str]]) -> list[JobRow]:
    """Job rows straight into the database, with chosen creation times (ties included)."""
    fixed = {"task": "transcribe", "model": "base", "options_json": "{}", "filename": "a.wav",
             "audio_bytes": 1, "duration": 1.0}  # fmt: skip
    rows = [
        JobRow(id="job_" + uuid.uuid4().hex, owner=owner, status=status, created_at=at, **fixed)
        for at, status in jobs
    ]
    with served.services.db.session() as s:
        s.add_all(rows)
    return rows


def newest_first(rows: list[JobRow]) -> list[str]:
    return [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]


def walk(served: Served, key: str, query: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Follow ``last_id`` until ``has_more`` is false: the ids in order, and each page."""
    ids: list[str] = []
    pages: list[dict[str, Any]] = []
    after = ""
    while len(pages) < 20:
        response = served.client.get(f"/v1/jobs?{query}{after}", headers=served.auth(key))
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        page_ids = [j["id"] for j in page["data"]]
        assert set(page) == {"object", "data", "first_id", "last_id", "has_more"}
        assert page["object"] == "list"
        assert (page["first_id"], page["last_id"]) == (page_ids[0], page_ids[-1])
        ids += page_ids
        if not page["has_more"]:
            return ids, pages
        after = f"&after={page['last_id']}"
    raise AssertionError("pagination did not end")


def test_cursor_pagination_is_stable_and_complete(listing: Served) -> None:
    listing.new_key("other")
    mine, theirs = key_id(listing, "tests"), key_id(listing, "other")
    t = datetime(2026, 1, 1, 12, 0, 0)
    statuses = ["completed", "failed", "completed", "queued", "completed", "running", "failed"]
    times = [t, t, t, t + timedelta(seconds=1), t + timedelta(seconds=1), t - timedelta(days=1),
             t + timedelta(microseconds=1)]  # fmt: skip
    rows = add_jobs(listing, mine, list(zip(times, statuses, strict=True)))
    add_jobs(listing, theirs, [(t, "completed")])  # same instant, another key: never listed
    expected = newest_first(rows)

    for limit, sizes in ((3, [3, 3, 1]), (7, [7]), (100, [7])):
        ids, pages = walk(listing, listing.key, f"limit={limit}")
        assert ids == expected  # every job once, in one total order, ties broken by id
        assert [len(p["data"]) for p in pages] == sizes
    assert walk(listing, listing.key, "")[0] == expected  # the default limit (20)

    done = newest_first([r for r in rows if r.status == "completed"])
    ids, pages = walk(listing, listing.key, "status=completed&limit=2")
    assert ids == done and [len(p["data"]) for p in pages] == [2, 1]
    queued = next(r for r in rows if r.status == "queued")  # a cursor in another status
    query = f"/v1/jobs?status=completed&after={queued.id}"
    page = listing.client.get(query, headers=listing.auth())
    later = expected[expected.index(queued.id) + 1 :]
    assert [j["id"] for j in page.json()["data"]] == [i for i in later if i in done]

    last = listing.client.get(f"/v1/jobs?after={expected[-1]}", headers=listing.auth()).json()
    assert last == {"object": "list", "data": [], "first_id": None, "last_id": None,
                    "has_more": False}  # fmt: skip


@pytest.fixture
def two_keys(listing: Served) -> tuple[Served, str]:
    return listing, listing.new_key("other")


def test_listing_is_per_key_and_a_foreign_or_unknown_cursor_is_400(
    two_keys: tuple[Served, str],
) -> None:
    served, other = two_keys
    t = datetime(2026, 1, 1)
    mine = add_jobs(served, key_id(served, "tests"), [(t, "completed"), (t, "queued")])
    theirs = add_jobs(served, key_id(served, "other"), [(t, "completed")])
    assert walk(served, other, "limit=1")[0] == [theirs[0].id]
    assert walk(served, served.key, "limit=1")[0] == newest_first(mine)
    for after in (theirs[0].id, "job_" + "0" * 32, "job_deleted"):
        response = served.client.get(f"/v1/jobs?after={after}", headers=served.auth())
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == "after"
        assert error["message"] == f"after: no job {after!r} to list after"  # same for each
    bad = {"limit=0": "limit", "limit=101": "limit", "after=" + "j" * 65: "after",
           "status=lost": "status"}  # fmt: skip
    for query, param in bad.items():
        response = served.client.get(f"/v1/jobs?{query}", headers=served.auth())
        assert response.status_code == 400 and response.json()["error"]["param"] == param


# --- (d) WWW-Authenticate on every 401 ------------------------------------------------------------

CHALLENGE = 'Bearer realm="malsori"'
INVALID_TOKEN = 'Bearer realm="malsori", error="invalid_token"'
ROUTES = (
    ("GET", "/v1/models"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/job_x/result"),
    ("DELETE", "/v1/jobs/job_x"),
    ("POST", "/v1/jobs"),
    ("POST", "/v1/audio/transcriptions"),
)


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_every_401_carries_www_authenticate(served: Served, method: str, url: str) -> None:
    revoked = served.new_key("revoked")
    served.services.keys.revoke(key_id(served, "revoked"))
    cases = {
        None: CHALLENGE,
        "Basic dXNlcjpwdw==": CHALLENGE,  # not a bearer token: no credentials for this realm
        "Bearer ": CHALLENGE,
        "Bearer msk-wrong": INVALID_TOKEN,
        f"Bearer {revoked}": INVALID_TOKEN,
    }
    for authorization, challenge in cases.items():
        headers = {} if authorization is None else {"Authorization": authorization}
        response = served.client.request(method, url, headers=headers)
        assert response.status_code == 401, (authorization, response.text)
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"] == challenge, authorization
    ok = served.client.get("/v1/models", headers=served.auth())
    assert ok.status_code == 200 and "www-authenticate" not in ok.headers


def test_openai_client_sees_the_challenge(served: Served) -> None:
    client = OpenAI(base_url="http://testserver/v1", api_key="msk-wrong", http_client=served.client)
    with pytest.raises(openai.AuthenticationError) as raised:
        client.models.list()
    assert raised.value.response.headers["www-authenticate"] == INVALID_TOKEN


def test_no_challenge_when_auth_is_off(serve: Any) -> None:
    served = serve(auth={"enabled": False})
    response = served.client.get("/v1/jobs", headers={"Host": "127.0.0.1:8000"})
    assert response.status_code == 200 and "www-authenticate" not in response.headers


# --- (a), (b), (d) against a real server process --------------------------------------------------


@pytest.mark.slow
def test_interop_on_a_real_server(tmp_path: Path, clips: Clips) -> None:
    data_dir = tmp_path / "data"
    key = make_key(data_dir)
    proc = ServerProcess(data_dir, "--max-upload-mb", "1")
    try:
        url = f"{proc.url}/v1/jobs"
        auth = {"Authorization": f"Bearer {key}"}
        audio = clips.speech.read_bytes()
        for ctype, filename, label in (
            (content_type("Multipart/Form-Data"), "speech.wav", "speech.wav"),
            (content_type("MULTIPART/FORM-DATA"), "", "audio"),
            (content_type(), None, "audio"),
        ):
            body = multipart(field("language", "en"), file_part(audio, filename))
            response = httpx.post(url, content=body, headers={**auth, "Content-Type": ctype})
            assert response.status_code == 202, response.text
            assert response.json()["filename"] == label
        no_file = multipart(field("language", "en"))
        headers = {**auth, "Content-Type": content_type()}
        response = httpx.post(url, content=no_file, headers=headers)
        assert response.status_code == 400 and response.json()["error"]["param"] == "file"

        missing = httpx.get(url)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == CHALLENGE
        wrong = httpx.post(url, headers={"Authorization": "Bearer msk-wrong"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == INVALID_TOKEN
        listed = httpx.get(f"{url}?limit=2", headers=auth).json()
        assert len(listed["data"]) == 2 and listed["has_more"] is True
        rest = httpx.get(f"{url}?after={listed['last_id']}", headers=auth).json()
        assert len(rest["data"]) == 1 and rest["has_more"] is False
    finally:
        proc.stop(signal.SIGKILL)
