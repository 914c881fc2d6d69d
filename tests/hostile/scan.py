"""Run the hostile-input scans and print the table of outcomes.

    python tests/hostile/scan.py            # the samples the tests run
    python tests/hostile/scan.py --full     # every case (the whole bit-flip scan: slow)

Each ``cases_<area>.py`` module beside this file gives ``cases(full: bool) -> list[Case]``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from outcomes import table, tally  # noqa: E402


def areas() -> list[str]:
    return sorted(path.stem[len("cases_"):] for path in HERE.glob("cases_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every case, not the tests' sample")
    parser.add_argument("--areas", help=f"comma-separated, from: {', '.join(areas())}")
    args = parser.parse_args(argv)
    chosen = args.areas.split(",") if args.areas else areas()
    counts = {}
    for area in chosen:
        module = importlib.import_module(f"cases_{area}")
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            found = tally(module.cases(full=args.full), Path(folder), sentinel=getattr(module, "SENTINEL", None))
        counts.update(found)
        print(f"{area}: {sum(sum(r.values()) for r in found.values())} cases in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
    print(table(counts))
    bad = sum(row["traceback"] + row["wrong result"] + row["code executed"] for row in counts.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
