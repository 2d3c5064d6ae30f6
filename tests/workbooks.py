"""Reading test.sh's Excel reports back in tests."""

from __future__ import annotations


def read_sheet(ws) -> list[dict]:
    """A sheet whose first row is its header, as one dict per row."""
    values = list(ws.values)
    return [dict(zip(values[0], row)) for row in values[1:]]


def table_at(ws, first: str, second: str) -> list[dict]:
    """The table whose header row starts with these two cells, down to its first blank row."""
    rows = list(ws.iter_rows(values_only=True))
    start = next(i for i, r in enumerate(rows) if r[0] == first and r[1] == second)
    header = [h for h in rows[start] if h is not None]
    out = []
    for r in rows[start + 1 :]:
        if r[0] is None:
            break
        out.append(dict(zip(header, r)))
    return out
