"""Every Flyte defect mode bends exactly the behaviour it names (and is off by default)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from flyte_support import DOMAIN, identifier, task_template
from protoconform.mockserver.apis.flyte.defects import DEFECTS
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs import rules
from protoconform.specs.registry import default_registry

SCOPE = {"project": "p1", "domain": DOMAIN}
IA, NF, FP = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
)


@pytest.fixture
def defect(fresh_server: ThreadedServer) -> Callable[[str], None]:
    """Switch on a defect mode for one test (fresh_server clears them)."""
    return fresh_server.server.dispatcher.defects.add


@pytest.fixture
def plan(admin):
    return admin.registered()


def names(items) -> list[str]:
    return [item.id.name for item in items]


def phase(admin, execution_id) -> str:
    closure = admin.GetExecution(id=execution_id).closure
    return closure.DESCRIPTOR.fields_by_name["phase"].enum_type.values_by_number[closure.phase].name


def test_catalogue_names_the_documented_defects_and_rules() -> None:
    assert set(DEFECTS) == {
        "flyte.identical-registration-refused",
        "flyte.activation-keeps-previous-active",
        "flyte.workflow-event-after-terminal-accepted",
        "flyte.filters-ignored",
        "flyte.token-never-advances",
        "flyte.archived-executions-listed",
        "flyte.get-task-wrong-status-for-missing",
        "flyte.terminate-terminal-execution-accepted",
        "flyte.dataproxy-expired-upload-accepted",  # bent in tests/flyte/test_dataproxy.py
        "flyte.dataproxy-content-md5-unchecked",
        "flyte.signal-set-missing-accepted",  # bent in tests/flyte/test_signals.py and test_cache.py
        "flyte.signal-type-conflict-ignored",
        "flyte.cache-evict-keeps-entry",
        "flyte.agents-delete-twice-refused",  # bent in tests/flyte/test_agents.py
        "flyte.agents-job-never-finishes",
        "flyte.auth-metadata-without-token-endpoint",  # bent in tests/flyte/test_auth_metadata.py
    }
    family = rules.load("flyte")
    for defect in DEFECTS.values():
        rule = family.rule(defect.rule)
        methods = {f"flyteidl.service.{m}" for m in defect.methods}
        for method in methods:
            default_registry().method(method)  # a method the mock serves
        # the failure shows on a method the rule is about, or on a read that follows it
        assert methods & set(rule.methods), defect


def test_identical_registration_refused(admin, defect) -> None:
    admin.project()
    ident = admin.task()
    again = {"id": ident, "spec": {"template": task_template(ident)}}
    assert admin.error("CreateTask", again).code() == grpc.StatusCode.ALREADY_EXISTS
    defect("flyte.identical-registration-refused")
    refused = admin.error("CreateTask", again)
    assert refused.code() == IA and "different structure" in refused.details()
    different = {"id": ident, "spec": {"template": {**task_template(ident), "type": "other"}}}
    assert admin.error("CreateTask", different).code() == IA  # a different task is refused as before


def test_activation_keeps_previous_active(admin, plan, defect) -> None:
    v2 = admin.launch_plan(version="v2", workflow_id=identifier("WORKFLOW", "mod.wf"))
    admin.UpdateLaunchPlan(id=plan, state="ACTIVE")
    admin.UpdateLaunchPlan(id=v2, state="ACTIVE")
    assert admin.GetLaunchPlan(id=plan).closure.state == 0  # INACTIVE
    assert names(admin.ListActiveLaunchPlans(**SCOPE, limit=10).launch_plans) == ["mod.wf"]
    defect("flyte.activation-keeps-previous-active")
    admin.UpdateLaunchPlan(id=plan, state="ACTIVE")
    assert admin.GetLaunchPlan(id=plan).closure.state == 1  # ACTIVE
    assert admin.GetLaunchPlan(id=v2).closure.state == 1  # still ACTIVE: two of one name
    versions = [lp.id.version for lp in admin.ListActiveLaunchPlans(**SCOPE, limit=10).launch_plans]
    assert sorted(versions) == ["v1", "v2"]


def test_workflow_event_after_terminal_accepted(admin, plan, defect) -> None:
    execution = admin.execute(plan, name="e1", a=1, b=2)
    admin.advance(30)
    assert phase(admin, execution) == "SUCCEEDED"
    event = {"event": {"execution_id": execution, "phase": "RUNNING", "occurred_at": "2026-01-01T00:00:00Z"}}
    assert admin.error("CreateWorkflowEvent", event).code() == FP
    defect("flyte.workflow-event-after-terminal-accepted")
    admin.CreateWorkflowEvent(event)
    assert phase(admin, execution) == "RUNNING"


def test_filters_ignored(admin, plan, defect) -> None:
    for name in ("e1", "e2"):
        admin.execute(plan, name=name, a=1, b=2)
    admin.task(name="mod.other")
    tasks = {"id": SCOPE, "limit": 10, "filters": "eq(name,mod.other)"}
    executions = {"id": SCOPE, "limit": 10, "filters": "eq(execution_name,e2)"}
    assert names(admin.ListTasks(tasks).tasks) == ["mod.other"]
    assert names(admin.ListExecutions(executions).executions) == ["e2"]
    defect("flyte.filters-ignored")
    assert sorted(names(admin.ListTasks(tasks).tasks)) == ["mod.add", "mod.other"]
    assert names(admin.ListWorkflows(id=SCOPE, limit=10, filters="eq(name,none)").workflows) == ["mod.wf"]
    assert names(admin.ListExecutions(executions).executions) == ["e1", "e2"]
    # still parsed: a malformed filter is refused as before
    assert admin.error("ListTasks", id=SCOPE, limit=10, filters="name=x").code() == IA


def test_token_never_advances(admin, plan, defect) -> None:
    for name in ("e1", "e2"):
        admin.execute(plan, name=name, a=1, b=2)
    admin.task(name="mod.other")
    tasks = {"id": SCOPE, "limit": 1, "sort_by": {"key": "name", "direction": "ASCENDING"}}
    first = admin.ListTasks(tasks)
    assert names(first.tasks) == ["mod.add"] and first.token == "1"
    assert names(admin.ListTasks(tasks, token="1").tasks) == ["mod.other"]
    assert names(admin.ListExecutions(id=SCOPE, limit=1, token="1").executions) == ["e2"]
    defect("flyte.token-never-advances")
    second = admin.ListTasks(tasks, token="1")
    assert names(second.tasks) == ["mod.add"] and second.token == "1"
    page = admin.ListExecutions(id=SCOPE, limit=1, token="1")
    assert names(page.executions) == ["e1"] and page.token == "1"
    assert admin.error("ListTasks", tasks, token="next").code() == IA  # still checked


def test_archived_executions_listed(admin, plan, defect) -> None:
    for name in ("e1", "e2"):
        admin.execute(plan, name=name, a=1, b=2)
    admin.UpdateExecution(id={**SCOPE, "name": "e1"}, state="EXECUTION_ARCHIVED")
    assert names(admin.ListExecutions(id=SCOPE, limit=10).executions) == ["e2"]
    defect("flyte.archived-executions-listed")
    assert names(admin.ListExecutions(id=SCOPE, limit=10).executions) == ["e1", "e2"]
    archived = admin.ListExecutions(id=SCOPE, limit=10, filters="eq(state,1)").executions
    assert names(archived) == ["e1"]  # a filter naming state still applies


def test_get_task_wrong_status_for_missing(admin, defect) -> None:
    admin.project()
    missing = identifier("TASK", "mod.none")
    assert admin.error("GetTask", id=missing).code() == NF
    defect("flyte.get-task-wrong-status-for-missing")
    assert admin.error("GetTask", id=missing).code() == grpc.StatusCode.INTERNAL
    assert admin.error("GetWorkflow", id=identifier("WORKFLOW", "mod.none")).code() == NF  # tasks only
    admin.task()
    assert admin.GetTask(id=identifier("TASK", "mod.add")).id.name == "mod.add"


def test_terminate_terminal_execution_accepted(admin, plan, defect) -> None:
    execution = admin.execute(plan, name="e1", a=1, b=2)
    admin.advance(30)
    assert admin.error("TerminateExecution", id=execution, cause="late").code() == FP
    assert phase(admin, execution) == "SUCCEEDED"
    defect("flyte.terminate-terminal-execution-accepted")
    admin.TerminateExecution(id=execution, cause="late")
    assert phase(admin, execution) == "ABORTING"
    assert admin.GetExecution(id=execution).closure.abort_metadata.cause == "late"
