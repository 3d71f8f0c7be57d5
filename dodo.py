"""doit entry point: `doit` builds the stack in stacks/sample; `doit stack=PATH` picks another.

Other variables: `build_dir=DIR` (default: _build beside the stack file). Runtime sources
come from the VENVSTACKS_RUNTIME_* environment variables (docs/runtimes.md).
"""

import sys
from pathlib import Path

from doit import get_var

from venvstacks.engine.rundoit import hold_build_lock, namespace, stack_path
from venvstacks.engine.settings import Settings
from venvstacks.errors import VenvStacksError
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.spec import load_stack

try:
    _stack = load_stack(stack_path(get_var("stack", str(Path(__file__).parent / "stacks" / "sample"))))
    _settings = Settings(
        stack=_stack,
        build_dir=(_stack.root / get_var("build_dir", "_build")).resolve(),
        runtimes=RuntimeOptions.from_env(),
    )
except VenvStacksError as exc:
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(getattr(exc, "exit_code", 1)) from None
hold_build_lock(_settings.build_dir)
globals().update(namespace(_settings))
