"""The long fuzz campaign of issue 16: thousands of generated hostile inputs against every entry point.

    python benchmarks/fuzz_campaign.py                    # about 5,300 inputs, writes results/fuzz_campaign.md
    python benchmarks/fuzz_campaign.py --scale 0.2        # a fifth of that

Each entry point's inputs are drawn by hypothesis from the generators in tests/fuzzing.py, in batches
of 50 with their own seeds.  A batch runs in a worker process that reports one JSON line per input; a
worker that dies from a signal (an abort, a segfault) is counted as one ``abort`` and replaced, and the
campaign goes on with the next batch.  The table counts the outcome classes per entry point:
``result`` (finite, or honestly flagged), ``error`` (a documented error), ``unexpected`` (any other
exception type, a traceback), ``nan_converged`` (non-finite values reported as converged), ``abort``.
The target is 0 in the last three.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLAN = {"formula": 1500, "glmer": 1000, "after_fit": 500, "meta": 600, "tree": 600, "gwas": 300,
        "singlecell": 200, "cli": 600}
BATCH = 50
CLASSES = ["result", "error", "unexpected", "nan_converged", "abort"]


def worker(entry: str, seeds: list[int]) -> None:
    """Run batches of ``entry`` with the given seeds; one JSON line per input on stdout."""
    import tempfile
    import warnings

    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st

    from tests.fuzzing import CASES, case_cli

    warnings.simplefilter("ignore")

    def one(data):
        if entry == "cli":
            with tempfile.TemporaryDirectory() as tmp:
                return case_cli(data, Path(tmp))
        return CASES[entry](data)

    for s in seeds:
        @seed(s)
        @settings(max_examples=BATCH, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def run(data):
            status, detail = one(data)
            print(json.dumps({"seed": s, "status": status, "detail": detail[:300]}), flush=True)

        run()


def campaign(scale: float, out: Path) -> dict:
    counts = {e: collections.Counter() for e in PLAN}
    examples: dict[str, list[str]] = collections.defaultdict(list)
    t0 = time.perf_counter()
    seconds = {}
    for entry, n in PLAN.items():
        t1 = time.perf_counter()
        batches = list(range(max(1, round(n * scale / BATCH))))
        while batches:
            proc = subprocess.Popen([sys.executable, __file__, "--worker", entry, ",".join(map(str, batches))],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
            done = collections.Counter()
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue  # anything a library printed to stdout
                rec = json.loads(line)
                counts[entry][rec["status"]] += 1
                done[rec["seed"]] += 1
                if rec["status"] not in ("result", "error") and len(examples[entry]) < 5:
                    examples[entry].append(f"{rec['status']}: {rec['detail']}")
            code = proc.wait()
            finished = [b for b in batches if done[b] >= BATCH]
            if code < 0:  # killed by a signal: an abort inside glmmkit or a library under it
                counts[entry]["abort"] += 1
                current = next((b for b in batches if b not in finished), None)
                examples[entry].append(f"abort: signal {-code} in batch seed {current}")
                batches = [b for b in batches if b not in finished and b != current]
            elif code != 0:
                examples[entry].append(f"worker exit status {code}")
                batches = []
            else:
                batches = []
        seconds[entry] = time.perf_counter() - t1
        print(f"{entry:10s} " + " ".join(f"{c} {counts[entry][c]}" for c in CLASSES)
              + f"  ({seconds[entry]:.0f} s)", flush=True)
    total = collections.Counter()
    for c in counts.values():
        total.update(c)
    result = {"counts": {e: dict(c) for e, c in counts.items()}, "total": dict(total),
              "examples": dict(examples), "seconds": seconds, "wall_s": time.perf_counter() - t0}
    write(result, out)
    return result


def write(result: dict, out: Path) -> None:
    from glmmkit.output import write_json, write_text

    lines = ["# Fuzz campaign (issue 16)", "",
             f"`python benchmarks/fuzz_campaign.py`: {sum(result['total'].values())} generated inputs in "
             f"{result['wall_s']:.0f} s, generators in tests/fuzzing.py, batches of {BATCH} per worker process.", "",
             "| entry point | inputs | " + " | ".join(CLASSES) + " |",
             "|---|---:|" + "---:|" * len(CLASSES)]
    for e, c in result["counts"].items():
        lines.append(f"| {e} | {sum(c.values())} | " + " | ".join(str(c.get(k, 0)) for k in CLASSES) + " |")
    t = result["total"]
    lines.append(f"| **all** | **{sum(t.values())}** | " + " | ".join(f"**{t.get(k, 0)}**" for k in CLASSES) + " |")
    bad = {e: x for e, x in result["examples"].items() if x}
    lines += ["", "Failures (first five per entry point):" if bad else "No failures."]
    for e, xs in bad.items():
        lines += [f"- {e}: " + "; ".join(xs)]
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    write_json(out.with_suffix(".json"), result)
    print("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the planned inputs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fuzz_campaign"))
    ap.add_argument("--worker", nargs=2, metavar=("ENTRY", "SEEDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], [int(s) for s in args.worker[1].split(",")])
        return 0
    result = campaign(args.scale, Path(args.out))
    failures = sum(result["total"].get(k, 0) for k in ("unexpected", "nan_converged", "abort"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
