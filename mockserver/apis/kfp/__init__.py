"""Kubeflow Pipelines v1beta1: ``api.RunService`` with the KFP 1.8.5 server's semantics.

Modules: :mod:`.state` (runs, experiments, pipelines, metrics, artifact objects
behind a repository), :mod:`.runs` (the ten handlers), :mod:`.listing` (sort,
filter, page tokens), :mod:`.lifecycle` (statuses on the virtual clock, the
runtime workflow, how to ask for a failure), :mod:`.templates` (manifests and
their task graphs), :mod:`.runindex` (sorted run indexes for ListRuns),
:mod:`.artifacts` (artifact objects), :mod:`.errors`,
:mod:`.defects` (deliberate deviations for the conformance self-test).  The
rules live in ``specs/kfp/*.yaml``.

With a durable store (``--store sqlite:PATH``) the repository writes every
change through and :func:`create_state` loads it back; runs in flight resume
(see :mod:`.lifecycle`).  ListRuns pages from sorted indexes (:mod:`.runindex`)
when it can, and scans otherwise.

Only RunService is served, so experiments other than "Default", uploaded
pipelines and jobs are seeded: ``--kfp-experiment NAME[=ID]`` and
``--kfp-pipeline NAME=FILE[=ID]`` on the command line, or
:meth:`State.add_experiment` / :meth:`State.add_pipeline` / :meth:`State.add_job`
in process.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from protoconform.mockserver.apis.kfp import runs as _runs  # noqa: F401 - registers the handlers
from protoconform.mockserver.apis.kfp.lifecycle import Timings
from protoconform.mockserver.apis.kfp.state import MemoryRepository, State
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.store import FamilyStore
from protoconform.specs.argtypes import positive, readable_file
from protoconform.specs.registry import Registry

__all__ = ["State", "Timings", "add_arguments", "create_state", "options_from_args"]


def _experiment(text: str) -> dict[str, Any]:
    """``NAME[=ID]``."""
    name, sep, experiment_id = text.partition("=")
    if not name or (sep and not experiment_id):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME[=ID]")
    return {"name": name, "id": experiment_id or None}


def _pipeline(text: str) -> dict[str, Any]:
    """``NAME=FILE[=ID]``, the file read now so a bad one stops ``serve`` before it starts."""
    name, _, rest = text.partition("=")
    path, sep, pipeline_id = rest.partition("=")
    if not name or not path or (sep and not pipeline_id):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=FILE[=ID]")
    try:
        manifest = Path(readable_file(path)).read_text(encoding="utf-8")
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"{text!r}: {path!r} is not UTF-8 text") from None
    return {"name": name, "manifest": manifest, "id": pipeline_id or None}


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--kfp-task-seconds",
        type=positive(float),
        default=Timings.task_seconds,
        metavar="SECONDS",
        help="virtual seconds each pipeline task runs, > 0 (default: %(default)s)",
    )
    group.add_argument(
        "--kfp-experiment",
        type=_experiment,
        action="append",
        default=[],
        metavar="NAME[=ID]",
        help="create an experiment runs can reference (repeatable)",
    )
    group.add_argument(
        "--kfp-pipeline",
        type=_pipeline,
        action="append",
        default=[],
        metavar="NAME=FILE[=ID]",
        help="upload a pipeline (Argo workflow or pipeline IR, JSON or YAML) for runs by pipeline id "
        "(repeatable)",
    )


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The family options; argparse has checked and parsed every value already."""
    return {
        "task_seconds": getattr(args, "kfp_task_seconds", Timings.task_seconds),
        "experiments": list(getattr(args, "kfp_experiment", [])),
        "pipelines": list(getattr(args, "kfp_pipeline", [])),
    }


def create_state(
    options: dict[str, Any], clock: Clock, registry: Registry, store: FamilyStore | None = None
) -> State:
    """The family's state; with a durable store, what it holds, and the runs in flight moving on.

    Seeded experiments and pipelines already stored (same id, or same name when
    no id is given) are not added twice when a server restarts on its file."""
    timings = Timings(**{k: float(options[k]) for k in Timings.__dataclass_fields__ if k in options})
    repository = MemoryRepository(store)
    loaded = store is not None and store.durable
    if loaded:
        repository.load()
    state = State(clock, registry, timings, repository)
    for experiment in options.get("experiments", []):
        wanted = experiment.get("id")
        name = experiment["name"]
        found = repository.get_experiment(wanted) if wanted else repository.find_experiment(name)
        if not (loaded and found):
            state.add_experiment(experiment["name"], experiment.get("description", ""), wanted)
    for pipeline in options.get("pipelines", []):
        wanted = pipeline.get("id")
        name = pipeline["name"]
        found_pipeline = repository.get_pipeline(wanted) if wanted else repository.find_pipeline(name)
        if not (loaded and found_pipeline):
            state.add_pipeline(pipeline["name"], pipeline["manifest"], wanted)
    state.lifecycle.resume()
    return state
