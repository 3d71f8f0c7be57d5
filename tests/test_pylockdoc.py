"""A pylock file as one typed document (venvstacks/lock/pylockdoc.py): read back to the bytes
written, a bad value is one line naming the file and the field, and where `packaging.pylock`
checks the lock and where it cannot."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.pylock import Pylock as StandardPylock
from packaging.pylock import PylockValidationError

from tests.support.pylock_data import assert_round_trips
from venvstacks.jsondoc import DocumentError
from venvstacks.lock.pylockdoc import FROM_LOWER_LAYER, Pylock

SAMPLE_LOCKS = sorted((Path(__file__).parents[1] / "stacks").glob("*/requirements/*/pylock.*.toml"))
_WHEEL = '{ url = "https://x.invalid/idna-3.7-py3-none-any.whl", hashes = { sha256 = "00" } }'


def _lock(tmp_path: Path, packages: str) -> Path:
    path = tmp_path / "pylock.fw.toml"
    path.write_text(f'lock-version = "1.0"\ncreated-by = "uv"\n{packages}')
    return path


@pytest.mark.parametrize("path", SAMPLE_LOCKS, ids=lambda p: p.name)
def test_committed_locks_read_back_to_their_bytes(path: Path) -> None:
    assert_round_trips(path)


def test_what_is_read_is_typed(tmp_path: Path) -> None:
    path = _lock(
        tmp_path,
        "[[packages]]\n"
        'name = "numpy"\nversion = "2.3.2"\n'
        f'marker = "{FROM_LOWER_LAYER}"\n\n'
        "[[packages]]\n"
        'name = "idna"\nversion = "3.7"\nmarker = "python_version >= \'3.9\'"\n'
        'index = "https://pypi.org/simple"\n'
        f"wheels = [{_WHEEL}]\n",
    )
    lock = Pylock.read(path)
    numpy, idna = lock.packages
    assert numpy.is_from_lower_layer and not idna.is_from_lower_layer
    assert lock.pins == {"idna": ("3.7", "python_version >= '3.9'")}
    (wheel,) = idna.all_wheels
    assert (wheel.file_name, wheel.hashes) == ("idna-3.7-py3-none-any.whl", {"sha256": "00"})
    assert {str(t) for t in wheel.tags} == {"py3-none-any"}
    assert Pylock.read(tmp_path / "missing.toml") == Pylock()  # a layer not locked yet


@pytest.mark.parametrize(
    ("packages", "message"),
    [
        ('packages = "x"\n', "field 'packages': must be a list, not 'x' (a string)"),
        ('packages = [{ name = "idna", version = 3 }]\n', "field 'packages[0].version': must be a string"),
        ('packages = [{ version = "1" }]\n', "field 'packages[0].name': is missing"),
        (
            'packages = [{ name = "idna", version = "3.7", wheels = [{ url = "x", hashes = { s = 0 } }] }]\n',
            "field 'packages[0].wheels[0].hashes': every value must be a string",
        ),
        # What packaging.pylock checks, for the packages venvstacks installs:
        (
            f'packages = [{{ name = "numpy", version = "1", marker = "{FROM_LOWER_LAYER}" }},'
            f' {{ name = "IDNA", version = "3.7", wheels = [{_WHEEL}] }}]\n',
            "field 'packages[1].name': Name 'IDNA' is not normalized",
        ),
        ('packages = [{ name = "idna", version = "3.7" }]\n', "field 'packages[0]': Exactly one of vcs"),
        ("not = [toml", "not a valid pylock file (Invalid value (at line 3"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_file_and_field(
    tmp_path: Path, packages: str, message: str
) -> None:
    path = _lock(tmp_path, packages)
    with pytest.raises(DocumentError) as info:
        Pylock.read(path)
    text = str(info.value)
    assert text.startswith(f"{path}: {message}"), text
    assert text.endswith("; delete it and lock again") and "\n" not in text


def test_the_existing_tools_lower_layer_entries_keep_their_marker_and_are_not_checked(
    tmp_path: Path,
) -> None:
    """The existing venvstacks joins a package's own marker to the never-true clause
    (examples/pytorch's app locks); such an entry has no source and must still read."""
    marker = f"(sys_platform == 'darwin') and {FROM_LOWER_LAYER}"
    path = _lock(tmp_path, f'[[packages]]\nname = "torch"\nversion = "2.8.0"\nmarker = "{marker}"\n')
    (torch,) = Pylock.read(path).packages
    assert torch.never_installed and torch.marker == marker


def test_packaging_rejects_the_lower_layer_entries_and_accepts_the_rest() -> None:
    """Why `Pylock` is not `packaging.pylock.Pylock` (see docs/concepts.md, "Locking")."""
    (path,) = [p for p in SAMPLE_LOCKS if p.name == "pylock.framework-scipy.toml"]
    data = tomllib.loads(path.read_text())
    with pytest.raises(PylockValidationError, match="Exactly one of vcs, directory, archive"):
        StandardPylock.from_dict(data)
    own = [p for p in data["packages"] if p.get("marker") != FROM_LOWER_LAYER]
    standard = StandardPylock.from_dict({**data, "packages": own})
    assert standard.to_dict() == {**data, "packages": own}  # the same values...
    assert list(standard.to_dict()) != list(data)  # ...in another order: not today's bytes
    assert Pylock.read(path).to_dict() == data
