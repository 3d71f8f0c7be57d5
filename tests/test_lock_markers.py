"""Requirement markers are decided with the runtime's exact version, not X.Y.0."""

from __future__ import annotations

import pytest

from tests.support.stacks import Stack
from tests.support.wheels import make_wheel
from venvstacks.lock.pylock import needs_full_version
from venvstacks.lock.pylockdoc import LockedPackage, Pylock
from venvstacks.runtimes.record import CacheEntry


def test_python_full_version_markers_use_the_runtimes_patch_release(
    stack: Stack, local_runtime: CacheEntry
) -> None:
    version = local_runtime.record.version  # e.g. 3.11.7
    if version.endswith(".0"):
        pytest.skip(f"the local runtime {version} cannot tell X.Y.Z from X.Y.0")
    for name in ("vstest-patch-new", "vstest-patch-old"):
        make_wheel(stack.root / "wheels", name, "1.0")
    stack.framework_requirements = [
        f"vstest-patch-new ; python_full_version >= '{version}'",
        f"vstest-patch-old ; python_full_version < '{version}'",
    ]
    stack.app_requirements = []
    stack.write()
    stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels")

    lock = stack.root / "requirements" / "framework-web" / "pylock.framework-web.toml"
    names = {p.name for p in Pylock.read(lock).packages}
    assert "vstest-patch-new" in names
    assert "vstest-patch-old" not in names
    meta = lock.with_name("pylock.framework-web.meta.json").read_text()
    assert f'"python_full_version": "{version}"' in meta


@pytest.mark.parametrize(
    ("marker", "depends"),
    [
        ("python_full_version < '3.11'", False),  # uv's usual clause: same for every 3.11.Z
        ("python_full_version >= '3.11'", False),
        ("python_full_version >= '3.12'", False),
        ("python_full_version == '3.11.*'", False),
        ("sys_platform == 'win32'", False),
        ("python_full_version >= '3.11.4'", True),
        ("python_full_version > '3.11'", True),  # false for 3.11.0 only
        ("implementation_version == '3.11.7'", True),
    ],
)
def test_only_a_patch_level_clause_ties_a_lock_to_the_runtimes_patch_release(
    marker: str, depends: bool
) -> None:
    lock = Pylock(packages=(LockedPackage("pkg", "1", marker),))
    assert needs_full_version(lock, "3.11.7") is depends
