"""The `operation` label: a client's operation name, within bounds a hostile client cannot stretch."""

from __future__ import annotations

import re

# Labels no GraphQL name can be (GraphQL names have no parentheses), so none of them is a client's.
ANONYMOUS = "(anonymous)"  # an operation without a name
OTHER = "(other)"  # a name past the limit, too long, or of an operation that did not run
NONE = "(none)"  # an HTTP request that ran no operation (the GraphiQL page, a body that is not GraphQL)
MAX_NAMES = 100  # distinct names each process labels by name
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class OperationNames:
    """Label operations by name: the first `limit` names of operations that ran, `(other)` after them.

    A name enters the set only when its operation ran (parsed, valid, admitted), so documents that fail
    cannot fill it; the set never shrinks, so a label means one thing for the life of the process.
    """

    def __init__(self, limit: int = MAX_NAMES) -> None:
        self.limit = limit
        self._known: set[str] = set()

    def label(self, name: str | None, *, ran: bool) -> str:
        """Return the label of an operation named `name` (None: anonymous); `ran`: it was executed."""
        if name is None:
            return ANONYMOUS
        if name in self._known:
            return name
        if not ran or len(self._known) >= self.limit or not _NAME.fullmatch(name):
            return OTHER
        self._known.add(name)
        return name
