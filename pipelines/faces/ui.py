"""`batchpred ui` (`make ui`): the Airflow UI of the embedded default, in one command.

Starts what the UI needs, with the embedded environment of `batchpred demo`
(`$BATCHPRED_HOME/airflow`, this repository's DAGs, no examples): the api-server (the UI
and the REST API), the scheduler (which runs the tasks, LocalExecutor on SQLite) and the
dag-processor (which parses the DAG files). Prints the URL and the login, and stops all
three on Ctrl-C. Their output goes to `$BATCHPRED_HOME/logs/ui-<process>.log`.

The login is `admin` with a password generated once per home and kept (mode 0600) in
`$BATCHPRED_HOME/airflow/passwords.json`, where Airflow's simple auth manager reads it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from pipelines.config.settings import Settings
from pipelines.domain.errors import BatchpredError
from pipelines.faces.demo import SETUP_AIRFLOW, airflow_env, run_airflow

PROCESSES = ("api-server", "scheduler", "dag-processor", "triggerer")  # the triggerer wakes runs waiting for their data
USER = "admin"
STARTUP_TIMEOUT = 180.0  # seconds for the api-server to answer, cold, on 2 cores
STOP_TIMEOUT = 30.0


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(host: str, wanted: int | None, start: int = 8080) -> int:
    """`wanted` if it is free (BatchpredError if not), else the first free port from `start`."""
    if wanted is not None:
        if not port_is_free(host, wanted):
            raise BatchpredError(f"port {wanted} on {host} is in use; choose another with --port")
        return wanted
    for port in range(start, start + 100):
        if port_is_free(host, port):
            return port
    raise BatchpredError(f"no free port in {start}..{start + 99} on {host}; choose one with --port")


def password(settings: Settings) -> tuple[Path, str]:
    """The passwords file of the embedded UI and the admin's password (created on first use)."""
    path = settings.home / "airflow" / "passwords.json"
    if path.exists():
        known = json.loads(path.read_text())
        if known.get(USER):
            return path, known[USER]
    path.parent.mkdir(parents=True, exist_ok=True)
    chosen = secrets.token_urlsafe(12)
    path.touch(mode=0o600)
    path.write_text(json.dumps({USER: chosen}))
    return path, chosen


def ui_env(settings: Settings, host: str, port: int, passwords: Path) -> dict[str, str]:
    url = f"http://{host}:{port}"
    # The scheduler and the triggerer serve task logs to the UI on these ports (Airflow's
    # defaults, 8793 and 8794, may be taken).
    worker_logs = choose_port("127.0.0.1", None, start=8793)
    trigger_logs = choose_port("127.0.0.1", None, start=worker_logs + 1)
    return airflow_env(settings) | {
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # LocalExecutor starts this many worker processes (Airflow's default, 32, for one
        # DuckDB file that takes one writer at a time).
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs),
    }


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/version", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass(frozen=True)
class Running:
    """The UI, once its api-server answers: where, and how to log in."""

    url: str
    user: str
    password: str = field(repr=False)
    passwords_file: Path
    dags_folder: str
    logs: Path


def run_ui(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int | None = None,
    on_ready: Callable[[Running], None] = lambda running: None,
) -> None:
    """Start the embedded Airflow UI, call `on_ready` once it answers, and block until
    Ctrl-C (or SIGTERM), then stop it. Progress lines are printed.

    Raises BatchpredError when the port is taken, or a process exits or the api-server
    does not answer within STARTUP_TIMEOUT (naming its log)."""
    port = choose_port(host, port)
    passwords, secret = password(settings)
    env = ui_env(settings, host, port, passwords)
    url = env["AIRFLOW__API__BASE_URL"]
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    click.echo("starting Airflow (api-server, scheduler, dag-processor, triggerer) for the embedded default...")
    run_airflow(settings, *SETUP_AIRFLOW, log_name="airflow-setup")
    airflow = str(Path(sys.executable).with_name("airflow"))
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name in PROCESSES:
            log = (logs / f"ui-{name}.log").open("w")
            # Each in its own process group: Ctrl-C reaches batchpred, which stops them in order.
            children[name] = subprocess.Popen(
                [airflow, name], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        started, ready = time.monotonic(), False
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    raise BatchpredError(f"airflow {name} exited with {child.returncode}; its log is {logs / f'ui-{name}.log'}")
            if not ready and _answers(url):
                ready = True
                on_ready(Running(url, USER, secret, passwords, env["AIRFLOW__CORE__DAGS_FOLDER"], logs))
            if not ready and time.monotonic() - started > STARTUP_TIMEOUT:
                raise BatchpredError(
                    f"the api-server did not answer on {url} in {STARTUP_TIMEOUT:.0f}s; see {logs / 'ui-api-server.log'}"
                )
            time.sleep(0.5)
        click.echo("stopping Airflow...")
    finally:
        _stop(children)
        for s, handler in previous.items():
            signal.signal(s, handler)
    click.echo("stopped.")


def _stop(children: dict[str, subprocess.Popen]) -> None:
    """SIGTERM each process group (the scheduler first, so no task starts while the rest go), then SIGKILL what is left."""
    for name in ("scheduler", "dag-processor", "api-server"):
        child = children.get(name)
        if child is not None and child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever of its group is left (workers of a killed leader)
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()
