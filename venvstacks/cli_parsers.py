"""The parsers of the commands that read no stack's options (deploy, verify, init, docs,
prune), the -v/-q every command takes, what every command reading a stack takes (its
options and `StackCommand`), and the parsing of one command's options only;
cli_options.py builds the whole command line.

Deploying on a target machine parses its line with this module: it loads no stack parser
(`stack.fields` checks init's --python, loaded when that is given).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from venvstacks.layout import DEFAULT_BUILD_DIR, STACK_FILE
from venvstacks.lazy import lazy_modules

if TYPE_CHECKING:
    from venvstacks.stack import fields
else:
    (fields,) = lazy_modules("venvstacks.stack.fields")


@dataclass(frozen=True)
class StackCommand:
    """`prune`, and what every command reading a stack file has."""

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


def stack_and_build_folder(cmd: argparse.ArgumentParser) -> None:
    """The stack file and the build folder: what every command reading a stack takes."""
    cmd.add_argument("spec_path", nargs="?", help="the stack file or its folder (default: ./venvstacks.toml)")
    cmd.add_argument(
        "--build-dir",
        default=DEFAULT_BUILD_DIR,
        metavar="DIR",
        help=f"build folder, relative to the stack file ({DEFAULT_BUILD_DIR})",
    )


def loudness(cmd: argparse.ArgumentParser, louder: str, quieter: str) -> None:
    """-v and -q, which every command takes (also before its name: `venvstacks -q deploy`)."""
    cmd.add_argument("-v", "--verbose", action="count", default=0, help=louder)
    cmd.add_argument("-q", "--quiet", action="count", default=0, help=quieter)


def docs_parser(sub: Any) -> None:
    text = "print a documentation page (installed with venvstacks); without TOPIC, list them"
    cmd = sub.add_parser("docs", help=text, description=text)
    cmd.add_argument(
        "topic", nargs="?", help="a page: concepts, stack-file, runtimes, cli, doit, deployment, ..."
    )
    loudness(cmd, "also say which file the page is", "list the topics only, without titles")


def prune_parser(sub: Any) -> None:
    text = (
        "remove what layers no longer in the stack left behind: their build folders, lock folders "
        "and published archives (in _artifacts); `show` and `build` name them"
    )
    cmd = sub.add_parser("prune", help=text, description=text)
    stack_and_build_folder(cmd)
    loudness(
        cmd, "also name the layer each path belonged to", "print only how many were removed, not each path"
    )


def init_parser(sub: Any) -> None:
    text = (
        "write a starter stack (venvstacks.toml, a launch module, dodo.py, .gitignore) into a folder;"
        " beside an existing venvstacks.toml, only dodo.py (for plain doit)"
    )
    cmd = sub.add_parser("init", help=text, description=text)
    cmd.add_argument("folder", nargs="?", default=".", help="the folder (default: the current one)")
    cmd.add_argument(
        "--python",
        metavar="X.Y",
        type=_python_version,
        help="its runtime's CPython version (default: the one running venvstacks)",
    )
    loudness(cmd, "also name each file written, with its path", "print only errors")


def _python_version(value: str) -> str:
    # Checked here: the stack file would take it as "cpython@<value>", and a starter that the
    # next command rejects is no start.
    if not fields.REQUEST_RE.fullmatch(f"cpython@{value}"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a CPython version like 3.12 or 3.12.1")
    return value


def deploy_parser(sub: Any) -> None:
    text = "unpack published layers into a folder, check them, and run their postinstall"
    dep = sub.add_parser("deploy", help=text, description=text)
    dep.add_argument("published", help="a publish output folder (or its __venvstacks__ metadata file)")
    dep.add_argument("target", help="the folder to deploy into (created if missing)")
    dep.add_argument(
        "--include",
        action="append",
        metavar="PATTERN",
        help="deploy these layers (build name or deployed name, fnmatch; repeatable) and what they need",
    )
    dep.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="unpack up to N layers at once (default: one per core; 1: one layer after another)",
    )
    dep.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check each layer already deployed against its file manifest, as verify does, and "
        "deploy again the ones that differ (default: on; --no-check trusts the deploy record)",
    )
    loudness(dep, "also show what each postinstall.py prints", "print only the summary and failures")


def verify_parser(sub: Any) -> None:
    text = "check deployed layers against their published file manifests (--rebuild: rebuild the archives)"
    ver = sub.add_parser("verify", help=text, description=text)
    ver.add_argument(
        "folder", help="a deployment folder; with --rebuild, a publish output folder (or its metadata file)"
    )
    ver.add_argument(
        "--published",
        metavar="DIR",
        help="check the manifests against this publication's metadata (default: the deploy record)",
    )
    ver.add_argument(
        "--rebuild",
        action="store_true",
        help="rebuild every published layer from the stack's committed locks and compare the archives",
    )
    ver.add_argument(
        "--stack",
        default=STACK_FILE,
        metavar="PATH",
        help="with --rebuild: the stack file or its folder (./venvstacks.toml)",
    )
    ver.add_argument(
        "--allow-local-runtime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --rebuild: rebuild on a runtime packed from a local CPython "
        "(default: as the published metadata's runtime_portable says)",
    )
    loudness(ver, "list every difference of a layer, not only the first three", "print only what differs")


def command_word(argv: Sequence[str]) -> str | None:
    """The command an argument list names: its first word that is no option (every option
    before the command name is a flag: -v, -q, -V, -h)."""
    return next((word for word in argv if not word.startswith("-")), None)


class OneCommand:
    """The subparsers action, for a command line naming `chosen`: every command is added
    (the top-level help and its errors list them all) but only the chosen one gets its
    options. Building all eleven is most of the time parsing takes (2 ms of a no-op)."""

    def __init__(self, sub: Any, chosen: str) -> None:
        self.sub, self.chosen = sub, chosen

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        parser = self.sub.add_parser(name, **kwargs)
        return parser if name == self.chosen else Dropped()


class Dropped:
    """Takes the options of a command that is not run (and their groups), and drops them."""

    def __getattr__(self, name: str) -> Callable[..., Dropped]:
        return lambda *args, **kwargs: self
