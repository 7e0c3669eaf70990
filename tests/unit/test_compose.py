"""docker-compose.yml, checked statically (no Docker engine runs here; test_production.py
runs the same services natively)."""

import re

import pytest
import yaml

from pipelines.config.settings import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = {
    line.split("=", 1)[0]
    for line in (REPO_ROOT / ".env.example").read_text().splitlines()
    if line.strip() and not line.startswith("#")
}


def commands(service):
    for key in ("command", "entrypoint"):
        value = service.get(key) or []
        yield from (value.split() if isinstance(value, str) else value)


def test_every_service_has_an_image_or_a_build_with_a_dockerfile():
    for name, service in SERVICES.items():
        assert service.get("image") or service.get("build"), name
        if service.get("build"):
            context = service["build"] if isinstance(service["build"], str) else service["build"]["context"]
            assert (REPO_ROOT / context / "Dockerfile").is_file(), name


def test_files_named_by_commands_and_mounts_exist():
    for name, service in SERVICES.items():
        for arg in commands(service):
            if arg.startswith("/app/"):
                assert (REPO_ROOT / arg.removeprefix("/app/")).is_file(), f"{name}: {arg}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name}: {source}"


def test_every_variable_is_defined_in_env_example():
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?-[^}]*)?\}", (REPO_ROOT / "docker-compose.yml").read_text()))
    assert used, "the compose file reads no variables at all"
    assert used <= ENV_EXAMPLE, f"not in .env.example: {sorted(used - ENV_EXAMPLE)}"


def test_no_secret_is_written_in_the_file():
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|FERNET|TOKEN", key) and not key.endswith("_FILE"):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+\}", str(value)), f"{name}.{key} must come from .env"
            if "URL" in key or "CONN" in key or "URI" in key:
                assert not re.search(r"://[^:/@]+:[^$@/]+@", str(value)), f"{name}.{key} holds a literal password"


def test_healthchecks_and_dependencies_are_consistent():
    for name, service in SERVICES.items():
        one_shot = service.get("restart") == "no"
        assert one_shot or "healthcheck" in service, f"{name} runs for good but has no healthcheck"
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            assert dependency != name
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], (
                    f"{name} waits for {dependency} to be healthy, which it cannot report"
                )
            elif rule["condition"] == "service_completed_successfully":
                assert SERVICES[dependency].get("restart") == "no", f"{dependency} is not a one-shot service"
            else:
                pytest.fail(f"{name}: unexpected condition {rule['condition']}")


def test_the_production_topology_is_complete():
    airflow = {" ".join(commands(s))[: len("airflow celery worker")] for s in SERVICES.values()}
    for component in ("airflow api-server", "airflow scheduler", "airflow dag-processor", "airflow triggerer"):
        assert any(c.startswith(component) for c in airflow), component
    assert any(c.startswith("airflow celery worker") for c in airflow)
    assert "postgres" in SERVICES and "redis" in SERVICES and "mlflow" in SERVICES
    worker = SERVICES["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker, "the worker must be scalable with --scale"


def test_the_api_requires_a_login_and_runs_celery():
    env = SERVICES["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["BATCHPRED_WAREHOUSE_URL"].startswith("postgresql://")
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
