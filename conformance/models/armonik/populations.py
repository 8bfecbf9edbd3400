"""The data ArmoniK's list checks run on: sessions, results, tasks and applications made for the
run, each with a scope (a filter) that restricts a listing to them."""

from __future__ import annotations

from collections.abc import Callable

from protoconform.conformance.models.armonik.requests import (
    TASK_ENUM,
    TIER_KEY,
    b64,
    delete_session,
    new_session,
    session_request,
    string_equals,
)
from protoconform.conformance.models.base import Env, expect_codes
from protoconform.conformance.models.listing import Population

TASK_FINAL = frozenset(
    {
        "TASK_STATUS_COMPLETED",
        "TASK_STATUS_ERROR",
        "TASK_STATUS_CANCELLED",
        "TASK_STATUS_TIMEOUT",
        "TASK_STATUS_RETRIED",
    }
)


def populate_sessions(env: Env) -> Population:
    keys = []
    for i in range(5):
        request = session_request(i + 1)
        request["default_task_option"]["application_name"] = f"{env.namespace}-app{i % 2}"
        request["default_task_option"]["options"] = {TIER_KEY: ("gold", "silver")[i % 2]}
        reply = env.rpc("Sessions.CreateSession", request)
        expect_codes(reply, {"OK"}, "armonik.sessions.create.initial-state", "populating sessions")
        keys.append(reply.response.session_id)
    for key, action in zip(keys, ["CancelSession", "PauseSession", "CloseSession"], strict=False):
        env.rpc(f"Sessions.{action}", {"session_id": key})
    scope = [[string_equals("session_raw_field", "SESSION_RAW_ENUM_FIELD_SESSION_ID", k)] for k in keys]
    return Population(keys, scope, [lambda k=k: delete_session(env, k) for k in keys])


def populate_results(env: Env) -> Population:
    session = new_session(env, "results")
    names = [f"{env.namespace}-r{i}" for i in range(6)]
    meta = env.rpc(
        "Results.CreateResultsMetaData",
        {
            "session_id": session,
            "results": [{"name": n, "manual_deletion": i % 2 == 0} for i, n in enumerate(names[:3])],
        },
    )
    data = env.rpc(
        "Results.CreateResults",
        {
            "session_id": session,
            "results": [{"name": n, "data": b64(n.encode() * (i + 1))} for i, n in enumerate(names[3:])],
        },
    )
    expect_codes(meta, {"OK"}, "armonik.results.create.effects", "populating results")
    expect_codes(data, {"OK"}, "armonik.results.create.effects", "populating results")
    keys = [r.result_id for r in [*meta.response.results, *data.response.results]]
    scope = [[string_equals("result_raw_field", "RESULT_RAW_ENUM_FIELD_SESSION_ID", session)]]
    return Population(keys, scope, [lambda: delete_session(env, session)])


def populate_tasks(env: Env) -> Population:
    """Six tasks in one session with varied options; waits until they are all finished."""
    key = "armonik.population.task"
    if key in env.cache:
        return env.cache[key]
    session = new_session(env, "tasks")
    payload = env.rpc(
        "Results.CreateResults", {"session_id": session, "results": [{"name": "payload", "data": b64(b"x")}]}
    )
    expect_codes(payload, {"OK"}, "armonik.results.create.effects", "populating tasks")
    payload_id = payload.response.results[0].result_id
    outputs = env.rpc(
        "Results.CreateResultsMetaData",
        {"session_id": session, "results": [{"name": f"out{i}"} for i in range(6)]},
    )
    expect_codes(outputs, {"OK"}, "armonik.results.create.effects", "populating tasks")
    creations = []
    for i, output in enumerate(outputs.response.results):
        options = {
            "max_duration": "60s",
            "max_retries": 1,
            "priority": i + 1,
            "application_name": f"{env.namespace}-app-{'abc'[i % 3]}",
            "application_version": str(1 + i % 2),
            "options": {TIER_KEY: ("gold", "silver")[i % 2]},
        }
        creations.append(
            {"payload_id": payload_id, "expected_output_keys": [output.result_id], "task_options": options}
        )
    reply = env.rpc("Tasks.SubmitTasks", {"session_id": session, "task_creations": creations})
    expect_codes(reply, {"OK"}, "armonik.tasks.submit.reply-order", "populating tasks")
    keys = [t.task_id for t in reply.response.task_infos]
    scope = [[string_equals("task_summary_field", "TASK_SUMMARY_ENUM_FIELD_SESSION_ID", session)]]
    for _ in range(40):  # until every task is finished (statuses and times then stay put)
        listing = env.rpc(
            "Tasks.ListTasks",
            {
                "page": 0,
                "page_size": 100,
                "filters": {"or": [{"and": scope[0]}]},
                "sort": {
                    "field": {"task_summary_field": {"field": "TASK_SUMMARY_ENUM_FIELD_TASK_ID"}},
                    "direction": "SORT_DIRECTION_ASC",
                },
            },
        )
        enum = env.rpc.registry.enum(TASK_ENUM)
        if listing.ok and all(
            enum.values_by_number.get(t.status) is not None
            and enum.values_by_number[t.status].name in TASK_FINAL
            for t in listing.response.tasks
        ):
            break
        env.wait(0.5)
    population = Population(keys, scope, [lambda: delete_session(env, session)])
    env.cache[key] = population
    return population


def populate_applications(env: Env) -> Population:
    tasks = populate_tasks(env)
    prefix = f"{env.namespace}-app-"
    scope = [
        [
            {
                "field": {"application_field": {"field": "APPLICATION_RAW_ENUM_FIELD_NAME"}},
                "filter_string": {"value": prefix, "operator": "FILTER_STRING_OPERATOR_STARTS_WITH"},
            }
        ]
    ]
    keys = [f"{prefix}{c}/{v}//" for c, v in (("a", 1), ("b", 2), ("c", 1), ("a", 2), ("b", 1), ("c", 2))]
    return Population(sorted(set(keys)), scope, tasks.cleanup)


# Entities a list method can be populated with (partitions are configured, not created).
POPULATIONS: dict[str, Callable[[Env], Population]] = {
    "session": populate_sessions,
    "result": populate_results,
    "task": populate_tasks,
    "application": populate_applications,
}
