"""A no-op run imports only what it needs: not packaging's requirement, marker and tag
parsers, pathspec or filelock (together about a third of a no-op's time of our own).

The run is made in a fresh interpreter up to the point where doit checks the tasks: the CLI
and dodo modules imported, the stack loaded and validated, every task dict created.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.cli_imports import run_in_fresh_interpreter
from tests.support.spec_files import RUNTIME, app, framework, write_stack

PROBE = """
import sys
from pathlib import Path
import venvstacks.cli, venvstacks.dodo
from venvstacks.engine.rundoit import hold_build_lock, load_stack_for, namespace
from venvstacks.engine.settings import Settings
from venvstacks.runtimes.options import RuntimeOptions
stack = load_stack_for(Path(sys.argv[1]), Path(sys.argv[1]).parent / "_build")
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


def test_a_stack_in_a_git_work_tree_loads_pathspec_only_until_its_verdicts_are_kept(tmp_path: Path) -> None:
    """Module folders under a `.gitignore` need pathspec once; the next run reads what it
    decided from the build folder (tests/test_ignore_verdicts.py: what makes it decide again)."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("*.log\n")
    extra = 'launch_module = "launch"\nsupport_modules = ["data"]'
    files = {"launch/__init__.py": "", "launch/x.log": "", "data/__init__.py": ""}
    path = write_stack(tmp_path / "stack", RUNTIME + app("hello", extra=extra), files)
    runs = [
        subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=False)
        for _ in range(2)
    ]
    assert [proc.returncode for proc in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert "pathspec" in runs[0].stdout.split()
    assert runs[1].stdout.split() == []


def test_requirements_with_versions_or_markers_load_packaging_only_until_found_valid(tmp_path: Path) -> None:
    """packaging checks a requirement that is not a bare name once; the build folder keeps
    that it was valid, so the next run parses none (an invalid one is still refused)."""
    fw = framework("web").replace(
        "requirements = []", 'requirements = ["h11>=0.15.0", "dlltracer; sys_platform == \'win32\'"]'
    )
    path = write_stack(tmp_path, RUNTIME + fw + app("hello", 'frameworks = ["web"]'), {"launch.py": ""})
    runs = [
        subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=False)
        for _ in range(2)
    ]
    assert [proc.returncode for proc in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert "packaging.requirements" in runs[0].stdout.split()
    assert runs[1].stdout.split() == ["packaging"]  # its version (its __init__ only), for the key
    path.write_text(path.read_text().replace("h11>=0.15.0", "h11>=0.15.0 extra"))
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert "invalid requirement 'h11>=0.15.0 extra'" in proc.stderr


def test_init_and_docs_import_no_doit_engine(tmp_path: Path) -> None:
    """They run no task graph, so they start without doit; a stack command (here `prune`
    of a missing stack, which fails after loading the workflow) is what loads it."""
    status, loaded = run_in_fresh_interpreter(["init", str(tmp_path / "mine"), "-q"], ["docs", "-q"])
    assert status[0] == 0 and (tmp_path / "mine" / "venvstacks.toml").is_file()
    assert loaded == []
    status, loaded = run_in_fresh_interpreter(["prune", str(tmp_path / "nowhere")])
    assert status != [0]  # no stack there: an error, after the workflow was loaded
    assert "doit" in loaded and "venvstacks.cli_workflow" in loaded


def test_the_command_and_the_dodo_collect_garbage_less_often() -> None:
    """Both entry points raise the collector's thresholds before the rest loads (a tenth of
    a no-op's CPU went to young collections over long-lived objects), never lowering one
    set higher before them."""
    probe = "import gc, sys; gc.set_threshold(*map(int, sys.argv[2:])); import {}; print(*gc.get_threshold())"
    for module in ("venvstacks.cli", "venvstacks.dodo"):
        for given, expected in (("700 10 10", "100000 50 50"), ("300000 5 80", "300000 50 80")):
            out = subprocess.run(
                [sys.executable, "-c", probe.format(module), "x", *given.split()],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert out.split() == expected.split(), (module, given)
