"""`venvstacks docs [TOPIC]`: the documentation pages, from wherever this venvstacks came with them.

The pages are the repository's docs/*.md. A wheel installs them as data files into
`<environment>/share/venvstacks/docs/` (pyproject.toml's `data-files`); a source checkout
(an editable install) reads them where they are. So a user who only has the installed
package can read every page a message or `--help` names (`venvstacks docs runtimes`).
"""

from __future__ import annotations

import difflib
import os
import sys
import sysconfig
from pathlib import Path

from venvstacks.cli_commands import DocsCommand
from venvstacks.console import say
from venvstacks.errors import VenvStacksError

INSTALLED_DOCS = Path("share") / "venvstacks" / "docs"


def docs_folder() -> Path | None:
    """Where this venvstacks's pages are, or None if it came without them."""
    checkout = Path(__file__).resolve().parent.parent
    candidates = [checkout / "docs"] if (checkout / "mkdocs.yml").is_file() else []
    schemes = [sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")]
    candidates += [Path(sysconfig.get_path("data", scheme)) / INSTALLED_DOCS for scheme in schemes]
    candidates.append(Path(sys.prefix) / INSTALLED_DOCS)
    return next((folder for folder in candidates if (folder / "index.md").is_file()), None)


def topics(folder: Path) -> dict[str, str]:
    """Each page's topic (its file name without .md) and its title (its first line)."""
    found = {}
    for page in sorted(folder.glob("*.md")):
        first = page.read_text(encoding="utf-8").split("\n", 1)[0]
        found[page.stem] = first.lstrip("# ").strip()
    return found


def page_path(topic: str) -> Path:
    """The page for ``topic`` (`runtimes`, `runtimes.md` or `docs/runtimes.md` alike)."""
    folder = docs_folder_or_fail()
    name = os.path.basename(topic.removesuffix(".md"))
    known = topics(folder)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise VenvStacksError(f"no documentation page {topic!r}; {hint}`venvstacks docs` lists them")
    return folder / f"{name}.md"


def page_text(topic: str) -> str:
    return page_path(topic).read_text(encoding="utf-8")


def listing() -> str:
    folder = docs_folder_or_fail()
    width = max(len(topic) for topic in topics(folder))
    lines = [f"  {topic:<{width}}  {title}" for topic, title in topics(folder).items()]
    return "\n".join(
        [
            "venvstacks documentation: `venvstacks docs TOPIC` prints a page (Markdown).",
            *lines,
            f"(in {folder})",
        ]
    )


def docs_folder_or_fail() -> Path:
    folder = docs_folder()
    if folder is None:
        raise VenvStacksError(
            "this venvstacks was installed without its documentation pages (share/venvstacks/docs); "
            "they are the docs/ folder of its source"
        )
    return folder


def docs_cmd(cmd: DocsCommand) -> int:
    if cmd.topic is None:
        text = "\n".join(topics(docs_folder_or_fail())) if cmd.quiet else listing()
    else:
        text = page_text(cmd.topic)
        if cmd.verbose:
            say(f"({page_path(cmd.topic)})")
    print(text.rstrip("\n"))
    return 0
