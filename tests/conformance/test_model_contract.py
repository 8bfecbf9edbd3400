"""The family model contract: every part is optional, a family without a model runs with the
empty one, and a broken model fails when it is loaded, naming the family and the part."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import pytest
from protoconform.conformance.models import FamilyModel, ModelContractError, armonik, family_model, kfp
from protoconform.conformance.models.base import Env
from protoconform.conformance.models.listing import ListDialect
from protoconform.conformance.suites import properties, stateful, streams

FAMILY = "flyte"  # a family whose model module each test replaces (or hides)
MODULE = f"protoconform.conformance.models.{FAMILY}"

MISSING = object()


class TaskList(ListDialect):
    METHOD = "AdminService.ListTasks"
    PAGINATION_RULE = TOTAL_RULE = SORT_RULE = FILTER_RULE = CONTAINS_RULE = "flyte.lists.pagination"


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], None]:
    """``install(model)``: a model module for the family, holding ``model`` as its MODEL."""

    def put(model: Any) -> None:
        module = types.ModuleType(MODULE)
        if model is not MISSING:
            module.MODEL = model  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, MODULE, module)

    return put


def families_of(cases: list[Any]) -> set[str]:
    return {case.family for case in cases}


def test_a_family_without_a_model_gets_the_empty_one(monkeypatch):
    monkeypatch.setitem(sys.modules, MODULE, None)  # importing it fails as for a family without one
    model = family_model(FAMILY)
    assert model == FamilyModel(FAMILY)
    assert model.machines() == model.roundtrips() == model.streams() == ()
    assert model.lists(Env.offline(FAMILY)) == ()
    assert FAMILY not in families_of(stateful.cases()) | families_of(streams.cases())
    assert {"armonik", "kfp"} <= families_of(stateful.cases())


def test_a_model_with_only_lists_collects(install):
    install(FamilyModel(FAMILY, lists=lambda env: [TaskList(env)]))
    # the family's examples bring "valid"/"invalid" cases of their own: only the model's are counted
    from_examples = ("valid", "invalid")
    mine = [case for case in properties.cases() if case.family == FAMILY and case.kind not in from_examples]
    assert sorted(case.kind for case in mine) == sorted(properties.LIST_KINDS)
    assert {case.method for case in mine} == {"flyteidl.service.AdminService.ListTasks"}
    assert FAMILY not in families_of(stateful.cases()) | families_of(streams.cases())
    assert "armonik" in families_of(streams.cases())  # the other families are untouched


def test_the_family_models_keep_the_contract():
    assert family_model("armonik") is armonik.MODEL
    assert armonik.machines() == [armonik.SessionMachine]
    assert {check.name for check in armonik.streams()} == {
        *("chunking", "events", "deadline", "watch"),
        *("snapshot", "no-session", "slow-consumer", "lifecycle", "waits"),
    }
    assert family_model("kfp").streams() == ()  # kfp has no stream checks: the default
    assert [type(d) for d in kfp.lists(Env.offline("kfp"))] == [kfp.RunList, kfp.ExperimentRunList]


def fails() -> None:
    raise RuntimeError("no such table")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (FamilyModel(FAMILY, lists=[TaskList]), "part 'lists' is a list, not a function"),
        (FamilyModel(FAMILY, roundtrips=lambda env: []), "part 'roundtrips' cannot be called with 0"),
        (FamilyModel(FAMILY, lists=lambda: []), "part 'lists' cannot be called with 1"),
        (FamilyModel(FAMILY, machines=lambda: [object]), "part 'machines' item 0 is <class 'object'>"),
        (FamilyModel(FAMILY, machines=lambda: armonik.SessionMachine), "part 'machines' returned a"),
        (FamilyModel(FAMILY, streams=lambda: armonik.roundtrips()), "part 'streams' item 0 is RoundTrip"),
        (FamilyModel(FAMILY, streams=lambda: None), "part 'streams' returned a NoneType, not a sequence"),
        (FamilyModel(FAMILY, machines=fails), "part 'machines' failed: RuntimeError: no such table"),
        (FamilyModel("kfp"), "its MODEL says it models 'kfp'"),
        ({"lists": []}, "its MODEL must be a FamilyModel, not dict"),
        (MISSING, f"{MODULE} defines no MODEL"),
    ],
)
def test_a_broken_model_is_refused_naming_family_and_part(install, model, message):
    install(model)
    with pytest.raises(ModelContractError, match=f"^family '{FAMILY}': ") as caught:
        family_model(FAMILY)
    assert message in str(caught.value)
    with pytest.raises(ModelContractError):  # at collection, before any case runs
        properties.cases()


def test_the_error_says_what_the_part_should_be(install):
    install(FamilyModel(FAMILY, lists=lambda env: [object()]))
    with pytest.raises(ModelContractError, match=r"wanted lists\(env\) -> a sequence of ListDialect"):
        family_model(FAMILY)
