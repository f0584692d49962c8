"""Operations: /health, /ready, /metrics, request IDs, CORS, settings, keys CLI, --no-auth, and
``malsori serve`` without the server extra."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from malsori import cli
from malsori.server import ServerSettings
from malsori.server.metrics import Metrics

from .helpers import Clips, Served


@pytest.fixture
def served(serve: Any) -> Served:
    return serve()  # type: ignore[no-any-return]


def test_health_and_ready(served: Served) -> None:
    assert served.client.get("/health").json() == {"status": "ok"}
    ready = served.client.get("/ready").json()
    assert ready["status"] == "ready" and ready["model"] == "base" and ready["workers"] == 1


def test_ready_is_503_when_the_database_is_gone(served: Served, monkeypatch: Any) -> None:
    from sqlalchemy.exc import OperationalError

    def broken() -> Any:
        raise OperationalError("SELECT 1", {}, Exception("gone"))

    monkeypatch.setattr(served.services.db.engine, "connect", broken)
    response = served.client.get("/ready")
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"


def test_metrics_cover_requests_queue_and_model(served: Served, clips: Clips) -> None:
    files = {"file": ("a.wav", clips.speech.read_bytes())}
    served.client.post("/v1/audio/transcriptions", files=files, headers=served.auth("msk-bad"))
    served.client.get("/v1/models", headers=served.auth())
    text = served.client.get("/metrics").text
    for line in (
        'malsori_http_requests_total{endpoint="/v1/audio/transcriptions",method="POST",'
        'status="401"} 1.0',
        'malsori_http_requests_total{endpoint="/v1/models",method="GET",status="200"} 1.0',
        "malsori_queue_depth 0.0",
        "malsori_active_jobs 0.0",
    ):
        assert line in text
    for name in (
        "malsori_http_request_duration_seconds_bucket",
        "malsori_model_load_seconds",
        "malsori_audio_seconds_processed",
        "malsori_rtf",
    ):
        assert name in text
    assert "malsori_gpu_memory_used_bytes" not in text  # no GPU here


def test_transcription_metrics_and_gpu_series() -> None:
    metrics = Metrics()
    metrics.observe_transcription("transcribe", 10.0, 2.0)
    metrics.watch_gpu(lambda: [(0, 123456)])
    text = metrics.render().decode()
    assert 'malsori_audio_seconds_processed_total{task="transcribe"} 10.0' in text
    assert 'malsori_rtf_bucket{le="0.2",task="transcribe"} 1.0' in text
    assert 'malsori_gpu_memory_used_bytes{device="0"} 123456.0' in text


def test_request_id_is_echoed_or_made(served: Served) -> None:
    assert (
        served.client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    made = served.client.get("/health", headers={"X-Request-ID": "bad id\n"}).headers
    assert len(made["x-request-id"]) == 16


def test_request_id_reaches_the_log(served: Served, caplog: Any) -> None:
    from malsori.server.logs import RequestIdFilter

    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level("INFO", logger="malsori.server"):
        served.client.get("/v1/models", headers={**served.auth(), "X-Request-ID": "trace-42"})
    access = [r for r in caplog.records if r.name == "malsori.server.access"]
    assert access and access[-1].request_id == "trace-42"  # type: ignore[attr-defined]


def test_cors_only_when_configured(serve: Any, served: Served) -> None:
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    response = served.client.options("/v1/audio/transcriptions", headers=headers)
    assert "access-control-allow-origin" not in response.headers
    open_app = serve(cors={"allow_origins": ["https://app.example"]})
    response = open_app.client.options("/v1/audio/transcriptions", headers=headers)
    assert response.headers["access-control-allow-origin"] == "https://app.example"


def test_no_auth_serves_without_a_key(serve: Any) -> None:
    served = serve(auth={"enabled": False})
    local = {"Host": "127.0.0.1:8000"}  # without auth, only loopback Host names are answered
    assert served.client.get("/v1/models", headers=local).status_code == 200
    assert served.client.get("/v1/jobs", headers=local).json()["data"] == []
    refused = served.client.get("/v1/models")  # the test client's Host: testserver
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden_origin"


def test_settings_from_the_environment(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setenv("MALSORI_PORT", "9123")
    monkeypatch.setenv("MALSORI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MALSORI_MODEL__NAME", "small")
    monkeypatch.setenv("MALSORI_LIMITS__MAX_UPLOAD_BYTES", "1000")
    monkeypatch.setenv("MALSORI_CORS__ALLOW_ORIGINS", '["*"]')
    monkeypatch.setenv("MALSORI_DATABASE_URL", "postgresql+psycopg://u:secret@db/malsori")
    settings = ServerSettings(workers=3)
    assert (settings.port, settings.workers, settings.model.name) == (9123, 3, "small")
    assert settings.limits.max_upload_bytes == 1000 and settings.cors.allow_origins == ["*"]
    assert "secret" not in repr(settings)
    assert settings.sqlalchemy_url().endswith("@db/malsori")
    assert ServerSettings.model_fields["workers"].description  # every field is documented
    monkeypatch.delenv("MALSORI_DATABASE_URL")
    assert ServerSettings().sqlalchemy_url() == f"sqlite:///{tmp_path / 'malsori.db'}"


def test_serve_flags_override_the_environment(monkeypatch: Any, tmp_path: Path) -> None:
    from malsori.commands.serve import _overrides, load_settings

    monkeypatch.setenv("MALSORI_MODEL__DEVICE", "cpu")
    args = cli.build_parser().parse_args(
        ["serve", "--port", "0", "--workers", "2", "-m", "tiny.en", "--no-auth",
         "--max-upload-mb", "1", "--data-dir", str(tmp_path)]
    )  # fmt: skip
    settings = load_settings(_overrides(args))
    assert (settings.port, settings.workers) == (0, 2)
    assert (settings.model.name, settings.model.device) == ("tiny.en", "cpu")  # merged
    assert settings.auth.enabled is False and settings.limits.max_upload_bytes == 1024 * 1024


def test_keys_cli_create_list_revoke(tmp_path: Path, capsys: Any) -> None:
    data = ["keys", "--data-dir", str(tmp_path)]
    assert cli.main([*data, "create", "alice"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("msk-") and len(secret) > 40
    assert cli.main([*data, "list"]) == 0
    listing = capsys.readouterr().out
    assert "alice" in listing and "active" in listing and secret not in listing
    key_id = listing.splitlines()[1].split()[0]
    db = (tmp_path / "malsori.db").read_bytes()
    assert secret.encode() not in db  # stored hashed
    assert cli.main([*data, "revoke", key_id]) == 0
    capsys.readouterr()
    assert cli.main([*data, "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert cli.main([*data, "revoke", "key_nope"]) == 2
    assert "no API key" in capsys.readouterr().err


def test_serve_without_the_extra_names_it(monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'malsori[server]'" in err and "fastapi" in err


def test_importing_malsori_does_not_import_the_server() -> None:
    import subprocess

    code = (
        "import sys, malsori, malsori.cli; malsori.cli.build_parser(); "
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'uvicorn', 'starlette') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
