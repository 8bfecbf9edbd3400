"""The ``specs extract`` command: read every seed document, write ``<family>.json``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from protoconform.specs.argtypes import creatable_folder, existing_folder
from protoconform.specs.extract.documents import detect_family, parse_document
from protoconform.specs.extract.model import Doc
from protoconform.specs.extract.normalise import normalise


def extract(seeds: Path) -> dict[str, dict]:
    """Parse every seed document and return each family's inventory."""
    by_family: dict[str, list[Doc]] = {}
    notes: dict[str, list[str]] = {}
    for path in sorted(p for p in seeds.iterdir() if p.is_file()):
        text = path.read_text(encoding="utf-8")
        family = detect_family(text)
        family_notes = notes.setdefault(family, [])
        by_family.setdefault(family, []).append(parse_document(text, path.name, family, family_notes))
    return {family: normalise(family, docs, notes[family]) for family, docs in sorted(by_family.items())}


def dumps(inventory: dict) -> str:
    return json.dumps(inventory, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def summary(inventory: dict) -> str:
    methods = sum(len(s["methods"]) for s in inventory["services"])
    return (
        f"{inventory['family']}: {len(inventory['services'])} services, {methods} methods, "
        f"{len(inventory['messages'])} messages, {len(inventory['enums'])} enums, "
        f"{len(inventory['notes'])} notes"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seeds", type=existing_folder, required=True, metavar="DIR", help="folder of seed documents"
    )
    parser.add_argument(
        "--out",
        type=creatable_folder,
        required=True,  # never written into the installed package unless asked for by path
        metavar="DIR",
        help="folder for <family>.json (specs/inventory of a source checkout refreshes the packaged one)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the per-family summary")


def run(args: argparse.Namespace) -> int:
    inventories = extract(Path(args.seeds))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for family, inventory in inventories.items():
        (out / f"{family}.json").write_text(dumps(inventory), encoding="utf-8")
        print(summary(inventory))
        if not args.quiet:
            for note in inventory["notes"]:
                print(f"  note: {note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="protoconform specs extract",
        description="Extract the documented API inventory from the seed documents.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
