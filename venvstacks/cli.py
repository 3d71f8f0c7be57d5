"""The `venvstacks` command: the command line, parsed into one typed command object
(cli_options.py), run by the command's own function.

`deploy`, `verify`, `init` and `docs` run no doit graph: they are here, and import only
what they run, loaded when they run it. The commands that read a stack (`show`, `lock`,
`build`, `local-export`, `publish`, `licenses`, `prune`) are the workflow of
cli_workflow.py, loaded (with the doit engine) only when one of them runs, so deploying on
a target machine starts without the build's modules.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# First: the collector's start-up settings (startup.py) apply to all that loads after it.
from venvstacks import startup  # noqa: F401
from venvstacks.cli_options import parse_command
from venvstacks.cli_parsers import StackCommand
from venvstacks.console import INTERRUPTED, say
from venvstacks.errors import USER_ERRNOS, VenvStacksError, os_error_line
from venvstacks.layout import allow_local_runtime_default
from venvstacks.lazy import lazy_modules
from venvstacks.tools import exit_status, set_verbose, stop_children, stop_on_signals

# What only some commands run, loaded when one of them does (start-up stays small).
if TYPE_CHECKING:
    from venvstacks import cli_commands, cli_docs, cli_workflow, starter
    from venvstacks.cli_commands import DeployCommand, InitCommand, VerifyCommand
    from venvstacks.engine import rundoit
    from venvstacks.ship import deploy, rebuild, verify
else:
    cli_commands, cli_docs, cli_workflow, starter, rundoit, deploy, rebuild, verify = lazy_modules(
        "venvstacks.cli_commands",
        "venvstacks.cli_docs",
        "venvstacks.cli_workflow",
        "venvstacks.starter",
        "venvstacks.engine.rundoit",
        "venvstacks.ship.deploy",
        "venvstacks.ship.rebuild",
        "venvstacks.ship.verify",
    )


def main(argv: Sequence[str] | None = None) -> int:
    command = parse_command(argv)
    if command is None:
        return 2
    stop_on_signals()  # SIGTERM and SIGHUP (CI cancels, `timeout`, `kill`) as Ctrl-C
    try:
        if isinstance(command, StackCommand):  # first: the others' classes load only for them
            return cli_workflow.run_stack_command(command)
        if isinstance(command, cli_commands.DeployCommand):
            return deploy_cmd(command)
        if isinstance(command, cli_commands.VerifyCommand):
            return verify_cmd(command)
        if isinstance(command, cli_commands.InitCommand):
            return init_cmd(command)
        return cli_docs.docs_cmd(command)
    except VenvStacksError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM, SIGHUP
        stop_children()  # a stack command has also released its build folders by now
        say(INTERRUPTED)
        return exit_status(interrupt)
    except BrokenPipeError:  # e.g. `venvstacks show --json | head`
        sys.stderr.close()
        return 1
    except OSError as exc:
        if exc.errno not in USER_ERRNOS:
            raise
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 1


def deploy_cmd(cmd: DeployCommand) -> int:
    if cmd.verbose:
        set_verbose(True)  # each postinstall.py's output, as it comes
    log = say if not cmd.quiet else lambda _: None
    result = deploy.deploy(
        Path(cmd.published), Path(cmd.target), include=cmd.include, log=log, jobs=cmd.jobs, check=cmd.check
    )
    for app in result.apps:  # on stdout, with the summary: what a script running deploy wants
        print(f"run {app.layer_name} with: {app}")
    repaired = f" ({len(result.repaired)} repaired)" if result.repaired else ""
    print(
        f"deployed {len(result.deployed)} layer(s){repaired}, {len(result.unchanged)} unchanged, "
        f"into {result.target_dir}"
    )
    return 0


def verify_cmd(cmd: VerifyCommand) -> int:
    """One line per layer on stdout; exit status 1 if any layer differs."""
    lines: list[str]
    if cmd.rebuild:
        allow = cmd.allow_local_runtime
        if allow is None and allow_local_runtime_default():
            allow = True
        rebuilt = rebuild.verify_rebuild(Path(cmd.folder), rundoit.stack_path(cmd.stack), allow)
        lines = [r.line() for r in rebuilt if not (cmd.quiet and r.reproduced)]
        ok = all(r.reproduced for r in rebuilt)
    else:
        published = Path(cmd.published) if cmd.published else None
        reports = verify.verify_deployed(Path(cmd.folder), published)
        shown = None if cmd.verbose else verify.SHOWN
        lines = [r.line(shown) for r in reports if not (cmd.quiet and r.ok)]
        ok = all(r.ok for r in reports)
        if not ok:
            lines.append(verify.repair_hint(Path(cmd.folder).absolute(), published))
    if lines:
        print("\n".join(lines))
    return 0 if ok else 1


def init_cmd(cmd: InitCommand) -> int:
    folder = Path(cmd.folder).expanduser().resolve()
    written = starter.init_folder(folder, cmd.python)
    if cmd.quiet:
        return 0
    for path in written if cmd.verbose else ():
        print(f"wrote {path}")
    print(f"wrote {', '.join(p.name for p in written)} in {folder}")
    if len(written) == 1:  # only dodo.py, beside the user's own stack file
        print("next: `doit` there builds its venvstacks.toml (`doit list` shows the tasks)")
    else:
        # From the layer folder: `python -m hello` in the stack folder imports the source
        # hello.py lying there, not the built copy, and edits would seem to need no build.
        print(
            "next: `doit` there (or `venvstacks build`), then `(cd _build/app-hello && bin/python -m hello)`"
        )
    return 0
