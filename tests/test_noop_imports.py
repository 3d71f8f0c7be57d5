"""A no-op run imports only what it needs: not packaging's requirement, marker and tag
parsers, pathspec or filelock (together about a third of a no-op's time of our own).

The run is made in a fresh interpreter up to the point where doit checks the tasks: the CLI
and dodo modules imported, the stack loaded and validated, every task dict created.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.spec_files import RUNTIME, app, framework, write_stack

PROBE = """
import sys
from pathlib import Path
import venvstacks.cli, venvstacks.dodo
from venvstacks.engine.rundoit import hold_build_lock, namespace
from venvstacks.engine.settings import Settings
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.spec import load_stack
stack = load_stack(Path(sys.argv[1]))
settings = Settings(stack, stack.root / "_build", RuntimeOptions(cache_dir=stack.root / "cache"))
hold_build_lock(settings.build_dir)
tasks = [t for name, creator in namespace(settings).items() if name.startswith("task_") for t in creator()]
assert len(tasks) > 6, tasks
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("packaging", "pathspec", "filelock"))))
"""


def test_a_no_op_run_leaves_the_slow_imports_alone(tmp_path: Path) -> None:
    web = framework("web").replace("requirements = []", 'requirements = ["idna"]')
    stack = RUNTIME + web + app("hello", 'frameworks = ["web"]')
    path = write_stack(tmp_path, stack, {"launch.py": ""})
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []
