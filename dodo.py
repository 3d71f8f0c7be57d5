"""`doit` here builds stacks/sample; a stack folder of your own needs only the line
`from venvstacks.dodo import *` (docs/doit.md). `doit stack=PATH` picks another stack."""

from pathlib import Path

from venvstacks.dodo import tasks_for

globals().update(tasks_for(str(Path(__file__).parent / "stacks" / "sample")))
