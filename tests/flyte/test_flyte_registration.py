"""Projects, tasks, workflows and launch plans: identifier validation, registration, activation."""

from __future__ import annotations

import grpc
from flyte_support import DOMAIN, details, identifier, status, task_template

IA, NF, AE = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS


def test_identifier_validation_follows_flyteadmin_order(admin) -> None:
    admin.project()
    full = identifier("TASK", "t", "v1")
    spec = {"template": task_template(full)}
    cases = [
        ({}, "id: missing id"),
        (
            {"id": {**full, "resource_type": "WORKFLOW", "project": ""}},
            "id.resource_type: unexpected resource type workflow",
        ),
        ({"id": {**full, "project": "", "domain": ""}}, "id.project: missing project"),
        ({"id": {**full, "domain": "", "name": ""}}, "id.domain: missing domain"),
        ({"id": {**full, "name": "", "version": ""}}, "id.name: missing name"),
        ({"id": {**full, "version": ""}}, "id.version: missing version"),
        (
            {"id": {**full, "project": "nope"}},
            "id.project: failed to validate that project [nope] and domain [development] are registered",
        ),
        ({"id": {**full, "domain": "qa"}}, "id.domain: domain [qa] is unrecognized by system"),
        ({"id": full}, "spec: missing spec"),
    ]
    for request, expected in cases:
        code, message = status(
            admin.error("CreateTask", {"spec": spec, **request} if request.get("id") != full else request)
        )
        assert code == IA and message.startswith(expected), (request, message)
    # the resource type message names the identifier and the expected type
    message = admin.error("CreateTask", id={**full, "resource_type": "LAUNCH_PLAN"}, spec=spec).details()
    assert "expected task instead" in message and 'name: "t"' in message


def test_inactive_project_refuses_registration_with_its_detail(admin) -> None:
    admin.project("old")
    admin.UpdateProject(id="old", state="ARCHIVED")
    ident = identifier("TASK", "t", project="old")
    error = admin.error("CreateTask", id=ident, spec={"template": task_template(ident)})
    assert status(error) == (IA, "id.project: project [old] is not active")
    (detail,) = details(error)
    assert detail.DESCRIPTOR.full_name == "flyteidl.admin.InactiveProject" and detail.id == "old"


def test_projects_register_update_get_list(admin) -> None:
    admin.project("b", description="second")
    admin.project("a")
    assert status(admin.error("RegisterProject", project={"id": "a", "name": "again"}))[0] == AE
    bad = [
        ({"name": "x"}, "project.id: missing project_id"),
        ({"id": "x"}, "project.name: missing project_name"),
        ({"id": "Not_DNS", "name": "x"}, "project.id: invalid project id [Not_DNS]"),
        ({"id": "x", "name": "x", "domains": [{"id": "d"}]}, "Domains are currently only set system wide"),
        ({"id": "x", "name": "x", "labels": {"values": {"-bad": "v"}}}, "invalid label key [-bad]"),
    ]
    for project, expected in bad:
        message = admin.error("RegisterProject", project=project).details()
        assert expected in message, message
    got = admin.GetProject(id="b")
    assert got.description == "second" and [d.id for d in got.domains] == [
        "development",
        "staging",
        "production",
    ]
    assert status(admin.error("GetProject", id="zz")) == (NF, "id: project [zz] not found")
    admin.UpdateProject(
        id="b", name="", description="", state="ARCHIVED"
    )  # empty fields keep the stored ones
    assert admin.GetProject(id="b").name == "B" and admin.GetProject(id="b").description == "second"
    assert [p.id for p in admin.ListProjects().projects] == ["a"]  # archived hidden without filters
    assert [p.id for p in admin.ListProjects(filters="eq(state,1)").projects] == ["b"]
    assert [
        p.id for p in admin.ListProjects(sort_by={"key": "identifier", "direction": "DESCENDING"}).projects
    ] == ["a"]
    assert [d.id for d in admin.GetDomains().domains] == ["development", "staging", "production"]


def test_task_reregistration_identical_vs_different(admin) -> None:
    admin.project()
    ident = admin.task("mod.t")
    again = admin.error("CreateTask", id=ident, spec={"template": task_template(ident)})
    assert status(again) == (AE, "id: task with identical structure already exists")
    changed = task_template(ident, inputs={"a": "STRING"})
    code, message = status(admin.error("CreateTask", id=ident, spec={"template": changed}))
    assert (
        code == IA
        and "task with different structure already exists. (Please register a new version" in message
    )
    assert '/template/interface/inputs/variables/a/type/simple:\n\t- "INTEGER" \n\t+ "STRING"' in message
    stored = admin.GetTask(id=ident)
    assert stored.closure.compiled_task.template.interface.inputs.variables["a"].type.simple == 1  # unchanged
    assert stored.closure.created_at.seconds > 0 and stored.id.name == "mod.t"


def test_get_task_only_logs_a_bad_id(admin) -> None:
    admin.project()
    assert status(admin.error("GetTask", id={"project": "p1"}))[0] == NF
    code, message = status(admin.error("GetTask", id=identifier("TASK", "none")))
    assert code == NF and message.startswith("id: missing entity of type TASK with identifier ")
    assert status(admin.error("GetWorkflow", id={**identifier("WORKFLOW", "w"), "version": ""})) == (
        IA,
        "id.version: missing version",
    )
    message = admin.error("GetWorkflow", id=identifier("TASK", "w")).details()
    assert message.startswith("id.resource_type: unexpected resource type task") and message.endswith(
        "expected workflow instead"
    )
    # an unset resource type is filled in by the read
    assert (
        admin.error("GetWorkflow", id={**identifier("WORKFLOW", "w"), "resource_type": "UNSPECIFIED"}).code()
        == NF
    )


def test_workflow_referencing_an_unregistered_task_is_refused(admin) -> None:
    admin.project()
    missing = identifier("TASK", "mod.never")
    ident = identifier("WORKFLOW", "mod.wf")
    from flyte_support import workflow_template

    error = admin.error("CreateWorkflow", id=ident, spec={"template": workflow_template(ident, [missing])})
    code, message = status(error)
    assert code == IA and message.startswith("spec: failed to compile workflow for [")
    assert "Code: TaskReferenceNotFound, Node Id: n0, Description: Referenced Task [" in message
    assert admin.ListWorkflowIds(project="p1", domain=DOMAIN, limit=10).entities == []


def test_workflow_closure_and_reregistration_details(admin) -> None:
    admin.project()
    admin.task()
    ident = admin.workflow()
    workflow = admin.GetWorkflow(id=ident)
    primary = workflow.closure.compiled_workflow.primary
    assert [n.id for n in primary.template.nodes] == ["start-node", "n0", "end-node"]
    assert list(primary.connections.upstream["n0"].ids) == ["start-node"]
    assert list(primary.connections.upstream["end-node"].ids) == ["n0"]
    assert [t.template.id.name for t in workflow.closure.compiled_workflow.tasks] == ["mod.add"]
    from flyte_support import workflow_template

    error = admin.error(
        "CreateWorkflow",
        id=ident,
        spec={"template": workflow_template(ident, [identifier("TASK", "mod.add")])},
    )
    assert status(error) == (AE, "id: workflow with identical structure already exists")
    (reason,) = details(error)
    assert reason.WhichOneof("reason") == "exists_identical_structure"
    listed = admin.ListWorkflows(id={"project": "p1", "domain": DOMAIN}, limit=5).workflows[0]
    assert listed.closure.compiled_workflow.primary.template.interface == primary.template.interface
    assert not listed.closure.compiled_workflow.primary.template.nodes  # ListWorkflows trims the closure


def test_launch_plan_created_inactive_and_activation_moves(admin) -> None:
    admin.project()
    admin.task()
    admin.workflow()
    first = admin.launch_plan(version="v1")
    admin.workflow(version="v2")
    second = admin.launch_plan(version="v2")
    plan = admin.GetLaunchPlan(id=first)
    assert plan.closure.state == 0 and set(plan.closure.expected_inputs.parameters) == {"a", "b"}
    assert plan.closure.expected_inputs.parameters["a"].required
    named = {"project": "p1", "domain": DOMAIN, "name": "mod.wf"}
    error = admin.error("GetActiveLaunchPlan", id=named)
    assert status(error) == (NF, "id: No active launch plan could be found: p1:development:mod.wf")
    admin.UpdateLaunchPlan(id=first, state="ACTIVE")
    admin.UpdateLaunchPlan(id=second, state="ACTIVE")
    assert admin.GetActiveLaunchPlan(id=named).id.version == "v2"
    assert admin.GetLaunchPlan(id=first).closure.state == 0
    active = admin.ListActiveLaunchPlans(project="p1", domain=DOMAIN, limit=10).launch_plans
    assert [p.id.version for p in active] == ["v2"]
    admin.UpdateLaunchPlan(id=second, state="INACTIVE")
    assert admin.error("GetActiveLaunchPlan", id=named).code() == NF
    assert (
        admin.error("UpdateLaunchPlan", id=first, state=7)
        .details()
        .startswith("state: Unrecognized launch plan state 7")
    )
    again = admin.error("CreateLaunchPlan", id=first, spec={"workflow_id": identifier("WORKFLOW", "mod.wf")})
    assert status(again) == (AE, "id: launch plan with identical structure already exists")


def test_launch_plan_inputs_checked_against_the_workflow(admin) -> None:
    admin.project()
    admin.task()
    workflow = admin.workflow()
    ident = identifier("LAUNCH_PLAN", "lp")
    cases = [
        (
            {"fixed_inputs": {"literals": {"zz": {"scalar": {"primitive": {"integer": "1"}}}}}},
            "unexpected fixed_input zz",
        ),
        (
            {"fixed_inputs": {"literals": {"a": {"scalar": {"primitive": {"string_value": "x"}}}}}},
            "invalid fixed_input wrong type a",
        ),
        (
            {
                "default_inputs": {
                    "parameters": {"a": {"var": {"type": {"simple": "STRING"}}, "required": True}}
                }
            },
            "invalid default_input wrong type a",
        ),
        (
            {"default_inputs": {"parameters": {"a": {"var": {"type": {"simple": "INTEGER"}}}}}},
            "has neither default, nor is required",
        ),
        (
            {"entity_metadata": {"schedule": {"cron_schedule": {"schedule": "0 * * * *"}}}},
            "unbound required input",
        ),
        (
            {
                "fixed_inputs": {
                    "literals": {
                        "a": {"scalar": {"primitive": {"integer": "1"}}},
                        "b": {"scalar": {"primitive": {"integer": "1"}}},
                    }
                },
                "entity_metadata": {"schedule": {"cron_schedule": {"schedule": "not a cron"}}},
            },
            "Invalid cron expression: not a cron",
        ),
    ]
    for spec, expected in cases:
        message = admin.error("CreateLaunchPlan", id=ident, spec={"workflow_id": workflow, **spec}).details()
        assert expected in message, message
    missing = admin.error("CreateLaunchPlan", id=ident, spec={"workflow_id": identifier("WORKFLOW", "nope")})
    assert status(missing)[0] == NF and status(missing)[1].startswith(
        "spec.workflow_id: missing entity of type WORKFLOW"
    )
    admin.CreateLaunchPlan(
        id=ident,
        spec={
            "workflow_id": workflow,
            "fixed_inputs": {"literals": {"b": {"scalar": {"primitive": {"integer": "2"}}}}},
            "default_inputs": {
                "parameters": {
                    "a": {
                        "var": {"type": {"simple": "INTEGER"}},
                        "default": {"scalar": {"primitive": {"integer": "5"}}},
                    }
                }
            },
        },
    )
    plan = admin.GetLaunchPlan(id=ident)
    assert (
        set(plan.closure.expected_inputs.parameters) == {"a"}
        and plan.spec.default_inputs == plan.closure.expected_inputs
    )


def test_id_lists_and_named_entities(admin) -> None:
    admin.project()
    for version in ("v1", "v2"):
        admin.task("mod.b", version)
    admin.task("mod.a")
    ids = admin.ListTaskIds(
        project="p1", domain=DOMAIN, limit=10, sort_by={"key": "name", "direction": "ASCENDING"}
    )
    assert [e.name for e in ids.entities] == ["mod.a", "mod.b"] and ids.token == ""
    assert (
        admin.error("ListTaskIds", project="p1", domain=DOMAIN, limit=10, sort_by={"key": "version"}).code()
        == IA
    )
    assert (
        admin.error("ListLaunchPlanIds", project="p1", domain=DOMAIN).details()
        == "limit: missing and/or invalid parameters: limit"
    )
    entity = admin.GetNamedEntity(
        resource_type="TASK", id={"project": "p1", "domain": DOMAIN, "name": "mod.b"}
    )
    assert entity.metadata.state == 0
    admin.UpdateNamedEntity(
        resource_type="TASK",
        id={"project": "p1", "domain": DOMAIN, "name": "mod.b"},
        metadata={"description": "d", "state": 1},
    )
    listed = admin.ListNamedEntities(
        resource_type="TASK", project="p1", domain=DOMAIN, limit=10, filters="eq(state,1)"
    )
    assert [(e.id.name, e.metadata.description) for e in listed.entities] == [("mod.b", "d")]
    assert (
        admin.error(
            "GetNamedEntity", resource_type="TASK", id={"project": "p1", "domain": DOMAIN, "name": "x"}
        ).details()
        == "id: entry not found"
    )
    assert (
        admin.error("ListNamedEntities", resource_type="DATASET", project="p1", domain=DOMAIN, limit=1).code()
        == IA
    )
    assert (
        admin.error(
            "UpdateNamedEntity",
            resource_type="LAUNCH_PLAN",
            id={"project": "p1", "domain": DOMAIN, "name": "x"},
            metadata={"state": 1},
        ).details()
        == "metadata.state: Resource [LAUNCH_PLAN] cannot have its state updated"
    )


def test_description_entity_from_a_registration(admin) -> None:
    admin.project()
    ident = identifier("TASK", "mod.doc")
    admin.CreateTask(
        id=ident,
        spec={
            "template": task_template(ident),
            "description": {"short_description": "adds", "long_description": {"value": "long"}},
        },
    )
    entity = admin.GetDescriptionEntity(id={**ident, "resource_type": "UNSPECIFIED"})
    assert entity.short_description == "adds" and entity.long_description.value == "long"
    assert admin.GetTask(id=ident).short_description == "adds"
    listed = admin.ListDescriptionEntities(
        resource_type="TASK", id={"project": "p1", "domain": DOMAIN, "name": "mod.doc"}, limit=5
    )
    assert [e.id.version for e in listed.descriptionEntities] == ["v1"]
    assert (
        admin.error("GetDescriptionEntity", id=identifier("TASK", "mod.add")).details()
        == "id: entry not found"
    )
