"""`batchpred ui`: the embedded Airflow UI starts on a free port with this repository's DAGs
and no examples, prints the URL and the login (which work), refuses a port in use, and
stops cleanly on Ctrl-C. Real processes: api-server, scheduler, dag-processor, triggerer."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.services import free_port, wait_until

BATCHPRED = str(Path(sys.executable).with_name("batchpred"))
MODEL_DAGS = {f"{m}_{kind}" for m in ("churn", "payment_risk") for kind in ("score", "monitor", "train")}


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "BATCHPRED_"))}
    return env | {"BATCHPRED_HOME": str(home)}


@contextmanager
def running_ui(home: Path, port: int, timeout: float = 240, as_json: bool = False, env: dict[str, str] | None = None):
    """Start `batchpred ui` (with --json, if `as_json`; in `env`, default `clean_env(home)`); yield
    (process, an API client logged in with the login it printed, the output so far)."""
    command = [BATCHPRED, "ui", "--port", str(port), *(["--json"] if as_json else [])]
    process = subprocess.Popen(command, env=env or clean_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines, deadline = [], time.monotonic() + timeout
        ready = '"url"' if as_json else "Ctrl-C stops it"
        while not any(ready in line for line in lines):
            line = process.stdout.readline()
            assert line or process.poll() is None, (
                f"batchpred ui exited {process.poll()}: {''.join(lines)}{process.stderr.read()}"
            )
            lines.append(line)
            assert time.monotonic() < deadline, "".join(lines)
        output = "".join(lines)
        if as_json:  # one line, for scripts: the password stays in its file
            [line] = lines
            running = json.loads(line)
            url, user = running["url"], running["user"]
            password = json.loads(Path(running["password_file"]).read_text())[user]
            assert password not in line and running["dags_folder"] == str(Path(__file__).resolve().parents[2] / "dags")
        else:
            url = re.search(r"Airflow UI: (http://\S+)", output).group(1)
            user, password = re.search(r"login: (\S+) / (\S+)", output).groups()
        token = httpx.post(f"{url}/auth/token", json={"username": user, "password": password}, timeout=30)
        assert token.status_code in (200, 201), token.text
        client = httpx.Client(
            base_url=f"{url}/api/v2", headers={"Authorization": f"Bearer {token.json()['access_token']}"}, timeout=30
        )
        yield process, client, output
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                raise


def test_the_ui_starts_with_the_repository_dags_answers_the_login_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    with running_ui(tmp_path, port) as (process, api, output):
        assert f"http://127.0.0.1:{port}" in output
        dags = wait_until(
            lambda: {d["dag_id"] for d in api.get("/dags").json()["dags"]} >= MODEL_DAGS and api.get("/dags").json(),
            120,
            "the DAGs",
        )
        assert {d["dag_id"] for d in dags["dags"]} == MODEL_DAGS  # no example DAGs
        assert httpx.get(f"http://127.0.0.1:{port}/api/v2/dags", timeout=30).status_code in (401, 403)

        taken = subprocess.run([BATCHPRED, "ui", "--port", str(port)], env=clean_env(tmp_path), capture_output=True, text=True)
        assert taken.returncode == 1 and f"port {port} on 127.0.0.1 is in use" in taken.stderr and "Traceback" not in taken.stderr

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert "stopped." in process.stdout.read()
    with httpx.Client() as probe:  # nothing answers any more: the api-server is gone
        try:
            probe.get(f"http://127.0.0.1:{port}/api/v2/version", timeout=5)
            raise AssertionError("the api-server still answers after Ctrl-C")
        except httpx.TransportError:
            pass
    cfg = (tmp_path / "airflow" / "airflow.cfg").read_text()
    assert "load_examples = False" in cfg and f"dags_folder = {Path(__file__).resolve().parents[2] / 'dags'}" in cfg
