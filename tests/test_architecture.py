"""The shape of the code base: module sizes, and package docstrings that say what each package
owns and may import. The import contracts themselves are checked by lint-imports (see
pyproject.toml; scripts/test runs it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400
MAX_PACKAGE_LINES = 360  # the package itself: one owner per module
SOURCES = sorted(p for folder in ("poller", "testkit", "tests", "bench", "scripts", "fuzz")
                 for p in (ROOT / folder).rglob("*.py"))
PACKAGES = ("ates", "mail", "imap", "store", "service", "cli", "config")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_its_size(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    limit = MAX_PACKAGE_LINES if path.is_relative_to(ROOT / "poller") else MAX_LINES
    assert lines <= limit, f"{path.relative_to(ROOT)} has {lines} lines; split it by owner"


def test_the_worker_holds_one_path_per_mail_and_the_clock_lives_below_it():
    worker = ROOT / "poller" / "service" / "worker.py"
    assert len(worker.read_text(encoding="utf-8").splitlines()) < 300
    clock_from = {node.module for path in SOURCES
                  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                  if isinstance(node, ast.ImportFrom)
                  and any(alias.name in ("utc_now", "Clock") for alias in node.names)}
    assert clock_from == {"poller.clock"}


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_says_what_it_owns_and_may_import(name):
    docstring = ast.get_docstring(ast.parse((ROOT / "poller" / name / "__init__.py").read_text()))
    assert docstring and "May import:" in docstring, f"poller/{name}/__init__.py"


def test_the_readme_architecture_table_names_every_package():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    for name in PACKAGES:
        assert f"`poller/{name}/`" in section, name


def test_support_shared_by_tests_bench_and_scripts_lives_in_testkit():
    """Tests import no other test module, nothing imports from bench/, and bench, scripts and
    fuzz import nothing from tests/: what they share is in testkit/."""
    offenders = []
    for path in SOURCES:
        if path.name == "conftest.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                if top == "tests" or (top == "bench" and path.parent.name != "bench"):
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []
