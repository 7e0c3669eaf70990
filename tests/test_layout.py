"""The layout's rules, checked on the source: SQL only in the warehouse adapter, no Airflow
in pipelines/, every user-facing error from one module."""

import ast
import re
from pathlib import Path

from pipelines.settings import REPO_ROOT

PIPELINES = REPO_ROOT / "pipelines"
SQL = re.compile(
    r"\b(select\s.+\sfrom|insert\s+into|delete\s+from|update\s+\S+\s+set|create\s+(table|schema|index|view)|drop\s+(table|schema)|alter\s+table)\b",
    re.IGNORECASE | re.DOTALL,
)


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal (f-string parts joined) that is not a docstring."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            found.append((node.lineno, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append((node.lineno, node.value))
    return found


def modules(folder: Path):
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_only_the_warehouse_adapter_writes_sql():
    offenders = []
    for path in modules(PIPELINES):
        if (PIPELINES / "warehouse") in path.parents:
            continue
        for line, text in _strings(ast.parse(path.read_text())):
            if SQL.search(text):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}: {text[:80]!r}")
    assert not offenders, "SQL outside pipelines/warehouse/ (add a named query to the catalog):\n" + "\n".join(offenders)


def test_the_sql_check_would_see_a_query():
    assert SQL.search("select customer_id from analytics.churn_features")
    assert SQL.search("delete from x where y")
    assert not SQL.search("select the rows to score")


def test_pipelines_does_not_import_airflow():
    for path in modules(PIPELINES):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n == "airflow" or n.startswith("airflow.") for n in names), f"{path} imports Airflow"


def test_every_user_facing_error_comes_from_one_module():
    from pipelines.errors import BatchpredError

    defined = []
    for path in modules(PIPELINES):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Failed"))
                or getattr(b, "id", "") in {"BatchpredError", "InputError"}
                for b in node.bases
            ):
                defined.append((path.name, node.name))
    assert {path for path, _ in defined} == {"errors.py"}, defined
    assert BatchpredError.__subclasses__()
