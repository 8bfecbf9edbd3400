"""The database columns of flyteadmin's models, as a client reads them from listed items.

specs/flyte lists.yaml names each model's columns and their kinds; a listed item shows some of
them (a task's name, its closure's created_at...).  A view gives, for one listing, the columns
the model can read from an item for its own entity and for the entities it joins (an execution
shows its launch plan's and workflow's ids).  Columns an item does not show (row ids, digests,
closures as stored) are left out; so are the ones the server changes while a check lists
(an execution's phase and times): a check only compares what stays put.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Reader = Callable[[Any], Any]  # item -> value (text, int, or a timestamp in nanoseconds); None: NULL


def nanos(timestamp: Any) -> int:
    return timestamp.seconds * 1_000_000_000 + timestamp.nanos


def _identifier(
    path: Callable[[Any], Any], project: str = "project", domain: str = "domain"
) -> dict[str, Reader]:
    return {
        project: lambda item: path(item).project,
        domain: lambda item: path(item).domain,
        "name": lambda item: path(item).name,
        "version": lambda item: path(item).version,
    }


def _named(path: Callable[[Any], Any]) -> dict[str, Reader]:
    return {k: v for k, v in _identifier(path).items() if k != "version"}


# For each listing's primary entity: entity code -> column -> reader of a listed item.
VIEWS: dict[str, dict[str, dict[str, Reader]]] = {
    "t": {
        "t": {
            **_identifier(lambda t: t.id),
            "created_at": lambda t: nanos(t.closure.created_at),
            "type": lambda t: t.closure.compiled_task.template.type,
            "short_description": lambda t: t.short_description,
        }
    },
    "w": {
        "w": {
            **_identifier(lambda w: w.id),
            "created_at": lambda w: nanos(w.closure.created_at),
            "short_description": lambda w: w.short_description,
        }
    },
    "l": {
        "l": {
            **_identifier(lambda lp: lp.id),
            "created_at": lambda lp: nanos(lp.closure.created_at),
            "state": lambda lp: lp.closure.state,
        },
        "w": _identifier(lambda lp: lp.spec.workflow_id),
    },
    "e": {
        "e": {
            "execution_project": lambda e: e.id.project,
            "execution_domain": lambda e: e.id.domain,
            "execution_name": lambda e: e.id.name,
            "execution_created_at": lambda e: nanos(e.closure.created_at),
            "state": lambda e: e.closure.state_change_details.state,
        },
        "l": _identifier(lambda e: e.spec.launch_plan),
        "w": _identifier(lambda e: e.closure.workflow_id),
    },
    "p": {
        "p": {
            "identifier": lambda p: p.id,
            "name": lambda p: p.name,
            "description": lambda p: p.description,
            "state": lambda p: p.state,
        }
    },
    # resource_type is the request's own (flyteadmin selects it as a constant); the metadata columns
    # are NULL for a name never described, so the population describes every name it lists.
    "nen": {
        "nen": {
            **_named(lambda n: n.id),
            "description": lambda n: n.metadata.description,
            "state": lambda n: n.metadata.state,
        },
        "nem": {
            **_named(lambda n: n.id),
            "description": lambda n: n.metadata.description,
            "state": lambda n: n.metadata.state,
        },
    },
}


def view(primary: str, models: dict[str, Any]) -> dict[str, dict[str, tuple[str, Reader]]]:
    """entity -> column -> (kind, reader) for the listing of ``primary``: the readable columns that
    specs list for the entities the listing joins, with the kind specs give them."""
    found: dict[str, dict[str, tuple[str, Reader]]] = {}
    for entity in models[primary]["joins"]:
        columns = models[entity]["columns"]
        readers = VIEWS.get(primary, {}).get(entity, {})
        chosen = {c: (columns[c], r) for c, r in readers.items() if c in columns}
        if chosen:
            found[entity] = chosen
    return found
