pytest_plugins = ["tests.support.runtime_fixtures", "tests.support.stacks", "tests.support.wheels"]
