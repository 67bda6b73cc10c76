"""Where the benchmarks write their tables: benchmarks/results/<name>.md (and print them)."""

from __future__ import annotations

from pathlib import Path

from glmmkit.output import write_text

RESULTS = Path(__file__).parent / "results"


def write_result(name: str, text: str, echo: bool = True) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    write_text(path, text)  # atomically: a failed run leaves the previous table
    if echo:
        print(text)
    return path
