"""Post-processing uv's universal pylock for one layer, on hand-written lock data: which
packages and markers are kept for the layer's targets, how packages from lower layers are
marked, what each entry keeps, and `requirements_hash` of the result. Wheel coverage is in
test_pylock_coverage.py."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.pylock_data import (
    EVERYWHERE,
    LINUX,
    LINUX_ARM,
    MAC_ARM,
    MAC_X86,
    WIN,
    WIN_ARM,
    binary,
    by_name,
    lock,
    names,
    packages,
    pure,
    raw_lock,
    typed,
    wheel,
)
from venvstacks.lock.pylock import constraint_lines, postprocess, requirements_hash
from venvstacks.lock.pylockdoc import FROM_LOWER_LAYER, Pylock
from venvstacks.stack.targets import Target

# --- marker filtering -----------------------------------------------------------------------


def test_packages_no_target_needs_are_dropped() -> None:
    raw = lock(
        pure("idna"),
        pure("colorama", marker="sys_platform == 'win32'"),
        pure("uvloop", marker="sys_platform != 'win32' and platform_python_implementation == 'CPython'"),
        pure("old-backport", marker="python_version < '3.9'"),
    )
    result = postprocess(raw, [LINUX, MAC_ARM], [])
    assert names(result) == ["idna", "uvloop"]
    result = postprocess(raw, [WIN], [])
    assert names(result) == ["colorama", "idna"]


def test_markers_are_kept_where_they_still_select() -> None:
    raw = lock(pure("colorama", marker="sys_platform == 'win32'"), pure("idna"))
    result = postprocess(raw, [LINUX, WIN], [])
    assert by_name(result, "colorama")["marker"] == "sys_platform == 'win32'"
    assert "marker" not in by_name(result, "idna")


@pytest.mark.parametrize(
    "marker",
    [
        "python_version >= '3.8'",
        "sys_platform == 'linux'",
        "platform_machine == 'x86_64' or platform_machine == 'aarch64'",
        "os_name == 'posix' and implementation_name == 'cpython'",
    ],
)
def test_markers_true_for_every_target_are_dropped(marker: str) -> None:
    result = postprocess(lock(pure("idna", marker=marker)), [LINUX, LINUX_ARM], [])
    assert packages(result) == [
        {
            "name": "idna",
            "version": "1.0",
            "index": "https://pypi.org/simple",
            "wheels": [wheel("idna-1.0-py3-none-any.whl")],
        }
    ]


@pytest.mark.parametrize(
    ("target", "marker"),
    [
        (LINUX, "sys_platform == 'linux' and platform_machine == 'x86_64'"),
        (LINUX_ARM, "sys_platform == 'linux' and platform_machine == 'aarch64'"),
        (MAC_ARM, "sys_platform == 'darwin' and platform_machine == 'arm64'"),
        (MAC_X86, "platform_system == 'Darwin' and platform_machine == 'x86_64'"),
        (WIN, "sys_platform == 'win32' and platform_machine == 'AMD64'"),
        (WIN_ARM, "os_name == 'nt' and platform_machine == 'ARM64'"),
    ],
)
def test_each_platform_matches_only_its_own_markers(target: Target, marker: str) -> None:
    raw = lock(pure("only-here", marker=marker))
    assert [t.platform for t in EVERYWHERE if postprocess(raw, [t], []).packages] == [target.platform]


# --- packages from lower layers -----------------------------------------------------------------


def test_shared_packages_are_marked_and_lose_their_wheels() -> None:
    raw = lock(
        binary("numpy", "2.1.0", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"),
        pure("idna"),
        pure("Typing_Extensions", "4.12.0"),
    )
    result = postprocess(raw, [LINUX], ["NumPy", "typing-extensions"])
    assert by_name(result, "numpy") == {"name": "numpy", "version": "2.1.0", "marker": FROM_LOWER_LAYER}
    assert by_name(result, "Typing_Extensions") == {
        "name": "Typing_Extensions",
        "version": "4.12.0",
        "marker": FROM_LOWER_LAYER,
    }
    assert "marker" not in by_name(result, "idna")


def test_shared_packages_need_no_wheel_coverage() -> None:
    # the lower layer already proved it has wheels; here it is only a name and a pin
    raw = lock(binary("numpy", "2.1.0", "cp311-cp311-win_amd64"))
    result = postprocess(raw, [LINUX, WIN], ["numpy"])
    assert packages(result) == [{"name": "numpy", "version": "2.1.0", "marker": FROM_LOWER_LAYER}]


def test_shared_packages_no_target_needs_are_still_dropped() -> None:
    raw = lock(pure("colorama", marker="sys_platform == 'win32'"), pure("idna"))
    assert names(postprocess(raw, [LINUX], ["colorama"])) == ["idna"]


def test_package_pins_and_constraints_leave_out_lower_layer_entries() -> None:
    upper = postprocess(
        lock(pure("idna", "3.10"), pure("six", "1.17.0"), pure("colorama", marker="sys_platform == 'win32'")),
        [LINUX, WIN],
        ["six"],
    )
    assert upper.pins == {
        "colorama": ("1.0", "sys_platform == 'win32'"),
        "idna": ("3.10", None),
    }
    base = lock(pure("Attrs", "25.1.0"))
    assert constraint_lines([base, upper]) == [
        "attrs==25.1.0",
        "colorama==1.0 ; sys_platform == 'win32'",
        "idna==3.10",
    ]


# --- what is kept, and how ---------------------------------------------------------------------


def test_sdists_and_source_trees_are_removed() -> None:
    raw = lock(
        pure("idna"),
        {**pure("attrs"), "vcs": {"type": "git", "url": "https://example/attrs", "commit-id": "ab"}},
        {**pure("six"), "directory": {"path": "../six"}},
        {**pure("zipp"), "archive": {"url": "https://example/zipp.zip", "hashes": {"sha256": "00"}}},
    )
    result = postprocess(raw, [LINUX], [])
    for pkg in packages(result):
        assert not {"sdist", "vcs", "directory", "archive"} & set(pkg), pkg
        assert pkg["wheels"]


def test_lock_level_fields() -> None:
    raw = raw_lock(pure("zipp"), pure("Attrs"), pure("idna"))
    raw["environments"] = ["sys_platform == 'linux'"]
    result = postprocess(typed(raw), [Target("linux_x86_64", "3.12")], [])
    written = result.to_dict()
    assert list(written) == ["lock-version", "created-by", "requires-python", "environments", "packages"]
    assert written["requires-python"] == "==3.12.*"
    assert written["lock-version"] == "1.0"
    assert written["created-by"] == "uv"
    assert written["environments"] == ["sys_platform == 'linux'"]
    assert names(result) == ["Attrs", "idna", "zipp"]  # sorted by canonical name
    assert list(by_name(result, "idna")) == ["name", "version", "index", "wheels"]
    assert raw["packages"][0]["sdist"], "the input is left alone"


def test_entry_field_order_puts_marker_third() -> None:
    pkg = {"wheels": [wheel("x-1-py3-none-any.whl")], "marker": "sys_platform == 'win32'"}
    raw = lock({**pkg, "version": "1", "name": "x", "index": "https://pypi.org/simple"})
    (entry,) = packages(postprocess(raw, [WIN, LINUX], []))
    assert list(entry) == ["name", "version", "marker", "index", "wheels"]


# --- requirements_hash ---------------------------------------------------------------------------


def _locked() -> dict[str, Any]:
    """A post-processed lock, as written."""
    return postprocess(
        lock(
            pure("idna", "3.10"),
            pure("colorama", marker="sys_platform == 'win32'"),
            binary("numpy", "2.1.0", "cp311-cp311-win_amd64", "cp311-cp311-manylinux_2_17_x86_64"),
            pure("six"),
        ),
        [LINUX, WIN],
        ["six"],
    ).to_dict()


def test_requirements_hash_is_stable_under_reordering() -> None:
    locked = _locked()
    expected = requirements_hash(typed(locked))
    assert expected.startswith("sha256:") and len(expected) == len("sha256:") + 64
    rng = random.Random(7)
    for _ in range(10):
        shuffled = {**locked, "packages": [dict(p) for p in locked["packages"]]}
        rng.shuffle(shuffled["packages"])
        for pkg in shuffled["packages"]:
            if "wheels" in pkg:
                pkg["wheels"] = rng.sample(pkg["wheels"], len(pkg["wheels"]))
                for w in pkg["wheels"]:
                    w["hashes"] = dict(reversed(list(w["hashes"].items())))
        assert requirements_hash(typed(shuffled)) == expected


def test_requirements_hash_ignores_what_is_not_installed() -> None:
    locked = _locked()
    expected = requirements_hash(typed(locked))
    noisy = {**locked, "created-by": "someone else", "packages": [dict(p) for p in locked["packages"]]}
    for pkg in noisy["packages"]:
        pkg["index"] = "https://mirror.example/simple"
        for w in pkg.get("wheels", []):
            w["upload-time"] = datetime(2030, 1, 1, tzinfo=UTC)
    assert requirements_hash(typed(noisy)) == expected


@pytest.mark.parametrize("change", ["version", "marker", "wheel-hash", "extra-package", "name-case"])
def test_requirements_hash_sees_what_is_installed(change: str) -> None:
    locked = _locked()
    before = requirements_hash(typed(locked))
    pkgs = [dict(p) for p in locked["packages"]]
    idna = next(p for p in pkgs if p["name"] == "idna")
    if change == "version":
        idna["version"] = "3.11"
    elif change == "marker":
        idna["marker"] = "sys_platform == 'linux'"
    elif change == "wheel-hash":
        idna["wheels"] = [{**idna["wheels"][0], "hashes": {"sha256": "ff" * 32}}]
    elif change == "extra-package":
        pkgs.append(pure("attrs"))
    else:
        idna["name"] = "IDNA"  # canonical names: not a change
    after = requirements_hash(typed({**locked, "packages": pkgs}))
    assert (after == before) is (change == "name-case")


def test_requirements_hash_of_empty_lock() -> None:
    assert requirements_hash(Pylock()) == requirements_hash(lock())
