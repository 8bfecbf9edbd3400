"""The Flyte family's code and its specs stay in step: rules named in code exist, columns have getters."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from protoconform.mockserver.apis import flyte
from protoconform.mockserver.apis.flyte import columns
from protoconform.mockserver.apis.flyte.defects import DEFECTS
from protoconform.mockserver.apis.flyte.wire import Wire
from protoconform.specs import families
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import REQUEST_KINDS, load

PACKAGE = Path(flyte.__file__).parent
RULE_ID = re.compile(r'"(flyte\.[a-z0-9.-]+)"')


def test_every_rule_the_code_names_is_in_the_specs() -> None:
    rules = load("flyte")
    named = {m for path in PACKAGE.glob("*.py") for m in RULE_ID.findall(path.read_text())}
    named -= set(DEFECTS)  # names of defect modes, not rules (the rules that catch them are checked)
    assert named and named <= set(rules.rules), sorted(named - set(rules.rules))


def test_every_column_of_the_specs_has_a_getter_and_back() -> None:
    models = load("flyte").extra["models"]
    getters = columns.getters(Wire(default_registry()), lambda *parts: "/".join(parts))
    for entity, model in models.items():
        assert set(model["columns"]) == set(getters[entity]), entity
        assert set(model["joins"]) <= set(models), entity


def test_shape_rules_all_live_in_one_file_so_their_order_is_flyteadmins() -> None:
    rules = load("flyte")
    shaped = [r for r in rules.rules.values() if r.kind in REQUEST_KINDS]
    text = families.family("flyte").rules_folder().joinpath("requests.yaml").read_text()
    assert all(f"id: {r.id}\n" in text for r in shaped)
    assert all("message" in r.params for r in shaped)


def test_serve_options() -> None:
    parser = argparse.ArgumentParser()
    flyte.add_arguments(parser.add_argument_group("flyte"))
    options = flyte.options_from_args(
        parser.parse_args(["--flyte-propeller", "off", "--flyte-node-seconds", "3"])
    )
    assert options == {"propeller": False, "node_seconds": 3.0}
    assert flyte.options_from_args(parser.parse_args([])) == {"propeller": True, "node_seconds": 2.0}
