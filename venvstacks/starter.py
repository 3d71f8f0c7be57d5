"""`venvstacks init [DIR]`: a starter stack folder that `doit` and `venvstacks build` work in."""

from __future__ import annotations

import sys
from pathlib import Path

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import check_folder_path
from venvstacks.layout import DEFAULT_BUILD_DIR, DEFAULT_EXPORT_DIR, DEFAULT_PUBLISH_DIR, STACK_FILE

STACK = """\
# A starter stack: one runtime and one application. `venvstacks docs stack-file` lists every field.

[[runtimes]]
name = "cpython-{python}"
python_implementation = "cpython@{python}"
requirements = []

# Frameworks hold big packages shared by several apps, e.g.:
# [[frameworks]]
# name = "web"
# runtime = "cpython-{python}"
# requirements = ["httpx"]
# An app then sits on it with `frameworks = ["web"]` in place of its `runtime = ...` line.

[[applications]]
name = "hello"
runtime = "cpython-{python}"
launch_module = "hello.py"
requirements = []
"""

LAUNCH = """\
\"\"\"Run with `(cd _build/app-hello && bin/python -m hello)` once `doit` (or `venvstacks build`) is
done: from the layer folder, so that Python imports the built copy, not this file.\"\"\"

import sys

print(f"hello from {sys.prefix}")
"""

DODO = "from venvstacks.dodo import *  # noqa: F403  (`venvstacks docs doit`)\n"

GITIGNORE = "".join(f"{folder}/\n" for folder in (DEFAULT_BUILD_DIR, DEFAULT_EXPORT_DIR, DEFAULT_PUBLISH_DIR))


def starter_files(python: str) -> dict[str, str]:
    """File name -> content of a starter folder (pure: `init` writes them)."""
    return {
        STACK_FILE: STACK.format(python=python),
        "hello.py": LAUNCH,
        "dodo.py": DODO,
        ".gitignore": GITIGNORE,
    }


def default_python() -> str:
    # The Python running venvstacks is one a local runtime can always be made from.
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def init_folder(folder: Path, python: str | None) -> list[Path]:
    """Write the starter files into folder; nothing is written if any of them exists.

    Beside a stack file that is already there (the user's own, perhaps made for the
    existing venvstacks), only `dodo.py` is written: plain `doit` then builds that stack.
    """
    check_folder_path(folder, "init")
    if (folder / STACK_FILE).is_file():
        if python is not None:
            raise VenvStacksError(
                f"{folder / STACK_FILE} already exists: --python only applies to a new stack "
                "(set the runtime in that file)"
            )
        files = {folder / "dodo.py": DODO}
    else:
        files = {folder / name: text for name, text in starter_files(python or default_python()).items()}
    present = [path.name for path in files if path.exists() or path.is_symlink()]
    if present:
        verb = "exists" if len(present) == 1 else "exist"
        raise VenvStacksError(
            f"{folder}: {', '.join(present)} already {verb}; init replaces no file "
            "(move it, or init another folder)"
        )
    written: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            with path.open("x", encoding="utf-8") as out:  # "x": never replace a file made meanwhile
                written.append(path)
                out.write(text)
    except BaseException as exc:
        for path in written:  # all or nothing
            path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            raise VenvStacksError(f"{folder}: cannot write the starter files ({reason})") from None
        raise
    return written
