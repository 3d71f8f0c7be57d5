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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from venvstacks import __version__
from venvstacks.archive.formats import ArchiveFormat
from venvstacks.cli_parsers import (
    OneCommand,
    command_word,
    deploy_parser,
    docs_parser,
    init_parser,
    loudness,
    prune_parser,
    stack_and_build_folder,
    verify_parser,
)
from venvstacks.layout import DEFAULT_BUILD_DIR, DEFAULT_EXPORT_DIR, DEFAULT_PUBLISH_DIR
from venvstacks.lazy import lazy_modules
from venvstacks.platforms import ALL_PLATFORMS

# The command classes of deploy, verify, init and docs, loaded when one of them runs: a
# build (or its no-op) makes none of them (each class costs ~0.5 ms to make).
if TYPE_CHECKING:
    from venvstacks import cli_commands
    from venvstacks.cli_commands import DeployCommand, DocsCommand, InitCommand, VerifyCommand
else:
    (cli_commands,) = lazy_modules("venvstacks.cli_commands")

DESCRIPTION = """\
Build layered Python environments (runtime, frameworks, applications) from a
venvstacks.toml. The build is a doit task graph: only layers whose inputs changed are
relocked, rebuilt, rewired, exported or published. Plain `doit` runs the same graph in a
folder whose dodo.py is `from venvstacks.dodo import *` (`venvstacks init` writes one).
Documentation: `venvstacks docs` lists the pages installed with venvstacks, `venvstacks
docs cli` prints the one about the command line. `venvstacks COMMAND --help` lists a
command's options.
"""

BOOL = argparse.BooleanOptionalAction


@dataclass(frozen=True)
class StackCommand:
    """`show`, and what every command reading a stack file has."""

    command: str
    spec_path: str | None = None
    build_dir: str = DEFAULT_BUILD_DIR
    include: tuple[str, ...] = ()
    allow_missing: bool = False
    verbose: int = 0
    quiet: int = 0
    runtime_source: str | None = None
    runtime_mirror: str | None = None
    runtime_archive: tuple[str, ...] = ()
    runtime_cache: str | None = None
    json: bool = False


@dataclass(frozen=True)
class ShowCommand(StackCommand):
    """`show`: the layers, or (`--graph`) the layer graph."""

    graph: str | None = None  # "mermaid" | "dot": the layer graph instead of the listing


@dataclass(frozen=True)
class LicensesCommand(StackCommand):
    """`licenses`: what each app ships, under which licences."""

    from_dir: str | None = None  # read published SBOMs there instead of the built layers
    deny: tuple[str, ...] = ()  # SPDX identifiers


@dataclass(frozen=True)
class OperationCommand(StackCommand):
    """`lock`, `build`, `local-export` and `publish`; a command lacking an option gets its default."""

    jobs: int | None = None  # tasks at once; None: one per core (platforms.cores)
    show: bool = False
    show_only: bool = False
    # locking (lock, build)
    clean: bool = False
    index: bool = True
    local_wheels: tuple[str, ...] = ()
    reset_lock: tuple[str, ...] = ()
    upgrade: bool = False
    upgrade_package: tuple[str, ...] = ()
    # what build does besides building
    build: bool = True
    publish: bool = False
    build_derived: bool = False
    include_dependencies: bool | None = None
    # outputs (build, local-export, publish)
    output_dir: str | None = None
    publish_dependencies: bool = False
    publish_derived: bool = False
    force: bool = False
    dry_run: bool = False
    tag_outputs: bool = False
    format: str | None = None  # None: each platform's default (zip for Windows, else tar.xz)
    platform: tuple[str, ...] = ()  # the platforms to build; none: this machine's
    allow_local_runtime: bool | None = None  # None: VENVSTACKS_ALLOW_LOCAL_RUNTIME decides
    bytecode: bool | None = None  # None: VENVSTACKS_BYTECODE decides


Command: TypeAlias = (
    "StackCommand | OperationCommand | DeployCommand | VerifyCommand | InitCommand | DocsCommand"
)
#: The commands that read no stack (their command classes: cli_commands.py).
NO_STACK_COMMANDS = ("deploy", "verify", "init", "docs")
GRAPH_FORMATS = ("mermaid", "dot")


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
    kinds: Mapping[str, type[Command]] = (
        cli_commands.BY_NAME
        if args.command in NO_STACK_COMMANDS
        else {"show": ShowCommand, "licenses": LicensesCommand, "prune": StackCommand}
    )
    kind = kinds.get(args.command, OperationCommand)
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
    helps = {
        "show": "show the layers of a stack, their dependencies and lock status",
        "lock": "lock the selected layers (uv runs only where inputs changed)",
        "build": "lock if needed, then build the selected layers and the layers below them",
        "local-export": "build if needed, then export layers to a folder where they run",
        "publish": "build if needed, then publish layers as reproducible archives, each with its SBOM",
    }
    for name, help_text in helps.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        _stack_options(cmd, runs_tasks=name != "show")
        if name != "show":
            _operation_options(cmd, name)
        else:
            _show_options(cmd)
    _licenses_parser(sub)
    deploy_parser(sub)
    verify_parser(sub)
    init_parser(sub)
    prune_parser(sub)
    docs_parser(sub)
    parser.commands = dict(every.choices)  # type: ignore[attr-defined]
    return parser


def _show_options(cmd: argparse.ArgumentParser) -> None:
    out = cmd.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the stack as JSON")
    out.add_argument(
        "--graph",
        choices=GRAPH_FORMATS,
        help="print the layer graph (edges from each layer to those it uses, in sys.path order) "
        "as Mermaid (renders on GitHub and GitLab) or Graphviz dot; not with --json",
    )


def _licenses_parser(sub: Any) -> None:
    text = (
        "list what each app ships (its layer, frameworks and runtime) with every package's licence, "
        "from the built layers or published SBOMs (`venvstacks docs sbom`)"
    )
    cmd = sub.add_parser("licenses", help=text, description=text)
    accepted = "accepted, as by every command; the lists are the same"
    _stack_options(cmd, runs_tasks=False, loud=(accepted, accepted))
    cmd.add_argument("--json", action="store_true", help="print the lists as JSON")
    cmd.add_argument(
        "--from",
        dest="from_dir",
        metavar="DIR",
        help="read the SBOMs published in DIR instead of the built layers (no stack file or build needed)",
    )
    cmd.add_argument(
        "--deny",
        action="append",
        metavar="SPDX_ID",
        help="exit with status 1 if a package cannot be used without this licence, e.g. GPL-3.0-only "
        "(an OR passes if one choice is allowed, an AND fails if any part is denied); repeatable",
    )


def _stack_options(
    cmd: argparse.ArgumentParser,
    runs_tasks: bool,
    loud: tuple[str, str] = ("also list each layer's requirements", "leave out the legend below the tree"),
) -> None:
    """``loud``: what -v and -q do, for a command that runs no task (show's by default)."""
    stack_and_build_folder(cmd)
    cmd.add_argument(
        "--include",
        action="append",
        metavar="PATTERN",
        help="select layers by build name (fnmatch; repeatable)",
    )
    cmd.add_argument(
        "--allow-missing", action=BOOL, default=False, help="only warn when --include matches nothing"
    )
    if runs_tasks:
        loudness(cmd, "show the output of every task, and uv's own", "print only failures")
    else:
        loudness(cmd, *loud)
    runtime = cmd.add_argument_group("runtimes (where CPython comes from; `venvstacks docs runtimes`)")
    runtime.add_argument(
        "--runtime-source",
        choices=["auto", "download", "local"],
        help="auto: download python-build-standalone's CPython, else fall back to one installed "
        "here (uv or pyenv; not portable); download: never fall back; local: never download "
        "(default: $VENVSTACKS_RUNTIME_SOURCE, else auto)",
    )
    runtime.add_argument(
        "--runtime-mirror",
        metavar="URL",
        help="base URL replacing python-build-standalone's GitHub releases "
        "(default: $VENVSTACKS_RUNTIME_MIRROR)",
    )
    runtime.add_argument(
        "--runtime-archive",
        action="append",
        metavar="REQ=LOC#sha256=HEX",
        help="use this archive (path or URL) for the runtime request REQ, e.g. cpython@3.12; repeatable",
    )
    runtime.add_argument(
        "--runtime-cache",
        metavar="DIR",
        help="the runtime cache folder (default: $VENVSTACKS_RUNTIME_CACHE, else venvstacks/runtimes "
        "in $XDG_CACHE_HOME or ~/.cache)",
    )


def _flag(cmd: argparse.ArgumentParser) -> Callable[..., Any]:
    """`flag("--x", [more names,] help)`: `--x/--no-x`, as upstream spells its boolean options
    (default: off)."""

    def flag(*names_and_help: str, default: bool | None = False) -> None:
        *names, help_text = names_and_help
        cmd.add_argument(*names, action=BOOL, default=default, help=help_text)

    return flag


def _operation_options(cmd: argparse.ArgumentParser, name: str) -> None:
    add: Callable[..., Any] = cmd.add_argument
    flag = _flag(cmd)
    add(
        "-j",
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="run up to N independent tasks at once, in threads (default: one per core; 1: one at a time)",
    )
    add("--json", action="store_true", help="print the selected layers as JSON (and stop, unless --show)")
    flag("--show", "print the selected layers before running")
    flag("--show-only", "print the selected layers and stop")
    if name in ("lock", "build"):
        _lock_options(cmd, name)
    if name == "build":
        flag("--build", "build the layer environments (default)", default=True)
        flag("--publish", "also publish the built layers")
        flag("--build-dependencies", "accepted: lower layers always build if needed")
        flag("--build-derived", "also build layers above the included ones")
        flag(
            "--include-dependencies",
            "with --publish, also publish the layers below the selected ones",
            default=None,
        )
    if name in ("build", "publish", "local-export"):
        default_dir = DEFAULT_EXPORT_DIR if name == "local-export" else DEFAULT_PUBLISH_DIR
        what = "export" if name == "local-export" else "publish"
        where = f"{what} folder, relative to the stack file (default: {default_dir})"
        add("--output-dir", metavar="DIR", help=where)
        add(
            "--platform",
            action="append",
            choices=ALL_PLATFORMS,
            metavar="NAME",
            help="build for this platform (repeatable; one of "
            f"{', '.join(ALL_PLATFORMS)}); other than this machine's, it is cross-built in "
            "<build-dir>/NAME with outputs in <output-dir>/NAME (default: this machine's only; "
            "`venvstacks docs platforms`)",
        )
        flag("--publish-dependencies", "also export/publish the lower layers")
        flag("--publish-derived", "also export/publish the layers above")
        flag("--force", "redo the outputs even if nothing changed")
        flag("--dry-run", "print the metadata that would be written, write nothing")
    if name in ("build", "publish"):
        flag(
            "--allow-local-runtime",
            "publish layers whose runtime was packed from a local CPython (not portable)",
            default=None,
        )
        flag(
            "--bytecode",
            "ship reproducible .pyc files of each layer's library in its archive, so deploy "
            "compiles nothing (bigger archives; plain doit: VENVSTACKS_BYTECODE=1; "
            "`venvstacks docs publishing`)",
            default=None,
        )
        flag("--tag-outputs", "add platform and build number to output names")
        formats = [fmt.value for fmt in ArchiveFormat]
        add(
            "--format",
            choices=formats,
            help="archive format for every platform (default: zip for Windows layers, tar.xz otherwise)",
        )


def _lock_options(cmd: argparse.ArgumentParser, name: str) -> None:
    add: Callable[..., Any] = cmd.add_argument
    flag = _flag(cmd)
    above = " (and of the layers above them)" if name == "lock" else ""
    flag("--clean", f"delete the build folders of the selected layers{above} first")
    flag("--index", "use the package index (--no-index: local wheels only)", default=True)
    add(
        "--local-wheels",
        action="append",
        metavar="DIR",
        help="a folder of wheels, relative to the stack file",
    )
    add("--reset-lock", action="append", metavar="PATTERN", help="lock these layers afresh, keeping no pins")
    flag("--lock-dependencies", "accepted: lower layers always lock if needed")
    flag("--upgrade", "let every pin move to the newest allowed version")
    add("--upgrade-package", action="append", metavar="NAME", help="let this package's pin move")
    if name == "lock":
        flag("--if-needed", "accepted: locking always runs only if needed")
    else:
        flag("--lock-if-needed", "--lock", "accepted: locks are always checked")
