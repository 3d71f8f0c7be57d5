"""Leftovers of a killed publish (archives, manifests) are removed at the next run; a live
writer's are not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from venvstacks.archive.formats import ArchiveEntry, ArchiveFormat
from venvstacks.archive.writer import write_archive
from venvstacks.layout import LAYER_CONFIG

WRITER = """
import sys
from pathlib import Path
from venvstacks.archive.formats import ArchiveEntry, ArchiveFormat
from venvstacks.archive.writer import write_archive
from venvstacks.layout import LAYER_CONFIG
src = Path(sys.argv[1])
write_archive(Path(sys.argv[2]), [ArchiveEntry("layer", src), ArchiveEntry("layer/big", src / "big")],
              ArchiveFormat.TAR_XZ, epoch=0)
"""


def _wait_for_tmp(folder: Path, proc: subprocess.Popen[bytes], pattern: str = ".*.tmp") -> list[Path]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(folder.glob(pattern))
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError("the writer never started its archive")


def test_a_sigkilled_publish_leaves_a_tmp_that_the_next_publish_removes(tmp_path: Path) -> None:
    src = tmp_path / "layer"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(64 * 1024 * 1024))  # xz takes seconds over this
    out = tmp_path / "published"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(src), str(out / "layer.tar.xz")])
    killed = _wait_for_tmp(out, writer)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert all(p.exists() for p in killed)  # SIGKILL: nothing cleaned up

    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    busy = out / f".other.tar.xz.pid{live.pid}.abcd.tmp"  # another process still writing
    busy.write_bytes(b"partial")
    try:
        (src / "big").write_bytes(b"small now")
        write_archive(out / "next.tar.xz", [ArchiveEntry("layer", src)], ArchiveFormat.TAR_XZ, epoch=0)
        assert not any(p.exists() for p in killed)
        assert busy.exists()
        assert sorted(p.name for p in out.iterdir()) == [busy.name, "next.tar.xz"]
    finally:
        live.communicate(b"")


PUBLISHER = """
import sys
from pathlib import Path
from venvstacks.layerconfig import read_layer_config
from venvstacks.ship.layermeta import LayerMetadata
from venvstacks.ship.publish import LayerToPublish, PublishOptions, publish_layer
fields = LayerMetadata(layer_name="app-x", install_target="app-x", requirements_hash="sha256:0",
              lock_version=1, locked_at="2025-01-01T00:00:00+00:00", runtime_layer="cpython-3.11",
              python_implementation="cpython@3.11", bound_to_implementation=False)
layer = LayerToPublish(Path(sys.argv[1]), fields, read_layer_config(Path(sys.argv[1])))
publish_layer(layer, PublishOptions(Path(sys.argv[2])))
"""


def test_a_sigkilled_publish_leaves_a_manifest_that_the_next_publish_removes(tmp_path: Path) -> None:
    layer = tmp_path / "app-x"
    (layer / LAYER_CONFIG).parent.mkdir(parents=True)
    (layer / LAYER_CONFIG).write_text(
        json.dumps(
            {"site_dir": "lib/python3.11/site-packages", "python": "bin/python", "py_version": "3.11.9"}
        )
    )
    (layer / "big").write_bytes(os.urandom(64 * 1024 * 1024))  # xz takes seconds over this
    out = tmp_path / "published"
    cmd = [sys.executable, "-c", PUBLISHER, str(layer), str(out)]
    publisher = subprocess.Popen(cmd)
    killed = _wait_for_tmp(out, publisher, ".files-manifest*.tmp")
    publisher.send_signal(signal.SIGKILL)
    publisher.wait()
    assert all(p.exists() for p in killed)  # SIGKILL: nothing cleaned up
    (layer / "big").write_bytes(b"small now")
    assert subprocess.run(cmd).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["__venvstacks__", "app-x.tar.xz"]
