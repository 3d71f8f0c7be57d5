"""Whether a package can be used without a denied licence (`venvstacks licenses --deny`).

SPDX expressions are parsed by the `license-expression` library. An ``OR`` passes when one
of its alternatives passes, an ``AND`` (and a ``WITH`` exception's licence) fails when any
part is denied. Identifiers compare case-insensitively and exactly: denying
``GPL-3.0-only`` does not deny ``GPL-3.0-or-later``; list both to deny both.

Classifiers cannot say whether several licences apply together or as a choice, so all of a
package's classifiers are taken to apply (the safe reading for a gate); each is mapped to its
SPDX identifier where there is exactly one (`CLASSIFIER_IDS`). Licence files alone, an
unmapped classifier, an expression that does not parse, or nothing at all cannot be checked:
such packages are reported as not checkable, never as passing silently.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from venvstacks.distinfo import Licence
from venvstacks.errors import VenvStacksError
from venvstacks.lazy import lazy_modules

# The SPDX expression parser, loaded when a licence is judged.
if TYPE_CHECKING:
    import license_expression as le
else:
    (le,) = lazy_modules("license_expression")

# Trove classifiers (after "License :: ") naming exactly one SPDX licence. Classifiers such as
# "OSI Approved :: BSD License" or "... GNU General Public License (GPL)" name a family,
# not a licence, and stay unmapped.
CLASSIFIER_IDS = {
    "OSI Approved :: MIT License": "MIT",
    "OSI Approved :: MIT No Attribution License (MIT-0)": "MIT-0",
    "OSI Approved :: Apache Software License": "Apache-2.0",
    "OSI Approved :: ISC License (ISCL)": "ISC",
    "OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "OSI Approved :: GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "OSI Approved :: GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "OSI Approved :: GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "OSI Approved :: GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "OSI Approved :: GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "OSI Approved :: GNU Affero General Public License v3": "AGPL-3.0-only",
    "OSI Approved :: GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "OSI Approved :: Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "OSI Approved :: Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "OSI Approved :: Zope Public License": "ZPL-2.1",
    "OSI Approved :: zlib/libpng License": "Zlib",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}


@dataclass(frozen=True)
class Verdict:
    allowed: bool  # False: it cannot be used without a denied licence
    checkable: bool  # False: the licence could not be read as SPDX identifiers
    why: str = ""  # the denied identifiers, or what could not be checked


def spdx_ids(licence: Licence) -> tuple[str, ...] | None:
    """The SPDX identifiers of a package's classifiers, or None if one of them has none."""
    if licence.source != "classifiers":
        return None
    ids = [CLASSIFIER_IDS.get(value) for value in licence.values]
    return None if None in ids else tuple(i for i in ids if i is not None)


def check(licence: Licence, denied: frozenset[str]) -> Verdict:
    """Whether the package passes a deny list made by :func:`deny_list`."""
    deny = frozenset(d.lower() for d in denied)
    if licence.source == "expression":
        try:
            tree = _licensing().parse(licence.values[0], validate=False, simple=False)
        except Exception as exc:  # license-expression raises several error types
            return Verdict(True, False, f"{licence.values[0]!r} does not parse as SPDX: {exc}")
        if tree is None:
            return Verdict(True, False, "empty licence expression")
        hits = _denied_parts(tree, deny)
        return Verdict(not hits, True, " AND ".join(hits))
    ids = spdx_ids(licence)
    if ids is None:
        what = {"classifiers": "a classifier with no single SPDX identifier", "files": "licence files only"}
        return Verdict(True, False, what.get(licence.source, "no licence declared"))
    hits = sorted({i for i in ids if i.lower() in deny})
    return Verdict(not hits, True, " AND ".join(hits))


def _denied_parts(node: Any, deny: frozenset[str]) -> list[str]:
    """The denied identifiers that cannot be avoided; empty if the node can be used."""
    if isinstance(node, le.LicenseWithExceptionSymbol):
        return _denied_parts(node.license_symbol, deny)
    if isinstance(node, le.LicenseSymbol):
        return [node.key] if node.key.lower() in deny else []
    parts = [_denied_parts(arg, deny) for arg in node.args]
    if isinstance(node, le.OR):
        return [] if any(not p for p in parts) else sorted({k for p in parts for k in p})
    return sorted({k for p in parts for k in p})  # AND: every part must be allowed


@functools.cache
def _licensing() -> Any:
    return le.get_spdx_licensing()


def deny_list(values: Iterable[str]) -> frozenset[str]:
    """The SPDX identifiers to deny, as the library spells them (``gpl-3.0`` is ``GPL-3.0-only``)."""
    keys = set()
    for value in values:
        info = _licensing().validate(value)
        symbol = None if info.errors or info.invalid_symbols else _licensing().parse(value)
        if not isinstance(symbol, le.LicenseSymbol):
            raise VenvStacksError(
                f"--deny {value!r}: not an SPDX licence identifier (such as GPL-3.0-only; "
                "see https://spdx.org/licenses/)"
            )
        keys.add(str(symbol.key))
    return frozenset(keys)
