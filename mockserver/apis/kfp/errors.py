"""A broken rule found below the handlers, carried up to become an ``ApiError``.

Helpers (manifest parsing, list parsing) know which rule of ``specs/kfp`` an
input breaks but not the protocol; the handler turns a :class:`Violation` into
the rule's status with :func:`protoconform.mockserver.validation.rule_error`.
"""

from __future__ import annotations


class Violation(Exception):
    def __init__(self, rule_id: str, detail: str) -> None:
        super().__init__(detail)
        self.rule_id = rule_id
        self.detail = detail
