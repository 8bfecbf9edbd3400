"""What the KFP family remembers: runs (with their metrics and runtime workflow),
experiments (including the lazily created "Default" one), pipelines and their
versions, jobs, and artifact objects.

Storage sits behind :class:`Repository`; :class:`MemoryRepository` is the only
implementation today.  Records are plain data (protobuf messages and JSON-able
dicts) so another store (e.g. SQLite) can persist them without knowing the
handlers.  Handlers change a record and then hand it back with
``update_run`` so a persistent store sees every change.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from google.protobuf import message
from protoconform.mockserver.apis.kfp import listing
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.rpc import ApiError
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
    def put_object(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_object(self, key: str) -> bytes | None: ...

    @abstractmethod
    def delete_objects(self, prefix: str) -> None: ...


class MemoryRepository(Repository):
    def __init__(self) -> None:
        self._experiments: dict[str, Experiment] = {}
        self._pipelines: dict[str, Pipeline] = {}
        self._versions: dict[str, PipelineVersion] = {}
        self._jobs: dict[str, Job] = {}
        self._runs: dict[str, RunRecord] = {}
        self._objects: dict[str, bytes] = {}

    def add_experiment(self, experiment: Experiment) -> None:
        self._experiments[experiment.id] = experiment

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        return self._experiments.get(experiment_id)

    def find_experiment(self, name: str) -> Experiment | None:
        return next((e for e in self._experiments.values() if e.name == name), None)

    def add_pipeline(self, pipeline: Pipeline, version: PipelineVersion) -> None:
        self._pipelines[pipeline.id] = pipeline
        self._versions[version.id] = version

    def get_pipeline(self, pipeline_id: str) -> Pipeline | None:
        return self._pipelines.get(pipeline_id)

    def get_version(self, version_id: str) -> PipelineVersion | None:
        return self._versions.get(version_id)

    def add_job(self, job: Job) -> None:
        self._jobs[job.id] = job

    def get_job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def insert_run(self, record: RunRecord) -> None:
        self._runs[record.id] = record

    def get_run(self, run_id: str) -> RunRecord | None:
        return self._runs.get(run_id)

    def update_run(self, record: RunRecord) -> None:
        self._runs[record.id] = record  # records are live objects here; a persistent store writes them

    def delete_run(self, run_id: str) -> bool:
        return self._runs.pop(run_id, None) is not None

    def runs(self) -> Iterator[RunRecord]:
        return iter(list(self._runs.values()))

    def put_object(self, key: str, data: bytes) -> None:
        self._objects[key] = data

    def get_object(self, key: str) -> bytes | None:
        return self._objects.get(key)

    def delete_objects(self, prefix: str) -> None:
        for key in [k for k in self._objects if k.startswith(prefix)]:
            del self._objects[key]


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
