"""What `.gitignore` rules decided is remembered in the build folder (stack/ignoreverdicts.py):
a run where no `.gitignore` and no module folder changed decides nothing again and does not
load pathspec, and any change is noticed: an edited, added or removed `.gitignore`, a new
file or folder in a module. Each run is a fresh process, as a user's runs are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from venvstacks.layout import VERDICTS

PROBE = """
import json, sys
from pathlib import Path
from venvstacks.stack import verdicts
from venvstacks.stack.modfiles import module_files
root, build = Path(sys.argv[1]), Path(sys.argv[2])
verdicts.remember_in(build / ".venvstacks-gitignore.json")
entries = [e.rel for e in module_files(root / "app", root)]
print(json.dumps({"entries": entries, "pathspec": "pathspec" in sys.modules}))
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git work tree (its root's .gitignore counts) holding a stack folder with a module."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("*.log\n")
    app = tmp_path / "stack" / "app"
    (app / "data").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "run.log").write_text("")
    (app / "data" / "table.csv").write_text("")
    (tmp_path / "stack" / "_build").mkdir()
    return tmp_path / "stack"


def listing(stack: Path) -> tuple[list[str], bool]:
    """The module's entries as a fresh process lists them, and whether it loaded pathspec."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(stack), str(stack / "_build")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = json.loads(proc.stdout)
    return out["entries"], out["pathspec"]


EXPECTED = ["__init__.py", "data", "data/table.csv"]


def test_a_run_where_nothing_changed_decides_nothing_again(repo: Path) -> None:
    assert listing(repo) == (EXPECTED, True)
    assert (repo / "_build" / VERDICTS).is_file()
    assert listing(repo) == (EXPECTED, False)


def test_an_edited_gitignore_is_noticed(repo: Path) -> None:
    listing(repo)
    (repo.parent / ".gitignore").write_text("*.log\ndata/\n")
    assert listing(repo) == (["__init__.py"], True)
    (repo.parent / ".gitignore").write_text("")
    assert listing(repo)[0] == ["__init__.py", "data", "data/table.csv", "run.log"]


def test_an_added_or_removed_gitignore_is_noticed(repo: Path) -> None:
    listing(repo)
    (repo / "app" / "data" / ".gitignore").write_text("*.csv\n")
    assert listing(repo)[0] == ["__init__.py", "data"]
    (repo / "app" / "data" / ".gitignore").unlink()
    assert listing(repo)[0] == EXPECTED
    (repo.parent / ".gitignore").unlink()
    assert listing(repo)[0] == ["__init__.py", "data", "data/table.csv", "run.log"]


def test_a_file_added_to_a_module_is_noticed(repo: Path) -> None:
    listing(repo)
    (repo / "app" / "data" / "more.csv").write_text("")
    (repo / "app" / "data" / "debug.log").write_text("")
    (repo / "app" / "sub").mkdir()
    assert listing(repo)[0] == ["__init__.py", "data", "data/more.csv", "data/table.csv", "sub"]
    assert listing(repo) == (["__init__.py", "data", "data/more.csv", "data/table.csv", "sub"], False)


@pytest.mark.parametrize("damage", ["not json", '{"version": 1, "verdicts": {"x": 1}}', "[]"])
def test_a_damaged_record_is_decided_again(repo: Path, damage: str) -> None:
    listing(repo)
    (repo / "_build" / VERDICTS).write_text(damage)
    assert listing(repo) == (EXPECTED, True)
    assert listing(repo) == (EXPECTED, False)


def test_no_build_folder_no_record(repo: Path) -> None:
    (repo / "_build").rmdir()
    assert listing(repo) == (EXPECTED, True)
    assert not (repo / "_build").exists()  # nothing is made just to remember verdicts
