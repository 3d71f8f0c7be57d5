"""Hostile published metadata and archives: deploy refuses in one line, never a traceback.

Property-based where input is structured: random metadata objects and random tar archives
(any member names, links, special files) must either load/unpack safely or be refused with
one VenvStacksError line, and never write outside the staging folder.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from venvstacks.archive.unpack import unpack_to_staging
from venvstacks.errors import VenvStacksError
from venvstacks.ship.published_meta import load_published

_HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_GOOD = {
    "layer_name": "cpython-3.11",
    "install_target": "cpython-3.11",
    "archive_name": "cpython-3.11.tar.xz",
    "archive_size": 10,
    "archive_hashes": {"sha256": "0" * 64},
    "runtime_layer": "cpython-3.11",
    "lock_version": 1,
}
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.floats(allow_nan=False)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def _write(folder: Path, layers: Any) -> Path:
    meta = folder / "__venvstacks__" / "venvstacks.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"layers": {"runtimes": layers}}))
    return meta


@_HYPO
@given(overrides=st.dictionaries(st.sampled_from(sorted(_GOOD)), _JSON, max_size=3))
def test_any_metadata_values_load_or_fail_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, overrides: dict[str, Any]
) -> None:
    folder = tmp_path_factory.mktemp("published")
    _write(folder, [{**_GOOD, **overrides}])
    try:
        layers = load_published(folder)
    except VenvStacksError as exc:
        assert "\n" not in str(exc)
        return
    size = layers[0].metadata.archive_size  # optional: deploy then checks the sha256 only
    assert size is None or (isinstance(size, int) and not isinstance(size, bool))


def test_archive_size_as_a_string_names_the_field(tmp_path: Path) -> None:
    _write(tmp_path, [{**_GOOD, "archive_size": "58994"}])
    with pytest.raises(VenvStacksError) as info:
        load_published(tmp_path)
    assert "layer 'cpython-3.11': field 'archive_size': must be an integer, not '58994' (a string)" in str(
        info.value
    )


def test_deeply_nested_metadata_is_one_line(tmp_path: Path) -> None:
    meta = _write(tmp_path, [])
    meta.write_text('{"layers": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(VenvStacksError, match="nested too deeply"):
        load_published(tmp_path)


def test_metadata_that_is_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    meta = tmp_path / "__venvstacks__" / "venvstacks.json"
    meta.parent.mkdir()
    os.mkfifo(meta)
    with pytest.raises(VenvStacksError):
        load_published(meta)


def test_random_bytes_named_tar_gz_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "layer.tar.gz"
    archive.write_bytes(os.urandom(4096))
    with pytest.raises(VenvStacksError, match=r"refusing to unpack layer\.tar\.gz: damaged or truncated"):
        unpack_to_staging(archive, tmp_path / "target", "layer")
    assert list((tmp_path / "target").iterdir()) == []


def _zip_with_link(archive: Path, target: bytes) -> None:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("layer/"), b"")
        link = zipfile.ZipInfo("layer/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, target)


def test_a_zip_symlink_target_is_read_with_a_size_bound(tmp_path: Path) -> None:
    archive = tmp_path / "layer.zip"
    _zip_with_link(archive, b"a" * (64 << 20))  # 64 MiB, deflated to some 64 KiB
    tracemalloc.start()
    try:
        with pytest.raises(VenvStacksError) as err:
            unpack_to_staging(archive, tmp_path / "target", "layer")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value) == "refusing to unpack layer.zip: symlink layer/link has a target over 4096 bytes"
    assert peak < 8 << 20  # the target was not read whole
    assert list((tmp_path / "target").iterdir()) == []


def test_a_zip_symlink_target_that_is_not_utf8_is_kept_as_bytes(tmp_path: Path) -> None:
    archive = tmp_path / "layer.zip"
    _zip_with_link(archive, b"caf\xe9")
    staging = unpack_to_staging(archive, tmp_path / "target", "layer")
    assert os.readlink(os.fsencode(staging / "link")) == b"caf\xe9"


def test_top_member_linking_to_dot_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "layer.tar.gz"
    _tar(archive, [("layer", "symlink", ".")])
    with pytest.raises(VenvStacksError, match="the top member layer is a symlink, not a folder"):
        unpack_to_staging(archive, tmp_path / "target", "layer")


def _tar(path: Path, members: list[tuple[str, str, str]]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            payload = b""
            if kind == "file":
                payload = data.encode()
                info.size = len(payload)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, data
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, data
            else:
                info.type = tarfile.FIFOTYPE
            tf.addfile(info, io.BytesIO(payload) if kind == "file" else None)


_PART = st.sampled_from(["layer", "a", "b", "..", ".", "", "/", "c.py"])
_MEMBER = st.tuples(
    st.lists(_PART, min_size=1, max_size=4).map("/".join),
    st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo"]),
    st.sampled_from(["x", ".", "..", "../..", "/etc/passwd", "a", "layer/a", "../outside"]),
)


@_HYPO
@given(members=st.lists(_MEMBER, max_size=8))
def test_any_tar_unpacks_inside_its_folder_or_is_refused(
    tmp_path_factory: pytest.TempPathFactory, members: list[tuple[str, str, str]]
) -> None:
    tmp = tmp_path_factory.mktemp("unpack")
    archive = tmp / "layer.tar.gz"
    _tar(archive, [("layer", "dir", ""), *members])
    target = tmp / "target"
    try:
        staging = unpack_to_staging(archive, target, "layer")
    except VenvStacksError as exc:
        assert "\n" not in str(exc)
        assert list(target.iterdir()) == []  # nothing half-written is left
        return
    root = os.path.realpath(staging)
    for dirpath, dirs, files in os.walk(staging):
        for name in dirs + files:
            real = os.path.realpath(os.path.join(dirpath, name))
            assert real == root or real.startswith(root + os.sep)
    assert sorted(p.name for p in tmp.iterdir()) == ["layer.tar.gz", "target"]
