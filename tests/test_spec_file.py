"""The stack file as a file: finding it, reading it, parsing it as TOML.

Through the real CLI (`venvstacks show`) where a user would see it: a missing file, a folder
without one, invalid TOML (with its line number), bytes that are not UTF-8, an invalid side
venvstacks.uv.toml, and a stack file with another name, each giving exactly one error line that
names the file. The catalogue of errors inside a valid file is in test_spec_errors.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.spec_files import RUNTIME, framework, one_error_line, write_stack
from venvstacks.errors import SpecError
from venvstacks.stack.spec import load_stack


def test_invalid_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_stack(tmp_path, RUNTIME + "\n[[frameworks]\nname = 'x'\n", {})
    line = one_error_line(capsys, ["show", str(path)])
    assert line.startswith("error: venvstacks.toml: not valid TOML")
    assert "line 7" in line  # the user can go straight to the broken line
    assert "fix the syntax" in line


def test_stack_file_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "venvstacks.toml"
    line = one_error_line(capsys, ["show", str(path)])
    hint = "pass the path to a venvstacks.toml, or write a starter stack with `venvstacks init`"
    assert line == f"error: venvstacks.toml: stack file not found ({path}); {hint}"


def test_folder_without_a_stack_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(capsys, ["show", str(tmp_path)])
    assert f"venvstacks.toml: stack file not found ({tmp_path / 'venvstacks.toml'})" in line


def test_stack_file_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "venvstacks.toml"
    path.write_bytes(RUNTIME.encode() + b"# caf\xe9\n")
    line = one_error_line(capsys, ["show", str(path)])
    assert line == "error: venvstacks.toml: is not UTF-8 text; save it as UTF-8"


def test_stack_path_is_a_folder_through_the_api(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=re.escape("is a folder; pass the path to a venvstacks.toml")):
        load_stack(tmp_path)


def test_invalid_side_uv_config_names_that_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_stack(tmp_path, RUNTIME, {"venvstacks.uv.toml": "index = [\n"})
    line = one_error_line(capsys, ["show", str(path)])
    assert line.startswith("error: venvstacks.uv.toml: not valid TOML")


def test_any_file_name_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "my-stack.toml"
    path.write_text(RUNTIME + framework("fw", extra="bogus = 1"))
    line = one_error_line(capsys, ["show", str(path)])
    assert line.startswith("error: my-stack.toml: layer 'framework-fw': field 'bogus': unknown field")
