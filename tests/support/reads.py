"""Which files one step of the build reads, and how often: `python -m tests.support.reads`
runs the step in a process of its own (as doit may; nothing parsed by an earlier step is
left in memory) with an audit hook counting every file opened for reading, and prints them.

Three kinds of read are told apart from a parse: the comparison `fsutil.write_if_changed`
makes with the file it is about to write (left out: the writer checking its own output),
the bytes of a layer's files that `publish:` hashes into the files manifest and then
archives (`payload`: an archive's contents, read by `venvstacks.archive` and
`venvstacks.ship.manifest`, not facts), and files copied byte for byte (`copy`, by
`shutil`: the current lock handed to uv as its seed)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

PAYLOAD_MODULES = ("venvstacks.archive.", "venvstacks.ship.manifest")
COPYING_MODULES = ("shutil",)


class Reads:
    """Counts, per (file, "parse" or "payload"), the reads made while `on` is set."""

    def __init__(self) -> None:
        from venvstacks import fsutil

        self.counts: Counter[tuple[str, str]] = Counter()
        self.on = False
        self._guard = threading.Lock()
        self._skipped = {fsutil.write_if_changed.__code__}
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or not self.on:
            return
        path, mode, flags = args
        if not isinstance(path, (str, bytes, os.PathLike)) or not _is_read(mode, flags):
            return
        kind = "parse"
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code in self._skipped:
                return
            module = str(frame.f_globals.get("__name__", ""))
            if module.startswith(PAYLOAD_MODULES):
                kind = "payload"
            elif module in COPYING_MODULES:
                kind = "copy"
            frame = frame.f_back  # type: ignore[assignment]
        with self._guard:
            self.counts[os.path.abspath(os.fsdecode(path)), kind] += 1


def _is_read(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str):  # open(), Path.open()
        return not any(c in mode for c in "wax+")
    return isinstance(flags, int) and flags & os.O_ACCMODE == os.O_RDONLY  # os.open()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=["lock", "export", "publish"])
    parser.add_argument("layer")
    parser.add_argument("spec", type=Path)
    parser.add_argument("--runtime-cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the JSON file of counted reads")
    args = parser.parse_args()

    from venvstacks.engine import actions
    from venvstacks.engine.settings import Settings
    from venvstacks.runtimes.options import RuntimeOptions
    from venvstacks.stack.spec import load_stack

    settings = Settings(
        load_stack(args.spec), args.spec.parent / "_build", RuntimeOptions(args.runtime_cache)
    )
    step = {"lock": actions.lock, "export": actions.export, "publish": actions.publish}[args.step]
    reads = Reads()
    reads.on = True
    try:
        step(settings, args.layer)
    finally:
        reads.on = False
    counted = [[path, kind, n] for (path, kind), n in sorted(reads.counts.items())]
    args.out.write_text(json.dumps(counted))


if __name__ == "__main__":
    main()
