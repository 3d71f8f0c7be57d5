"""Notes written to stderr from several threads at once stay whole lines."""

from __future__ import annotations

import re
import subprocess
import sys

# Four threads say 2000 lines each, as parallel tasks or deploy's layer workers do; stderr
# is the real one (a pipe), where each write goes straight to the file.
_SCRIPT = """
import threading
from venvstacks.console import say

def worker(n):
    for i in range(2000):
        say(f"Deploying layer-{n} from layer-{n}.tar.xz ({i})")

threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


def test_lines_from_parallel_threads_are_not_mixed() -> None:
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True)
    lines = proc.stderr.split("\n")
    assert lines.pop() == ""  # the last line ends with its newline too
    whole = re.compile(r"Deploying layer-(\d) from layer-\1\.tar\.xz \(\d+\)")
    assert [line for line in lines if not whole.fullmatch(line)] == []
    assert len(lines) == 4 * 2000
