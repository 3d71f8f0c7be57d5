"""The `venvstacks` argument parser: every command and option of the existing venvstacks CLI,
plus ours (`deploy`, `--jobs`, `--format`, `--upgrade`, the runtime sources).

Boolean options come as `--x/--no-x` pairs, as upstream. Options that mean nothing more in
a doit graph (`--if-needed`, `--lock-if-needed`, `--lock-dependencies`,
`--build-dependencies`) are accepted: the graph always locks and builds lower layers when,
and only when, their inputs changed (docs/differences.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from venvstacks import __version__
from venvstacks.cli_parsers import (
    OneCommand,
    StackCommand,
    command_word,
    deploy_parser,
    docs_parser,
    init_parser,
    prune_parser,
    verify_parser,
)
from venvstacks.lazy import lazy_modules

# The command classes of deploy, verify, init and docs, loaded when one of them runs: a
# build (or its no-op) makes none of them (each class costs ~0.5 ms to make); the options
# and classes of the commands reading a stack, loaded when one of them runs: a deploy
# needs none of them (with what they import, ~10 ms).
if TYPE_CHECKING:
    from venvstacks import cli_commands, cli_stackoptions
    from venvstacks.cli_commands import DeployCommand, DocsCommand, InitCommand, VerifyCommand
    from venvstacks.cli_stackoptions import OperationCommand
else:
    cli_commands, cli_stackoptions = lazy_modules("venvstacks.cli_commands", "venvstacks.cli_stackoptions")

DESCRIPTION = """\
Build layered Python environments (runtime, frameworks, applications) from a
venvstacks.toml. The build is a doit task graph: only layers whose inputs changed are
relocked, rebuilt, rewired, exported or published. Plain `doit` runs the same graph in a
folder whose dodo.py is `from venvstacks.dodo import *` (`venvstacks init` writes one).
Documentation: `venvstacks docs` lists the pages installed with venvstacks, `venvstacks
docs cli` prints the one about the command line. `venvstacks COMMAND --help` lists a
command's options.
"""

Command: TypeAlias = (
    "StackCommand | OperationCommand | DeployCommand | VerifyCommand | InitCommand | DocsCommand"
)
#: The commands that read no stack (their command classes: cli_commands.py).
NO_STACK_COMMANDS = ("deploy", "verify", "init", "docs")
#: The commands that read a stack, with the options of cli_stackoptions.py (and `prune`,
#: whose parser is in cli_parsers.py): each one's one-line help.
STACK_COMMANDS = {
    "show": "show the layers of a stack, their dependencies and lock status",
    "lock": "lock the selected layers (uv runs only where inputs changed)",
    "build": "lock if needed, then build the selected layers and the layers below them",
    "local-export": "build if needed, then export layers to a folder where they run",
    "publish": "build if needed, then publish layers as reproducible archives, each with its SBOM",
    "licenses": (
        "list what each app ships (its layer, frameworks and runtime) with every package's licence, "
        "from the built layers or published SBOMs (`venvstacks docs sbom`)"
    ),
}


def parse_command(argv: Sequence[str] | None) -> Command | None:
    """The command line as one typed object; None (after printing help) without a command.

    Options accepted only for upstream's sake (docs/differences.md) are dropped here.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_word(argv))
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the command's own parser, so the error names its --help
        commands: dict[str, argparse.ArgumentParser] = getattr(parser, "commands", {})
        commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help(sys.stderr)
        return None
    kind: type[Command] = (
        cli_commands.BY_NAME[args.command]
        if args.command in NO_STACK_COMMANDS
        else cli_stackoptions.command_class(args.command)
    )
    known = {f.name for f in fields(kind)}
    given: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items()}
    # -v and -q count wherever they were given: before the command name or after it.
    given["verbose"] = given.pop("pre_verbose") + (given.get("verbose") or 0)
    given["quiet"] = given.pop("pre_quiet") + (given.get("quiet") or 0)
    return kind(**{k: v for k, v in given.items() if k in known and v is not None})


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, as every other error (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `chosen` (a command's name), the options of that
    command only, which parses that command's line exactly as the whole parser does."""
    parser = _Parser(prog="venvstacks", description=DESCRIPTION)
    parser.add_argument("-V", "--version", action="version", version=f"venvstacks {__version__}")
    # Also accepted after the command; separate names, since a subcommand's defaults would
    # overwrite what was given before it.
    for short, long, dest in (("-v", "--verbose", "pre_verbose"), ("-q", "--quiet", "pre_quiet")):
        parser.add_argument(short, long, dest=dest, action="count", default=0, help=f"as COMMAND {short}")
    every = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub: Any = every if chosen is None else OneCommand(every, chosen)
    for name, help_text in STACK_COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if chosen in (None, name):  # its options (cli_stackoptions.py), for it only
            cli_stackoptions.add_options(cmd, name)
    deploy_parser(sub)
    verify_parser(sub)
    init_parser(sub)
    prune_parser(sub)
    docs_parser(sub)
    parser.commands = dict(every.choices)  # type: ignore[attr-defined]
    return parser
