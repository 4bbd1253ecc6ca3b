"""docs/reliability.md stays true to the tests: its tables name only real tests, and name them all."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
DOC = TESTS.parent / "docs" / "reliability.md"
HEADER = ["Fault", "How it is tried", "Observed result", "Test"]
REFERENCE = re.compile(r"`([\w/]+\.py)::(\w+)`")


def table_rows(text: str) -> list[list[str]]:
    """The body rows of every table whose header is HEADER, as lists of cells."""
    rows, in_table = [], False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells == HEADER:
            in_table = True
        elif in_table and not set("".join(cells)) <= set("- "):
            rows.append(cells)
    return rows


def _test_names_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def test_every_row_names_real_tests_and_every_test_has_a_row() -> None:
    rows = table_rows(DOC.read_text())
    assert len(rows) >= 20, f"expected the fault tables in {DOC}, found {len(rows)} rows"
    named: set[tuple[str, str]] = set()
    for cells in rows:
        assert len(cells) == len(HEADER) and all(cells), f"incomplete row: {cells}"
        references = REFERENCE.findall(cells[-1])
        assert references, f"row {cells[0]!r} names no test"
        for file, function in references:
            path = TESTS / file if "/" in file else TESTS / "reliability" / file
            assert path.is_file(), f"row {cells[0]!r}: no test file {path}"
            assert function in _test_names_in(path), f"row {cells[0]!r}: no {function} in {path}"
            named.add((path.name, function))
    for path in sorted((TESTS / "reliability").glob("test_reliability_*.py")):
        for function in sorted(_test_names_in(path)):
            assert (path.name, function) in named, f"{path.name}::{function} is not in {DOC.name}"
