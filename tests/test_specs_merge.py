"""A family's YAML files merge key by key; the same key in two places is an error naming both."""

from __future__ import annotations

from pathlib import Path

import pytest
from protoconform.specs import rules


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_sections_split_across_files_merge(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "examples:\n  one: {request: {}}\nlimits:\n  max: 3\n")
    _write(tmp_path, "b.yaml", "examples:\n  two: {request: {}}\ncases:\n  x.rule: []\n")
    loaded = rules.load_folder("toy", tmp_path, [])
    assert loaded.extra["examples"] == {"one": {"request": {}}, "two": {"request": {}}}
    assert loaded.extra["limits"] == {"max": 3} and loaded.extra["cases"] == {"x.rule": []}


def test_cases_of_one_rule_join_across_files(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "cases:\n  x.rule: [{request: {a: 1}}]\n")
    _write(tmp_path, "b.yaml", "cases:\n  x.rule: {request: {b: 2}}\n  y.rule: []\n")
    loaded = rules.load_folder("toy", tmp_path, [])
    assert loaded.extra["cases"] == {"x.rule": [{"request": {"a": 1}}, {"request": {"b": 2}}], "y.rule": []}


@pytest.mark.parametrize(
    ("first", "second", "key"),
    [
        ("examples:\n  one: {}\n", "examples:\n  one: {}\n", "examples.one"),
        (
            "rules:\n  - {id: toy.r, kind: behaviour, method: S.M}\n",
            "rules:\n  - {id: toy.r, kind: behaviour, method: S.M}\n",
            "rules.toy.r",
        ),
        ("lists:\n  S.M: {}\n", "lists:\n  S.M: {}\n", "lists.S.M"),
        (
            "state_machines:\n  m: {enum: E, states: [], transitions: {}}\n",
            "state_machines:\n  m: {enum: E, states: [], transitions: {}}\n",
            "state_machines.m",
        ),
        ("version: 1\n", "version: 2\n", "version"),
    ],
    ids=["mapping-key", "rule-id", "list-contract", "state-machine", "plain-value"],
)
def test_a_key_defined_twice_names_both_files(tmp_path: Path, first: str, second: str, key: str) -> None:
    _write(tmp_path, "a.yaml", first)
    _write(tmp_path, "b.yaml", second)
    with pytest.raises(ValueError) as refused:
        rules.load_folder("toy", tmp_path, [])
    assert str(refused.value) == f"{key} is defined in specs/toy/a.yaml and again in specs/toy/b.yaml"


def test_the_shipped_families_load_without_duplicates() -> None:
    for family in ("flyte", "kfp", "armonik"):
        assert rules.load(family).family == family
