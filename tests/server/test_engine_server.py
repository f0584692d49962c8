"""The server on the engine: concurrent requests share windows and batches, each gets its own
words; live streams, jobs and requests are classes of the engine's scheduler; its metrics."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .helpers import SPEECH_WORDS, Clips, submit, wait_for, words_of

pytestmark = pytest.mark.slow


def test_concurrent_requests_share_batches(serve: Any, clips: Clips) -> None:
    served = serve(
        engine={"max_active": 16, "batch_size": 4},
        decode={"beam_size": 5},  # beam search, as served by default
        # every upload checked at once, so that they reach the engine together
        limits={"max_concurrent_requests_per_key": 8, "max_concurrent_decodes": 8,
                "max_concurrent_decodes_per_key": 8},
    )  # fmt: skip
    loaded = served.app.state.services.models.loaded()
    engine = loaded.engine
    assert engine is not None

    def one(clip: Any) -> Any:
        files = {"file": (clip.name, clip.read_bytes())}
        return served.client.post(
            "/v1/audio/transcriptions", files=files, data={"language": "en"},
            headers=served.auth(),
        )  # fmt: skip

    sources = [clips.speech, clips.speech_mp3] * 3
    with ThreadPoolExecutor(len(sources)) as pool:
        responses = list(pool.map(one, sources))
    for response in responses:
        assert response.status_code == 200, response.text
        # greedy decoding of espeak speech among neighbours: a word may differ
        assert len(set(SPEECH_WORDS) & words_of(response.json()["text"])) >= 4, response.text
    assert engine.stats.shared_windows >= 1  # requests shared windows
    metrics = served.client.get("/metrics").text
    assert 'malsori_engine_batch_windows_count{priority="sync"}' in metrics
    assert 'malsori_engine_latency_seconds_count{priority="sync"} 6.0' in metrics


def test_jobs_run_through_the_engine_at_their_priority(serve: Any, clips: Clips) -> None:
    served = serve(engine={"max_active": 4})
    job = submit(served, clips.long, language="en")
    done = wait_for(served, job["id"], "completed", "failed")
    assert done["status"] == "completed"
    metrics = served.client.get("/metrics").text
    assert 'malsori_engine_latency_seconds_count{priority="job"} 1.0' in metrics


def test_batching_off_keeps_the_per_request_workers(serve: Any, clips: Clips) -> None:
    served = serve(engine={"batching": False})
    assert served.app.state.services.models.loaded().engine is None
    files = {"file": ("speech.wav", clips.speech.read_bytes())}
    response = served.client.post(
        "/v1/audio/transcriptions", files=files, data={"language": "en"}, headers=served.auth()
    )
    assert response.status_code == 200 and set(SPEECH_WORDS) <= words_of(response.json()["text"])
