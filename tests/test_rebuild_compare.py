"""`verify --rebuild` names the first member in which a rebuilt archive differs, in every format."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvstacks.archive.formats import ArchiveEntry, ArchiveFormat
from venvstacks.archive.writer import write_archive
from venvstacks.ship.rebuild import first_difference


def _archive(root: Path, name: str, fmt: ArchiveFormat, files: dict[str, str]) -> Path:
    layer = root / name / "app-x"
    layer.mkdir(parents=True)
    entries = [ArchiveEntry("app-x", layer)]
    for rel, text in files.items():
        (layer / rel).write_text(text)
        entries.append(ArchiveEntry(f"app-x/{rel}", layer / rel))
    path = root / f"{name}.{fmt}"
    write_archive(path, entries, fmt, epoch=1_700_000_000)
    return path


@pytest.mark.parametrize("fmt", list(ArchiveFormat))
def test_the_first_differing_member_is_named(tmp_path: Path, fmt: ArchiveFormat) -> None:
    published = _archive(tmp_path, "published", fmt, {"a.py": "A = 1\n", "b.py": "B = 1\n"})
    changed = _archive(tmp_path, "changed", fmt, {"a.py": "A = 1\n", "b.py": "B = 2\n"})
    extra = _archive(tmp_path, "extra", fmt, {"a.py": "A = 1\n", "b.py": "B = 1\n", "c.py": ""})
    same = _archive(tmp_path, "same", fmt, {"a.py": "A = 1\n", "b.py": "B = 1\n"})
    assert first_difference(published, changed).startswith("first differing member: app-x/b.py (published ")
    assert first_difference(published, extra) == (
        "first differing member: app-x/c.py (only in the rebuilt archive)"
    )
    assert first_difference(extra, published) == (
        "first differing member: app-x/c.py (only in the published archive)"
    )
    assert first_difference(published, same).startswith("the members are the same")
