# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""docs/spec-coverage.md stays true as the code changes: every path it names exists, every
``path::name`` it names is defined there, every section of the original specification has
its heading, every row has one of the four statuses, and a "met" row names a test."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from market_assets_tests.config_files import REPO
from market_assets_tests.test_repository import OUTSIDE

DOC = REPO / "docs" / "spec-coverage.md"

# The top-level ("## ") sections of the specification (SPEC.md v0.1), in its order. The
# specification is not part of this repository, so its section names are kept here.
SPEC_SECTIONS = (
    "License notice",
    "Goals",
    "Summary of goals and constraints",
    "Teams",
    "Top-level architecture (single binary, modular crates)",
    "Normalization and schemas",
    "Key invariants",
    "Interfaces (shared)",
    "NBBO ground truth policy",
    "Locked/crossed handling",
    "Tick-size correctness",
    "Aggressor classification rules (deterministic)",
    "WebSocket strategy",
    "T-1 gap policy (REST)",
    "Historical (flatfiles)",
    "Event-time fields and deduplication",
    "Storage and retention",
    "Greeks budget",
    "Watermarks and finalization",
    "Observability and alerts",
    "Resilience and rate limits",
    "Configuration",
    "Coding standards and best practices",
    "Testing requirements",
    "Appendix: exemplar Rust signatures (abbreviated)",
    "Operational notes",
)
STATUSES = ("met", "met differently", "partly met", "not met")
COLUMNS = ["Requirement", "Status", "Where (code)", "Proof (test)", "Notes"]

# A backticked repository path, optionally followed by ::name(::name...).
ROOT_FILES = ("README.md", "Makefile", "config.toml", "pyproject.toml", "workspace.yaml")
PATH_PREFIXES = ("market_assets/", "market_assets_tests/", "benchmarks/", "docs/", "dagster_home/")
_TICKED = re.compile(r"`([^`\s]+)`")


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def references(text: str) -> list[tuple[str, list[str]]]:
    """(path, [names]) of every backticked ``path`` or ``path::name::...`` in ``text``."""
    out = []
    for token in _TICKED.findall(text):
        path, *names = token.split("::")
        if path.startswith(PATH_PREFIXES) or path in ROOT_FILES:
            out.append((path, names))
    return out


@cache
def _module(path: str) -> ast.Module:
    return ast.parse((REPO / path).read_text(encoding="utf-8"), filename=path)


def _defined(body: list[ast.stmt], name: str) -> ast.stmt | None:
    """The statement of ``body`` defining ``name`` (a function, class or assignment)."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return node
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return node
        elif isinstance(node, ast.AnnAssign):
            if isinstance(node.target, ast.Name) and node.target.id == name:
                return node
    return None


def is_defined(path: str, names: list[str]) -> bool:
    """True when ``names`` (``Class``, ``Class::method``, ``test_x``, ``CONSTANT``) is
    defined in the Python file ``path``."""
    body: list[ast.stmt] = _module(path).body
    for name in names:
        node = _defined(body, name)
        if node is None:
            return False
        body = getattr(node, "body", [])
    return True


def tables(text: str) -> list[tuple[str, list[list[str]]]]:
    """(heading above it, rows) of every requirement table (header ``COLUMNS``)."""
    out: list[tuple[str, list[list[str]]]] = []
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if _cells(line) == COLUMNS:
            rows = []
            i += 2  # the header and its |---| line
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            out.append((heading, rows))
            continue
        i += 1
    return out


def _cells(line: str) -> list[str]:
    if not line.startswith("|"):
        return []
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_every_path_named_in_the_coverage_exists():
    refs = references(_text())
    assert len(refs) > 100, "the coverage names the code and tests it relies on"
    missing = sorted({p for p, _ in refs if not (REPO / p).exists()})
    assert not missing, f"docs/spec-coverage.md names paths that do not exist: {missing}"


def test_every_function_class_or_test_named_in_the_coverage_is_defined_there():
    refs = [(p, n) for p, n in references(_text()) if n and (REPO / p).is_file()]
    assert any(p.startswith("market_assets_tests/") for p, _ in refs)
    not_python = sorted({p for p, _ in refs if not p.endswith(".py")})
    assert not not_python, f"::name after a file that is not Python: {not_python}"
    undefined = sorted({"::".join([p, *n]) for p, n in refs if not is_defined(p, n)})
    assert not undefined, f"docs/spec-coverage.md names what is not defined: {undefined}"


def test_every_section_of_the_specification_has_its_heading():
    headings = {line[3:].strip() for line in _text().splitlines() if line.startswith("## ")}
    missing = [s for s in SPEC_SECTIONS if s not in headings]
    assert not missing, f"sections of the specification without a '## ' heading: {missing}"


def test_every_section_of_the_specification_has_a_requirement_table():
    text = _text()
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    by_name = {s.splitlines()[0].strip(): s for s in sections}
    empty = [s for s in SPEC_SECTIONS if s in by_name and not tables(by_name[s])]
    assert not empty, f"sections without a requirement table: {empty}"


def test_every_row_has_five_cells_a_known_status_and_a_test_when_met():
    problems = []
    rows = [(h, r) for h, table in tables(_text()) for r in table]
    assert len(rows) > 150
    for heading, row in rows:
        if len(row) != len(COLUMNS):
            problems.append(f"{heading}: {len(row)} cells, not {len(COLUMNS)}: {row}")
            continue
        requirement, status, _where, proof, _notes = row
        if status not in STATUSES:
            problems.append(f"{heading}: {requirement!r}: status {status!r} not in {STATUSES}")
        tests = [p for p, n in references(proof) if p.startswith("market_assets_tests/") and n]
        if status == "met" and not tests:
            problems.append(f"{heading}: {requirement!r} is met but names no test in Proof")
    assert not problems, "\n".join(problems)


def test_the_coverage_names_no_path_outside_the_repository():
    match = OUTSIDE.search(_text())
    assert match is None, f"docs/spec-coverage.md names {match.group(0)!r}"


def test_the_readme_links_the_coverage():
    assert "(docs/spec-coverage.md)" in (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        ("market_assets/core/nbbo.py::nbbo_deltas", True),
        ("market_assets/core/classify.py::NbboBook::classify", True),
        ("market_assets/core/classify.py::ClassifyParams::tick_rule_fallback", True),
        ("market_assets/core/schemas.py::SCHEMA_VERSION", True),
        ("market_assets/core/nbbo.py::no_such_function", False),
        ("market_assets/core/classify.py::NbboBook::no_such_method", False),
    ],
)
def test_the_checker_resolves_names_and_catches_missing_ones(token, ok):
    [(path, names)] = references(f"`{token}`")
    assert is_defined(path, names) is ok


def test_the_checker_finds_paths_and_tables_in_markdown():
    text = "\n".join(
        [
            "## Storage and retention",
            "| " + " | ".join(COLUMNS) + " |",
            "|---|---|---|---|---|",
            "| zstd | met | `market_assets/io/parquet_store.py` | `market_assets_tests/x.py::test_y` | |",
            "",
            "`SELECT 1` and `{storage.root}/x` are not paths; `README.md` is.",
        ]
    )
    assert references(text) == [
        ("market_assets/io/parquet_store.py", []),
        ("market_assets_tests/x.py", ["test_y"]),
        ("README.md", []),
    ]
    [(heading, rows)] = tables(text)
    assert heading == "Storage and retention" and rows[0][:2] == ["zstd", "met"]
    assert Path(REPO / rows[0][2].strip("`")).exists()
