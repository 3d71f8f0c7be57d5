"""The typed commands of `deploy`, `verify`, `init` and `docs`: the commands that read no
stack. cli_options.py parses every command line; this module is loaded only when one of
these runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from venvstacks.layout import STACK_FILE


@dataclass(frozen=True)
class DeployCommand:
    published: str
    target: str
    include: tuple[str, ...] = ()
    jobs: int | None = None  # layers unpacked at once; None: one per core
    check: bool = True  # check the layers it would skip against their manifests
    verbose: int = 0
    quiet: int = 0


@dataclass(frozen=True)
class VerifyCommand:
    folder: str
    published: str | None = None
    rebuild: bool = False
    stack: str = STACK_FILE
    allow_local_runtime: bool | None = None  # None: as published (or VENVSTACKS_ALLOW_LOCAL_RUNTIME=1)
    verbose: int = 0
    quiet: int = 0


@dataclass(frozen=True)
class InitCommand:
    folder: str = "."
    python: str | None = None  # X.Y; None: the Python running venvstacks
    verbose: int = 0
    quiet: int = 0


@dataclass(frozen=True)
class DocsCommand:
    topic: str | None = None  # None: list the pages
    verbose: int = 0
    quiet: int = 0


BY_NAME: dict[str, type[DeployCommand | VerifyCommand | InitCommand | DocsCommand]] = {
    "deploy": DeployCommand,
    "verify": VerifyCommand,
    "init": InitCommand,
    "docs": DocsCommand,
}
