"""``malsori serve --ray`` on a local Ray instance: one replica of the same app behind Ray Serve's
HTTP proxy on a free port, one real transcription (``tiny.en``) and one live stream through it,
then a clean stop.
Skipped only when ``ray[serve]`` is not installed; bounded in time."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from malsori.server.ray_serve import RAY_MODULES, build_application, plan
from malsori.server.settings import ServerSettings

from .helpers import SPEECH_WORDS, Clips, words_of
from .test_real_server import MALSORI, free_port

RAY_MISSING = [m for m in RAY_MODULES if importlib.util.find_spec(m) is None]
needs_ray = pytest.mark.skipif(
    bool(RAY_MISSING),
    reason=f"ray[serve] is not installed (missing {', '.join(RAY_MISSING)}): "
    "pip install 'malsori[ray]'",
)
START_TIMEOUT_S = 240  # Ray's own start, Serve's controller and proxy, the replica's model


def test_the_plan_fixes_or_autoscales_replicas_and_takes_a_gpu_when_there_is_one() -> None:
    fixed = plan(ServerSettings(ray={"min_replicas": 2, "max_replicas": 2}), cluster_gpus=0)
    assert fixed.deployment_options() == {
        "name": "malsori",
        "num_replicas": 2,
        "ray_actor_options": {"num_cpus": 1.0, "num_gpus": 0},
        "max_ongoing_requests": 64,
    }
    scaled = plan(
        ServerSettings(ray={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 3}),
        cluster_gpus=2,
    )
    assert scaled.replicas == {
        "autoscaling_config": {"min_replicas": 1, "initial_replicas": 1, "max_replicas": 4,
                               "target_ongoing_requests": 3.0, "upscale_delay_s": 30.0,
                               "downscale_delay_s": 600.0},
    }  # fmt: skip
    assert scaled.actor_options["num_gpus"] == 1
    cpu_only = plan(ServerSettings(ray={"gpus_per_replica": 0}), cluster_gpus=2)
    assert cpu_only.actor_options["num_gpus"] == 0


@needs_ray
@pytest.mark.slow
def test_serve_on_a_local_ray_instance(tmp_path: Path, clips: Clips) -> None:
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve-ray.log"
    env = {**os.environ, "MALSORI_RAY__LOCAL_OBJECT_STORE_MB": "128",
           "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
    cmd = [*MALSORI, "serve", "--ray", "--replicas", "1", "--port", str(port), "--no-auth",
           "-m", "tiny.en", "--threads", "1", "--beam-size", "1",
           "--data-dir", str(tmp_path / "data")]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"not ready in time:\n{log.read_text()}"
            time.sleep(1)
        files = {"file": ("speech.wav", clips.speech.read_bytes())}
        response = httpx.post(f"{url}/v1/audio/transcriptions", files=files,
                              data={"model": "tiny.en", "response_format": "verbose_json"},
                              timeout=120)  # fmt: skip
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(set(SPEECH_WORDS) & words_of(body["text"])) >= 2, body["text"]
        assert body["language"] == "english" and body["duration"] > 2
        models = httpx.get(f"{url}/v1/models").json()["data"]
        assert {m["id"]: m["loaded"] for m in models}["tiny.en"] is True
        # a live stream over the WebSocket, through Serve's proxy
        from websockets.sync.client import connect

        from .test_realtime import CHUNK, check_events, pcm16

        data = pcm16(clips.speech)
        with connect(f"ws://127.0.0.1:{port}/v1/realtime?language=en", open_timeout=30) as ws:
            assert json.loads(ws.recv(timeout=60))["type"] == "ready"
            for i in range(0, len(data), CHUNK):
                ws.send(data[i : i + CHUNK])
            ws.send(json.dumps({"type": "stop"}))
            events = []
            while not events or events[-1]["type"] not in ("end", "error"):
                events.append(json.loads(ws.recv(timeout=60)))
        assert len(set(SPEECH_WORDS) & words_of(check_events(events))) >= 2, events[-1]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0, log.read_text()
        with pytest.raises(httpx.HTTPError):  # the proxy went with the local instance
            httpx.get(f"{url}/health", timeout=2)
    finally:
        if proc.poll() is None:  # only on failure: end what this test started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


@needs_ray
def test_ray_serve_accepts_the_deployment_it_is_given() -> None:
    """Ray Serve validates the options (replica counts, autoscaling, actor options) when the
    deployment is built: no Ray instance needed."""
    settings = ServerSettings(ray={"min_replicas": 0, "max_replicas": 3})
    app = build_application(settings, plan(settings, cluster_gpus=1))
    deployment = app._bound_deployment
    assert deployment.name == "malsori"
    config = deployment._deployment_config
    assert config.autoscaling_config.min_replicas == 0
    assert config.autoscaling_config.max_replicas == 3
    assert config.max_ongoing_requests == 64
    assert deployment.ray_actor_options["num_gpus"] == 1


def test_serve_ray_without_the_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sys

    from malsori import cli

    monkeypatch.setitem(sys.modules, "aiohttp_cors", None)
    assert cli.main(["serve", "--ray", "-m", "tiny.en", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "`malsori serve --ray` needs the ray extra" in err
    assert "pip install 'malsori[ray]'" in err and "aiohttp_cors" in err


def test_each_replica_checks_uploads_in_its_own_spool(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from malsori.server.ray_serve import replica_settings

    shared = ServerSettings(data_dir=tmp_path)
    one = replica_settings(shared, SimpleNamespace(unique_id="a1"))
    two = replica_settings(shared, SimpleNamespace(unique_id="b2"))
    assert one.spool_dir == tmp_path / "uploads" / "replica-a1"
    assert two.spool_dir == tmp_path / "uploads" / "replica-b2"
    assert one.data_dir == two.data_dir == tmp_path  # jobs and their audio stay shared
    local = ServerSettings(data_dir=tmp_path, spool_dir=tmp_path / "local")
    assert replica_settings(local, SimpleNamespace(unique_id="c3")).spool_dir == (
        tmp_path / "local" / "replica-c3"
    )
