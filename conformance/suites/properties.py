"""Suite *properties*: invariants that must hold for every input, checked with generated inputs.

Per family (what :mod:`protoconform.conformance.models` provides for it):

- lists (``lists:`` contracts of specs/<family>): ``pagination`` (pages of any
  size partition the listing: no item twice, none missing, same order, right
  total; under every sort and filter the dialect pages with, each once in pages
  of two first; the model's order of what the run created, where it knows it),
  ``contains`` (what the run created is listed), ``sort`` (every sortable field,
  both directions, orders the items), ``filter`` (generated filters list exactly
  the items the model's evaluation of the filter keeps);
- ``roundtrip``: requests drawn from the request rules are created, read back,
  and come back as sent;
- ``invalid``: requests breaking exactly one request rule (drawn from the
  method's valid example) are refused with that rule's status, naming the field;
- ``valid``: for methods that change nothing, requests drawn from the request
  rules are accepted.

Lists work on what the run creates (scoped by filters on its ids or names);
with ``--read-only`` they work on whatever the target holds and create nothing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from protoconform.conformance import examples as ex
from protoconform.conformance import strategies
from protoconform.conformance.caller import Caller
from protoconform.conformance.models import family_model, listing, roundtrip
from protoconform.conformance.models.base import Env, fail, run_property
from protoconform.conformance.plugin.recording import checked_too
from protoconform.conformance.suites._shared import parametrize_cases, run_settings
from protoconform.conformance.target import Target
from protoconform.conformance.verdict import Mismatch, short_method
from protoconform.specs import FAMILIES
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import load

SUITE = "properties"
LIST_KINDS = ("pagination", "contains", "sort", "filter")


@dataclass(frozen=True)
class Case:
    family: str
    kind: str
    method: str  # full method name
    rule: str = ""
    index: int = 0  # which list dialect / round trip of the family
    calls: tuple[str, ...] = ()
    scope: str = ""  # a list dialect's SCOPE, when the method has several

    @property
    def id(self) -> str:
        scope = f":{self.scope}" if self.scope else ""
        return f"{self.family}:{self.kind}[{short_method(self.method)}{scope}]"


def _creates(family: str) -> tuple[str, ...]:
    """Every method of the family: list checks create their data with whatever the model needs."""
    return tuple(f"{m.service}.{m.name}" for m in default_registry().methods(family))


def cases() -> list[Case]:
    found: list[Case] = []
    registry = default_registry()
    for family in FAMILIES:
        model = family_model(family)
        env = Env.offline(family)
        for index, dialect in enumerate(model.lists(env)):
            method = env.full(dialect.METHOD)
            rule_of = {
                "pagination": dialect.PAGINATION_RULE,
                "contains": dialect.CONTAINS_RULE,
                "sort": dialect.SORT_RULE,
                "filter": dialect.FILTER_RULE,
            }
            for kind in LIST_KINDS:
                calls = (method, *_creates(family))
                found.append(Case(family, kind, method, rule_of[kind], index, calls, dialect.SCOPE))
        for index, spec in enumerate(model.roundtrips()):
            method = env.full(spec.create)
            found.append(Case(family, "roundtrip", method, spec.rule, index, _creates(family)))
        try:
            book = ex.book(family)
        except (ex.ExampleError, KeyError, ValueError):
            continue
        for method, example in sorted(book.examples.items()):
            m = registry.method(method)
            if m.client_streaming or m.server_streaming:
                continue
            if any(
                not strategies.why_unbreakable(r, method)
                for r in strategies.shape_rules(method, load(family))
            ):
                calls = tuple(sorted({method} | book.calls(example.given)))
                found.append(Case(family, "invalid", method, "", 0, calls))
            if not book.mutating(method) and strategies.shape_rules(method, load(family)):
                calls = tuple(sorted({method} | book.calls(example.given)))
                found.append(Case(family, "valid", method, "", 0, calls))
    return found


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    read_only = bool(metafunc.config.getoption("read_only", default=False))

    def mark(case: Case) -> dict[str, Any]:
        service, _, method = case.method.rpartition(".")
        calls = (case.method,) if read_only and case.kind in LIST_KINDS else case.calls
        return {"service": service, "method": method, "rule": case.rule, "calls": calls}

    parametrize_cases(metafunc, SUITE, cases, mark)


@pytest.fixture(scope="module")
def envs(channel: Any, registry: Any, target: Target, control: Any) -> Iterator[Callable[[str], Env]]:
    """One model environment per family for the module: populations are made once and removed at the end."""
    made: dict[str, Env] = {}

    def env_of(family: str) -> Env:
        if family not in made:
            made[family] = Env(
                rpc=Caller(channel, registry, target),
                rules=load(family),
                namespace=f"{target.namespace}-p",
                lenient=target.lenient,
                control=control,
            )
        return made[family]

    yield env_of
    for env in made.values():
        undo = [c for p in env.cache.values() if isinstance(p, listing.Population) for c in p.cleanup]
        for action in [*undo, *env.cleanup]:
            with contextlib.suppress(Exception):
                action()


def test_property(
    case: Case,
    target: Target,
    envs: Callable[[str], Env],
    scenario: ex.Scenario,
    request: pytest.FixtureRequest,
) -> None:
    env = envs(case.family)
    env.take_checked()  # the module's environment is shared: count only this case's checks
    model = family_model(case.family)
    try:
        if case.kind in LIST_KINDS:
            check_list(case, model.lists(env)[case.index], target)
        elif case.kind == "roundtrip":
            check_roundtrip(case, model.roundtrips()[case.index], env, target)
        elif case.kind == "invalid":
            check_invalid(case, target, scenario)
        else:
            check_valid(case, target, scenario)
    finally:
        checked_too(request.node, *env.take_checked())


# -- lists ---------------------------------------------------------------------------------------


def check_list(case: Case, dialect: listing.ListDialect, target: Target) -> None:
    population = listing.Population([], None) if target.read_only else dialect.populate()
    reason = dialect.unusable(population)
    if reason:
        pytest.skip(reason)
    if case.kind == "contains":
        listing.check_contains(dialect, population)
        return
    if case.kind == "pagination":
        ways = [(s, w) for s in dialect.paging_sorts() for w in dialect.paging_filters()]
        for sort, where in ways:  # every way once, on pages small enough to need several
            listing.check_pagination(dialect, population, 2, sort, where)

        @run_settings(target)
        @given(size=st.integers(1, 5), way=st.sampled_from(ways))
        def pages(size: int, way: tuple[listing.Sort | None, Any]) -> None:
            listing.check_pagination(dialect, population, size, *way)

        run_property(pages)
        return
    whole = dialect.walk(population, listing.BIG_PAGE, dialect.stable_sort())
    if case.kind == "sort":
        candidates = dialect.sorts(whole.items)
        if not candidates or len(whole.items) < 2:
            pytest.skip("fewer than two items to sort")

        @run_settings(target)
        @given(sort=st.sampled_from(candidates))
        def orders(sort: listing.Sort) -> None:
            listing.check_sort(dialect, population, sort)

        run_property(orders)
        return
    if not whole.items:
        pytest.skip("no items to filter")

    @run_settings(target)
    @given(where=dialect.filters(whole.items))
    def filtering(where: Any) -> None:
        listing.check_filter(dialect, population, where)

    run_property(filtering)


# -- round trips -----------------------------------------------------------------------------------


def check_roundtrip(case: Case, spec: roundtrip.RoundTrip, env: Env, target: Target) -> None:
    if target.read_only:
        pytest.skip("creates entities")
    base = spec.base(env)
    fixed = {path: strategies.values_at(env.rpc.build(spec.create, base), path)[0] for path in spec.fixed}
    requests = strategies.valid_requests(case.method, env.rules, base=base, vary=spec.vary, fixed=fixed)

    @run_settings(target)
    @given(request=requests)
    def trip(request: Any) -> None:
        roundtrip.check(env, spec, request)

    run_property(trip)


# -- request rules ----------------------------------------------------------------------------------


def _names_field(text: str, path: str) -> bool:
    leaf = path.split(".")[-1]
    camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), leaf)
    return leaf in text or camel in text


def _base(case: Case, scenario: ex.Scenario) -> Any:
    try:
        return scenario.prepare(case.method)
    except Mismatch as exc:
        raise Mismatch(
            exc.expected, exc.actual, rule="", reply=exc.reply, detail=f"preparing: {exc.detail}"
        ) from None


def _kept(case: Case, base: Any, rpc: Caller) -> dict[str, Any]:
    """Ids of existing entities (fields of the method's not-found and precondition rules) stay as given."""
    message = rpc.build(case.method, base)
    kept: dict[str, Any] = {}
    for rule in load(case.family).for_method(case.method):
        if rule.kind in ("not_found", "precondition", "transition") and rule.field:
            try:
                chain = strategies.path_fields(message.DESCRIPTOR, rule.field)
            except KeyError:
                continue
            if any(f.is_repeated for f in chain) or strategies.is_message(chain[-1]):
                continue  # ids are plain scalars; lists and messages are the rules' business
            value = strategies.values_at(message, rule.field)[0]
            if not strategies.is_empty(value):
                kept[rule.field] = value
    return kept


def check_invalid(case: Case, target: Target, scenario: ex.Scenario) -> None:
    base = _base(case, scenario)
    rules = load(case.family)
    requests = strategies.invalid_requests(
        case.method, rules, base=base, fixed=_kept(case, base, scenario.rpc)
    )

    @run_settings(target)
    @given(pair=requests)
    def refused(pair: tuple[Any, Any]) -> None:
        rule, request = pair
        reply = scenario.rpc(case.method, request)
        wanted = rule.accepted_codes(target.strict)
        naming = target.strict
        if reply.code.name not in wanted or (naming and not _names_field(reply.message, rule.field)):
            expected = " or ".join(sorted(wanted)) + (
                f" naming {rule.field.split('.')[-1]}" if naming else ""
            )
            raise fail(rule, reply, expected, reply.status(), f"{rule.kind} rule broken alone")

    run_property(refused)


def check_valid(case: Case, target: Target, scenario: ex.Scenario) -> None:
    base = _base(case, scenario)
    rules = load(case.family)
    requests = strategies.valid_requests(case.method, rules, base=base, fixed=_kept(case, base, scenario.rpc))

    @run_settings(target)
    @given(request=requests)
    def accepted(request: Any) -> None:
        reply = scenario.rpc(case.method, request)
        if not reply.ok:
            raise Mismatch("OK for a request keeping every request rule", reply.status(), reply=reply)

    run_property(accepted)
