"""``protoconform specs``: ``extract`` the inventory from seed docs, report ``drift``."""

from __future__ import annotations

import argparse
import importlib

# action -> (module with add_arguments/run, one-line help); imported only when used
ACTIONS: dict[str, tuple[str, str]] = {
    "extract": ("protoconform.specs.extract", "parse seed documents into <family>.json files"),
    "drift": (
        "protoconform.specs.drift",
        "compare the inventory with the served descriptors; fail on unknown differences",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="specs_action", required=True, metavar="ACTION")
    for name, (module_name, help_text) in ACTIONS.items():
        sub = actions.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module_name).add_arguments(sub)


def run(args: argparse.Namespace) -> int:
    module_name, _ = ACTIONS[args.specs_action]
    return int(importlib.import_module(module_name).run(args) or 0)
