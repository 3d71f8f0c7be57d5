"""Stack files in the existing venvstacks' format, every field, through show/lock/build."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.pylock_data import assert_round_trips, locked
from tests.support.stacks import Run, Stack
from tests.support.wheels import SimpleIndex, make_wheel

EVERY_FIELD = """\
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = []

[[frameworks]]
name = "base"
runtime = "cpython-3.11"
versioned = true
requirements = ["vstest-alpha", "vstest-delta"]
platforms = ["linux_x86_64", "win_amd64", "macosx_arm64"]
linux_target = "glibc@2.17"
macosx_target = "11.0"
dynlib_exclude = ["*.so"]
package_indexes = {{ vstest-alpha = "local" }}
priority_indexes = ["local"]

[[frameworks]]
name = "extra"
runtime = "cpython-3.11"
requirements = ["vstest-beta"]
package_indexes = {{ vstest-alpha = "mirror", vstest-beta = "mirror" }}

[[applications]]
name = "demo"
frameworks = ["extra", "base"]
launch_module = "demo"
support_modules = ["support.py"]
requirements = ["vstest-gamma", "vstest-alpha"]
index_overrides = {{ mirror = "local" }}
platforms = ["linux_x86_64"]

[[applications]]
name = "elsewhere"
runtime = "cpython-3.11"
launch_module = "elsewhere.py"
requirements = []
platforms = ["win_amd64"]

[[tool.uv.index]]
name = "local"
url = "{url}"
explicit = true

[[tool.uv.index]]
name = "mirror"
url = "{url}"
explicit = true
"""

DEMO = """\
import support
import vstest_alpha, vstest_beta, vstest_gamma

for module in (vstest_alpha, vstest_beta, vstest_gamma):
    print(module.__name__, module.VERSION, module.__file__)
print(support.NAME)
"""


def _every_field_stack(tmp: Path, runtime_cache: Path, index: SimpleIndex) -> Stack:
    index.add("vstest-alpha", "1.0")
    index.add("vstest-beta", "2.0")
    # No package_indexes entry names vstest-delta: only priority_indexes can make uv ask the
    # (explicit) index for it. Every other package here is pinned by package_indexes, which is
    # why this test once passed while priority_indexes and named indexes never reached uv.
    index.add("vstest-delta", "4.0")
    make_wheel(tmp / "stack" / "wheels", "vstest-gamma", "3.0")
    stack = Stack(tmp / "stack", runtime_cache, index.url)
    stack.root.mkdir(parents=True, exist_ok=True)
    stack.spec.write_text(EVERY_FIELD.format(url=index.url))
    (stack.root / "demo").mkdir()
    (stack.root / "demo" / "__init__.py").write_text("")
    (stack.root / "demo" / "__main__.py").write_text(DEMO)
    (stack.root / "support.py").write_text("NAME = 'support module'\n")
    (stack.root / "elsewhere.py").write_text("print('not built on Linux')\n")
    return stack


@pytest.mark.slow  # locks (and builds) through the CLI, running uv
def test_every_field_locks_and_builds(tmp_path: Path, runtime_cache: Path, simple_index: SimpleIndex) -> None:
    stack = _every_field_stack(tmp_path, runtime_cache, simple_index)
    stack.build("--local-wheels", "wheels")

    show = json.loads(stack.venvstacks("show", "--json", str(stack.spec)).out)
    base = show["frameworks"][0]
    assert (base["name"], base["install_target"]) == ("framework-base", "framework-base@1")
    demo, elsewhere = show["applications"]
    assert demo["dependencies"] == ["framework-extra", "framework-base", "cpython-3.11"]
    assert elsewhere["selected_operations"] == ["lock"]  # win_amd64 only: locked, not built here

    requirements = stack.root / "requirements"
    alpha = locked(requirements / "framework-base" / "pylock.framework-base.toml", "vstest-alpha")
    assert simple_index.url.rsplit("/", 1)[0] in str(alpha.all_wheels[0].url)
    delta = locked(requirements / "framework-base" / "pylock.framework-base.toml", "vstest-delta")
    assert str(delta.all_wheels[0].url).startswith(simple_index.host + "/")
    assert simple_index.asked("vstest-delta") >= 1
    gamma = locked(requirements / "app-demo" / "pylock.app-demo.toml", "vstest-gamma")
    assert gamma.all_wheels[0].path == "../../wheels/vstest_gamma-3.0-py3-none-any.whl"
    assert (requirements / "app-elsewhere" / "pylock.app-elsewhere.toml").exists()
    for lock_file in requirements.glob("*/pylock.*.toml"):  # wheels by URL and by path
        assert_round_trips(lock_file)
    assert not (stack.build_dir / "app-elsewhere").exists()

    config = json.loads((stack.build_dir / "app-demo/share/venv/metadata/venvstacks_layer.json").read_text())
    assert config["pylib_dirs"][1].startswith("../framework-base@1/")
    python = stack.build_dir / "app-demo" / "bin" / "python"
    out = subprocess.run(
        ["env", "-i", python, "-m", "demo"], capture_output=True, text=True, check=True
    ).stdout
    assert "framework-base/lib" in _line(out, "vstest_alpha")  # shared: only in the framework
    assert "framework-extra/lib" in _line(out, "vstest_beta")
    assert "app-demo/lib" in _line(out, "vstest_gamma")
    assert "support module" in out


@pytest.mark.slow  # locks (and builds) through the CLI, running uv
def test_no_index_resolves_from_local_wheels_only(stack: Stack) -> None:
    make_wheel(stack.root / "wheels", "idna", "99.0")
    make_wheel(stack.root / "wheels", "attrs", "98.0")
    stack.venvstacks("lock", str(stack.spec), "--no-index", "--local-wheels", "wheels")
    lock = stack.root / "requirements" / "framework-web" / "pylock.framework-web.toml"
    assert locked(lock, "idna").version == "99.0"


@pytest.mark.slow  # locks (and builds) through the CLI, running uv
def test_missing_wheel_for_a_platform_is_one_clear_line(stack: Stack) -> None:
    make_wheel(stack.root / "wheels", "vstest-linux-only", "1.0", tag="py3-none-manylinux2014_x86_64")
    stack.app_requirements = ["vstest-linux-only"]
    stack.write()
    run = stack.venvstacks("lock", str(stack.spec), "--local-wheels", "wheels", check=False)
    assert run.code != 0
    failure = [line for line in run.out.splitlines() if line.startswith("FAILED")]
    assert len(failure) == 1 and "Traceback" not in run.out + run.err
    assert "vstest-linux-only==1.0 has no wheel for" in failure[0]
    assert "platforms = [" in failure[0] and "'linux_x86_64'" in failure[0]


def test_sample_stack_layers_and_order() -> None:
    sample = Path(__file__).parents[1] / "stacks" / "sample"
    run = Stack(sample, sample, index_url=None).venvstacks("show", "--json", str(sample))
    data = json.loads(run.out)
    names = {kind: [e["name"] for e in data[kind]] for kind in ("runtimes", "frameworks", "applications")}
    assert names == {
        "runtimes": ["cpython-3.11", "cpython-3.12"],
        "frameworks": ["framework-scipy", "framework-sklearn", "framework-http-client"],
        "applications": ["app-scipy-client", "app-scipy-import", "app-sklearn-import"],
    }
    targets = {e["name"]: e["install_target"] for kind in names for e in data[kind]}
    assert targets["cpython-3.12"].startswith("cpython-3.12@")
    assert targets["framework-scipy"].startswith("framework-scipy@")
    assert targets["app-scipy-import"].startswith("app-scipy-import@")
    assert targets["framework-http-client"] == "framework-http-client"
    client = data["applications"][0]
    assert client["dependencies"] == ["framework-scipy", "framework-http-client", "cpython-3.11"]
    assert client["selected_operations"] == ["lock"]  # macOS and Windows only
    assert all(e["has_valid_lock"] for kind in names for e in data[kind])  # committed locks


def _line(out: str, prefix: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(prefix))


__all__ = ["Run"]
