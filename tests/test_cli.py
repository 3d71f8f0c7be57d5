"""CLI parity: options select layers and operations as the existing venvstacks does.

`--json` on an operation prints the plan and stops, so these tests run no build.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.spec_files import RUNTIME
from venvstacks.cli import main

STACK = """
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = []

[[frameworks]]
name = "base"
runtime = "cpython-3.11"
requirements = []

[[frameworks]]
name = "top"
frameworks = ["base"]
requirements = []

[[applications]]
name = "app"
frameworks = ["top"]
launch_module = "launch.py"
requirements = []

[[applications]]
name = "winapp"
runtime = "cpython-3.11"
launch_module = "launch.py"
requirements = []
platforms = ["win_amd64"]
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    (tmp_path / "launch.py").write_text("print('hi')\n")
    path = tmp_path / "venvstacks.toml"
    path.write_text(STACK)
    return path


def plan(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, list[str]]:
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    return {
        e["name"]: e["selected_operations"]
        for kind in ("runtimes", "frameworks", "applications")
        for e in data[kind]
    }


def test_build_selects_included_layers(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A build also locks, and builds what is below (the listing is what the run does).
    lock_build = ["lock", "build"]
    assert plan(capsys, "build", str(spec), "--include", "framework-top") == {
        "cpython-3.11": lock_build,
        "framework-base": lock_build,
        "framework-top": lock_build,
    }


def test_derived_and_dependency_flags(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ops = plan(capsys, "build", str(spec), "--include", "framework-base", "--build-derived", "--publish")
    assert ops["framework-base"] == ["lock", "build", "publish"]
    assert ops["framework-top"] == ops["app-app"] == ops["cpython-3.11"] == ["lock", "build"]
    assert "app-winapp" not in ops
    ops = plan(capsys, "publish", str(spec), "--include", "app-app", "--publish-dependencies")
    assert ops == {
        name: ["lock", "build", "publish"]
        for name in ("cpython-3.11", "framework-base", "framework-top", "app-app")
    }
    ops = plan(capsys, "build", str(spec), "--include", "app-app", "--publish", "--publish-dependencies",
               "--no-include-dependencies")  # fmt: skip
    assert ops == {
        "cpython-3.11": ["lock", "build"],
        "framework-base": ["lock", "build"],
        "framework-top": ["lock", "build"],
        "app-app": ["lock", "build", "publish"],
    }


def test_lock_relocks_derived_layers(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ops = plan(capsys, "lock", str(spec), "--include", "framework-top")
    assert ops == {name: ["lock"] for name in ("cpython-3.11", "framework-base", "framework-top", "app-app")}


def test_no_build_only_locks(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ops = plan(capsys, "build", str(spec), "--include", "app-app", "--no-build")
    assert ops == {name: ["lock"] for name in ("cpython-3.11", "framework-base", "framework-top", "app-app")}


def test_include_matching_nothing(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(spec), "--include", "app-nope", "--json"]) == 1
    assert "matches no layer" in capsys.readouterr().err
    assert main(["build", str(spec), "--include", "app-nope", "--include", "app-app", "--allow-missing",
                 "--json"]) == 0  # fmt: skip
    assert "warning: --include 'app-nope' matches no layer" in capsys.readouterr().err


def test_a_stack_file_name_or_a_near_miss_gets_the_build_name_it_meant(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", str(spec), "--include", "top", "--json"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: --include 'top' matches no layer; did you mean framework-top?"
    ]
    assert main(["build", str(spec), "--include", "app-ap", "--include", "*app", "--json"]) == 1
    assert (
        "--include 'app-ap' matches no layer; did you mean app-app or app-winapp?" in capsys.readouterr().err
    )
    assert main(["lock", str(spec), "--reset-lock", "base", "--json"]) == 0
    assert "warning: --reset-lock 'base' matches no layer; did you mean framework-base?" in (
        capsys.readouterr().err
    )
    # What a pattern selects is unchanged: build names only, as in the existing tool.
    selected = plan(capsys, "build", str(spec), "--include", "top", "--allow-missing")
    assert not any(selected.values())


def test_show_only_prints_the_tree(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(spec), "--show-only"]) == 0
    out = capsys.readouterr().out
    assert "+-- *app-app  [lock, build]" in out and "|   |   +-- framework-top" in out


def test_spec_path_defaults_to_the_current_folder(
    spec: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(spec.parent)
    assert main(["show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["spec_name"] == str(spec)


def test_every_upstream_option_is_accepted(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    upstream = {
        "lock": ["--if-needed", "--lock-dependencies", "--clean", "--no-index", "--reset-lock", "x",
                 "--local-wheels", "w", "--show-only"],
        "build": ["--lock-if-needed", "--lock", "--no-build", "--publish", "--build-dependencies",
                  "--publish-dependencies", "--include-dependencies", "--build-derived", "--publish-derived",
                  "--tag-outputs", "--output-dir", "o", "--clean", "--index", "--reset-lock", "x",
                  "--show-only"],
        "publish": ["--output-dir", "o", "--tag-outputs", "--force", "--dry-run", "--publish-dependencies",
                    "--publish-derived", "--show-only"],
        "local-export": ["--output-dir", "o", "--force", "--dry-run", "--publish-dependencies",
                         "--publish-derived", "--show-only"],
        "show": ["--allow-missing"],
    }  # fmt: skip
    (spec.parent / "w").mkdir()
    for command, options in upstream.items():
        argv = [command, str(spec), "--build-dir", "b", "--include", "*", "-v", "-q", *options]
        assert main(argv) == 0, (command, capsys.readouterr())
        capsys.readouterr()


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: venvstacks" in capsys.readouterr().err


def test_a_reset_lock_pattern_matching_no_layer_is_a_warning(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A typo would otherwise reset nothing, silently; the lock still runs, as upstream's does.
    assert main(["lock", str(spec), "--reset-lock", "framework-tpo", "--reset-lock", "app-*", "--json"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: --reset-lock 'framework-tpo' matches no layer; did you mean framework-top?"]


def test_a_usage_error_is_one_line(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["publish", str(spec), "--format", "tar.bz2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("venvstacks publish: error: argument --format: invalid choice: 'tar.bz2'")
    assert err.endswith("; see `venvstacks publish --help`\n")


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["build", "--bogus"], "venvstacks build"),
        (["verify", "somewhere", "--bogus"], "venvstacks verify"),
        (["show", "--jobs", "2"], "venvstacks show"),
        (["--bogus"], "venvstacks"),
    ],
)
def test_an_unknown_option_names_the_commands_own_help(
    argv: list[str], prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"{prog}: error: unrecognized arguments: ")
    assert err.endswith(f"; see `{prog} --help`\n")


def test_missing_local_wheels_folder_is_one_line(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock", str(spec), "--local-wheels", "nowhere"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--local-wheels" in err and "nowhere" in err


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["build", "{spec}", "--build-dir", "{file}"], "--build-dir"),
        (["publish", "{spec}", "--output-dir", "{file}/sub"], "--output-dir"),
        (["local-export", "{spec}", "--output-dir", "{file}"], "--output-dir"),
    ],
)
def test_a_folder_option_naming_a_file_is_one_line(
    spec: Path, capsys: pytest.CaptureFixture[str], argv: list[str], option: str
) -> None:
    file = spec.parent / "a-file"
    file.write_text("")
    args = [a.format(spec=spec, file=file) for a in argv]
    assert main(args) == 1
    problem = f"{file} exists and is not a folder; choose another path"
    assert capsys.readouterr().err == f"error: {option} {args[-1]}: {problem}\n"


def test_init_writes_a_starter_folder_that_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path / "new"), "--python", "3.12"]) == 0
    files = sorted(p.name for p in (tmp_path / "new").iterdir())
    assert files == [".gitignore", "dodo.py", "hello.py", "venvstacks.toml"]
    capsys.readouterr()
    assert main(["show", str(tmp_path / "new"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in data["runtimes"]] == ["cpython-3.12"]
    assert [(e["name"], e["dependencies"]) for e in data["applications"]] == [("app-hello", ["cpython-3.12"])]


@pytest.mark.parametrize("version", ["3", "cpython@3.12", "3.12-dev"])
def test_init_refuses_a_python_version_the_stack_file_would_reject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["init", str(tmp_path / "new"), "--python", version])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"venvstacks init: error: argument --python: {version!r} is not a CPython version like "
        "3.12 or 3.12.1; see `venvstacks init --help`\n"
    )
    assert not (tmp_path / "new").exists()


def test_init_into_a_file_says_it_is_not_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes").write_text("mine\n")
    notes = tmp_path / "notes"
    assert main(["init", str(notes)]) == 1
    problem = f"{notes} exists and is not a folder; choose another path"
    assert capsys.readouterr().err == f"error: init {notes}: {problem}\n"
    assert (tmp_path / "notes").read_text() == "mine\n"


def test_init_writes_nothing_if_one_file_exists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".gitignore").write_text("mine\n")
    assert main(["init", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path}: .gitignore already exists; init replaces no file")
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore"]
    assert (tmp_path / ".gitignore").read_text() == "mine\n"


def test_init_beside_an_existing_stack_writes_only_dodo_py(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = tmp_path / "venvstacks.toml"
    stack.write_text(RUNTIME)  # the user's own stack, e.g. one made for the existing venvstacks
    (tmp_path / ".gitignore").write_text("mine\n")
    assert main(["init", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"wrote dodo.py in {tmp_path}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", "dodo.py", "venvstacks.toml"]
    assert stack.read_text() == RUNTIME and (tmp_path / ".gitignore").read_text() == "mine\n"
    # plain doit in that folder now sees the stack's tasks
    listed = subprocess.run(
        [sys.executable, "-m", "doit", "list", "--all"], cwd=tmp_path, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert "lock:cpython-3.11" in listed.stdout.split()

    assert main(["init", str(tmp_path)]) == 1  # a second time: dodo.py is there
    refused = capsys.readouterr().err
    assert refused.startswith(f"error: {tmp_path}: dodo.py already exists; init replaces no file")
    (tmp_path / "dodo.py").unlink()
    assert main(["init", str(tmp_path), "--python", "3.12"]) == 1
    assert capsys.readouterr().err == (
        f"error: {stack} already exists: --python only applies to a new stack "
        "(set the runtime in that file)\n"
    )
    assert not (tmp_path / "dodo.py").exists()


@pytest.mark.parametrize("command", ["show", "lock", "build", "local-export", "publish"])
def test_help_says_what_each_runtime_source_does_and_the_defaults(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for said in (
        "auto: download python-build-standalone's CPython, else fall back to one installed here",
        "download: never fall back; local: never download",
        "(default: $VENVSTACKS_RUNTIME_SOURCE, else auto)",
        "(default: $VENVSTACKS_RUNTIME_MIRROR)",
        "REQ, e.g. cpython@3.12; repeatable",
        "(default: $VENVSTACKS_RUNTIME_CACHE, else venvstacks/runtimes in $XDG_CACHE_HOME or ~/.cache)",
    ):
        assert said in text


def test_deploy_and_verify_given_a_stack_folder_say_which_folder_they_want(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The newcomer's slip: the stack folder instead of what publish or deploy wrote.
    assert main(["init", str(tmp_path / "stack")]) == 0
    capsys.readouterr()
    assert main(["deploy", str(tmp_path / "stack"), str(tmp_path / "target")]) == 1
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'stack'}: no __venvstacks__/venvstacks.json found; pass the folder "
        "`venvstacks publish` wrote (_artifacts beside the stack file, unless --output-dir named another)\n"
    )
    assert not (tmp_path / "target").exists()
    assert main(["verify", str(tmp_path / "stack")]) == 1
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'stack'}: no deployed layer found; pass the folder `venvstacks deploy` "
        "wrote (or `--rebuild` and a folder `venvstacks publish` wrote)\n"
    )


def test_the_starters_framework_example_works_as_its_comment_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", str(tmp_path), "--python", "3.12"]) == 0
    spec = tmp_path / "venvstacks.toml"
    lines = spec.read_text().splitlines()
    # What a newcomer does: uncomment the framework (a table of three keys), then do what the
    # next comment line says to the app.
    start = lines.index("# [[frameworks]]")
    lines[start : start + 4] = [line.removeprefix("# ") for line in lines[start : start + 4]]
    assert (
        lines[start + 4]
        == '# An app then sits on it with `frameworks = ["web"]` in place of its `runtime = ...` line.'
    )
    app = lines.index("[[applications]]")
    lines[app:] = [line.replace('runtime = "cpython-3.12"', 'frameworks = ["web"]') for line in lines[app:]]
    spec.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["show", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    layers = [(e["name"], e["dependencies"]) for e in data["frameworks"] + data["applications"]]
    assert layers == [("framework-web", ["cpython-3.12"]), ("app-hello", ["framework-web", "cpython-3.12"])]


@pytest.mark.parametrize(("argv", "expected"), [((), "5"), (("-j", "1"), "1"), (("--jobs", "7"), "7")])
def test_tasks_run_one_per_core_plus_two_by_default(
    spec: Path, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...], expected: str
) -> None:
    """A build needs no flag to run independent tasks side by side (one per core, plus two
    for tasks waiting on the index or the disk); -j 1 still runs them one at a time. Checked
    on what doit is told (its -n), for the CLI and for plain doit."""
    import venvstacks.cli_workflow
    from venvstacks.engine import rundoit
    from venvstacks.engine.settings import Settings
    from venvstacks.runtimes.options import RuntimeOptions
    from venvstacks.stack.spec import load_stack

    monkeypatch.setattr(rundoit, "cores", lambda: 3)
    told: list[list[str]] = []

    def run_doit(settings: Settings, args: list[str], graph: object) -> int:
        told.append(list(args))
        return 0

    monkeypatch.setattr(venvstacks.cli_workflow, "run_doit", run_doit)
    assert main(["build", str(spec), *argv]) == 0
    doit_args = told[-1]
    assert doit_args[doit_args.index("-n") + 1] == expected
    settings = Settings(load_stack(spec), spec.parent / "_build", RuntimeOptions(cache_dir=spec.parent / "c"))
    assert rundoit.doit_config(settings)["num_process"] == 5  # plain doit's default


@pytest.mark.parametrize(
    "argv",
    [["show", "S"], ["build", "S"], ["deploy", "P", "T"], ["verify", "D"], ["init", "F"]],
)
def test_every_command_takes_v_and_q_before_or_after_its_name(argv: list[str]) -> None:
    from venvstacks.cli_options import parse_command

    for given in (["-q", *argv], [*argv, "-q"], ["-q", *argv, "--quiet"]):
        command = parse_command(given)
        assert getattr(command, "quiet", None) == given.count("-q") + given.count("--quiet"), given
    command = parse_command(["-v", *argv, "-v"])
    assert getattr(command, "verbose", None) == 2


def test_show_v_lists_requirements_and_q_leaves_out_the_legend(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec.write_text(
        spec.read_text().replace(
            'name = "top"\nframeworks = ["base"]\nrequirements = []',
            'name = "top"\nframeworks = ["base"]\nrequirements = ["idna>=3"]',
        )
    )
    assert main(["show", str(spec)]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert main(["-v", "show", str(spec)]) == 0
    louder = capsys.readouterr().out.splitlines()
    assert [line for line in louder if line not in plain] == ["|   |   requires idna>=3"]
    assert main(["show", str(spec), "-q"]) == 0
    quieter = capsys.readouterr().out.splitlines()
    assert quieter == [line for line in plain if not line.startswith("(")]
    assert len(quieter) < len(plain)


def test_init_q_prints_nothing_and_v_names_each_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-q", "init", str(tmp_path / "a")]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "a" / "venvstacks.toml").is_file()
    assert main(["init", str(tmp_path / "b"), "-v"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'b' / 'venvstacks.toml'}" in out.splitlines()


def test_leftovers_of_removed_layers_are_named_and_pruned(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = spec.parent
    kept = [root / "_build/app-app/share/venv/metadata/build-state", root / "_build/notes"]
    left = [root / "_build/app-old/share/venv/metadata/build-state"]
    for folder in kept + left:
        folder.mkdir(parents=True)
    for name in ("app-app", "app-old"):
        (root / "requirements" / name).mkdir(parents=True)
        (root / "requirements" / name / f"pylock.{name}.toml").write_text("")
        meta = root / "_artifacts/__venvstacks__/env_metadata" / f"{name}.json"
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(
            json.dumps({"layer_name": name, "install_target": name, "archive_name": f"{name}.tar.xz"})
        )
        (root / "_artifacts" / f"{name}.tar.xz").write_bytes(b"")
    (root / "_build/.runtimes").mkdir()
    (root / "_build/.runtimes/cpython-3.10.json").write_text("{}")
    expected = [
        "_artifacts/__venvstacks__/env_metadata/app-old.json",
        "_artifacts/app-old.tar.xz",
        "_build/.runtimes/cpython-3.10.json",
        "_build/app-old",
        "requirements/app-old",
    ]
    note = (
        "note: 5 leftover(s) of layers no longer in the stack (app-old, cpython-3.10): "
        f"{', '.join(expected)}; `venvstacks prune` removes them"
    )
    assert main(["show", str(spec)]) == 0
    assert capsys.readouterr().err.splitlines() == [note]
    assert main(["build", str(spec), "--show-only"]) == 0
    assert note in capsys.readouterr().err.splitlines()
    assert main(["prune", str(spec)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"removed {root / p}" for p in expected] + [
        f"removed 5 leftover(s) of layers no longer in {spec}"
    ]
    assert not any((root / p).exists() for p in expected)
    assert all(folder.is_dir() for folder in kept)
    assert (root / "requirements/app-app/pylock.app-app.toml").exists() and (
        root / "_artifacts/app-app.tar.xz"
    ).exists()
    assert main(["show", str(spec)]) == 0
    assert capsys.readouterr().err == ""


def test_every_page_a_message_or_help_names_is_one_venvstacks_docs_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import re

    from venvstacks.cli_docs import docs_folder, topics
    from venvstacks.cli_options import build_parser

    repo = Path(__file__).parents[1]
    folder = docs_folder()
    assert folder is not None and set(topics(folder)) == {p.stem for p in (repo / "docs").glob("*.md")}
    parser = build_parser()
    helps = [parser.format_help(), *(cmd.format_help() for cmd in parser.commands.values())]  # type: ignore[attr-defined]
    assert not any(re.search(r"docs/[\w-]+\.md", text) for text in helps)  # a path a pip user lacks
    texts = [*helps, *(p.read_text() for p in (repo / "venvstacks").rglob("*.py")), *(
        p.read_text() for p in (repo / "docs").glob("*.md"))]  # fmt: skip
    named = {m for text in texts for m in re.findall(r"venvstacks docs ([\w-]+)", text)} - {"TOPIC"}
    assert named and named <= set(topics(folder)), named - set(topics(folder))
    for topic in sorted(named):
        assert main(["docs", topic]) == 0
        assert capsys.readouterr().out == (folder / f"{topic}.md").read_text().rstrip("\n") + "\n"
    assert main(["docs", "runtime"]) == 1
    assert capsys.readouterr().err == (
        "error: no documentation page 'runtime'; did you mean runtimes? `venvstacks docs` lists them\n"
    )
