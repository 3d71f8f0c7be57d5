"""Start-up cost of a layer's `bin/python` script over running `bin/python_` directly.

Usage: `python bench/python_script.py [LAYER]` (default: the sample's app-scipy-import in
`stacks/sample/_build`, made by `python3 dev.py sample`). Runs `env -i <python> -c pass`
through each, interleaved, and prints the median and minimum wall times.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

RUNS = 60
DEFAULT = Path(__file__).parents[1] / "stacks/sample/_build/app-scipy-import"


def main() -> None:
    layer = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    times: dict[str, list[float]] = {"bin/python_": [], "bin/python": []}
    for _ in range(RUNS):
        for name, found in times.items():
            start = time.perf_counter()
            subprocess.run(["env", "-i", layer / name, "-c", "pass"], check=True)
            found.append(time.perf_counter() - start)
    for name, found in times.items():
        found.sort()
        median, fastest = found[RUNS // 2] * 1000, found[0] * 1000
        print(f"{name:12} median {median:5.1f} ms, min {fastest:5.1f} ms ({RUNS} runs, interleaved)")


if __name__ == "__main__":
    main()
