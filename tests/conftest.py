import pytest

# Helpers that test modules import and that assert things: rewrite them like test code, so a
# failure inside one still shows the values compared.
pytest.register_assert_rewrite("tests.support.spec_files")

pytest_plugins = ["tests.support.runtime_fixtures", "tests.support.stacks", "tests.support.wheels"]
