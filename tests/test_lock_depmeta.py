"""Relocking a layer above built ones: uv is handed what the lower layers' installed packages
depend on (lock/depmeta.py), so it does not fetch their metadata from the index again, and
the lock is the one it makes without them.

Offline: the wheels are served on 127.0.0.1 by an index that logs every request; `idna`
depends on `six`, so a lock that lost that dependency would show.
"""

from __future__ import annotations

import shutil
from email.parser import HeaderParser
from pathlib import Path

import pytest

from tests.support.stacks import Stack
from tests.support.wheels import SimpleIndex, make_wheel
from venvstacks.layout import INSTALLED_DEPS
from venvstacks.lock import depmeta
from venvstacks.lock.depmeta import InstalledDeps, PackageDeps, with_dependency_metadata

APP_LOCK = "requirements/app-hello/pylock.app-hello.toml"


@pytest.fixture
def dep_stack(tmp_path: Path, runtime_cache: Path, simple_index: SimpleIndex) -> Stack:
    make_wheel(simple_index.root, "idna", "3.10", package=True, metadata="Requires-Dist: six\n")
    make_wheel(simple_index.root, "six", "1.17.0", package=True)
    make_wheel(simple_index.root, "attrs", "25.3.0", package=True)
    stack = Stack(tmp_path / "stack", runtime_cache, simple_index.url)
    stack.app_requirements = ["idna"]
    return stack.write()


def fetched(index: SimpleIndex) -> set[str]:
    """The projects whose files (metadata or wheels) were asked for since the last clear."""
    return {path.split("/")[2].split("-")[0] for path in index.requests if path.startswith("/files/")}


def clean_copy(stack: Stack, where: Path) -> Stack:
    """The stack's files and locks without its build folder."""
    shutil.copytree(stack.root, where, ignore=shutil.ignore_patterns("_build"))
    return Stack(where, stack.runtime_cache, stack.index_url, app_requirements=list(stack.app_requirements))


def test_relock_above_built_layers_fetches_nothing_of_theirs(
    dep_stack: Stack, simple_index: SimpleIndex, tmp_path: Path
) -> None:
    dep_stack.build()
    record = InstalledDeps.read(dep_stack.build_dir / "framework-web" / INSTALLED_DEPS)
    assert record is not None
    assert [(p.name, p.version, p.requires_dist) for p in record.packages] == [
        ("idna", "3.10", ("six",)),
        ("six", "1.17.0", ()),
    ]
    clean = clean_copy(dep_stack, tmp_path / "clean")

    dep_stack.app_requirements = ["idna", "attrs"]
    simple_index.requests.clear()
    run = dep_stack.write().build()
    assert "lock:app-hello" in run.ran
    assert fetched(simple_index) == {"attrs"}  # idna's and six's metadata came from the build

    clean.app_requirements = ["idna", "attrs"]
    simple_index.requests.clear()
    clean.write().venvstacks("lock", str(clean.spec))
    assert {"idna", "six", "attrs"} <= fetched(simple_index)  # without a build, uv asks for all
    made = (dep_stack.root / APP_LOCK).read_text()
    assert made == (clean.root / APP_LOCK).read_text()
    assert 'name = "six"' in made  # idna's dependency, pinned by the framework


def test_a_record_of_another_lock_is_ignored(
    dep_stack: Stack, simple_index: SimpleIndex, tmp_path: Path
) -> None:
    dep_stack.build()
    # The framework's record is made to lie about idna: believed, it would drop six from the
    # app's lock.
    path = dep_stack.build_dir / "framework-web" / INSTALLED_DEPS
    old = InstalledDeps.read(path)
    assert old is not None
    path.write_text(InstalledDeps(old.requirements_hash, (PackageDeps("idna", "3.10"),)).text())
    # The framework relocked elsewhere (a pull brings its new lock): the record is of the old one.
    clean = clean_copy(dep_stack, tmp_path / "clean")
    clean.framework_requirements = dep_stack.framework_requirements = ["idna", "attrs"]
    clean.write().venvstacks("lock", str(clean.spec))
    shutil.copytree(
        clean.root / "requirements/framework-web",
        dep_stack.root / "requirements/framework-web",
        dirs_exist_ok=True,
    )
    simple_index.requests.clear()
    run = dep_stack.write().venvstacks("lock", str(dep_stack.spec))
    assert "lock:app-hello" in run.ran
    assert "idna" in fetched(simple_index)
    assert (dep_stack.root / APP_LOCK).read_text() == (clean.root / APP_LOCK).read_text()
    assert 'name = "six"' in (dep_stack.root / APP_LOCK).read_text()

    # Installed from its new lock, the framework's record counts again.
    dep_stack.build()
    dep_stack.app_requirements = ["idna", "six"]
    simple_index.requests.clear()
    assert "lock:app-hello" in dep_stack.write().build().ran
    assert fetched(simple_index) == set()


def test_the_users_own_entry_wins(dep_stack: Stack, simple_index: SimpleIndex) -> None:
    # The user says idna needs nothing (uv then takes it at its word, as without venvstacks);
    # the framework's record says six: the user's entry is the one uv gets.
    dep_stack.framework_requirements = ["idna", "attrs"]
    own = '\n[tool.uv]\ndependency-metadata = [{ name = "IDNA", version = "3.10", requires-dist = [] }]\n'

    def write() -> None:
        dep_stack.write()
        dep_stack.spec.write_text(dep_stack.spec.read_text() + own)

    write()
    dep_stack.build()
    dep_stack.app_requirements = ["idna", "attrs"]
    write()
    simple_index.requests.clear()
    assert "lock:app-hello" in dep_stack.build().ran
    assert fetched(simple_index) == set()  # attrs's metadata from the build, idna's from the user
    assert 'name = "six"' not in (dep_stack.root / APP_LOCK).read_text()


def from_metadata(text: str, pinned: str) -> PackageDeps | None:
    return depmeta.from_metadata(HeaderParser().parsestr(text), pinned)


def test_dependency_fields_of_metadata() -> None:
    text = (
        "Metadata-Version: 2.1\nName: Scikit_Learn\nVersion: 1.7.1\nRequires-Python: >=3.10\n"
        'Provides-Extra: tests\nRequires-Dist: numpy>=1.22\nRequires-Dist: pytest; extra == "tests"\n\nbody\n'
    )
    assert from_metadata(text, "1.7.1") == PackageDeps(
        "scikit-learn", "1.7.1", ("numpy>=1.22", 'pytest; extra == "tests"'), ">=3.10", ("tests",)
    )
    assert from_metadata(text, "1.7.2") is None  # another version than the lock pins
    # What uv reads leniently from an index but refuses in its settings is left to uv.
    assert from_metadata(text + "Requires-Dist: scipy >=1.8.*\n", "1.7.1") is not None  # the body
    assert from_metadata(text.replace("numpy>=1.22", "numpy >=1.22.*"), "1.7.1") is None
    assert from_metadata(text.replace(">=3.10", ">=3.10.*"), "1.7.1") is None


def test_user_entries_keep_their_packages() -> None:
    user = [{"name": "Foo_Bar", "requires-dist": []}]
    known = [PackageDeps("foo-bar", "1.0", ("six",)), PackageDeps("six", "1.17.0")]
    settings = with_dependency_metadata({"dependency-metadata": user, "exclude-newer": "2025-01-01"}, known)
    assert settings["dependency-metadata"] == [
        *user,
        {"name": "six", "version": "1.17.0", "requires-dist": [], "provides-extra": []},
    ]
    assert with_dependency_metadata({"resolution": "lowest"}, []) == {"resolution": "lowest"}


def test_a_damaged_record_counts_as_none(tmp_path: Path) -> None:
    path = tmp_path / "dependencies.json"
    path.write_text("{not json")
    assert InstalledDeps.read(path) is None
    path.write_text('{"requirements_hash": 3, "packages": []}')
    assert InstalledDeps.read(path) is None
    good = PackageDeps("six", "1.17.0")
    path.write_text(InstalledDeps("sha256:x", (good, PackageDeps("idna", "3.10", ("six >=1.*",)))).text())
    assert InstalledDeps.read(path) == InstalledDeps("sha256:x", (good,))  # what uv would refuse is left out
