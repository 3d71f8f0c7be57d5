"""Stack files for the spec tests: TOML snippets for each layer kind, written to a folder.

`write_stack` puts a venvstacks.toml (and any files it names) in a folder; `one_error_line`
runs the real CLI on it and checks the error contract: exit code 2 and exactly one line on
stderr starting with `error: `, and never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from venvstacks.cli import main

RUNTIME = """
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = []
"""
RUNTIME_312 = """
[[runtimes]]
name = "cpython-3.12"
python_implementation = "cpython@3.12"
requirements = []
"""
INDEX = """
[tool.uv]
[[tool.uv.index]]
name = "mirror"
url = "http://127.0.0.1:9/simple"
explicit = true
"""
OTHER_INDEX = '[[tool.uv.index]]\nname = "other"\nurl = "http://127.0.0.1:9/other"\n'


def framework(name: str, deps: str = 'runtime = "cpython-3.11"', extra: str = "") -> str:
    return f'\n[[frameworks]]\nname = "{name}"\n{deps}\nrequirements = []\n{extra}\n'


def app(name: str, deps: str = 'runtime = "cpython-3.11"', extra: str = "") -> str:
    launch = "" if "launch_module" in extra else 'launch_module = "launch.py"\n'
    return f'\n[[applications]]\nname = "{name}"\n{deps}\n{launch}requirements = []\n{extra}\n'


def write_stack(tmp_path: Path, toml: str, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    path = tmp_path / "venvstacks.toml"
    path.write_text(toml)
    return path


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert err.endswith("\n")
    assert lines[0].startswith("error: ")
    return lines[0]
