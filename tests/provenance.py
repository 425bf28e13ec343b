"""Expected values, read from the fixtures' own PROVENANCE.md tables (written when the logs were copied,
by a separate helper), so the tests compare our parsers with an independent reading of the same files."""

from __future__ import annotations

from pathlib import Path


def _tables(text: str, heading: str) -> list[dict[str, str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in lines[start + 1 :]:
        if line.startswith("#") and rows:
            break
        if not line.startswith("|"):
            if header is not None and rows:
                break
            continue
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif set(cells[0]) <= {"-", ":"}:
            continue
        else:
            rows.append(dict(zip(header, cells, strict=False)))
    return rows


def inference_perf_rows(fixtures: Path) -> list[dict[str, str]]:
    return _tables((fixtures / "PROVENANCE.md").read_text(), "## Values parsed")


def inference_accuracy_rows(fixtures: Path) -> list[dict[str, str]]:
    return _tables((fixtures / "PROVENANCE.md").read_text(), "### Accuracy dirs")


def training_rows(fixtures: Path) -> list[dict[str, str]]:
    return _tables((fixtures / "PROVENANCE.md").read_text(), "## Files")
