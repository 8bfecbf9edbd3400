"""What a family model provides, and the check every loaded model passes.

A family model is a :class:`FamilyModel` named ``MODEL`` in the package
``conformance/models/<family>/``.  Every part defaults to nothing, so a family
provides only what it has, and a suite simply has no case for what is missing:

- ``machines() -> [type[LifecycleMachine]]``: hypothesis rule-based machines
  over the family's specs state machines (the *stateful* suite);
- ``lists(env) -> [ListDialect]``: how to page, sort and filter each list
  method with a ``lists:`` contract in specs (the *properties* suite);
- ``roundtrips() -> [RoundTrip]``: create, then read back (*properties*, *rest*);
- ``streams() -> [StreamCheck]``: checks of streaming calls (the *streams* suite).

:func:`checked` calls every part once (``lists`` with an environment that
cannot call) and raises :class:`ModelContractError` naming the family and the
part when a part is not a function of the right arguments or returns anything
but a sequence of the right items: a broken model fails with one clear line
instead of a traceback in the middle of test collection.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from protoconform.conformance.models.base import Env
from protoconform.conformance.models.listing import ListDialect
from protoconform.conformance.models.machine import LifecycleMachine
from protoconform.conformance.models.roundtrip import RoundTrip
from protoconform.conformance.models.streams import StreamCheck


class ModelContractError(TypeError):
    """A family model that does not keep the contract of :class:`FamilyModel`."""


def nothing(*_: Any) -> tuple[()]:
    """The default of every part: no machines, lists, round trips or streams."""
    return ()


@dataclass(frozen=True)
class FamilyModel:
    """One family's model: the parts it provides, each a function returning a sequence."""

    family: str
    machines: Callable[[], Sequence[type[LifecycleMachine]]] = nothing
    lists: Callable[[Env], Sequence[ListDialect]] = nothing
    roundtrips: Callable[[], Sequence[RoundTrip]] = nothing
    streams: Callable[[], Sequence[StreamCheck]] = nothing


@dataclass(frozen=True)
class Part:
    """One part of the contract: its name, how it is called, what it returns."""

    name: str
    takes_env: bool
    item: type

    @property
    def signature(self) -> str:
        return f"{self.name}({'env' if self.takes_env else ''}) -> a sequence of {self.item.__name__}"

    def fits(self, value: Any) -> bool:
        if self.item is LifecycleMachine:  # machines are classes: hypothesis makes one per sequence
            return isinstance(value, type) and issubclass(value, LifecycleMachine)
        return isinstance(value, self.item)


PARTS = (
    Part("machines", False, LifecycleMachine),
    Part("lists", True, ListDialect),
    Part("roundtrips", False, RoundTrip),
    Part("streams", False, StreamCheck),
)


def checked(model: Any, family: str) -> FamilyModel:
    """``model`` when it keeps the contract for ``family``; ModelContractError otherwise."""
    if not isinstance(model, FamilyModel):
        raise ModelContractError(
            f"family {family!r}: its MODEL must be a FamilyModel, not {type(model).__name__}"
        )
    if model.family != family:
        raise ModelContractError(f"family {family!r}: its MODEL says it models {model.family!r}")
    for part in PARTS:
        check_part(model, part)
    return model


def check_part(model: FamilyModel, part: Part) -> None:
    provider = getattr(model, part.name)

    def broken(what: str) -> ModelContractError:
        return ModelContractError(
            f"family {model.family!r}: part {part.name!r} {what}; wanted {part.signature}"
        )

    if not callable(provider):
        raise broken(f"is a {type(provider).__name__}, not a function")
    arguments = (Env.offline(model.family),) if part.takes_env else ()
    try:
        inspect.signature(provider).bind(*arguments)
    except TypeError:
        raise broken(f"cannot be called with {len(arguments)} argument(s)") from None
    except ValueError:  # no signature to inspect (a builtin): the call below tells
        pass
    try:
        provided = provider(*arguments)
    except Exception as exc:
        raise broken(f"failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(provided, (str, bytes)) or not isinstance(provided, Sequence):
        raise broken(f"returned a {type(provided).__name__}, not a sequence")
    for index, item in enumerate(provided):
        if not part.fits(item):
            raise broken(f"item {index} is {item!r}")
