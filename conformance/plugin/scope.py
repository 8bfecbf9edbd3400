"""Which of the selected families the target serves, decided once before collection.

A family counts as served when the target's reflection lists at least one of
its documented services (``specs/inventory/<family>.json``).  A family that
``--api all`` brought in and the target does not serve is left out with a
note, so a server of one family is not buried under the failures of the
others; a family named with ``--api`` is checked anyway, with a warning.
Without reflection nothing can be decided, and every selected family is checked.

Within a served family, a rule whose methods all belong to services the target
does not list (ArmoniK's ``Worker`` and ``Agent`` are served by worker pods, not by
the control plane) cannot be asked about: it is not applicable to this target,
counted neither as checked nor as unchecked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protoconform.conformance.reflection import ReflectionClient, ReflectionError
from protoconform.conformance.target import Target

if TYPE_CHECKING:
    from protoconform.specs.rules import Rule

NOT_SERVED = "not served by the target (no documented service listed over reflection)"


@dataclass
class Scope:
    reflection_error: str = ""  # why the target's services could not be listed
    served: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not served, brought in by --api all: left out
    warned: list[str] = field(default_factory=list)  # not served, named with --api: checked anyway
    listed: set[str] = field(default_factory=set)  # every service the target lists over reflection

    def not_applicable(self, family: str, rules: Iterable[Rule]) -> dict[str, str]:
        """Rules of a served ``family`` about services the target does not list, each with why;
        none when reflection said nothing or the family is not served at all (then every rule
        would be, and a family named with ``--api`` is checked as asked)."""
        if self.reflection_error or family not in self.served:
            return {}
        found = {}
        for rule in rules:
            services = {method.rpartition(".")[0] for method in rule.methods}
            if rule.not_checkable or not services or services & self.listed:
                continue
            names = ", ".join(sorted(s.rpartition(".")[2] for s in services))
            found[rule.id] = f"{names} not served by the target"
        return found

    def lines(self) -> list[str]:
        """One line per family left out or checked against the evidence, or one about reflection."""
        if self.reflection_error:
            return [
                f"families: not decided from reflection ({self.reflection_error}); "
                "checking every selected family"
            ]
        return [f"{family}: {NOT_SERVED}; skipped" for family in self.skipped] + [
            f"warning: {family}: {NOT_SERVED}; checked because --api names it" for family in self.warned
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "reflection": not self.reflection_error,
            "reflection_error": self.reflection_error,
            "served": self.served,
            "not_served": [{"family": f, "checked": False} for f in self.skipped]
            + [{"family": f, "checked": True} for f in self.warned],
            "notes": self.lines(),
        }


def listed_services(target: Target) -> set[str]:
    """The services the target lists over reflection (:class:`ReflectionError` when it cannot)."""
    channel = target.channel()
    try:
        return set(ReflectionClient(channel, timeout=target.timeout).list_services())
    finally:
        channel.close()


def decide(target: Target, named: Iterable[str]) -> Scope:
    """The scope of a run over ``target.families``; ``named`` are the families given with ``--api``."""
    from protoconform.specs import load_inventory

    try:
        listed = listed_services(target)
    except ReflectionError as exc:
        return Scope(reflection_error=str(exc))
    scope = Scope(listed=listed)
    explicit = set(named)
    for family in target.families:
        documented = {service["name"] for service in load_inventory(family)["services"]}
        if documented & listed:
            scope.served.append(family)
        elif family in explicit:
            scope.warned.append(family)
        else:
            scope.skipped.append(family)
    return scope
