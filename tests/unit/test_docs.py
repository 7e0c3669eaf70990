"""The docs point at tests that exist: every `tests/<tier>/<module>.py::<test>` a document
names (and each `...::<test>` after it, in the same module) is a test function there."""

import re
from pathlib import Path

from pipelines.config.settings import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
REFERENCE = re.compile(r"(tests/[\w/]+\.py|\.\.\.)::(test_\w+)")


def missing_references(text: str, root: Path) -> list[str]:
    missing, module = [], None
    for found in REFERENCE.finditer(text):
        path, name = found.groups()
        module = module if path == "..." else path
        source = root / module if module else None
        if source is None or not source.exists() or not re.search(rf"^def {name}\(", source.read_text(), re.M):
            missing.append(f"{module}::{name}")
    return missing


def test_every_test_the_docs_name_exists():
    missing = {doc.name: missing_references(doc.read_text(), REPO_ROOT) for doc in DOCS}
    assert not {k: v for k, v in missing.items() if v}, missing


def test_the_check_would_see_a_moved_test():
    text = "see `tests/unit/test_docs.py::test_every_test_the_docs_name_exists`, `...::test_that_is_not_here`"
    assert missing_references(text, REPO_ROOT) == ["tests/unit/test_docs.py::test_that_is_not_here"]
