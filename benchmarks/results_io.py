"""Where the benchmarks write their tables: benchmarks/results/<name>.md (and print them)."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_result(name: str, text: str, echo: bool = True) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    if echo:
        print(text)
    return path
