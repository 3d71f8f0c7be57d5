"""Every [tool.uv] setting reaches uv or is refused; doit and the lock metadata agree on
what the lock's inputs are."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from doit.tools import config_changed

from tests.support.pylock_data import locked
from tests.support.stacks import Stack
from tests.support.wheels import make_wheel
from venvstacks.engine import tasks
from venvstacks.engine.settings import Settings
from venvstacks.lock import validity
from venvstacks.lock.uvconfig import LockOptions
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.spec import load_stack


def _pin_stack(stack: Stack, uv: str) -> None:
    for version in ("1.0", "2.0"):
        make_wheel(stack.root / "wheels", "vstest-pin", version)
    stack.framework_requirements = ["vstest-pin"]
    stack.app_requirements = []
    stack.write()
    stack.spec.write_text(stack.spec.read_text() + "\n[tool.uv]\n" + uv)


def _locked_version(stack: Stack, name: str) -> str:
    return locked(stack.root / "requirements" / "framework-web" / "pylock.framework-web.toml", name).version


@pytest.mark.parametrize(
    "setting",
    ['override-dependencies = ["vstest-pin==1.0"]', 'constraint-dependencies = ["vstest-pin<2"]'],
)
def test_resolution_settings_reach_uv(stack: Stack, setting: str) -> None:
    _pin_stack(stack, setting + "\n")
    stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels")
    assert _locked_version(stack, "vstest-pin") == "1.0"  # 2.0 without the setting


@pytest.mark.parametrize(
    ("uv", "field", "reason"),
    [
        ("compile-bytecode = true\n", "tool.uv.compile-bytecode", "deploy byte-compiles"),
        ("python-preference = 'only-system'\n", "tool.uv.python-preference", "runtimes itself"),
        ("no-binary = true\n", "tool.uv.no-binary", "wheels only"),
        ("conflicts = []\n", "tool.uv.conflicts", "not a uv project"),
        ("compile-bytecod = true\n", "tool.uv.compile-bytecod", "(did you mean 'compile-bytecode'?)"),
        ("[tool.uv.pip]\nuniversal = true\n", "tool.uv.pip", "directly in [tool.uv]"),
    ],
)
def test_a_setting_without_effect_is_one_warning_and_the_stack_locks(
    stack: Stack, uv: str, field: str, reason: str
) -> None:
    # As the existing venvstacks, which passes every key on: no key stops a stack.
    _pin_stack(stack, uv)
    run = stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels")
    warnings = [line for line in run.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "Traceback" not in run.err
    assert f"venvstacks.toml: field '{field}' is ignored" in warnings[0] and reason in warnings[0]
    assert _locked_version(stack, "vstest-pin") == "2.0"


def test_a_source_that_needs_a_build_is_refused_in_one_line(stack: Stack) -> None:
    _pin_stack(stack, '[tool.uv.sources]\nvstest-pin = { git = "https://example.invalid/x.git" }\n')
    run = stack.venvstacks("lock", str(stack.spec), check=False)
    assert run.code == 2 and len(run.err.strip().splitlines()) == 1
    assert "field 'tool.uv.sources.vstest-pin': cannot apply: " in run.err and "build from source" in run.err
    assert not (stack.root / "requirements").exists()


def test_venvstacks_uv_toml_settings_are_checked_too(stack: Stack) -> None:
    (stack.root / "venvstacks.uv.toml").write_text("compile-bytecode = true\n")
    run = stack.venvstacks("show", str(stack.spec))
    assert run.err.strip() == (
        "warning: venvstacks.uv.toml: field 'compile-bytecode' is ignored: "
        "uv's .pyc files never ship: deploy byte-compiles on the target, or publish --bytecode ships its own"
    )


def test_upgrade_reaches_uv(stack: Stack) -> None:
    make_wheel(stack.root / "wheels", "vstest-pin", "1.0")
    _pin_stack(stack, "")
    (stack.root / "wheels" / "vstest_pin-2.0-py3-none-any.whl").unlink()
    stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels")
    make_wheel(stack.root / "wheels", "vstest-pin", "2.0")
    stack.spec.write_text(stack.spec.read_text() + 'prerelease = "allow"\n')
    stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels")
    assert _locked_version(stack, "vstest-pin") == "1.0"  # a relock keeps its pins...
    stack.spec.write_text(stack.spec.read_text() + "upgrade = true\n")
    stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels")
    assert _locked_version(stack, "vstest-pin") == "2.0"  # ...unless [tool.uv] upgrade says otherwise


def test_environments_spare_the_platforms_they_leave_out(stack: Stack) -> None:
    # A package with a Linux wheel only: every platform of the layer must have a wheel,
    # unless [tool.uv] environments (as in the existing venvstacks' mlx example) leave it out.
    make_wheel(stack.root / "wheels", "vstest-linux", "1.0", tag="py3-none-manylinux_2_17_x86_64")
    stack.framework_requirements = ["vstest-linux"]
    stack.app_requirements = []
    stack.write()
    text = stack.spec.read_text()
    failed = stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels", check=False)
    assert failed.code != 0 and "vstest-linux==1.0 has no wheel for" in failed.out
    environments = (
        "\n[tool.uv]\nenvironments = [\"sys_platform == 'linux' and platform_machine == 'x86_64'\"]\n"
    )
    stack.spec.write_text(text + environments)
    run = stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels")
    assert (
        "framework-web: win_amd64, win_arm64, linux_aarch64, macosx_arm64, macosx_x86_64 outside" in run.err
    )
    assert _locked_version(stack, "vstest-linux") == "1.0"
    stack.spec.write_text(text + environments + "required-environments = [\"sys_platform == 'win32'\"]\n")
    failed = stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels", check=False)
    assert "vstest-linux==1.0 has no wheel for win_amd64" in failed.out


def test_a_bad_environment_marker_is_one_line(stack: Stack) -> None:
    _pin_stack(stack, "environments = [\"sys_platform = 'linux'\"]\n")
    run = stack.venvstacks("show", str(stack.spec), check=False)
    assert run.code == 2 and len(run.err.strip().splitlines()) == 1
    assert "field 'tool.uv.environments': not a valid marker" in run.err


# (a change to the stack file's [tool.uv] or the environment, whether it changes the lock)
CHANGES: list[tuple[str, dict[str, str], bool]] = [
    ("", {}, False),
    ('prerelease = "allow"\n', {}, True),
    ("environments = [\"sys_platform == 'linux'\"]\n", {}, True),
    ('exclude-newer = "2025-01-01T00:00:00Z"\n', {}, True),
    ("offline = true\n", {}, False),  # how uv reaches the index, not what it resolves
    ('link-mode = "copy"\n', {}, False),  # install only
    ('find-links = ["elsewhere"]\n', {}, True),  # the stack's own sources count
    ("", {"MACOSX_DEPLOYMENT_TARGET": "11.0"}, True),  # the layers target macOS too
    ("", {"UV_EXCLUDE_NEWER": "2025-01-01T00:00:00Z"}, True),
]


def _inputs(stack: Stack, options: LockOptions) -> tuple[dict[str, Any], bool]:
    """(the lock task's uptodate config, whether the lock metadata still says valid)."""
    spec = load_stack(stack.spec)
    settings = Settings(spec, stack.build_dir, RuntimeOptions(stack.runtime_cache), options)
    task = next(t for t in tasks.lock_tasks(settings) if t["name"] == "framework-web")
    check = task["uptodate"][0]
    assert isinstance(check, config_changed)
    return check.config, validity.lock_is_valid(validity.Locks(spec), spec.layer("framework-web"))


@pytest.mark.parametrize(("uv", "env", "relock"), CHANGES)
def test_doit_and_the_lock_metadata_agree_on_the_inputs(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, uv: str, env: dict[str, str], relock: bool
) -> None:
    monkeypatch.delenv("MACOSX_DEPLOYMENT_TARGET", raising=False)
    monkeypatch.delenv("UV_EXCLUDE_NEWER", raising=False)
    _pin_stack(stack, "")
    stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels")
    options = LockOptions(index=False, local_wheels=(stack.root / "wheels",))
    before, valid = _inputs(stack, options)
    assert valid

    stack.spec.write_text(stack.spec.read_text() + uv)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    after, still_valid = _inputs(stack, options)
    assert (before != after, not still_valid) == (relock, relock)


def test_command_line_package_sources_are_no_lock_input(stack: Stack) -> None:
    # As in the existing venvstacks: they say where packages come from, not what is locked.
    _pin_stack(stack, "")
    stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels")
    with_them, valid = _inputs(stack, LockOptions(index=False, local_wheels=(stack.root / "wheels",)))
    without_them, still_valid = _inputs(stack, LockOptions())
    assert with_them == without_them and valid and still_valid
    run = stack.venvstacks("lock", str(stack.spec))  # no index reachable: any relock would fail
    assert "lock:framework-web" not in run.ran and "lock:app-hello" not in run.ran


def test_relative_find_links_are_read_from_the_stack_files_folder(stack: Stack) -> None:
    _pin_stack(stack, 'find-links = ["wheels"]\nno-index = true\n')
    stack.venvstacks("lock", str(stack.spec))  # no --local-wheels: only the setting names them
    assert _locked_version(stack, "vstest-pin") == "2.0"
    lock = stack.root / "requirements" / "framework-web" / "pylock.framework-web.toml"
    pin = locked(lock, "vstest-pin")
    assert pin.all_wheels[0].path == "../../wheels/vstest_pin-2.0-py3-none-any.whl"


@pytest.mark.slow  # a whole build through the CLI
def test_install_gets_the_stacks_network_settings(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UV_CACHE_DIR", raising=False)
    _pin_stack(stack, 'cache-dir = "uv-cache"\n')
    stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels")
    cache = stack.root / "uv-cache"  # relative to the stack file's folder
    assert cache.is_dir()
    shutil.rmtree(cache)
    run = stack.build("--no-index", "--local-wheels", "wheels")
    assert "lock:framework-web" not in run.ran  # uv pip compile did not run again
    assert cache.is_dir() and any(cache.iterdir())  # so uv pip sync used it


@pytest.mark.slow
def test_publish_after_a_build_with_local_wheels_neither_relocks_nor_reinstalls(stack: Stack) -> None:
    # The existing venvstacks' documented flow: `build --local-wheels W`, then `publish`.
    # vstest-pin is in W only, so a relock without W would fail.
    _pin_stack(stack, "")
    stack.build("--local-wheels", "wheels")
    run = stack.venvstacks("publish", str(stack.spec), "--format", "tar.gz")
    assert {t.partition(":")[0] for t in run.ran} == {"publish"}
    assert (stack.root / "_artifacts" / "framework-web.tar.gz").exists()
    export = stack.venvstacks("local-export", str(stack.spec))
    assert {t.partition(":")[0] for t in export.ran} == {"export"}
