"""ListRuns page sizes: page_size 0 means the default, and a page size above the cap is lowered to
it (rules ``kfp.runs.list.page-size-default`` and ``kfp.runs.list.page-size-cap``).

Either only shows with more runs in scope than the page may hold, so the check makes cap + 1 runs
of its own (one name token scopes the listing to them), lists them, and deletes them at once.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import Env, expect_codes, fail
from protoconform.conformance.models.kfp.requests import create_request, delete_run

DEFAULT_RULE = "kfp.runs.list.page-size-default"
CAP_RULE = "kfp.runs.list.page-size-cap"
CREATE_RULE = "kfp.runs.create.initial-state"
METHOD = "RunService.ListRuns"


def check_page_sizes(env: Env) -> None:
    """Make cap + 1 runs, check a page of the default size and a page asked above the cap, delete them."""
    default = int(env.rule(DEFAULT_RULE).params["default"])
    cap = int(env.rule(CAP_RULE).params["max"])
    token = env.unique("pages")
    made: list[str] = []
    try:
        for index in range(cap + 1):
            reply = env.rpc("RunService.CreateRun", create_request(env.rules, f"{token}-{index}"))
            expect_codes(reply, {"OK"}, CREATE_RULE, "creating runs to fill pages")
            made.append(reply.response.run.id)
        scope = json.dumps(
            {"predicates": [{"key": "name", "op": "IS_SUBSTRING", "string_value": token}]},
            separators=(",", ":"),
        )
        scope = urllib.parse.quote(scope, safe="")
        for rule, size, wanted in ((DEFAULT_RULE, 0, default), (CAP_RULE, cap + 1, cap)):
            reply = env.rpc(METHOD, {"page_size": size, "filter": scope})
            expect_codes(reply, {"OK"}, rule, f"page_size {size}")
            _expect_full_page(rule, reply, size, wanted, len(made))
            env.covered(rule)
    finally:
        for run_id in made:
            delete_run(env, run_id)


def _expect_full_page(rule: str, reply: Reply, size: int, wanted: int, matching: int) -> None:
    """A first page of ``wanted`` runs out of ``matching``, with a token for the rest."""
    response: Any = reply.response
    shown = len(response.runs)
    if shown != wanted:
        raise fail(rule, reply, f"{wanted} runs on a page asked with page_size {size}", f"{shown} runs")
    if not response.next_page_token:
        raise fail(rule, reply, f"a next_page_token: {matching} runs match", "none")
