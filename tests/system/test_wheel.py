"""batchpred as a user installs it: the wheel, in a fresh venv outside the repository,
with a project folder (models/, dbt_project/, expectations/) found through
BATCHPRED_PROJECT_DIR, scores a date of a small demo business.

Nothing is downloaded. The wheel is built by hatchling from the dev environment (no build
isolation). The venv gets the locked packages from uv's cache, which `uv sync` filled:
`uv export --format pylock.toml` gives each package's URL, so `uv pip install --offline`
needs no index page (`uv pip install --offline <wheel>` alone fails: uv sync installs from
the lock's URLs and leaves no index pages in the cache to resolve names from); then the
wheel, whose declared dependencies the resolver checks against what is installed.
The venv's packages are hard links into uv's cache, so it takes a few seconds.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import duckdb
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import pipelines
from pipelines.config.settings import REPO_ROOT

AS_OF = "2026-01-31"
TRAINED_UP_TO = "2026-01-24"  # a week before: with 800 customers, the labels (cancellations) are complete by then
PROJECT_FOLDERS = ("models", "dbt_project", "expectations")


def uv() -> str:
    found = shutil.which("uv") or Path.home() / ".local" / "bin" / "uv"
    if not Path(found).is_file():
        pytest.fail("uv is not installed: `make test` installs it (python -m pip install --user uv)")
    return str(found)


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, command))}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "hatchling", "build", "--target", "wheel", "--directory", dist, cwd=REPO_ROOT)
    (built,) = dist.glob("batchpred-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh venv holding the locked packages and the wheel (not the checkout)."""
    where = tmp_path_factory.mktemp("venv")
    assert not where.is_relative_to(REPO_ROOT)
    offline = {**os.environ, "UV_OFFLINE": "1", "UV_NO_PROGRESS": "1"}
    offline.pop("VIRTUAL_ENV", None)
    locked = where / "pylock.toml"  # every locked package but batchpred, by URL
    export = ["export", "--frozen", "--no-dev", "--no-emit-project", "--format", "pylock.toml", "-q", "-o", locked]
    run(uv(), *export, cwd=REPO_ROOT, env=offline)
    env = where / "venv"
    run(uv(), "venv", "-q", "--python", sys.executable, env, cwd=where, env=offline)
    python = env / "bin" / "python"
    run(uv(), "pip", "install", "-q", "--offline", "--python", python, "-r", locked, cwd=where, env=offline)
    run(uv(), "pip", "install", "-q", "--offline", "--python", python, wheel, cwd=where, env=offline)
    return env


@pytest.fixture
def project(tmp_path) -> dict[str, str]:
    """A copy of the project folders and an empty home, outside the repository, and the
    environment of a user who has never seen the checkout."""
    folder = tmp_path / "project"
    for name in PROJECT_FOLDERS:
        shutil.copytree(REPO_ROOT / name, folder / name, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    # PYTHON* too: PYTHONDONTWRITEBYTECODE would make every command compile mlflow, dbt and GX again.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "BATCHPRED_", "PYTHON", "VIRTUAL_ENV"))}
    return env | {"BATCHPRED_PROJECT_DIR": str(folder), "BATCHPRED_HOME": str(tmp_path / "home")}


def test_the_wheel_holds_the_package_and_its_license_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = f"batchpred-{pipelines.__version__}.dist-info"
    assert wheel.name == f"batchpred-{pipelines.__version__}-py3-none-any.whl"
    assert {name.split("/")[0] for name in names} == {"pipelines", dist_info}, sorted(names)
    assert f"{dist_info}/licenses/LICENSE" in names
    assert "pipelines/report/templates/report.html.j2" in names  # package data, not only .py files
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_every_imported_package_is_declared(wheel):
    """Each third-party module that pipelines/ or dags/ imports comes from a distribution the
    wheel's metadata requires (directly: a transitive dependency may go away)."""
    metadata = zipfile.ZipFile(wheel).read(f"batchpred-{pipelines.__version__}.dist-info/METADATA").decode()
    required = {
        canonicalize_name(Requirement(line.removeprefix("Requires-Dist:").strip()).name)
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    }
    provided_by = packages_distributions()
    undeclared = {}
    for folder in ("pipelines", "dags"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in (name.split(".")[0] for name in modules):
                    if module in sys.stdlib_module_names or module in ("__future__", "pipelines", "dags"):
                        continue
                    distributions = {canonicalize_name(d) for d in provided_by.get(module, [module])}
                    if not distributions & required:
                        undeclared.setdefault(module, str(path.relative_to(REPO_ROOT)))
    assert undeclared == {}, f"imported but not in [project].dependencies: {undeclared}"


def test_the_version_comes_from_the_package(venv, tmp_path):
    result = run(venv / "bin" / "batchpred", "--version", cwd=tmp_path)
    assert result.stdout.strip() == f"batchpred, version {pipelines.__version__}"
    where = run(venv / "bin" / "python", "-c", "import pipelines; print(pipelines.__file__)", cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the installed copy, not the checkout


def test_a_project_folder_without_models_is_named(venv, project, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [venv / "bin" / "batchpred", "score", "churn", "--date", AS_OF],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=project | {"BATCHPRED_PROJECT_DIR": str(empty)},
    )
    assert result.returncode == 1, result.stderr
    assert f"BATCHPRED_PROJECT_DIR={empty} has no models/, dbt_project/, expectations/" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_installed_wheel_scores_a_date(venv, project, tmp_path):
    batchpred = venv / "bin" / "batchpred"
    elsewhere = tmp_path / "cwd"  # not the repository, not the project folder
    elsewhere.mkdir()
    run(batchpred, "generate", "--customers", "800", "--days", "270", "--end", AS_OF, cwd=elsewhere, env=project)
    run(batchpred, "train", "churn", "--date", TRAINED_UP_TO, cwd=elsewhere, env=project)
    scored = run(batchpred, "score", "churn", "--date", AS_OF, cwd=elsewhere, env=project)
    assert f"churn {AS_OF}:" in scored.stdout

    warehouse = Path(project["BATCHPRED_HOME"]) / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        ((rows, dates),) = connection.execute(
            "select count(*), count(distinct as_of_date) from predictions.churn_scores where as_of_date = ?", [AS_OF]
        ).fetchall()
    assert rows > 0 and dates == 1
