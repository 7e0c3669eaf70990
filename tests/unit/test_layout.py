"""The layout's rules, checked on the source: layers that import only downwards and no
import cycles, SQL only in the warehouse adapter, no Airflow in pipelines/, every
user-facing error from one module."""

import ast
import re
from pathlib import Path

from pipelines.config.settings import REPO_ROOT

# pipelines/ subpackages, lowest first: a module imports from its own layer or below.
LAYERS = ["domain", "config", "adapters", "scoring", "monitoring", "training", "report", "usecases", "faces"]

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
        if (PIPELINES / "adapters" / "warehouse") in path.parents:
            continue
        for line, text in _strings(ast.parse(path.read_text())):
            if SQL.search(text):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}: {text[:80]!r}")
    assert not offenders, "SQL outside pipelines/adapters/warehouse/ (add a named query to queries.py):\n" + "\n".join(offenders)


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
    import pipelines.domain.errors as errors

    defined = []
    for path in modules(PIPELINES):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Failed"))
                or getattr(b, "id", "") in {"BatchpredError", "InputError"}
                for b in node.bases
            ):
                defined.append((path.relative_to(PIPELINES).as_posix(), node.name))
    assert {path for path, _ in defined} == {"domain/errors.py"}, defined
    # ...and every exception there is a BatchpredError, which the CLI and the task bodies turn into a message.
    exceptions = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, BaseException)]
    strays = [e.__name__ for e in exceptions if not issubclass(e, errors.BatchpredError) and e.__module__ == errors.__name__]
    assert not strays, f"exceptions in errors.py that are not BatchpredError: {strays}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every pipelines module `path` imports, inside functions too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("pipelines")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("pipelines"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append((node.lineno, full if full in known else node.module))
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in modules(PIPELINES)}
    return {name: {target for _, target in imports_of(path, set(paths))} for name, path in paths.items()}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if layer_of(module) is not None and layer_of(target) is not None and layer_of(target) > layer_of(module)
    ]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), inside-function imports included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_every_module_lives_in_a_layer():
    stray = [p.relative_to(PIPELINES).as_posix() for p in modules(PIPELINES) if p.parent == PIPELINES and p.name != "__init__.py"]
    assert not stray, f"modules outside the layer folders {LAYERS}: {stray}"
    assert sorted(d.name for d in PIPELINES.iterdir() if (d / "__init__.py").exists()) == sorted(LAYERS)


def test_layers_import_only_downwards():
    assert not upward_imports(import_graph()), "\n".join(upward_imports(import_graph()))


def test_no_import_cycles():
    assert not cycles(import_graph())


def test_the_import_checks_would_see_an_upward_import_and_a_cycle():
    graph = {
        "pipelines.domain.records": {"pipelines.adapters.warehouse.tables"},
        "pipelines.adapters.warehouse.tables": {"pipelines.domain.records"},
    }
    assert upward_imports(graph) == ["pipelines.domain.records -> pipelines.adapters.warehouse.tables"]
    assert cycles(graph) == [["pipelines.adapters.warehouse.tables", "pipelines.domain.records"]]
