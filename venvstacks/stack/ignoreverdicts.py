"""What `.gitignore` rules decided about module entries, remembered between runs.

Listing a module folder (`modfiles.module_files`) asks, for each entry, whether the
`.gitignore` files from its ignore root down to its folder ignore it. Answering needs
pathspec (its import and the patterns' regexes are a good part of a no-op run's time),
yet the answer is a pure function of the entry's path relative to the ignore root, whether
it is a folder, and the text of each `.gitignore` on the way (or its absence). So each
answer is kept under exactly that key: an edited, added or removed `.gitignore` changes the
key, and a new entry has no answer yet, so both are decided afresh. The listing itself is
always walked and checked again; only the verdicts are remembered.

They are kept with the other verdicts (`verdicts`: in the build folder, for the CLI and
`dodo.py`); without that, every verdict is decided by pathspec, as before.
"""

from __future__ import annotations

import hashlib


def text_digest(text: str | None) -> str:
    """How a `.gitignore` (None: there is none) appears in a key."""
    return "-" if text is None else hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def key(rel: str, is_dir: bool, digests: list[str]) -> str:
    """An entry (posix path relative to the ignore root) with the `.gitignore` digests of
    every folder from that root down to its own folder, shallowest first."""
    return f"{rel}{'/' if is_dir else ''}\0{','.join(digests)}"
