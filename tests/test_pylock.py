"""Post-processing uv's universal pylock for one layer, on hand-written lock data."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest
from packaging.tags import parse_tag

from venvstacks.pylock import (
    FROM_LOWER_LAYER,
    CoverageError,
    Target,
    constraint_lines,
    package_pins,
    postprocess,
    requirements_hash,
)

LINUX = Target("linux_x86_64", "3.11")
LINUX_ARM = Target("linux_aarch64", "3.11")
MAC_ARM = Target("macosx_arm64", "3.11")
MAC_X86 = Target("macosx_x86_64", "3.11")
WIN = Target("win_amd64", "3.11")
WIN_ARM = Target("win_arm64", "3.11")
EVERYWHERE = [WIN, WIN_ARM, LINUX, LINUX_ARM, MAC_ARM, MAC_X86]


def wheel(filename: str) -> dict[str, Any]:
    digest = hashlib.sha256(filename.encode()).hexdigest()
    return {
        "url": f"https://files.example/packages/{filename}",
        "upload-time": "2025-01-01T00:00:00Z",
        "size": 1234,
        "hashes": {"sha256": digest},
    }


def pure(name: str, version: str = "1.0", marker: str | None = None) -> dict[str, Any]:
    """A package with one universal wheel (and an sdist, as uv records it)."""
    pkg: dict[str, Any] = {
        "name": name,
        "version": version,
        "index": "https://pypi.org/simple",
        "sdist": {"url": f"https://files.example/{name}-{version}.tar.gz", "hashes": {"sha256": "00"}},
        "wheels": [wheel(f"{name.replace('-', '_')}-{version}-py3-none-any.whl")],
    }
    if marker:
        pkg["marker"] = marker
    return pkg


def binary(name: str, version: str, *tags: str, marker: str | None = None) -> dict[str, Any]:
    pkg: dict[str, Any] = {
        "name": name,
        "version": version,
        "index": "https://pypi.org/simple",
        "wheels": [wheel(f"{name}-{version}-{tag}.whl") for tag in tags],
    }
    if marker:
        pkg["marker"] = marker
    return pkg


def lock(*packages: dict[str, Any]) -> dict[str, Any]:
    return {
        "lock-version": "1.0",
        "created-by": "uv",
        "requires-python": ">=3.11",
        "packages": list(packages),
    }


def names(result: dict[str, Any]) -> list[str]:
    return [p["name"] for p in result["packages"]]


def by_name(result: dict[str, Any], name: str) -> dict[str, Any]:
    (pkg,) = [p for p in result["packages"] if p["name"] == name]
    return dict(pkg)


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
    assert result["packages"] == [
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
    assert [t.platform for t in EVERYWHERE if postprocess(raw, [t], [])["packages"]] == [target.platform]


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
    assert result["packages"] == [{"name": "numpy", "version": "2.1.0", "marker": FROM_LOWER_LAYER}]


def test_shared_packages_no_target_needs_are_still_dropped() -> None:
    raw = lock(pure("colorama", marker="sys_platform == 'win32'"), pure("idna"))
    assert names(postprocess(raw, [LINUX], ["colorama"])) == ["idna"]


def test_package_pins_and_constraints_leave_out_lower_layer_entries() -> None:
    upper = postprocess(
        lock(pure("idna", "3.10"), pure("six", "1.17.0"), pure("colorama", marker="sys_platform == 'win32'")),
        [LINUX, WIN],
        ["six"],
    )
    assert package_pins(upper) == {
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
    for pkg in result["packages"]:
        assert not {"sdist", "vcs", "directory", "archive"} & set(pkg), pkg
        assert pkg["wheels"]


def test_lock_level_fields() -> None:
    raw = lock(pure("zipp"), pure("Attrs"), pure("idna"))
    raw["environments"] = ["sys_platform == 'linux'"]
    result = postprocess(raw, [Target("linux_x86_64", "3.12")], [])
    assert result["requires-python"] == "==3.12.*"
    assert result["lock-version"] == "1.0"
    assert result["created-by"] == "uv"
    assert result["environments"] == ["sys_platform == 'linux'"]
    assert names(result) == ["Attrs", "idna", "zipp"]  # sorted by canonical name
    assert list(by_name(result, "idna")) == ["name", "version", "index", "wheels"]
    assert raw["packages"][0]["sdist"], "the input is left alone"


def test_entry_field_order_puts_marker_third() -> None:
    pkg = {"wheels": [wheel("x-1-py3-none-any.whl")], "marker": "sys_platform == 'win32'"}
    raw = lock({**pkg, "version": "1", "name": "x", "index": "https://pypi.org/simple"})
    (entry,) = postprocess(raw, [WIN, LINUX], [])["packages"]
    assert list(entry) == ["name", "version", "marker", "index", "wheels"]


def covered(tag: str, target: Target) -> bool:
    """Whether a lock holding only a wheel with this tag passes the coverage check."""
    try:
        postprocess(lock(binary("pkg", "1", tag)), [target], [])
    except CoverageError:
        return False
    return True


# --- wheel coverage ----------------------------------------------------------------------------


def test_missing_wheel_names_package_platform_and_working_platforms() -> None:
    raw = lock(
        pure("idna"),
        binary(
            "fastthing",
            "2.0",
            "cp311-cp311-macosx_11_0_arm64",
            "cp311-cp311-win_amd64",
            "cp311-cp311-manylinux_2_17_aarch64",
        ),
    )
    with pytest.raises(CoverageError) as info:
        postprocess(raw, [WIN, LINUX, LINUX_ARM, MAC_ARM], [])
    error = info.value
    assert error.package == "fastthing==2.0"
    assert error.platform == "linux_x86_64"
    assert error.working == ["win_amd64", "linux_aarch64", "macosx_arm64"]
    postprocess(raw, [WIN, LINUX_ARM, MAC_ARM], [])  # the suggested list works


def test_working_platforms_include_those_that_do_not_need_the_package() -> None:
    raw = lock(binary("pywin32", "308", "cp311-cp311-win_amd64", marker="sys_platform == 'win32'"))
    with pytest.raises(CoverageError) as info:
        postprocess(raw, [LINUX, WIN, WIN_ARM], [])
    assert info.value.platform == "win_arm64"
    assert info.value.working == ["linux_x86_64", "win_amd64"]


def test_sdist_only_package_is_a_coverage_error() -> None:
    raw = lock({**pure("legacy"), "wheels": []})
    with pytest.raises(CoverageError) as info:
        postprocess(raw, [LINUX], [])
    assert (info.value.package, info.value.platform, info.value.working) == (
        "legacy==1.0",
        "linux_x86_64",
        [],
    )


def test_wheel_name_is_taken_from_name_url_or_path() -> None:
    raw = lock(
        {
            "name": "a",
            "version": "1",
            "wheels": [{"name": "a-1-py3-none-any.whl", "url": "https://x/dl?id=1"}],
        },
        {"name": "b", "version": "1", "wheels": [{"path": "wheels/b-1-py3-none-any.whl"}]},
        {"name": "c", "version": "1+local", "wheels": [{"url": "https://x/c-1%2Blocal-py3-none-any.whl"}]},
    )
    assert names(postprocess(raw, [LINUX], [])) == ["a", "b", "c"]


def test_unparseable_wheel_names_do_not_count() -> None:
    raw = lock({"name": "a", "version": "1", "wheels": [{"url": "https://x/download/latest"}]})
    with pytest.raises(CoverageError):
        postprocess(raw, [LINUX], [])


@pytest.mark.parametrize(
    ("platform_tag", "glibc", "accepted"),
    [
        ("manylinux1_x86_64", (2, 17), True),
        ("manylinux2010_x86_64", (2, 17), True),
        ("manylinux2014_x86_64", (2, 17), True),
        ("manylinux2014_x86_64", (2, 16), False),
        ("manylinux_2_17_x86_64", (2, 28), True),
        ("manylinux_2_28_x86_64", (2, 28), True),
        ("manylinux_2_28_x86_64", (2, 27), False),
        ("manylinux_2_34_x86_64", (2, 28), False),
        ("manylinux_2_34_x86_64", (2, 35), True),
        ("manylinux_2_17_aarch64", (2, 28), False),
        ("manylinux_2_17_i686", (2, 28), False),
        ("musllinux_1_2_x86_64", (2, 28), False),
        ("linux_x86_64", (2, 28), False),
        ("any", (2, 28), True),
    ],
)
def test_manylinux_glibc_limits(platform_tag: str, glibc: tuple[int, int], accepted: bool) -> None:
    assert covered(f"cp311-cp311-{platform_tag}", Target("linux_x86_64", "3.11", glibc=glibc)) is accepted


def test_manylinux_aarch64() -> None:
    raw = lock(binary("pkg", "1", "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64"))
    postprocess(raw, [LINUX_ARM], [])
    with pytest.raises(CoverageError):
        postprocess(raw, [LINUX], [])


@pytest.mark.parametrize(
    ("platform_tag", "target", "macos", "accepted"),
    [
        ("macosx_11_0_arm64", "macosx_arm64", (13, 0), True),
        ("macosx_13_0_arm64", "macosx_arm64", (13, 0), True),
        ("macosx_14_0_arm64", "macosx_arm64", (13, 0), False),
        ("macosx_14_0_arm64", "macosx_arm64", (14, 0), True),
        ("macosx_10_9_x86_64", "macosx_x86_64", (13, 0), True),
        ("macosx_10_9_x86_64", "macosx_arm64", (13, 0), False),
        ("macosx_11_0_arm64", "macosx_x86_64", (13, 0), False),
        ("macosx_10_9_universal2", "macosx_arm64", (13, 0), True),
        ("macosx_10_9_universal2", "macosx_x86_64", (13, 0), True),
        ("macosx_15_0_universal2", "macosx_x86_64", (13, 0), False),
        ("macosx_10_9_intel", "macosx_x86_64", (13, 0), True),
        ("macosx_10_9_intel", "macosx_arm64", (13, 0), False),
        ("macosx_10_6_universal", "macosx_x86_64", (13, 0), True),
        ("manylinux_2_17_x86_64", "macosx_x86_64", (13, 0), False),
    ],
)
def test_macos_versions_and_architectures(
    platform_tag: str, target: str, macos: tuple[int, int], accepted: bool
) -> None:
    assert covered(f"cp311-cp311-{platform_tag}", Target(target, "3.11", macos=macos)) is accepted


@pytest.mark.parametrize(
    ("tag", "py", "accepted"),
    [
        ("py3-none-any", "3.11", True),
        ("py2.py3-none-any", "3.11", True),
        ("py311-none-any", "3.11", True),
        ("py312-none-any", "3.11", False),
        ("py2-none-any", "3.11", False),
        ("cp311-cp311-win_amd64", "3.11", True),
        ("cp311-cp311-win_amd64", "3.12", False),
        ("cp312-cp312-win_amd64", "3.11", False),
        ("cp39-abi3-win_amd64", "3.11", True),
        ("cp311-abi3-win_amd64", "3.11", True),
        ("cp312-abi3-win_amd64", "3.11", False),
        ("cp311-none-win_amd64", "3.11", True),
        ("cp313-cp313t-win_amd64", "3.13", False),  # free-threaded build
        ("pp310-pypy310_pp73-win_amd64", "3.10", False),
        ("cp311-cp311-win_arm64", "3.11", False),
        ("cp311-cp311-win32", "3.11", False),
    ],
)
def test_python_tags_and_abi3(tag: str, py: str, accepted: bool) -> None:
    target = Target("win_amd64", py)
    assert any(target.accepts(t) for t in parse_tag(tag)) is accepted


def test_abi3_wheel_covers_every_later_python() -> None:
    raw = lock(binary("cryptography", "44.0.0", "cp39-abi3-manylinux_2_28_x86_64", "cp39-abi3-win_amd64"))
    for py in ("3.9", "3.11", "3.13"):
        postprocess(raw, [Target("linux_x86_64", py), Target("win_amd64", py)], [])


def test_compressed_tag_sets_count_per_tag() -> None:
    raw = lock(binary("pkg", "1", "cp311-cp311-manylinux_2_5_x86_64.manylinux1_x86_64.musllinux_1_1_x86_64"))
    postprocess(raw, [Target("linux_x86_64", "3.11", glibc=(2, 17))], [])


# --- requirements_hash ---------------------------------------------------------------------------


def _locked() -> dict[str, Any]:
    return postprocess(
        lock(
            pure("idna", "3.10"),
            pure("colorama", marker="sys_platform == 'win32'"),
            binary("numpy", "2.1.0", "cp311-cp311-win_amd64", "cp311-cp311-manylinux_2_17_x86_64"),
            pure("six"),
        ),
        [LINUX, WIN],
        ["six"],
    )


def test_requirements_hash_is_stable_under_reordering() -> None:
    locked = _locked()
    expected = requirements_hash(locked)
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
        assert requirements_hash(shuffled) == expected


def test_requirements_hash_ignores_what_is_not_installed() -> None:
    locked = _locked()
    expected = requirements_hash(locked)
    noisy = {**locked, "created-by": "someone else", "packages": [dict(p) for p in locked["packages"]]}
    for pkg in noisy["packages"]:
        pkg["index"] = "https://mirror.example/simple"
        for w in pkg.get("wheels", []):
            w["upload-time"] = "2030-01-01T00:00:00Z"
    assert requirements_hash(noisy) == expected


@pytest.mark.parametrize("change", ["version", "marker", "wheel-hash", "extra-package", "name-case"])
def test_requirements_hash_sees_what_is_installed(change: str) -> None:
    locked = _locked()
    before = requirements_hash(locked)
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
    after = requirements_hash({**locked, "packages": pkgs})
    assert (after == before) is (change == "name-case")


def test_requirements_hash_of_empty_lock() -> None:
    assert requirements_hash({}) == requirements_hash(lock())
