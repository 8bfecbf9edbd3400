"""Conformance harness: check any gRPC server, real or mock, against the rules in ``specs/``.

``protoconform check`` (:mod:`.cli`) runs the suites in :mod:`.suites` with the
pytest plugin :mod:`.plugin`; see ``conformance/README.md``.
"""

from __future__ import annotations

import pkgutil

DEFAULT_MAX_EXAMPLES = 25
SUITE_ORDER = ("surface", "rules", "properties", "stateful", "streams", "rest")


def known_suites() -> list[str]:
    """Suite modules shipped in ``protoconform.conformance.suites``, in a stable order."""
    from protoconform.conformance import suites

    names = [m.name for m in pkgutil.iter_modules(suites.__path__) if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (SUITE_ORDER.index(n) if n in SUITE_ORDER else len(SUITE_ORDER), n))
