"""What the KFP family remembers: runs (with their metrics and runtime workflow),
experiments (including the lazily created "Default" one), pipelines and their
versions, jobs, and artifact objects.

Storage sits behind :class:`Repository`; :class:`MemoryRepository` keeps the
working set in memory and, given a durable :class:`FamilyStore`
(``--store sqlite:PATH``), writes every change through to it and loads it back
at start.  Records are plain data (protobuf messages and JSON-able dicts, ids
rather than references) so the store can persist them without knowing the
handlers.  Handlers change a record and then hand it back with ``update_run``
so the store (and the run index ListRuns pages from) sees every change.

Ids are uuid4 as in KFP, so no counter needs to survive a restart.
"""

from __future__ import annotations

import gc
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from google.protobuf import message
from protoconform.mockserver.apis.kfp import listing
from protoconform.mockserver.apis.kfp.runindex import RunIndex
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.rpc import ApiError
from protoconform.mockserver.store import FamilyStore, Store
from protoconform.specs import rules as spec_rules
from protoconform.specs.registry import Registry

if TYPE_CHECKING:
    from protoconform.mockserver.apis.kfp.lifecycle import Lifecycle, Timings


@dataclass
class Experiment:
    id: str
    name: str
    description: str = ""
    created_at: int = 0  # Unix seconds


@dataclass
class PipelineVersion:
    id: str
    name: str
    pipeline_id: str
    manifest: str  # the stored template (JSON or YAML)
    created_at: int = 0


@dataclass
class Pipeline:
    id: str
    name: str
    description: str = ""
    default_version_id: str = ""
    created_at: int = 0


@dataclass
class Job:
    id: str
    name: str


@dataclass
class RunRecord:
    run: message.Message  # api.Run: the stored truth, metrics included
    experiment_id: str = ""
    namespace: str = ""
    template_version: str = "v1"  # "v1" (Argo) or "v2" (IR)
    workflow: dict[str, Any] | None = None  # the runtime Argo workflow, with status (v1 runs only)
    graph: list[dict[str, Any]] = field(default_factory=list)  # templates.Graph.to_json()
    phases: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # leaf key -> {phase, started, finished, ...}
    failure: dict[str, Any] = field(default_factory=dict)  # requested failure, see lifecycle
    attempt: int = 0  # RetryRun count
    # The lifecycle's pending steps, [virtual seconds due, step name, args], re-armed after a restart.
    due: list[list[Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.run.id


class Repository(ABC):
    """The storage operations the handlers and the lifecycle need."""

    @abstractmethod
    def add_experiment(self, experiment: Experiment) -> None: ...

    @abstractmethod
    def get_experiment(self, experiment_id: str) -> Experiment | None: ...

    @abstractmethod
    def find_experiment(self, name: str) -> Experiment | None: ...

    @abstractmethod
    def add_pipeline(self, pipeline: Pipeline, version: PipelineVersion) -> None: ...

    @abstractmethod
    def get_pipeline(self, pipeline_id: str) -> Pipeline | None: ...

    @abstractmethod
    def find_pipeline(self, name: str) -> Pipeline | None: ...

    @abstractmethod
    def get_version(self, version_id: str) -> PipelineVersion | None: ...

    @abstractmethod
    def add_job(self, job: Job) -> None: ...

    @abstractmethod
    def get_job(self, job_id: str) -> Job | None: ...

    @abstractmethod
    def insert_run(self, record: RunRecord) -> None: ...

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    def update_run(self, record: RunRecord) -> None: ...

    @abstractmethod
    def delete_run(self, run_id: str) -> bool: ...

    @abstractmethod
    def runs(self) -> Iterator[RunRecord]: ...

    @abstractmethod
    def run_index(self) -> RunIndex:
        """The sorted indexes ListRuns pages from (see :mod:`.runindex`)."""

    @abstractmethod
    def put_object(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_object(self, key: str) -> bytes | None: ...

    @abstractmethod
    def delete_objects(self, prefix: str) -> None: ...


class MemoryRepository(Repository):
    """Dicts in memory, written through to ``store`` when it is durable (a no-op otherwise)."""

    def __init__(self, store: FamilyStore | None = None) -> None:
        self._store = store or Store().family("kfp")
        self._experiments: dict[str, Experiment] = {}
        self._pipelines: dict[str, Pipeline] = {}
        self._versions: dict[str, PipelineVersion] = {}
        self._jobs: dict[str, Job] = {}
        self._runs: dict[str, RunRecord] = {}
        self._objects: dict[str, bytes] = {}
        self._index = RunIndex()
        self._t_experiments = self._store.table("experiments")
        self._t_pipelines = self._store.table("pipelines")
        self._t_versions = self._store.table("versions")
        self._t_jobs = self._store.table("jobs")
        self._t_runs = self._store.table("runs")
        self._t_objects = self._store.table("objects", raw=True)

    def load(self) -> None:
        """Everything the durable store holds, back in memory (indexes rebuilt)."""
        # Millions of new objects and no garbage: the cyclic collector would only rescan them
        # (a third of the load time at 100k runs).
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._load()
        finally:
            if collecting:
                gc.enable()

    def _load(self) -> None:
        for _, experiment in self._t_experiments.load():
            self._experiments[experiment.id] = experiment
        for _, pipeline in self._t_pipelines.load():
            self._pipelines[pipeline.id] = pipeline
        for _, version in self._t_versions.load():
            self._versions[version.id] = version
        for _, job in self._t_jobs.load():
            self._jobs[job.id] = job
        for _, record in self._t_runs.load():
            self._runs[record.id] = record
        self._index.add_many((r.id, r.run, r.experiment_id, r.namespace) for r in self._runs.values())
        for key, data in self._t_objects.load():
            self._objects[key] = data

    def add_experiment(self, experiment: Experiment) -> None:
        self._experiments[experiment.id] = experiment
        self._t_experiments.put(experiment.id, experiment)

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        return self._experiments.get(experiment_id)

    def find_experiment(self, name: str) -> Experiment | None:
        return next((e for e in self._experiments.values() if e.name == name), None)

    def add_pipeline(self, pipeline: Pipeline, version: PipelineVersion) -> None:
        self._pipelines[pipeline.id] = pipeline
        self._versions[version.id] = version
        self._t_pipelines.put(pipeline.id, pipeline)
        self._t_versions.put(version.id, version)

    def get_pipeline(self, pipeline_id: str) -> Pipeline | None:
        return self._pipelines.get(pipeline_id)

    def find_pipeline(self, name: str) -> Pipeline | None:
        return next((p for p in self._pipelines.values() if p.name == name), None)

    def get_version(self, version_id: str) -> PipelineVersion | None:
        return self._versions.get(version_id)

    def add_job(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._t_jobs.put(job.id, job)

    def get_job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def insert_run(self, record: RunRecord) -> None:
        self._runs[record.id] = record
        self._index.add(record.id, record.run, record.experiment_id, record.namespace)
        self._t_runs.put(record.id, record)

    def get_run(self, run_id: str) -> RunRecord | None:
        return self._runs.get(run_id)

    def update_run(self, record: RunRecord) -> None:
        self._runs[record.id] = record
        self._index.update(record.id, record.run, record.experiment_id, record.namespace)
        self._t_runs.put(record.id, record)  # serialised at the next commit, as it is then

    def delete_run(self, run_id: str) -> bool:
        if self._runs.pop(run_id, None) is None:
            return False
        self._index.remove(run_id)
        self._t_runs.delete(run_id)
        return True

    def runs(self) -> Iterator[RunRecord]:
        return iter(list(self._runs.values()))

    def run_index(self) -> RunIndex:
        return self._index

    def put_object(self, key: str, data: bytes) -> None:
        self._objects[key] = data
        self._t_objects.put(key, data, scope=key)  # the scope carries the key back at load

    def get_object(self, key: str) -> bytes | None:
        return self._objects.get(key)

    def delete_objects(self, prefix: str) -> None:
        for key in [k for k in self._objects if k.startswith(prefix)]:
            del self._objects[key]
            self._t_objects.delete(key)


class Messages:
    """Message classes of the ``api`` package, resolved from the registry (never generated code)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def __getattr__(self, name: str) -> type[message.Message]:
        cls = self._registry.message_class(f"api.{name}")
        setattr(self, name, cls)
        return cls


class State:
    """The KFP family's state, handed to handlers as ``ctx.state``."""

    def __init__(
        self, clock: Clock, registry: Registry, timings: Timings, store: Repository | None = None
    ) -> None:
        from protoconform.mockserver.apis.kfp.lifecycle import Lifecycle

        self.clock = clock
        self.registry = registry
        self.rules = spec_rules.load("kfp")
        self.store = store or MemoryRepository()
        self.api = Messages(registry)
        self.list_contract = listing.Contract(self.rules.lists["api.RunService.ListRuns"])
        self.lifecycle: Lifecycle = Lifecycle(self, timings)

    def decorate_error(self, error: ApiError, external: str | None = None) -> ApiError:
        """Attach the ``api.Error`` detail the KFP server puts on every failed status.

        ``external`` is the message without the field prefix, as the server's
        ``error_message`` carries it (default: the error's message).
        """
        if not error.details:
            error_class = self.registry.message_class("api.Error")
            detail = error_class(error_message=external or error.message, error_details=error.message)
            error.details = (detail,)
        return error

    # -- time --------------------------------------------------------------------
    def now_seconds(self) -> int:
        """The server keeps times at second precision."""
        return int(self.clock.now().timestamp())

    def now(self) -> datetime:
        return self.clock.now().replace(microsecond=0)

    # -- experiments ---------------------------------------------------------------
    def default_experiment(self) -> Experiment:
        """The experiment runs without an experiment reference belong to, created on first use."""
        params = self.rules.rule("kfp.runs.create.default-experiment").params
        existing = self.store.find_experiment(params["experiment_name"])
        if existing is not None:
            return existing
        return self.add_experiment(params["experiment_name"], params["experiment_description"])

    def add_experiment(
        self, name: str, description: str = "", experiment_id: str | None = None
    ) -> Experiment:
        experiment = Experiment(experiment_id or str(uuid.uuid4()), name, description, self.now_seconds())
        self.store.add_experiment(experiment)
        return experiment

    # -- pipelines and jobs (seeded: this mock serves RunService only) ------------------
    def add_pipeline(
        self, name: str, manifest: str, pipeline_id: str | None = None, description: str = ""
    ) -> Pipeline:
        """An uploaded pipeline; its default version shares its id, as in KFP 1.x."""
        pipeline_id = pipeline_id or str(uuid.uuid4())
        pipeline = Pipeline(pipeline_id, name, description, pipeline_id, self.now_seconds())
        self.store.add_pipeline(
            pipeline, PipelineVersion(pipeline_id, name, pipeline_id, manifest, self.now_seconds())
        )
        return pipeline

    def add_pipeline_version(
        self, pipeline_id: str, name: str, manifest: str, version_id: str | None = None
    ) -> PipelineVersion:
        pipeline = self.store.get_pipeline(pipeline_id)
        if pipeline is None:
            raise KeyError(pipeline_id)
        version = PipelineVersion(
            version_id or str(uuid.uuid4()), name, pipeline_id, manifest, self.now_seconds()
        )
        pipeline.default_version_id = version.id  # the newest version becomes the default
        self.store.add_pipeline(pipeline, version)
        return version

    def add_job(self, name: str, job_id: str | None = None) -> Job:
        job = Job(job_id or str(uuid.uuid4()), name)
        self.store.add_job(job)
        return job

    # -- runs ------------------------------------------------------------------------
    def runs(self) -> list[RunRecord]:
        return list(self.store.runs())
