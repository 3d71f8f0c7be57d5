"""Publishing: archive contents, metadata, incremental rebuilds, reproducibility."""

from __future__ import annotations

import json
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support.layers import (
    LOCK_EPOCH,
    RUNTIME,
    SITE,
    SampleStack,
    build_stack,
    kinds_and_names,
    publish_all,
    runtime_template,
    sample_stack,
    tree,
)
from venvstacks.archive.formats import ArchiveFormat
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import sha256_bytes, sha256_file
from venvstacks.layout import FILES_MANIFEST, POSTINSTALL_SCRIPT
from venvstacks.ship.publish import (
    LayerToPublish,
    PublishOptions,
    lock_epoch,
    publish_layer,
    write_stack_metadata,
)
from venvstacks.stack.kinds import LayerKind

GZ = ArchiveFormat.TAR_GZ  # the fastest format, for tests that are not about formats
COMMON_FIELDS = {
    "layer_name",
    "install_target",
    "requirements_hash",
    "lock_version",
    "locked_at",
    "runtime_layer",
    "python_implementation",
    "bound_to_implementation",
}
ARCHIVE_FIELDS = {
    "archive_build",
    "archive_name",
    "target_platform",
    "archive_size",
    "archive_hashes",
    "archive_format",
    "files_manifest_sha256",
}


@pytest.fixture
def stack(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> SampleStack:
    return sample_stack(tmp_path_factory, tmp_path / "_build")


def options(out: Path, **kwargs: Any) -> PublishOptions:
    kwargs.setdefault("archive_format", GZ)
    return PublishOptions(out, target_platform="linux_x86_64", **kwargs)


def with_metadata(layer: LayerToPublish, **changes: Any) -> LayerToPublish:
    return replace(layer, metadata=replace(layer.metadata, **changes))


def test_archives_and_metadata(stack: SampleStack, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = publish_all(stack.layers(), options(out))
    assert [r.status for r in results] == ["built"] * 3
    assert sorted(os.listdir(out)) == [
        "__venvstacks__",
        "app-hello.tar.gz",
        f"{RUNTIME}.tar.gz",
        "framework-fw@2.tar.gz",
    ]
    meta_dir = out / "__venvstacks__"
    stack_meta = json.loads((meta_dir / "venvstacks.json").read_text())
    by_kind = {k: [m["layer_name"] for m in v] for k, v in stack_meta["layers"].items()}
    assert by_kind == {
        "runtimes": [RUNTIME],
        "frameworks": ["framework-fw"],
        "applications": ["app-hello"],
    }
    kinds = [kind for kind, _ in kinds_and_names(stack.layers())]
    for result, layer, kind in zip(results, stack.layers(), kinds, strict=True):
        meta = json.loads((meta_dir / "env_metadata" / f"{layer.layer_name}.json").read_text())
        assert meta == result.metadata.to_json()
        given = layer.metadata.to_json()
        assert {k: meta[k] for k in given} == given
        assert set(meta) == set(given) | ARCHIVE_FIELDS
        assert set(meta) >= COMMON_FIELDS
        archive = out / meta["archive_name"]
        assert meta["archive_name"] == f"{layer.metadata.install_target}.tar.gz"
        assert meta["archive_build"] == 1
        assert meta["archive_format"] == "tar.gz"
        assert meta["target_platform"] == "linux_x86_64"
        assert meta["archive_size"] == archive.stat().st_size
        assert meta["archive_hashes"] == {"sha256": sha256_file(archive)}
        assert stack_meta["layers"][kind.value] == [meta]


def test_archive_carries_a_manifest_of_its_members(stack: SampleStack, tmp_path: Path) -> None:
    (result,) = [
        r
        for r in publish_all(stack.layers(), options(tmp_path / "out"))
        if r.layer_name.startswith(LayerKind.FRAMEWORK.prefix)
    ]
    top = "framework-fw@2"
    with tarfile.open(result.archive_path) as tf:
        members = {m.name.removeprefix(top).lstrip("/"): m for m in tf.getmembers()}
        manifest_member = tf.extractfile(f"{top}/{FILES_MANIFEST.as_posix()}")
        assert manifest_member is not None
        text = manifest_member.read().decode()
        pth = tf.extractfile(f"{top}/{SITE}/fw_extra.pth")
        assert pth is not None
        pth_hash = sha256_bytes(pth.read())
    assert result.metadata.files_manifest_sha256 == sha256_bytes(text.encode())
    entries = json.loads(text)["entries"]
    assert set(entries) == set(members) - {"", FILES_MANIFEST.as_posix()}
    assert entries[f"{SITE}/fw_extra.pth"] == {
        "kind": "file",
        "mode": 0o644,
        "sha256": pth_hash,
        "size": members[f"{SITE}/fw_extra.pth"].size,
    }
    assert entries["share/fw-tool"]["mode"] == 0o755
    assert entries["share/abs-link-inside"] == {"kind": "symlink", "target": "../lib"}
    assert entries["share"] == {"kind": "dir"}


def test_archive_holds_only_what_ships(stack: SampleStack, tmp_path: Path) -> None:
    publish_all(stack.layers(), options(tmp_path / "out"))
    with tarfile.open(tmp_path / "out" / "framework-fw@2.tar.gz") as tf:
        members = {m.name: m for m in tf.getmembers()}
        script = tf.extractfile("framework-fw@2/postinstall.py")
        assert script is not None and script.read() == POSTINSTALL_SCRIPT.read_bytes()
    names = set(members)
    assert all(n == "framework-fw@2" or n.startswith("framework-fw@2/") for n in names)
    assert f"framework-fw@2/{SITE}/fwpkg/__init__.py" in names
    assert f"framework-fw@2/{SITE}/fw_extra.pth" in names
    assert "framework-fw@2/share/venv/metadata/venvstacks_layer.json" in names
    for left_out in (
        "pyvenv.cfg",
        f"{SITE}/sitecustomize.py",
        ".build-marker",
        "share/venv/metadata/build-state",
        "share/link-outside",  # a relative link leaving the layer
    ):
        assert f"framework-fw@2/{left_out}" not in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # the venv's link to the build-time runtime leaves the layer: postinstall remakes it
    bin_links = {n for n in names if n.startswith("framework-fw@2/bin/")}
    assert all(not os.path.isabs(members[n].linkname) for n in bin_links)
    assert members["framework-fw@2/share/abs-link-inside"].linkname == "../lib"
    assert members["framework-fw@2/share/fw-tool"].mode == 0o755
    assert {m.mtime for m in members.values()} == {LOCK_EPOCH}


@pytest.mark.slow
def test_every_format_is_reproducible_from_fresh_builds(
    stack: SampleStack, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A second build made from scratch elsewhere, under a restrictive umask.
    old_umask = os.umask(0o077)
    try:
        fresh = build_stack(tmp_path / "other" / "_build", runtime_template(tmp_path_factory))
    finally:
        os.umask(old_umask)
    for fmt in ArchiveFormat:
        a = publish_all(stack.layers(), options(tmp_path / f"a-{fmt}", archive_format=fmt))
        b = publish_all(fresh.layers(), options(tmp_path / f"b-{fmt}", archive_format=fmt))
        assert [r.metadata for r in a] == [r.metadata for r in b], fmt
        assert tree(tmp_path / f"a-{fmt}") == tree(tmp_path / f"b-{fmt}")


def test_unchanged_layers_are_not_archived_again(stack: SampleStack, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = publish_all(stack.layers(), options(out))
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = publish_all(stack.layers(), options(out))
    assert [r.status for r in again] == ["unchanged"] * 3
    assert [r.metadata for r in again] == [r.metadata for r in first]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps


def test_archive_build_numbers(stack: SampleStack, tmp_path: Path) -> None:
    out = tmp_path / "out"
    runtime, fw, app = stack.layers()

    def build_of(layer: LayerToPublish, **kwargs: Any) -> tuple[str, int]:
        result = publish_layer(layer, options(out, **kwargs))
        return result.status, result.metadata.archive_build or 0

    assert build_of(app) == ("built", 1)
    assert build_of(app) == ("unchanged", 1)
    assert build_of(app, force=True) == ("built", 2)
    changed = with_metadata(app, requirements_hash="sha256:changed")
    assert build_of(changed) == ("built", 3)
    assert build_of(changed) == ("unchanged", 3)
    (out / "app-hello.tar.gz").unlink()
    assert build_of(changed) == ("built", 3)  # lost archive, same inputs: same number
    assert build_of(fw) == ("built", 1)
    relocked = with_metadata(fw, lock_version=3, install_target="framework-fw@3")
    assert build_of(relocked) == ("built", 1)
    assert build_of(with_metadata(relocked, locked_at="2025-02-01T00:00:00Z")) == ("built", 2)
    assert build_of(runtime, archive_format=ArchiveFormat.ZIP) == ("built", 1)
    assert build_of(runtime) == ("built", 2)  # another format is another archive


def test_tagged_output_names(stack: SampleStack, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = publish_all(stack.layers(), options(out, tag_outputs=True))
    names = [r.metadata.archive_name for r in results]
    assert names == [
        f"{RUNTIME}-linux_x86_64-1.tar.gz",
        "framework-fw@2-linux_x86_64-1.tar.gz",
        "app-hello-linux_x86_64-1.tar.gz",
    ]
    assert all((out / str(n)).is_file() for n in names)
    meta_dir = out / "__venvstacks__"
    assert (meta_dir / "venvstacks-linux_x86_64.json").is_file()
    assert sorted(os.listdir(meta_dir / "env_metadata")) == [
        "app-hello-linux_x86_64.json",
        f"{RUNTIME}-linux_x86_64.json",
        "framework-fw-linux_x86_64.json",
    ]
    forced = publish_layer(stack.layers()[2], options(out, tag_outputs=True, force=True))
    assert forced.metadata.archive_name == "app-hello-linux_x86_64-2.tar.gz"


def test_dry_run_writes_nothing(stack: SampleStack, tmp_path: Path) -> None:
    out = tmp_path / "out"
    planned = publish_all(stack.layers(), options(out, dry_run=True))
    assert not out.exists()
    assert [r.status for r in planned] == ["would-build"] * 3
    assert planned[0].metadata.archive_hashes is None
    assert planned[2].metadata.archive_name == "app-hello.tar.gz"
    real = publish_all(stack.layers(), options(out))
    before = tree(out)
    again = publish_all(stack.layers(), options(out, dry_run=True))
    assert [r.status for r in again] == ["would-skip"] * 3
    assert [r.metadata for r in again] == [r.metadata for r in real]
    forced = publish_all(stack.layers(), options(out, dry_run=True, force=True))
    assert [r.metadata.archive_build for r in forced] == [2, 2, 2]
    assert tree(out) == before


def test_parallel_output_equals_serial_output(stack: SampleStack, tmp_path: Path) -> None:
    """Layers published from several threads at once (as `-j 3` does) give the same bytes."""
    fmt = ArchiveFormat.TAR_ZST
    parallel_opts = options(tmp_path / "parallel", archive_format=fmt)
    names = kinds_and_names(stack.layers())

    def publish_one(layer: LayerToPublish) -> None:
        publish_layer(layer, parallel_opts)
        write_stack_metadata(parallel_opts.output_dir, names)

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(publish_one, stack.layers()))
    publish_all(stack.layers(), options(tmp_path / "serial", archive_format=fmt))
    assert tree(tmp_path / "parallel") == tree(tmp_path / "serial")


def test_progress_is_reported_per_layer(stack: SampleStack, tmp_path: Path) -> None:
    seen: dict[str, tuple[int, int]] = {}
    publish_all(
        stack.layers(),
        options(tmp_path / "out"),
        progress=lambda name, done, total: seen.__setitem__(name, (done, total)),
    )
    assert set(seen) == {RUNTIME, "framework-fw", "app-hello"}
    assert all(done == total > 0 for done, total in seen.values())


def test_missing_fields_and_bad_times_are_one_line_errors(stack: SampleStack, tmp_path: Path) -> None:
    app = stack.layers()[2]
    incomplete = replace(app, metadata=replace(app.metadata, locked_at=None))
    with pytest.raises(VenvStacksError, match=r"layer 'app-hello': missing \['locked_at'\]"):
        publish_layer(incomplete, options(tmp_path / "out"))
    with pytest.raises(VenvStacksError, match="not an ISO 8601 time"):
        publish_layer(with_metadata(app, locked_at="yesterday"), options(tmp_path / "out"))


def test_lock_epoch() -> None:
    assert lock_epoch("2025-01-02T03:04:05.678+00:00") == LOCK_EPOCH
    assert lock_epoch("2025-01-02T03:04:05Z") == LOCK_EPOCH
    assert lock_epoch("2025-01-02T03:04:05") == LOCK_EPOCH
    assert lock_epoch("2025-01-02T04:04:05+01:00") == LOCK_EPOCH
