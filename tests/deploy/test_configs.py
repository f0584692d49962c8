"""deploy/ checked with the real tools: ``nginx -t`` on a loopback copy of the site, promtool on
the Prometheus configuration and alert rules (their syntax and, with ``promtool test rules``,
what fires when), the compose file parsed and its settings read by malsori's own settings class,
``docker-compose config`` when Debian's docker-compose is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from malsori.server.settings import ServerSettings

from .stack import ALERTS, COMPOSE, DEPLOY, PROMETHEUS, need, nginx_command, nginx_conf, render_site


def run(*cmd: str | Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=60, **kw)


def test_nginx_accepts_the_site_on_loopback(tmp_path: Path) -> None:
    conf = nginx_conf(tmp_path / "nginx", ["127.0.0.1:18001", "127.0.0.1:18002"], 18080)
    checked = run(*nginx_command(conf, "-t"))
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    site = render_site(["127.0.0.1:1", "127.0.0.1:2"], "127.0.0.1:3")
    assert site.count("server 127.0.0.1:") == 2 and "max_fails=1" in site
    assert "api:8000" not in site


def test_the_site_fails_over_buffers_uploads_and_upgrades_websockets() -> None:
    site = (DEPLOY / "nginx" / "malsori.conf").read_text()
    assert re.search(r"client_max_body_size 30m;", site)
    assert "proxy_request_buffering on;" in site
    audio = site.split("location /v1/audio/", 1)[1].split("}", 1)[0]
    assert "non_idempotent" in audio  # synchronous requests are retried on another replica
    realtime = site.split("location /v1/realtime", 1)[1].split("}", 1)[0]
    assert "proxy_set_header Upgrade $http_upgrade;" in realtime
    assert "proxy_set_header Connection $connection_upgrade;" in realtime


def test_promtool_accepts_the_config_and_rules(tmp_path: Path) -> None:
    promtool = need("promtool")
    config = run(promtool, "check", "config", PROMETHEUS)
    assert config.returncode == 0, config.stdout + config.stderr
    rules = run(promtool, "check", "rules", ALERTS)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    names = [r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    for wanted in ("MalsoriDown", "MalsoriJobQueueBackingUp", "MalsoriHighErrorRate",
                   "MalsoriRtfDegrading", "MalsoriDiskFilling"):  # fmt: skip
        assert wanted in names


ALERT_TESTS = """
rule_files: [{alerts}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{{job="malsori-api", instance="a:8000"}}'
        values: '1 1 0 0 0 0'
      - series: 'up{{job="malsori-api", instance="b:8000"}}'
        values: '1 1 1 1 1 1'
      - series: 'malsori_http_requests_total{{status="200", instance="b:8000"}}'
        values: '0+100x10'
      - series: 'malsori_http_requests_total{{status="502", instance="b:8000"}}'
        values: '0+20x10'
      - series: 'malsori_data_dir_free_bytes{{instance="b:8000"}}'
        values: '50 50 50 50 50 50 50 50 50 50 50'
      - series: 'malsori_data_dir_size_bytes{{instance="b:8000"}}'
        values: '1000x10'
    alert_rule_test:
      - eval_time: 2m
        alertname: MalsoriDown
        exp_alerts: []
      - eval_time: 4m
        alertname: MalsoriDown
        exp_alerts:
          - exp_labels: {{severity: critical, job: malsori-api, instance: "a:8000"}}
            exp_annotations:
              summary: "malsori-api a:8000 is down"
              description: "{down}"
      - eval_time: 4m
        alertname: MalsoriNoReplicaUp
        exp_alerts: []
      - eval_time: 10m
        alertname: MalsoriHighErrorRate
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations:
              summary: "16.67% of requests fail with 5xx"
              description: "{errors}"
      - eval_time: 10m
        alertname: MalsoriJobQueueBackingUp
        exp_alerts: []
  - interval: 1m
    input_series:
      - series: 'malsori_jobs_waiting{{instance="a:8000"}}'
        values: '60+1x30'
      - series: 'malsori_data_dir_free_bytes{{instance="a:8000"}}'
        values: '50x30'
      - series: 'malsori_data_dir_size_bytes{{instance="a:8000"}}'
        values: '1000x30'
    alert_rule_test:
      - eval_time: 10m
        alertname: MalsoriJobQueueBackingUp
        exp_alerts: []
      - eval_time: 30m
        alertname: MalsoriJobQueueBackingUp
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations:
              summary: "90 jobs waiting and not shrinking"
              description: "{queue}"
      - eval_time: 30m
        alertname: MalsoriDiskFilling
        exp_alerts:
          - exp_labels: {{severity: warning, instance: "a:8000"}}
            exp_annotations:
              summary: "a:8000: the data folder's disk is filling"
              description: "{disk}"
"""


def test_the_alerts_fire_when_they_should(tmp_path: Path) -> None:
    tests = tmp_path / "alerts_test.yml"
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rules = {r["alert"]: r for g in groups for r in g["rules"]}

    def description(alert: str) -> str:
        text: str = rules[alert]["annotations"]["description"]
        return text.replace("{{ $labels.instance }}", "a:8000")

    tests.write_text(
        ALERT_TESTS.format(
            alerts=ALERTS,
            down=description("MalsoriDown"),
            queue=description("MalsoriJobQueueBackingUp"),
            disk=description("MalsoriDiskFilling"),
            errors=description("MalsoriHighErrorRate"),
        )
    )
    result = run(need("promtool"), "test", "rules", tests)
    assert result.returncode == 0, result.stdout + result.stderr


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_runs_two_api_replicas_a_worker_postgres_nginx_prometheus() -> None:
    services = compose()["services"]
    assert set(services) == {"api", "worker", "postgres", "nginx", "prometheus"}
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["api"]["command"] == ["serve", "--no-workers"]
    assert services["worker"]["command"] == ["worker"]
    assert any(v.startswith("pgdata:") for v in services["postgres"]["volumes"])
    for name in ("api", "worker"):  # job audio on one volume both reach
        assert "jobdata:/var/lib/malsori/data" in services[name]["volumes"]
    mounts = " ".join(services["nginx"]["volumes"] + services["prometheus"]["volumes"])
    for path in ("nginx/malsori.conf", "prometheus/prometheus.yml", "prometheus/alerts.yml"):
        assert f"./{path}:" in mounts and (DEPLOY / path).is_file()


def test_compose_settings_are_malsori_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every MALSORI_* variable compose sets is read by ServerSettings with the value meant (a
    misspelt one would be ignored silently)."""
    services = compose()["services"]
    for name in ("api", "worker"):
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        for key, value in env.items():
            monkeypatch.setenv(key, value.replace("${MALSORI_DB_PASSWORD:?set MALSORI_DB_PASSWORD}",
                                                  "pw"))  # fmt: skip
        settings = ServerSettings()
        assert settings.sqlalchemy_url() == "postgresql+psycopg://malsori:pw@postgres:5432/malsori"
        assert settings.data_dir == Path("/var/lib/malsori/data")
        assert settings.spool_dir == Path("/tmp/malsori-spool")
        for key in env:
            path = key.removeprefix("MALSORI_").lower().split("__")
            node: Any = settings
            for part in path:
                assert hasattr(node, part), f"{key} is not a malsori setting"
                node = getattr(node, part)
    assert ServerSettings().worker.concurrency == 4


def test_dockerfiles_are_multi_stage_non_root_with_the_model_and_a_healthcheck() -> None:
    for name in ("Dockerfile", "Dockerfile.cuda"):
        text = (DEPLOY / name).read_text()
        assert len(re.findall(r"^FROM ", text, re.M)) >= 2 and " AS build" in text
        assert "malsori models pull" in text
        users = re.findall(r"^USER (\S+)", text, re.M)
        assert users and users[-1] not in ("root", "0")
        assert re.search(r"^HEALTHCHECK .*\n.*127\.0\.0\.1:8000/ready", text, re.M)


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose (Debian) is not installed"
)
def test_docker_compose_accepts_the_file() -> None:
    result = run("docker-compose", "-f", COMPOSE, "config", "--quiet",
                 env={"MALSORI_DB_PASSWORD": "pw", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert result.returncode == 0, result.stderr


def setting_names(model: Any, prefix: str = "MALSORI_") -> Iterator[str]:
    from pydantic import BaseModel

    for name, info in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from setting_names(kind, variable + "__")
        else:
            yield variable


def test_the_deployment_guide_lists_every_setting() -> None:
    guide = (DEPLOY.parent / "docs" / "deployment.md").read_text()
    missing = [v for v in setting_names(ServerSettings) if f"`{v}`" not in guide]
    assert not missing, f"docs/deployment.md does not describe {missing}"
