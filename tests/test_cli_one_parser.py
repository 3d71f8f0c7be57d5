"""The command line is parsed with the options of the command it names only (building
every command's parser took most of parsing's time): the same result, help and errors as
with the whole parser."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from venvstacks.cli_options import build_parser
from venvstacks.cli_parsers import command_word

LINES = [
    ["build", "stacks/x", "-j", "3", "--include", "app-*", "--publish", "--format", "zip"],
    ["-v", "lock", "--upgrade-package", "idna", "-q", "--no-index"],
    ["-q", "publish", "--tag-outputs", "--platform", "win_amd64", "--bytecode"],
    ["deploy", "out", "target", "--no-check", "-j", "2"],
    ["verify", "dir", "--rebuild", "--stack", "s.toml"],
    ["show", "--graph", "dot"],
    ["licenses", "--deny", "GPL-3.0-only", "--json"],
    ["init", "folder", "--python", "3.12"],
    ["docs", "cli"],
    ["prune", "s"],
    ["local-export", "--output-dir", "o"],
]


@pytest.mark.parametrize("argv", LINES, ids=lambda argv: argv[0] if argv[0][0] != "-" else argv[1])
def test_one_commands_parser_parses_as_the_whole_one(argv: list[str]) -> None:
    chosen = command_word(argv)
    assert chosen is not None and chosen in build_parser().commands  # type: ignore[attr-defined]
    assert build_parser(chosen).parse_known_args(argv) == build_parser().parse_known_args(argv)


def test_the_help_of_every_command_is_the_whole_parsers() -> None:
    whole = build_parser()
    commands: dict[str, argparse.ArgumentParser] = whole.commands  # type: ignore[attr-defined]
    for name, parser in commands.items():
        one = build_parser(name)
        assert one.format_help() == whole.format_help()
        assert one.commands[name].format_help() == parser.format_help()  # type: ignore[attr-defined]


def test_a_misspelt_command_is_refused_as_by_the_whole_parser(capsys: pytest.CaptureFixture[str]) -> None:
    errors = []
    for parser in (build_parser(command_word(["biuld", "x"])), build_parser()):
        with pytest.raises(SystemExit):
            parser.parse_known_args(["biuld", "x"])
        errors.append(capsys.readouterr().err)
    assert errors[0] == errors[1] and "invalid choice: 'biuld'" in errors[0]


def test_a_stack_command_line_loads_no_other_commands_class() -> None:
    """The classes of deploy, verify, init and docs (cli_commands.py) load for those only."""
    probe = (
        "import sys; from venvstacks.cli_options import parse_command; c = parse_command(sys.argv[1:]); "
        "print(type(c).__name__, 'venvstacks.cli_commands' in sys.modules)"
    )
    for argv, expected in (
        (["build", "s"], "OperationCommand False"),
        (["deploy", "a", "b"], "DeployCommand True"),
    ):
        out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True)
        assert out.stdout.split() == expected.split()


def test_the_commands_without_a_stack_are_those_cli_commands_defines() -> None:
    """cli_options names them without importing cli_commands (a build must not load it):
    the two lists must stay the same, or a command would be parsed as the wrong kind."""
    from venvstacks.cli_commands import BY_NAME
    from venvstacks.cli_options import NO_STACK_COMMANDS

    assert sorted(NO_STACK_COMMANDS) == sorted(BY_NAME)
