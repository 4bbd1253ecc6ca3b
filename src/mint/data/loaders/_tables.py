"""Reading the CSV and JSON files of published layouts.

Every error names the file, the line (or entry) and the columns or fields that were expected, so
a user can fix a broken download without reading our code.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mint.errors import DataError


def find_file(root: Path, candidates: Sequence[str], what: str) -> Path:
    """`root` itself when it is a file, else the first of `candidates` (relative paths) under it."""
    if root.is_file():
        return root
    if not root.is_dir():
        raise DataError(f"{root}: no such file or folder (expected the {what})")
    for candidate in candidates:
        path = root / candidate
        if path.is_file():
            return path
    raise DataError(f"{root}: {what} not found; looked for {', '.join(candidates)}")


@dataclass(frozen=True)
class Row:
    """One data row of a CSV file, with what is needed to report a problem in it."""

    path: Path
    line: int
    values: dict[str, str]
    expected: tuple[str, ...]

    def error(self, problem: str) -> DataError:
        return DataError(
            f"{self.path}, line {self.line}: {problem} (expected columns: {', '.join(self.expected)})"
        )

    def text(self, column: str) -> str:
        value = self.values.get(column, "").strip()
        if not value:
            raise self.error(f"column '{column}' is empty")
        return value

    def optional(self, column: str) -> str | None:
        value = (self.values.get(column) or "").strip()
        return value or None

    def integer(self, column: str) -> int:
        value = self.text(column)
        try:
            return int(value)
        except ValueError:
            raise self.error(f"column '{column}' must be an integer, got {value!r}") from None

    def number(self, column: str) -> float:
        value = self.text(column)
        try:
            return float(value)
        except ValueError:
            raise self.error(f"column '{column}' must be a number, got {value!r}") from None


def read_csv(path: Path, required: Sequence[str], one_of: Sequence[str] = ()) -> Iterator[Row]:
    """Stream the rows of a CSV file whose header holds the `required` columns and, when `one_of`
    is given, at least one of those.

    Blank lines are skipped; a row with more or fewer fields than the header is an error rather
    than being padded, because a shifted row would put a caption in the label column.
    """
    expected = (*required, " and/or ".join(one_of)) if one_of else tuple(required)
    line = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if header is None:
                raise DataError(f"{path}: empty file; expected a header with columns {', '.join(expected)}")
            missing = [column for column in required if column not in header]
            if one_of and not any(column in header for column in one_of):
                missing.append(" or ".join(one_of))
            if missing:
                raise DataError(
                    f"{path}, line 1: missing column(s) {', '.join(missing)}; expected columns: "
                    f"{', '.join(expected)} (found: {', '.join(header)})"
                )
            width = len(header)
            for values in reader:
                line = reader.line_num
                row = Row(path, line, values, expected)
                if None in values:
                    raise row.error(f"row has more than the header's {width} fields")
                if any(value is None for value in values.values()):
                    raise row.error(f"row has fewer than the header's {width} fields")
                yield row
    except csv.Error as error:
        raise DataError(f"{path}, line {line + 1}: not a readable CSV row ({error})") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def read_json(path: Path) -> object:
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}, line {error.lineno}: not valid JSON ({error.msg} at column {error.colno})"
        ) from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
