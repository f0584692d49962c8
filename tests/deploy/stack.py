"""Loopback copies of deploy/'s nginx and Prometheus configurations (rendered from the same
files compose uses), and the Debian programs that run them."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NGINX_SITE = DEPLOY / "nginx" / "malsori.conf"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
COMPOSE = DEPLOY / "compose.yaml"


def need(program: str) -> str:
    """The program's path; the test fails (not skips) without it: the project installs it."""
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"the deployment tests need {program} (scripts/install-system-deps.sh)")
    return path


def render_site(upstreams: list[str], listen: str) -> str:
    """deploy/nginx/malsori.conf with its ``@upstream`` line repeated for each of ``upstreams``
    (host:port) and its ``@listen`` line listening on ``listen``."""
    out = []
    for line in NGINX_SITE.read_text().splitlines():
        if "# @upstream" in line:
            indent = line[: len(line) - len(line.lstrip())]
            rest = line.split(":8000", 1)[1].split("#")[0]  # the server parameters
            out += [f"{indent}server {address}{rest.rstrip()}" for address in upstreams]
        elif "# @listen" in line:
            out.append(f"    listen {listen};")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def nginx_conf(folder: Path, upstreams: list[str], port: int) -> Path:
    """A complete nginx.conf in ``folder`` (pid, logs, temp files there) serving the site on
    loopback ``port``; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    site = folder / "malsori.conf"
    site.write_text(render_site(upstreams, f"127.0.0.1:{port}"))
    # A root master would hand the workers to `nobody`, who may not enter the test's folders.
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};\n" if os.getuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = folder / "nginx.conf"
    main.write_text(
        f"{user}worker_processes 1;\npid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'} warn;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"    access_log {folder / 'access.log'};\n{temp}\n"
        f"    include {site};\n"
        "}\n"
    )
    return main


def nginx_command(conf: Path, *extra: str) -> list[str]:
    folder = conf.parent
    return [need("nginx"), "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf),
            *extra]  # fmt: skip


def prometheus_config(folder: Path, targets: dict[str, list[str]], interval: str = "1s") -> Path:
    """deploy/prometheus/prometheus.yml with static loopback ``targets`` per scrape job (for the
    jobs it names) and its alert rules; its path in ``folder``."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS.read_text())
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str(ALERTS)]
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
