"""The model manager: several models per process, loaded on first use, unloaded after an idle TTL
(an injected clock), a budget of loaded models evicting the least recently used idle one, never
one with work in flight. Real ``tiny.en`` loads (each under its own id), no HTTP."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest

from malsori import load_model
from malsori.engine import Engine, Priority
from malsori.model import Model
from malsori.server.exceptions import ModelBusyError, NotReadyError, UnknownModelError
from malsori.server.metrics import Metrics
from malsori.server.models import ManagedDecoder, ModelManager


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def manager(
    ids: tuple[str, ...] = ("a", "b", "c"),
    *,
    engines: bool = False,
    slow_load_s: float = 0.0,
    **kw: Any,
) -> tuple[ModelManager, Counter[str], Metrics]:
    """Each id is a separately loaded ``tiny.en``; the counter counts loads per spec."""
    loads: Counter[str] = Counter()
    lock = threading.Lock()

    def load(spec: str) -> Model:
        with lock:
            loads[spec] += 1
        time.sleep(slow_load_s)  # a slow disk: lets concurrent first requests overlap
        return load_model("tiny.en", threads=1)

    def make_engine(model: Model) -> Engine | None:
        return Engine(model, batch_size=2, prepare_workers=1) if engines else None

    metrics = Metrics()
    m = ModelManager(
        {i: i for i in ids},
        aliases=["whisper-1"],
        load=load,
        make_engine=make_engine,
        metrics=metrics,
        **kw,
    )
    return m, loads, metrics


def loaded_ids(m: ModelManager) -> list[str]:
    return [s.id for s in m.statuses() if s.loaded]


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_names_resolve_to_served_models() -> None:
    m, loads, _ = manager()
    assert m.ids == ("a", "b", "c", "whisper-1")
    assert (m.resolve(None), m.resolve("whisper-1"), m.resolve("b")) == ("a", "a", "b")
    with pytest.raises(UnknownModelError, match="'large-v3' is not served here; use one of a, b"):
        m.resolve("large-v3")
    assert loaded_ids(m) == [] and not loads  # naming a model loads nothing


def test_concurrent_first_requests_load_a_model_once() -> None:
    m, loads, metrics = manager(slow_load_s=0.5)
    got: list[Model] = []

    def first() -> None:
        with m.use("b") as loaded:
            got.append(loaded.model)

    threads = [threading.Thread(target=first) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == {"b": 1}
    assert len(got) == 4 and all(model is got[0] for model in got)
    assert sample(metrics, "malsori_model_loads_total", model="b") == 1.0
    assert sample(metrics, "malsori_model_loaded", model="b") == 1.0
    assert sample(metrics, "malsori_model_load_seconds_count", model="b") == 1.0
    assert (sample(metrics, "malsori_model_load_seconds_sum", model="b") or 0) >= 0.5


def test_a_slow_load_is_waited_for_beyond_the_budget_wait() -> None:
    m, loads, _ = manager(slow_load_s=1.0, load_wait_s=0.1, max_loaded=1)
    errors: list[BaseException] = []

    def first() -> None:
        try:
            m.load("a")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=first) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and loads == {"a": 1}  # waited for the one load, not refused


def test_budget_evicts_the_least_recently_used_idle_model() -> None:
    clock = FakeClock()
    m, loads, metrics = manager(max_loaded=2, clock=clock)
    for model_id in ("a", "b"):
        clock.now += 1
        m.load(model_id)
    clock.now += 1
    with m.use("a"):  # a is now the most recently used
        pass
    clock.now += 1
    m.load("c")
    assert loaded_ids(m) == ["a", "c"]
    assert sample(metrics, "malsori_model_unloads_total", model="b", reason="evicted") == 1.0
    assert sample(metrics, "malsori_model_loaded", model="b") == 0.0
    clock.now += 1
    with m.use("b"):  # loads again, evicting a (c was used after it)
        pass
    assert loaded_ids(m) == ["b", "c"] and loads == {"a": 1, "b": 2, "c": 1}


def test_a_model_with_work_in_flight_is_never_evicted() -> None:
    m, _, _ = manager(max_loaded=1, load_wait_s=0.3)
    with m.use("a"):
        started = time.monotonic()
        with pytest.raises(ModelBusyError, match=r"1 model\(s\) may be loaded.*a \(1\)") as e:
            m.load("b")
        assert time.monotonic() - started >= 0.3 and e.value.retry_after >= 1
        assert loaded_ids(m) == ["a"]
    m.load("b")  # a is idle now: evicted
    assert loaded_ids(m) == ["b"]


def test_a_waiting_load_proceeds_when_the_busy_model_is_released() -> None:
    m, _, _ = manager(max_loaded=1, load_wait_s=30)
    release = threading.Event()
    holding = threading.Event()

    def hold_a() -> None:
        with m.use("a"):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_a)
    holder.start()
    assert holding.wait(30)
    result: list[Any] = []
    waiter = threading.Thread(target=lambda: result.append(m.load("b")))
    waiter.start()
    time.sleep(0.3)
    assert not result and loaded_ids(m) == ["a"]  # waiting, not refused
    release.set()
    waiter.join(30)
    holder.join()
    assert result and result[0].loaded and loaded_ids(m) == ["b"]


def test_idle_models_unload_after_the_ttl_and_load_again_on_use() -> None:
    clock = FakeClock()
    m, loads, metrics = manager(idle_ttl_s=60, clock=clock)
    m.load("a")
    with m.use("b"):
        clock.now += 59
        assert m.sweep() == []
        clock.now += 10
        assert m.sweep() == ["a"]  # b is in use: kept, however old
    assert loaded_ids(m) == ["b"]
    assert sample(metrics, "malsori_model_unloads_total", model="a", reason="idle") == 1.0
    clock.now += 59
    assert m.sweep() == []  # b's idle time counts from the end of its use
    clock.now += 1
    assert m.sweep() == ["b"]
    with m.use("a"):
        pass
    assert loads == {"a": 2, "b": 1}


def test_unload_frees_the_weights_and_refuses_while_in_use() -> None:
    m, _, metrics = manager(engines=True)
    with m.use("a") as loaded:
        with pytest.raises(ModelBusyError, match="'a' has 1 request"):
            m.unload("a")
        ct2 = loaded.model.whisper.model
        engine = loaded.engine
        assert ct2.model_is_loaded
    status = m.unload("a")
    assert not status.loaded and status.in_use == 0
    assert not ct2.model_is_loaded  # CTranslate2 released the weights
    assert engine is not None and engine._closed  # the engine's threads ended
    assert sample(metrics, "malsori_model_unloads_total", model="a", reason="admin") == 1.0
    assert not m.unload("a").loaded  # unloading an unloaded model is a no-op


def test_an_adopted_model_is_never_freed(server_model: Any) -> None:
    m, loads, _ = manager(("base", "a"))
    m.adopt(server_model)
    assert loaded_ids(m) == ["base"] and not loads
    m.unload("base")
    assert server_model.whisper.model.model_is_loaded  # the caller's model still works


def test_live_decoder_holds_its_model_for_each_decode(clips: Any) -> None:
    m, loads, _ = manager(engines=True)
    decoder = ManagedDecoder(m, "b", Priority.LIVE)
    assert decoder.name == "b" and decoder.multilingual  # unknown yet: not loaded by asking
    assert not loads
    transcript = decoder.transcribe(clips.speech, None)
    assert "fox" in transcript.text.lower()
    assert loads == {"b": 1} and not decoder.multilingual  # tiny.en, known once loaded
    assert m.status("b").in_use == 0


def test_close_unloads_everything_and_refuses_more() -> None:
    m, _, _ = manager(engines=True)
    m.load("a")
    m.close()
    assert loaded_ids(m) == []
    with pytest.raises(NotReadyError, match="stopping"):
        m.load("a")


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_unloading_gives_the_memory_back() -> None:
    m, _, _ = manager(("a",))
    m.load("a")
    m.unload("a")  # the first load also warms up what stays (CTranslate2's runtime, caches)
    m.load("a")
    loaded = rss_mib()
    m.unload("a")
    # tiny.en int8 takes about 90 MiB here; freed weights and trimmed heap give most back
    assert loaded - rss_mib() >= 40


def test_the_sweeper_thread_unloads_idle_models() -> None:
    m, _, metrics = manager(("a",), idle_ttl_s=1.0)
    m.start()
    try:
        m.load("a")
        deadline = time.monotonic() + 10
        while m.status("a").loaded and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not m.status("a").loaded
        assert sample(metrics, "malsori_model_unloads_total", model="a", reason="idle") == 1.0
    finally:
        m.close()
