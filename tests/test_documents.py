"""Each document on disk is one typed class: what it writes reads back to the same bytes, and
a field of the wrong type is one line naming the file and the field (and, for a layer's
document, the layer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.spec_files import RUNTIME, app, framework, write_stack
from venvstacks.cli import main
from venvstacks.jsondoc import DocumentError
from venvstacks.layerconfig import read_layer_config
from venvstacks.layers.state import EnvIdentity
from venvstacks.layout import ENV_IDENTITY, LAYER_CONFIG, lock_files
from venvstacks.lock import locking, validity
from venvstacks.lock.lockmeta import AdoptedInputs, LockMetadata
from venvstacks.lock.pylockdoc import Pylock
from venvstacks.runtimes.record import RuntimeRecord
from venvstacks.ship.deploystate import STATE_FILE, DeployedLayer, DeployState
from venvstacks.ship.layermeta import LayerMetadata
from venvstacks.ship.manifest import Entry, FilesManifest
from venvstacks.stack.model import StackSpec
from venvstacks.stack.spec import load_stack

_WHEEL = '{url = "https://x.invalid/idna-3.7-py3-none-any.whl", hashes = {sha256 = "00"}}'
_LOCK = (
    f'lock-version = "1.0"\ncreated-by = "test"\n'
    f'packages = [{{name = "idna", version = "3.7", wheels = [{_WHEEL}]}}]\n'
)


def _stack(tmp_path: Path) -> StackSpec:
    toml = RUNTIME + framework("fw", extra="versioned = true") + app("hello", deps='frameworks = ["fw"]')
    return load_stack(write_stack(tmp_path, toml, {"launch.py": "print(1)\n"}))


def _locked(stack: StackSpec, name: str) -> Path:
    """A lock of ours for one layer, with the metadata `lock:` writes; returns the metadata file."""
    layer = stack.layer(name)
    files = lock_files(stack, layer)
    files.pylock.parent.mkdir(parents=True, exist_ok=True)
    files.pylock.write_text(_LOCK)
    locks = validity.Locks(stack)
    inputs = validity.input_hashes(stack, layer, locks.lower_locks(layer))
    locking._write_meta(locks.of(layer), Pylock.read(files.pylock), inputs, "3.11.9")
    return files.meta


def test_lock_metadata_reads_back_to_the_bytes_written(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    meta_file = _locked(stack, "framework-fw")
    text = meta_file.read_text()
    meta = LockMetadata.from_json(json.loads(text), meta_file)
    assert meta.text() == text
    assert meta.lock_version == 1 and meta.python_full_version == "3.11.9" and not meta.by_existing_tool
    assert set(json.loads(text)) == {
        "layer_name",
        "requirements_hash",
        "lock_input_hash",
        "other_inputs_hash",
        "constraints_hash",
        "python_full_version",
        "other_inputs",
        "version_inputs_hash",
        "lock_version",
        "locked_at",
    }
    # a lock of ours from before the exact version was recorded: no key, not a null
    del_key = {k: v for k, v in json.loads(text).items() if k != "python_full_version"}
    old = LockMetadata.from_json(del_key, meta_file)
    assert not old.full_version_recorded and "python_full_version" not in old.to_json()


def test_the_existing_tools_lock_metadata_is_told_apart() -> None:
    theirs = {"lock_input_hash": "sha256:a", "requirements_hash": "sha256:b", "lock_version": 3}
    meta = LockMetadata.from_json(theirs, Path("pylock.x.meta.json"))
    assert meta.by_existing_tool and meta.lock_version == 3 and meta.layer_name is None


def test_adopted_inputs_read_back_to_the_bytes_written(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    layer = stack.layer("app-hello")
    record = AdoptedInputs("sha256:r", validity.input_hashes(stack, layer, []), {"uv": "sha256:u"})
    path = tmp_path / "pylock.app-hello.inputs.json"
    path.write_text(record.text())
    assert AdoptedInputs.read(path) == record


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("lock_version", "2", "must be an integer, not '2' (a string)"),
        ("lock_version", True, "must be an integer, not True (a boolean)"),
        ("requirements_hash", 7, "must be a string, not 7 (a number)"),
        ("other_inputs", ["uv"], "must be an object, not ['uv'] (a list)"),
    ],
)
def test_a_bad_lock_metadata_value_is_one_line_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object, said: str
) -> None:
    stack = _stack(tmp_path)
    meta_file = _locked(stack, "framework-fw")
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), field: value}))
    with pytest.raises(DocumentError) as caught:
        LockMetadata.read(meta_file)
    assert str(caught.value) == f"{meta_file}: field {field!r}: {said}; delete it and lock the layer again"
    # what a user sees: that line, no traceback, a failing exit status
    assert main(["show", str(stack.path)]) == 1
    assert capsys.readouterr().err == f"error: {caught.value}\n"


def test_a_bad_layer_config_value_is_one_line_naming_the_layer_file_and_field(tmp_path: Path) -> None:
    layer = tmp_path / ".app-x.partial-1234"  # a deploy's staging folder: messages name the layer
    (layer / LAYER_CONFIG).parent.mkdir(parents=True)
    good = {
        "python": "bin/python",
        "base_python": "../rt/bin/python3",
        "py_version": "3.11.9",
        "site_dir": "lib",
    }
    (layer / LAYER_CONFIG).write_text(json.dumps({**good, "pylib_dirs": "../rt/lib"}))
    with pytest.raises(DocumentError) as caught:
        read_layer_config(layer, "app-x")
    assert str(caught.value) == (
        f"app-x/{LAYER_CONFIG}: field 'pylib_dirs': must be a list, not '../rt/lib' (a string); "
        "the layer is damaged or was edited; build or deploy it again"
    )
    (layer / LAYER_CONFIG).write_text(json.dumps({**good, "launch_module": None}))
    config = read_layer_config(layer)
    assert (
        config.app
        and config.launch_module is None
        and config.to_json()
        == {
            **good,
            "pylib_dirs": [],
            "dynlib_dirs": [],
            "launch_module": None,
        }
    )


def test_the_files_manifest_reads_back_to_the_bytes_written(tmp_path: Path) -> None:
    written = FilesManifest(
        {
            "bin/python": Entry("symlink", target="../../rt/bin/python3"),
            "lib": Entry("dir"),
            "lib/x.py": Entry("file", 0o644, 3, "ab" * 32),
        }
    )
    path = tmp_path / "venvstacks_files.json"
    path.write_text(written.text())
    assert FilesManifest.from_json(json.loads(path.read_text()), path).text() == path.read_text()
    bad = json.loads(path.read_text())
    bad["entries"]["lib/x.py"]["size"] = "3"
    with pytest.raises(DocumentError) as caught:
        FilesManifest.from_json(bad, path)
    assert str(caught.value).startswith(f"{path}: field 'lib/x.py.size': must be an integer, not '3'")


def test_the_env_identity_reads_back_and_a_damaged_one_counts_as_none(tmp_path: Path) -> None:
    record = RuntimeRecord("cpython@3.11", "cpython", "3.11.9", "local", "/usr", "ab" * 32)
    identity = EnvIdentity("venv", record, "linux_x86_64 glibc@2.28", "cpython-3.11")
    identity.write(tmp_path)
    assert EnvIdentity.read(tmp_path) == identity
    assert EnvIdentity.read(tmp_path / "nothing") is None
    written = tmp_path / ENV_IDENTITY
    written.write_text(written.read_text().replace('"venv"', "7"))  # the step then remakes the layer
    assert EnvIdentity.read(tmp_path) is None


def test_layer_metadata_keeps_fields_it_does_not_know_and_names_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "app-x.json"
    data = {
        "layer_name": "app-x",
        "install_target": "app-x@2",
        "lock_version": 2,
        "required_layers": ["framework-y"],
        "app_support_modules": [{"name": "helper", "hash": "sha256:h"}],
        "archive_hashes": {"sha256": "ab" * 32},
        "bound_to_implementation": False,
        "added_by_a_newer_version": {"x": [1]},
    }
    meta = LayerMetadata.from_json(data, path)
    assert meta.to_json() == data and meta.extra == {"added_by_a_newer_version": {"x": [1]}}
    assert meta.archive_sha256 == "ab" * 32 and meta.needs == ["framework-y"]
    with pytest.raises(DocumentError) as caught:
        LayerMetadata.from_json({**data, "app_support_modules": [{"name": "helper"}]}, path)
    assert str(caught.value) == (
        f"{path}: layer 'app-x': field 'app_support_modules[0].hash': is missing; "
        "the metadata is damaged or was edited"
    )


def test_the_deploy_state_reads_back_and_a_damaged_one_is_empty(tmp_path: Path) -> None:
    state = DeployState(str(tmp_path)).with_layer("app-x@2", DeployedLayer("ab" * 32, "app-x", "cd" * 32))
    state.write(tmp_path)
    assert DeployState.read(tmp_path) == state
    assert json.loads((tmp_path / STATE_FILE).read_text())["layers"]["app-x@2"]["layer_name"] == "app-x"
    (tmp_path / STATE_FILE).write_text('{"layers": {"app-x@2": {"sha256": 3}}}')
    assert DeployState.read(tmp_path) == DeployState()  # every layer is deployed afresh
