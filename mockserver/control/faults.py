"""Fault rules in the mock (an observer of its dispatcher) and their control endpoints.

The rules themselves are :mod:`protoconform.mockserver.faults`; the same
endpoints serve ``protoconform proxy``'s control port:

===============================  ==============================================================
``GET    /control/faults``       the rules, with ``kind``, ``matched``, ``hits``, ``spent``;
                                 and the seed of the random draws
``POST   /control/faults``       add one rule (the body), or several: ``{"rules": [...]}`` or a list
``PUT    /control/faults``       replace every rule: ``{"rules": [...], "seed": N}`` (seed optional),
                                 or a list
``DELETE /control/faults``       remove every rule
``DELETE /control/faults/NAME``  remove one rule (404 when there is none of that name)
===============================  ==============================================================

A refused rule is a 400 whose text names the field, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from aiohttp import web
from protoconform.mockserver import rpc, safejson
from protoconform.mockserver.dispatch import CallRecord
from protoconform.mockserver.faults import FaultSet, InjectedStatus, Plan, RuleError, cut_now, enact
from protoconform.mockserver.httpbody import read_body

PATH = "/control/faults"
MAX_BODY_BYTES = 1024 * 1024
ENDPOINTS = [
    f"GET {PATH}",
    f"POST {PATH}",
    f"PUT {PATH}",
    f"DELETE {PATH}",
    f"DELETE {PATH}/{{name}}",
]


class FaultObserver:
    """Applies the fault rules to every call the dispatcher sees (gRPC and REST alike)."""

    def __init__(self, faults: FaultSet) -> None:
        self.faults = faults

    def before(self, record: CallRecord) -> Awaitable[None] | None:
        if not self.faults.rules:
            return None  # no rule at all: the common case
        plan = self.faults.plan(record.method.path, record.method.family)
        if plan is None:
            return None  # no rule fires: nothing to wait for (most calls)
        record.faults.extend(plan.names())
        return self._enact(record, plan)

    async def _enact(self, record: CallRecord, plan: Plan) -> None:
        try:
            cut = await enact(plan, record.peer)
        except InjectedStatus as exc:
            raise rpc.ApiError(exc.code, exc.message) from None
        if cut is not None:

            def stream_cut(sent: int) -> None:
                try:
                    cut_now(cut, sent)
                except InjectedStatus as exc:
                    raise rpc.ApiError(exc.code, exc.message) from None

            record.stream_cut = stream_cut

    def after(self, record: CallRecord) -> None:
        return None


def observer_of(observers: list[Any]) -> FaultObserver | None:
    for observer in observers:
        if isinstance(observer, FaultObserver):
            return observer
    return None


async def _body(request: web.Request) -> Any:
    raw = await read_body(request, MAX_BODY_BYTES)
    try:
        return safejson.loads(raw, "body", max_depth=8)
    except safejson.DocumentRejected as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"body is not JSON: {exc}") from None


def _rules_of(body: Any, required: bool) -> list[Any]:
    if isinstance(body, list):  # a rule file's list, as it is
        return body
    if isinstance(body, dict) and "rules" in body:
        rules = body["rules"]
        if not isinstance(rules, list):
            raise RuleError("rules: must be a list of rules")
        return rules
    if required:
        raise RuleError('rules: the body must be {"rules": [...]}')
    return [body]


def install(app: web.Application, faults: FaultSet) -> list[str]:
    """The fault endpoints on ``app``; their index lines."""

    def answer() -> web.Response:
        return web.json_response(faults.as_json())

    def refused(exc: RuleError) -> web.HTTPBadRequest:
        return web.HTTPBadRequest(text=str(exc))

    async def get(request: web.Request) -> web.Response:
        return answer()

    async def add(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            faults.add(_rules_of(body, required=False))
        except RuleError as exc:
            raise refused(exc) from None
        return answer()

    async def replace(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            if isinstance(body, dict):
                unknown = sorted(set(body) - {"rules", "seed"})
                if unknown:
                    raise RuleError(f"{unknown[0][:40]}: unknown key (rules, seed)")
            seed = body.get("seed") if isinstance(body, dict) else None
            faults.replace(_rules_of(body, required=True), seed)
        except RuleError as exc:
            raise refused(exc) from None
        return answer()

    async def clear(request: web.Request) -> web.Response:
        faults.clear()
        return answer()

    async def remove(request: web.Request) -> web.Response:
        try:
            faults.remove(request.match_info["name"])
        except KeyError as exc:
            raise web.HTTPNotFound(text=str(exc.args[0])) from None
        return answer()

    app.router.add_get(PATH, get)
    app.router.add_post(PATH, add)
    app.router.add_put(PATH, replace)
    app.router.add_delete(PATH, clear)
    app.router.add_delete(f"{PATH}/{{name}}", remove)
    return list(ENDPOINTS)
