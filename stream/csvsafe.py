"""CSV cells that a spreadsheet will not run (pure).

A cell that starts with `=`, `+`, `-`, `@`, a tab, CR or LF is a formula to Excel, LibreOffice and Sheets
(OWASP "CSV injection"). In text cells control characters become spaces (a bare CR would also split the row
for some readers), and a cell that then starts so is prefixed with an apostrophe, which spreadsheets show as
text; numeric columns must hold numbers (a minus sign is then a negative number, not a formula) or be empty.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def text_cell(value: str) -> str:
    """`value` with control characters (CR, LF, tab, ...) as spaces, and an apostrophe in front when a spreadsheet
    would read it as a formula (also after leading spaces, which some trim)."""
    value = _CONTROL.sub(" ", value)
    return "'" + value if value.lstrip().startswith(FORMULA_STARTS) else value


def number_cell(value: str, column: str = "") -> str:
    """`value` when it is a plain decimal number or empty, else ValueError (never written to a CSV)."""
    if value and not NUMBER.fullmatch(value):
        raise ValueError(f"column {column!r} must hold a number, got {value[:40]!r}")
    return value


def csv_text(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: Collection[str] = ()) -> str:
    """The CSV (header, then rows): columns named in `text_columns` neutralised, all others checked as numbers."""
    text = [name in text_columns for name in header]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([text_cell(name) for name in header])
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells for {len(header)} columns")
        writer.writerow(
            [text_cell(cell) if is_text else number_cell(cell, name) for cell, is_text, name in zip(row, text, header)]
        )
    return out.getvalue()
