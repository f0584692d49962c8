"""Failover with the real parts on loopback: PostgreSQL (``MALSORI_TEST_POSTGRES_URL``, a
throwaway database), 2 API-only ``malsori serve`` replicas and 2 ``malsori worker`` processes,
Debian's nginx in front (deploy/nginx/malsori.conf, rendered for loopback) and Prometheus
scraping every process (deploy/prometheus/, the same way). 40 jobs and 40 synchronous requests
of espeak-ng speech go through nginx; one API replica and one worker are killed with SIGKILL
while requests are in flight and the worker holds a job.

Checked: every accepted job completes once with its clip's words (the killed worker's jobs are
run again by the other after their lease runs out); a synchronous request fails only if it was
in flight at the kill, and every one sent after it succeeds; Prometheus saw both replicas up and
its sum of ``malsori_jobs_finished_total`` over every instance equals the jobs completed; a live
stream through nginx's WebSocket upgrade gives its clip's words."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from .stack import need, nginx_command, nginx_conf, prometheus_config

URL = os.environ.get("MALSORI_TEST_POSTGRES_URL")
pytestmark = [
    pytest.mark.deploy,
    pytest.mark.slow,
    pytest.mark.skipif(not URL, reason="MALSORI_TEST_POSTGRES_URL is not set (no PostgreSQL)"),
]

MODEL = "tiny.en"
JOBS = SYNC = 40
LEASE_S = 4  # a killed worker's jobs are taken over this long after its last renewal
CLIENTS = 6  # requests in flight at once through nginx
# (sentence, three of its words): a transcript must hold one of its own clip's words and none of
# another clip's: it is this clip's text, not another request's (tiny.en on espeak-ng speech,
# packed with other requests' speech, mishears a word or two now and then)
CLIPS = (
    ("The quick brown fox jumps over the lazy dog.", ("quick", "fox", "lazy")),
    ("Seven penguins walked slowly across the frozen lake.", ("slowly", "frozen", "lake")),
    ("My grandmother baked chocolate cookies on Sunday.", ("grandmother", "chocolate", "baked")),
    ("The orchestra played beautiful music in the theatre.", ("orchestra", "music", "beautiful")),
    ("A scientist explained the mystery of the volcano.", ("scientist", "volcano", "mystery")),
    ("My computer needs a new keyboard.", ("computer", "needs", "keyboard")),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def words_of(text: str) -> set[str]:
    return set("".join(c.lower() if c.isalnum() else " " for c in text).split())


def right_text(text: str, clip: int) -> bool:
    """One of the clip's words is there, and no other clip's (not someone else's result)."""
    words = words_of(text)
    others = {w for i, (_, ws) in enumerate(CLIPS) if i != clip for w in ws}
    return bool(set(CLIPS[clip][1]) & words) and not others & words


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + "\n".join(self.log.read_text().splitlines()[-25:])


class Stack:
    """The processes of one deployment; every one is stopped by ``close``."""

    def __init__(self, root: Path, database_url: str):
        self.root = root
        self.data = root / "data"
        self.env = {
            **os.environ,
            "MALSORI_DATABASE_URL": database_url,
            "MALSORI_JOBS__LEASE_S": str(LEASE_S),
            "MALSORI_JOBS__POLL_INTERVAL_S": "0.3",
            # one key sends everything: its quotas must not be what refuses requests here
            "MALSORI_LIMITS__MAX_CONCURRENT_REQUESTS_PER_KEY": str(CLIENTS),
            "MALSORI_LIMITS__MAX_QUEUED_JOBS_PER_KEY": str(JOBS + CLIENTS),
        }
        self.processes: list[Process] = []

    def start(self, name: str, cmd: list[str], port: int) -> Process:
        log = self.root / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        process = Process(name, popen, log, port)
        self.processes.append(process)
        return process

    def api(self, name: str) -> Process:
        port = free_port()
        cmd = [sys.executable, "-m", "malsori", "serve", "--no-workers", "--port", str(port),
               "--data-dir", str(self.data), "--spool-dir", str(self.root / f"spool-{name}"),
               "-m", MODEL, "--threads", "1", "--beam-size", "1"]  # fmt: skip
        return self.start(name, cmd, port)

    def worker(self, name: str) -> Process:
        port = free_port()
        cmd = [sys.executable, "-m", "malsori", "worker", "--data-dir", str(self.data),
               "-m", MODEL, "--threads", "1", "--beam-size", "1", "--concurrency", "4",
               "--metrics-port", str(port)]  # fmt: skip
        return self.start(name, cmd, port)

    def wait_ready(self, process: Process, url: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert process.alive, process.tail()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{process.name} never became ready\n{process.tail()}")

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.processes)

    def close(self) -> None:
        for process in self.processes:
            if process.alive:
                process.popen.terminate()
        for process in self.processes:
            try:
                process.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(timeout=5)


@dataclass
class Sent:
    """One request through nginx: when it went and came back, and what came back."""

    kind: str  # "job" or "sync"
    clip: int
    sent: float = 0.0
    done: float = 0.0
    status: int = 0
    body: dict[str, Any] = field(default_factory=dict)


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def database() -> Iterator[Any]:
    """The throwaway database, emptied before and after; its ``Database``."""
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg[binary]")
    from malsori.server.db import Base, Database

    assert URL is not None
    db = Database(URL)
    Base.metadata.drop_all(db.engine)
    Base.metadata.create_all(db.engine)
    yield db
    Base.metadata.drop_all(db.engine)
    db.close()


@pytest.fixture
def clips(tmp_path: Path) -> list[bytes]:
    for tool in ("espeak-ng",):
        need(tool)
    out = []
    for i, (sentence, _) in enumerate(CLIPS):
        path = tmp_path / f"clip{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), sentence], check=True)
        out.append(path.read_bytes())
    subprocess.run([sys.executable, "-m", "malsori", "models", "pull", MODEL], check=True,
                   capture_output=True)  # fmt: skip
    return out


def live_stream(url: str, key: str, folder: Path) -> str:
    """Stream clip 0 as 16 kHz PCM16 over the WebSocket at ``url``; the final text."""
    import json

    from websockets.sync.client import connect

    from malsori.audio import AudioStream

    audio = AudioStream(folder / "clip0.wav").read()
    silence = np.zeros(16000, np.float32)
    pcm = (np.clip(np.concatenate([audio, silence]), -1, 1) * 32767).astype("<i2").tobytes()
    with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        json.loads(ws.recv(timeout=30))  # the session's first event
        ws.send(pcm)
        ws.send(json.dumps({"type": "stop"}))
        while (event := json.loads(ws.recv(timeout=60)))["type"] not in ("end", "error"):
            pass
    assert event["type"] == "end", event
    return str(event["text"])


def test_failover_with_nginx_postgres_prometheus(
    tmp_path: Path, database: Any, clips: list[bytes]
) -> None:
    from sqlalchemy import select

    from malsori.server.db import JobRow
    from malsori.server.keys import KeyStore

    assert URL is not None
    key = KeyStore(database).create("failover")[1]
    auth = {"Authorization": f"Bearer {key}"}
    stack = Stack(tmp_path, URL)
    try:
        apis = [stack.api("api-1"), stack.api("api-2")]
        workers = [stack.worker("worker-1"), stack.worker("worker-2")]
        nginx_port, prom_port = free_port(), free_port()
        conf = nginx_conf(tmp_path / "nginx", [f"127.0.0.1:{a.port}" for a in apis], nginx_port)
        stack.start("nginx", nginx_command(conf, "-g", "daemon off;"), nginx_port)
        targets = {
            "malsori-api": [f"127.0.0.1:{a.port}" for a in apis],
            "malsori-worker": [f"127.0.0.1:{w.port}" for w in workers],
        }
        prom_conf = prometheus_config(tmp_path / "prometheus", targets, interval="1s")
        stack.start("prometheus", [need("prometheus"), f"--config.file={prom_conf}",
                                   f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{prom_port}"],
                    prom_port)  # fmt: skip
        for api in apis:
            stack.wait_ready(api, f"http://127.0.0.1:{api.port}/ready")
        for worker in workers:
            stack.wait_ready(worker, f"http://127.0.0.1:{worker.port}/metrics")
        base = f"http://127.0.0.1:{nginx_port}"
        stack.wait_ready(stack.processes[4], f"{base}/health", timeout=30)
        prometheus = Prometheus(f"http://127.0.0.1:{prom_port}")
        stack.wait_ready(stack.processes[5], f"{prometheus.url}/-/ready", timeout=60)
        wait_until(
            lambda: prometheus.value('count(up{job=~"malsori-.*"} == 1)') == 4,
            30,
            "Prometheus to scrape both replicas and both workers",
        )

        # --- traffic, and the kill while it runs ----------------------------------------------
        requests = [Sent("job" if i % 2 else "sync", (i // 2) % len(CLIPS)) for i in range(80)]
        killed_at: list[float] = []
        victim, dead_worker = apis[0], workers[0]
        owner_of_dead = f"%:{dead_worker.popen.pid}:%"

        def send(r: Sent) -> None:
            files = {"file": (f"clip{r.clip}.wav", clips[r.clip], "audio/wav")}
            path = "/v1/jobs" if r.kind == "job" else "/v1/audio/transcriptions"
            r.sent = time.monotonic()
            try:
                response = httpx.post(f"{base}{path}", files=files, data={"language": "en"},
                                      headers=auth, timeout=300)  # fmt: skip
                r.status = response.status_code
                r.body = response.json() if response.headers.get("content-type", "").startswith(
                    "application/json") else {"raw": response.text}  # fmt: skip
            except httpx.HTTPError as e:
                r.status, r.body = -1, {"error": repr(e)}
            r.done = time.monotonic()

        def dead_worker_state() -> tuple[int, int]:
            """(jobs the worker to kill holds running, jobs it completed), from the database."""
            with database.session() as s:
                rows = s.execute(
                    select(JobRow.status).where(JobRow.lease_owner.like(owner_of_dead))
                ).all()
            statuses = [r.status for r in rows]
            return statuses.count("running"), statuses.count("completed")

        def kill_mid_run() -> None:
            # Kill once the worker holds a job and Prometheus has its count of finished jobs
            # (what it finished before dying is then counted), with requests in flight.
            instance = f"127.0.0.1:{dead_worker.port}"
            promql = f'malsori_jobs_finished_total{{status="completed",instance="{instance}"}}'
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                running, completed = dead_worker_state()
                in_flight = sum(1 for r in requests if r.sent and not r.done)
                if running and in_flight >= 2 and prometheus.value(promql) == completed:
                    victim.popen.send_signal(signal.SIGKILL)
                    dead_worker.popen.send_signal(signal.SIGKILL)
                    killed_at.append(time.monotonic())
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_mid_run)
        started = time.monotonic()
        killer.start()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(send, requests))
        killer.join()
        assert killed_at, "the kill never happened: the worker never held a job\n" + stack.logs()
        kill = killed_at[0]
        assert victim.popen.wait(5) == -signal.SIGKILL
        assert dead_worker.popen.wait(5) == -signal.SIGKILL

        # --- synchronous requests -----------------------------------------------------------
        after = [r for r in requests if r.sent > kill]
        assert len(after) >= 20, f"the kill came too late: {len(after)} requests after it"
        for r in requests:
            ok = r.status in (200, 202)
            if not ok:  # only a request in flight at the kill may fail
                assert r.sent <= kill <= r.done, (r, stack.logs())
            if r.kind == "sync" and ok:
                assert right_text(r.body["text"], r.clip), r
        assert all(r.status in (200, 202) for r in after), [r for r in after if r.status >= 300]

        # --- jobs: every accepted one completes once, with its text ---------------------------
        accepted = {r.body["id"]: r for r in requests if r.kind == "job" and r.status == 202}
        assert len(accepted) >= JOBS - CLIENTS

        def all_finished() -> bool:
            with database.session() as s:
                rows = s.execute(select(JobRow.id, JobRow.status)).all()
            return all(status in ("completed", "failed") for _, status in rows)

        wait_until(all_finished, 300, "every job to finish")
        with database.session() as s:
            rows = {row.id: row for row in s.scalars(select(JobRow)).all()}
        assert set(accepted) <= set(rows)
        # A job POST cut off by the kill may have been stored before the replica died.
        assert len(rows) - len(accepted) <= sum(
            1 for r in requests if r.kind == "job" and r.status != 202
        )
        for job_id, r in accepted.items():
            job = httpx.get(f"{base}/v1/jobs/{job_id}", headers=auth, timeout=30).json()
            assert job["status"] == "completed", job
            text = httpx.get(f"{base}/v1/jobs/{job_id}/result?format=txt", headers=auth).text
            assert right_text(text, r.clip), (job_id, r.clip, text)
        taken_over = [row for row in rows.values() if row.attempts > 1]
        assert taken_over, "no job of the killed worker was run again"
        assert all(row.lease_owner and row.lease_owner.split(":")[1] != str(dead_worker.popen.pid)
                   for row in taken_over)  # fmt: skip
        completed = sum(1 for row in rows.values() if row.status == "completed")
        assert completed == len(rows)

        # --- Prometheus: the jobs-completed counter over every instance, each job once -------
        total = 'sum(max_over_time(malsori_jobs_finished_total{status="completed"}[10m]))'
        wait_until(
            lambda: prometheus.value(total) == completed, 20, f"Prometheus total of {completed}"
        )
        up = prometheus.query('max_over_time(up{job="malsori-api"}[10m]) == 1')
        assert len(up) == 2  # both replicas were scraped
        assert prometheus.value(f'up{{instance="127.0.0.1:{victim.port}"}}') == 0
        # --- a live stream through nginx: the WebSocket upgrade passes -------------------------
        live = f"ws://127.0.0.1:{nginx_port}/v1/realtime?language=en"
        live_text = live_stream(live, key, tmp_path)
        assert right_text(live_text, 0), live_text

        failed = [r for r in requests if r.status not in (200, 202)]
        print(
            f"\nkill at {kill - started:.1f} s; {len(after)} of {len(requests)} requests sent "
            f"after it; {len(failed)} failed (in flight at the kill: "
            f"{', '.join(f'{r.kind} {r.status}' for r in failed) or 'none'}); "
            f"{len(accepted)} jobs accepted, {len(taken_over)} run again after the kill; "
            f"all done {time.monotonic() - started:.1f} s after the first request"
        )
    finally:
        stack.close()
