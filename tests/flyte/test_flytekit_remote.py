"""flytekit (FlyteRemote and SynchronousFlyteClient, insecure) against the mock, end to end.

The server runs its virtual clock 50 times faster than wall time, so the simulated propeller
finishes an execution in a fraction of a second while flytekit polls as it does against a cluster.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import flytekit_app
import pytest
from flytekit.configuration import Config, ImageConfig, PlatformConfig, SerializationSettings
from flytekit.exceptions.user import FlyteEntityNotExistException
from flytekit.models.common import NamedEntityIdentifier
from flytekit.models.core.execution import WorkflowExecutionPhase
from flytekit.models.launch_plan import LaunchPlanState
from flytekit.models.project import Project
from flytekit.remote import FlyteRemote
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ThreadedServer

PROJECT, DOMAIN = "flytesnacks", "development"
POLL = datetime.timedelta(seconds=0.1)
TIMEOUT = datetime.timedelta(seconds=30)


@pytest.fixture(scope="module")
def remote() -> Iterator[FlyteRemote]:
    with ThreadedServer(ServerConfig(clock_speed=50, grace_seconds=0.2, families=("flyte",))) as server:
        config = Config(platform=PlatformConfig(endpoint=server.grpc_address, insecure=True))
        yield FlyteRemote(config, default_project=PROJECT, default_domain=DOMAIN)


@pytest.fixture(scope="module")
def registered(remote: FlyteRemote) -> FlyteRemote:
    remote.client.register_project(Project(PROJECT, "Flytesnacks", "flytekit against the mock"))
    settings = SerializationSettings(
        image_config=ImageConfig.auto_default_image(), project=PROJECT, domain=DOMAIN, version="v1"
    )
    for entity in (flytekit_app.calc, flytekit_app.words):
        remote.register_workflow(entity, serialization_settings=settings, version="v1")
    return remote


def test_identical_reregistration_is_accepted(registered: FlyteRemote) -> None:
    settings = SerializationSettings(
        image_config=ImageConfig.auto_default_image(), project=PROJECT, domain=DOMAIN, version="v1"
    )
    again = registered.register_workflow(flytekit_app.calc, serialization_settings=settings, version="v1")
    assert again.id.name == "flytekit_app.calc" and again.id.version == "v1"


def test_tasks_are_listed_page_by_page(registered: FlyteRemote) -> None:
    names = []
    for name in ("flytekit_app.add", "flytekit_app.concat"):
        tasks, token = registered.client.list_tasks_paginated(
            NamedEntityIdentifier(PROJECT, DOMAIN, name), limit=1
        )
        assert len(tasks) == 1 and token == "1"
        names.append(tasks[0].id.name)
        rest, last = registered.client.list_tasks_paginated(
            NamedEntityIdentifier(PROJECT, DOMAIN, name), limit=1, token=token
        )
        assert rest == [] and last == ""
    assert names == ["flytekit_app.add", "flytekit_app.concat"]


def test_the_active_launch_plan(registered: FlyteRemote) -> None:
    plan = registered.fetch_launch_plan(name="flytekit_app.calc", version="v1")
    registered.client.update_launch_plan(plan.id, LaunchPlanState.ACTIVE)
    active = registered.client.get_active_launch_plan(
        NamedEntityIdentifier(PROJECT, DOMAIN, "flytekit_app.calc")
    )
    assert active.id.version == "v1" and active.closure.state == LaunchPlanState.ACTIVE


def test_an_execution_succeeds_with_the_computed_output(registered: FlyteRemote) -> None:
    plan = registered.fetch_launch_plan(name="flytekit_app.calc", version="v1")
    execution = registered.execute(plan, inputs={"a": 2, "b": 40})
    done = registered.wait(execution, timeout=TIMEOUT, poll_interval=POLL)
    assert done.closure.phase == WorkflowExecutionPhase.SUCCEEDED
    assert done.outputs["o0"] == 82  # add(add(2, 40), 40)
    assert set(done.node_executions) == {"start-node", "n0", "n1", "end-node"}
    words = registered.execute(
        registered.fetch_launch_plan(name="flytekit_app.words", version="v1"), inputs={"x": "a", "y": "b"}
    )
    assert registered.wait(words, timeout=TIMEOUT, poll_interval=POLL).outputs["o0"] == "ab"


def test_a_terminated_execution_ends_aborted(registered: FlyteRemote) -> None:
    plan = registered.fetch_launch_plan(name="flytekit_app.calc", version="v1")
    execution = registered.execute(plan, inputs={"a": 1, "b": 1})
    registered.terminate(execution, cause="enough")
    done = registered.wait(execution, timeout=TIMEOUT, poll_interval=POLL)
    assert done.closure.phase == WorkflowExecutionPhase.ABORTED


def test_a_missing_entity_is_not_found(registered: FlyteRemote) -> None:
    with pytest.raises(FlyteEntityNotExistException):
        registered.fetch_workflow(name="flytekit_app.nothing", version="v1")
