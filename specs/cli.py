"""``protoconform specs``: ``extract`` the inventory from seed docs, report ``drift``."""

from __future__ import annotations

import argparse

from protoconform.specs import drift, extract

ACTIONS = {
    "extract": (extract, "parse seed documents into specs/inventory/<family>.json"),
    "drift": (drift, "compare the inventory with the served descriptors; fail on unknown differences"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="specs_action", required=True, metavar="ACTION")
    for name, (module, help_text) in ACTIONS.items():
        sub = actions.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)


def run(args: argparse.Namespace) -> int:
    module, _ = ACTIONS[args.specs_action]
    return module.run(args)
