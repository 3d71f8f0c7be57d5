"""The options of the commands that read a stack (`show`, `lock`, `build`, `local-export`,
`publish`, `licenses`) and their typed commands: loaded only when one of them runs (or for
the whole help), so that deploying on a target machine parses its line without them.
cli_options.py adds each command (its name and one-line help) and parses the line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from venvstacks.archive.formats import ArchiveFormat
from venvstacks.cli_parsers import StackCommand, loudness, stack_and_build_folder
from venvstacks.layout import DEFAULT_EXPORT_DIR, DEFAULT_PUBLISH_DIR
from venvstacks.platforms import ALL_PLATFORMS

BOOL = argparse.BooleanOptionalAction
GRAPH_FORMATS = ("mermaid", "dot")


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


def command_class(name: str) -> type[StackCommand]:
    """The typed command of the stack command ``name``."""
    kinds = {"show": ShowCommand, "licenses": LicensesCommand, "prune": StackCommand}
    return kinds.get(name, OperationCommand)


def add_options(cmd: argparse.ArgumentParser, name: str) -> None:
    """The options of the stack command ``name`` (not `prune`: cli_parsers.py has its parser)."""
    if name == "licenses":
        _licenses_options(cmd)
        return
    _stack_options(cmd, runs_tasks=name != "show")
    if name != "show":
        _operation_options(cmd, name)
    else:
        _show_options(cmd)


def _show_options(cmd: argparse.ArgumentParser) -> None:
    out = cmd.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the stack as JSON")
    out.add_argument(
        "--graph",
        choices=GRAPH_FORMATS,
        help="print the layer graph (edges from each layer to those it uses, in sys.path order) "
        "as Mermaid (renders on GitHub and GitLab) or Graphviz dot; not with --json",
    )


def _licenses_options(cmd: argparse.ArgumentParser) -> None:
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
