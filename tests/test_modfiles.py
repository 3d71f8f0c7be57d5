"""What an app's launch and support modules are made of, and what is never copied.

A module is untrusted input: a symlink out of the stack folder (to a private key, say) must
never bring the target's bytes into the build or the published archive; FIFOs and devices
must never be read; `.gitignore` and `__pycache__` are left out of the hash, doit's inputs
and the copy alike, because all three come from one function.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.spec_files import RUNTIME, app, one_error_line, write_stack
from tests.support.stacks import Stack
from venvstacks.cli import main
from venvstacks.engine.settings import Settings
from venvstacks.engine.tasks import build_tasks
from venvstacks.errors import VenvStacksError
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.modfiles import ModuleError, copy_module, module_files, module_hash, module_inputs
from venvstacks.stack.spec import load_stack

SECRET = b"-----BEGIN PRIVATE KEY----- not for publishing"


def _stack_with_package(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "stack"
    pkg = root / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("print('hi')\n")
    (pkg / "__main__.py").write_text("import pkg\n")
    return root, pkg


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    return secret


def _all_bytes(folder: Path) -> bytes:
    data = b""
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath, name)
            if not path.is_symlink():
                data += path.read_bytes()
    return data


def test_link_out_of_the_stack_folder_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, pkg = _stack_with_package(tmp_path)
    (pkg / "key.pem").symlink_to(_secret(tmp_path))
    path = write_stack(root, RUNTIME + app("demo", extra='launch_module = "pkg"'), {})
    line = one_error_line(capsys, ["show", str(path)])
    assert "layer 'app-demo'" in line and "field 'launch_module'" in line
    assert "key.pem" in line and "a symlink pointing outside its module" in line


def test_linked_folder_out_of_the_stack_is_refused(tmp_path: Path) -> None:
    root, pkg = _stack_with_package(tmp_path)
    _secret(tmp_path)
    (pkg / "keys").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(ModuleError, match="a symlink pointing outside its module"):
        module_files(pkg, root)


def test_launch_module_written_as_a_link_out_is_used_and_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stack file names the link: whoever wrote it chose where it leads.
    root = tmp_path / "stack"
    root.mkdir()
    elsewhere = tmp_path / "outside.py"
    elsewhere.write_text("print('from outside')\n")
    (root / "launch.py").symlink_to(elsewhere)
    assert main(["show", str(write_stack(root, RUNTIME + app("demo"), {}))]) == 0
    assert "note: module files from outside the stack folder: app-demo: launch.py" in capsys.readouterr().err
    assert [e.source for e in module_files(root / "launch.py", root)] == [elsewhere]


def test_modules_outside_the_stack_folder_load_and_are_named_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As the existing venvstacks' own sample project: support_modules = ["../other/empty.py"].
    root = tmp_path / "stack"
    root.mkdir()
    (tmp_path / "outside.py").write_text("print('from outside')\n")
    (tmp_path / "shared" / "util").mkdir(parents=True)
    (tmp_path / "shared" / "util" / "__init__.py").write_text("X = 1\n")
    extra = 'launch_module = "../outside.py"\nsupport_modules = ["../shared/util"]'
    path = write_stack(root, RUNTIME + app("demo", extra=extra), {})
    assert main(["show", str(path)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "note: module files from outside the stack folder: app-demo: ../outside.py; app-demo: ../shared/util"
    ]
    stack = load_stack(path)
    assert [m.name for m in stack.layers[1].modules] == ["outside.py", "util"]
    assert [e.rel for e in module_files(tmp_path / "shared" / "util", root)] == ["__init__.py"]


def test_module_names_clash_before_either_is_looked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As the existing venvstacks: the clash is the error, though neither path exists.
    extra = 'launch_module = "name.py"\nsupport_modules = ["conflicting/name"]'
    line = one_error_line(capsys, ["show", str(write_stack(tmp_path, RUNTIME + app("l", extra=extra), {}))])
    assert line.endswith(
        "field 'support_modules': module name 'name' is used twice (also by launch_module); "
        "module names must be unique"
    )


def test_links_inside_the_module_are_kept_as_links_in_the_copy(tmp_path: Path) -> None:
    root, pkg = _stack_with_package(tmp_path)
    (pkg / "data").mkdir()
    (pkg / "data" / "table.txt").write_text("rows\n")
    (pkg / "table.txt").symlink_to("data/table.txt")
    (pkg / "alias").symlink_to("data", target_is_directory=True)
    dest = tmp_path / "site" / "pkg"
    dest.parent.mkdir()
    copy_module(pkg, root, dest)
    assert os.readlink(dest / "table.txt") == os.path.join("data", "table.txt")
    assert (dest / "table.txt").read_text() == "rows\n"
    assert os.readlink(dest / "alias") == "data"
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "__init__.py",
        "__main__.py",
        "alias",
        "data",
        "data/table.txt",
        "table.txt",
    ]


def test_link_to_another_part_of_the_stack_folder_is_refused(tmp_path: Path) -> None:
    root, pkg = _stack_with_package(tmp_path)
    (root / "shared.py").write_text("x = 1\n")
    (pkg / "shared.py").symlink_to(root / "shared.py")
    with pytest.raises(ModuleError, match="pointing outside its module"):
        module_files(pkg, root)


@pytest.mark.parametrize("kind", ["fifo", "self-link", "link-to-device", "dangling"])
def test_special_files_in_a_package_are_refused_without_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    root, pkg = _stack_with_package(tmp_path)
    odd = pkg / "odd"
    if kind == "fifo":
        os.mkfifo(odd)
    elif kind == "self-link":
        odd.symlink_to("odd")
    elif kind == "link-to-device":
        odd.symlink_to("/dev/zero")
    else:
        odd.symlink_to("nowhere")
    path = write_stack(root, RUNTIME + app("demo", extra='launch_module = "pkg"'), {})
    line = one_error_line(capsys, ["show", str(path)])
    assert "odd" in line and "field 'launch_module'" in line


def test_launch_module_that_is_a_fifo_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "stack"
    root.mkdir()
    os.mkfifo(root / "launch.py")
    line = one_error_line(capsys, ["show", str(write_stack(root, RUNTIME + app("demo"), {}))])
    assert "FIFO, socket or device" in line


def test_launch_module_holding_the_stack_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {"__init__.py": "", "__main__.py": ""}
    path = write_stack(tmp_path, RUNTIME + app("demo", extra='launch_module = "."'), files)
    line = one_error_line(capsys, ["show", str(path)])
    assert "holds the stack folder" in line


def test_module_holding_the_build_folder_is_refused(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": "", "pkg/__main__.py": ""}
    path = write_stack(tmp_path, RUNTIME + app("demo", extra='launch_module = "pkg"'), files)
    stack = load_stack(path)
    with pytest.raises(VenvStacksError, match="holds the build folder"):
        Settings(stack, tmp_path / "pkg" / "_build", RuntimeOptions(cache_dir=tmp_path / "cache"))


def test_gitignored_and_cached_files_are_not_hashed_watched_or_copied(tmp_path: Path) -> None:
    root, pkg = _stack_with_package(tmp_path)
    (root / ".gitignore").write_text("*.secret\nscratch/\n")
    (pkg / ".gitignore").write_text("!keep.secret\n")
    (pkg / "token.secret").write_text("t0ps3cret\n")
    (pkg / "keep.secret").write_text("kept\n")
    (pkg / "scratch").mkdir()
    (pkg / "scratch" / "notes.py").write_text("")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (pkg / ".github").mkdir()  # .git* entries never count (a .git folder would make pkg a repository)
    (pkg / ".github" / "ci.yml").write_text("on: push\n")
    (pkg / ".gitattributes").write_text("* text\n")
    expected = ["__init__.py", "__main__.py", "keep.secret"]
    assert [e.rel for e in module_files(pkg, root)] == expected
    assert [p.relative_to(pkg).as_posix() for p in module_inputs(pkg, root)] == expected
    before = module_hash(pkg, root)
    (pkg / "token.secret").write_text("changed\n")
    assert module_hash(pkg, root) == before
    (pkg / "keep.secret").write_text("changed\n")
    assert module_hash(pkg, root) != before
    dest = tmp_path / "copy"
    copy_module(pkg, root, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == expected


def test_build_task_watches_exactly_the_module_files(tmp_path: Path) -> None:
    root, pkg = _stack_with_package(tmp_path)
    (root / ".gitignore").write_text("*.log\n")
    (pkg / "run.log").write_text("noise\n")
    path = write_stack(root, RUNTIME + app("demo", extra='launch_module = "pkg"'), {})
    settings = Settings(load_stack(path), root / "_build", RuntimeOptions(cache_dir=tmp_path / "cache"))
    task = next(t for t in build_tasks(settings) if t["name"] == "app-demo")
    watched = {Path(p) for p in task["file_dep"]}
    assert pkg / "__init__.py" in watched and pkg / "__main__.py" in watched
    assert pkg / "run.log" not in watched


# --- property: whatever a module tree holds, nothing outside it reaches the copy -----------

_NAMES = st.sampled_from(["a", "b", "c.py", "d", "e.txt"])
_ENTRY = st.tuples(
    st.lists(_NAMES, min_size=1, max_size=3),
    st.sampled_from(["file", "link-in", "link-up", "link-out", "link-abs-out", "link-self"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(_ENTRY, max_size=8))
def test_a_copy_never_holds_bytes_from_outside_the_module(
    tmp_path_factory: pytest.TempPathFactory, entries: list[tuple[list[str], str]]
) -> None:
    tmp = tmp_path_factory.mktemp("tree")
    root, pkg = _stack_with_package(tmp)
    secret = _secret(tmp)
    (root / "sibling.txt").write_bytes(SECRET)
    for parts, kind in entries:
        path = pkg.joinpath(*parts)
        if os.path.lexists(path) or not _make_parents(path):
            continue
        target = {
            "file": None,
            "link-in": "../" * (len(parts) - 1) + "__init__.py",
            "link-up": "../" * len(parts) + "sibling.txt",
            "link-out": "../" * (len(parts) + 1) + "outside/id_rsa",
            "link-abs-out": str(secret),
            "link-self": path.name,
        }[kind]
        if target is None:
            path.write_text("print()\n")
        else:
            path.symlink_to(target)
    dest = tmp / "copy"
    try:
        copy_module(pkg, root, dest)
    except ModuleError as exc:
        assert "\n" not in str(exc)
        return
    assert SECRET not in _all_bytes(dest)
    for link in (p for p in dest.rglob("*") if p.is_symlink()):
        assert Path(os.path.realpath(link)).is_relative_to(os.path.realpath(dest))


def _make_parents(path: Path) -> bool:
    """Make the folders above path; False if a file or link is in the way."""
    for parent in reversed(path.parents):
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    return True


@pytest.mark.slow
def test_a_package_with_an_inner_link_builds_publishes_and_deploys(stack: Stack, tmp_path: Path) -> None:
    extras = stack.root / "extras"
    (extras / "data").mkdir(parents=True)
    (extras / "__init__.py").write_text(
        "from pathlib import Path\nTEXT = (Path(__file__).parent / 'alias.txt').read_text()\n"
    )
    (extras / "data" / "real.txt").write_text("read through an inner link\n")
    (extras / "alias.txt").symlink_to("data/real.txt")
    stack.spec.write_text(stack.spec.read_text().replace('["helper.py"]', '["helper.py", "extras"]'))
    (stack.root / "hello.py").write_text(
        (stack.root / "hello.py").read_text() + "import extras\nprint(extras.TEXT)\n"
    )
    out = tmp_path / "published"
    stack.venvstacks("publish", str(stack.spec), "--output-dir", str(out), "--format", "tar.gz")
    with tarfile.open(out / "app-hello.tar.gz") as tf:
        alias = tf.getmember("app-hello/lib/python3.11/site-packages/extras/alias.txt")
        assert alias.issym() and alias.linkname == "data/real.txt"
    target = tmp_path / "deployed"
    stack.venvstacks("deploy", str(out), str(target))
    python = target / "app-hello" / "bin" / "python"
    run = subprocess.run([str(python), "-m", "hello"], capture_output=True, text=True, check=True)
    assert "read through an inner link" in run.stdout


# --- .gitignore files from the repository root down, checked against git itself ---------------

_REPO_FILES = {
    ".gitignore": "*.log\nsecret*\n/examples/demo/pkg/build/\n",
    "examples/.gitignore": "!keep.log\n*.tmp\n",
    "examples/demo/pkg/__init__.py": "",
    "examples/demo/pkg/__main__.py": "",
    "examples/demo/pkg/run.log": "noise",
    "examples/demo/pkg/keep.log": "kept",
    "examples/demo/pkg/x.tmp": "",
    "examples/demo/pkg/secret.txt": "s3cret",
    "examples/demo/pkg/local-only.txt": "excluded by .git/info/exclude only",
    "examples/demo/pkg/build/out.py": "",
    "examples/demo/pkg/sub/.gitignore": "!y.tmp\nz.py\n",
    "examples/demo/pkg/sub/y.tmp": "",
    "examples/demo/pkg/sub/z.py": "",
    "examples/demo/pkg/sub/w.py": "",
    "examples/demo/pkg/sub/deep/secret_notes.py": "",
    "examples/demo/pkg/sub/deep/v.py": "",
}


def _git(repo: Path, *args: str, stdin: str = "") -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(
        ["git", "-c", f"core.excludesFile={os.devnull}", *args],
        cwd=repo, input=stdin, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr  # check-ignore: 1 when nothing is ignored
    return done.stdout


@pytest.mark.skipif(not shutil.which("git"), reason="needs git to compare with")
def test_module_files_are_what_git_check_ignore_keeps(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for rel, content in _REPO_FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(content)
    _git(repo, "init", "-q")
    # Not committed, so not ours to honour: the same commit must build alike everywhere.
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("local-only.txt\n")
    root, pkg = repo / "examples" / "demo", repo / "examples" / "demo" / "pkg"
    candidates = sorted(
        p.relative_to(repo).as_posix() for p in pkg.rglob("*") if p.is_file() and p.name != ".gitignore"
    )
    (repo / ".git" / "info" / "exclude").write_text("")
    ignored = set(_git(repo, "check-ignore", "--no-index", "--stdin", stdin="\n".join(candidates)).split())
    kept = [c.removeprefix("examples/demo/pkg/") for c in candidates if c not in ignored]
    assert "run.log" not in kept and "keep.log" in kept and "sub/y.tmp" in kept  # the rules bite
    (repo / ".git" / "info" / "exclude").write_text("local-only.txt\n")
    assert [e.rel for e in module_files(pkg, root) if not e.is_dir] == kept
    assert "local-only.txt" in kept
