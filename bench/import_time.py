"""Cold-start import cost: ``import function_app`` against ``import azure.functions`` (its floor).

    python bench/import_time.py --runs 15

Each import runs in a fresh interpreter (like a Functions cold start); prints the median wall time of each
and the ratio. The app must stay within 1.3x of azure.functions: no SDK import, no client, no I/O at import.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(statement: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    median_seconds("import azure.functions", 2)  # warm the OS file cache for both
    base = median_seconds("import azure.functions", args.runs)
    app = median_seconds("import function_app", args.runs)
    sdk = subprocess.run([sys.executable, "-c", "import sys, function_app; print(sorted(m for m in sys.modules "
                          "if m.startswith(('azure.mgmt', 'azure.monitor', 'azure.identity', 'azure.storage'))))"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    print(f"import azure_functions_ms={base * 1000:.0f} function_app_ms={app * 1000:.0f} "
          f"ratio={app / base:.2f} sdk_modules_loaded={sdk}")


if __name__ == "__main__":
    main()
