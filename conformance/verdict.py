"""How a conformance case says what went wrong.

A case that finds a deviation raises :class:`Mismatch` with what the rule
expected and what the target did.  The plugin turns it into the one-line form
every report uses::

    rule <rule id> on <Service.Method>: expected <X>, got <Y>

``rule`` defaults to the case's ``conformance`` marker; a case that checks
several rules (a state machine, a property) names the one that broke.  ``reply``
is the call that showed the deviation, used as the reproducer (or
``reproducer``: ``{"method", "request", "command"}`` for calls made without the
``rpc`` helper).  ``method`` defaults to the reply's method, then to the
marker's: a deviation seen in the reply of another call (a ``then:`` step, a
model's read-back) is reported on the method that answered it.  The reports add
the rule's description and place in specs, and hypothesis' falsifying example.
"""

from __future__ import annotations

from typing import Any


class Mismatch(AssertionError):
    def __init__(
        self,
        expected: Any,
        actual: Any,
        *,
        rule: str | None = None,
        method: str | None = None,
        reply: Any = None,
        detail: str = "",
        reproducer: dict[str, str] | None = None,
    ) -> None:
        self.expected = str(expected)
        self.actual = str(actual)
        self.rule = rule
        self.method = method
        self.reply = reply
        self.detail = detail
        self.reproducer = reproducer
        text = f"expected {self.expected}, got {self.actual}"
        super().__init__(f"{text} ({detail})" if detail else text)


def check(condition: bool, expected: Any, actual: Any, **kwargs: Any) -> None:
    """Raise :class:`Mismatch` unless ``condition`` holds."""
    if not condition:
        raise Mismatch(expected, actual, **kwargs)


def short_method(name: str) -> str:
    """``pkg.Service.Method`` or ``/pkg.Service/Method`` -> ``Service.Method``."""
    name = name.lstrip("/").replace("/", ".")
    return ".".join(name.split(".")[-2:])
