import pytest

# Helpers that test modules import and that assert things: rewrite them like test code, so a
# failure inside one still shows the values compared.
pytest.register_assert_rewrite("tests.support.spec_files")

pytest_plugins = ["tests.support.runtime_fixtures", "tests.support.stacks", "tests.support.wheels"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`linux_only` tests are skipped on other systems (their decisions are tested there by
    simulation; docs/platforms.md)."""
    from venvstacks.platforms import host_platform

    if host_platform().is_linux:
        return
    skip = pytest.mark.skip(reason=f"Linux only; this is {host_platform().name}")
    for item in items:
        if item.get_closest_marker("linux_only") is not None:
            item.add_marker(skip)
