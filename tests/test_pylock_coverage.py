"""Wheel coverage when post-processing uv's universal pylock, on hand-written lock data: every
package a target needs must have a wheel it can install (manylinux glibc limits, macOS versions
and architectures, Python tags and abi3), and a `CoverageError` names the package, the platform
and the platforms that would work."""

from __future__ import annotations

import pytest
from packaging.tags import parse_tag

from tests.support.pylock_data import (
    LINUX,
    LINUX_ARM,
    MAC_ARM,
    WIN,
    WIN_ARM,
    binary,
    by_name,
    lock,
    names,
    pure,
)
from venvstacks.lock.pylock import CoverageError, postprocess
from venvstacks.lock.pylockdoc import Pylock
from venvstacks.stack.targets import Target


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


@pytest.mark.parametrize(
    "url",
    [
        "https://x/d-1%212.0-py3-none-any.whl",  # an epoch's "!"
        "https://x/d-1-py3-none-manylinux%5F2%5F17%5Fx86%5F64.whl",  # any escape at all
        "https://x/d-1%2blocal-py3-none-any.whl",  # lower-case hex
        "https://x/d-1-py3-none-any.whl#sha256=00",  # a fragment is not part of the name
    ],
)
def test_wheel_names_in_urls_are_fully_percent_decoded(url: str) -> None:
    raw = lock({"name": "d", "version": "1", "wheels": [{"url": url}]})
    assert names(postprocess(raw, [LINUX], [])) == ["d"]  # not "no wheel for linux_x86_64"


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
        # No installer takes a CPython-ABI wheel for "any" platform (py3-none-any is the
        # portable tag): packaging.tags and uv agree.
        ("any", (2, 28), False),
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
        result = postprocess(raw, [Target("linux_x86_64", py), Target("win_amd64", py)], [])
        # Both abi3 wheels are kept for the later Python, not dropped as not matching cp3XX.
        assert wheel_names(result, "cryptography") == [
            "cryptography-44.0.0-cp39-abi3-manylinux_2_28_x86_64.whl",
            "cryptography-44.0.0-cp39-abi3-win_amd64.whl",
        ]


def test_compressed_tag_sets_count_per_tag() -> None:
    wheel = "cp311-cp311-manylinux_2_5_x86_64.manylinux1_x86_64.musllinux_1_1_x86_64"
    raw = lock(binary("pkg", "1", wheel))
    result = postprocess(raw, [Target("linux_x86_64", "3.11", glibc=(2, 17))], [])
    assert wheel_names(result, "pkg") == [f"pkg-1-{wheel}.whl"]
    # The musllinux tag in the set does not make the wheel fit a target it does not name.
    assert not covered(wheel.replace("manylinux_2_5_x86_64.manylinux1_x86_64.", ""), LINUX)


def wheel_names(result: Pylock, package: str) -> list[str]:
    return sorted(w["url"].rsplit("/", 1)[-1] for w in by_name(result, package)["wheels"])
