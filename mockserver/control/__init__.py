"""The mock's HTTP control API, under ``/control/`` on the HTTP port.

It lets a test or the conformance harness drive the mock from outside:

==========================  ================================================================
``GET  /control``           index of the endpoints below
``POST /control/reset``     fresh state for every family and virtual time restarted from the
                            wall clock; also clears the journal and counts (body
                            ``{"journal": false}`` keeps them, ``{"defects": true}`` also
                            switches every defect mode off)
``GET  /control/journal``   recorded calls (``?since=SEQ`` ``&method=Svc.M`` ``&limit=N``):
                            method, requests and responses as protojson, status, timing, protocol
``DELETE /control/journal`` forget the journal and the counts
``GET  /control/calls``     call counts per method
``GET  /control/defects``   the defect catalogue (with the rule, methods and suite that must
                            catch each) and the active modes
``PUT  /control/defects``   replace the active set: ``{"active": [names]}``
``PUT  /control/defects/N`` switch mode N on; ``DELETE`` switches it off
``GET  /control/clock``     virtual time, speed, pending timers
``POST /control/clock/advance``  ``{"seconds": S}`` moves virtual time (timers fire in order);
                            S is a finite number >= 0 within the clock's headroom (``GET``
                            shows it: virtual time stays within a century of its start)
``GET|POST|PUT|DELETE /control/faults``  fault rules (:mod:`.faults`); a reset keeps them
``GET  /control/workers``   the gRPC front-end processes of ``serve --workers N``: pid, alive,
                            restarts, calls forwarded (:mod:`protoconform.mockserver.workers`)
==========================  ================================================================

A served family may add endpoints of its own under ``/control/<family>/``: its
package defines ``control_endpoints() -> [(verb, path, handler, summary)]``,
where ``handler(state, params, body) -> dict`` gets the family's current state,
the path parameters and the JSON body, answers a JSON object, and raises
ValueError (400) or LookupError (404) with a message naming the field.  They
are listed in ``GET /control`` with the others.

Bodies are JSON objects (at most 1 MiB, nested at most a few levels); anything
else is a 400 naming the problem, and a refused call changes nothing.

Everything runs on the server's event loop, like the handlers, so state is
never touched from two places at once.  :mod:`.client` is the Python client.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from protoconform.mockserver import safejson
from protoconform.mockserver.control import faults as fault_endpoints
from protoconform.mockserver.control.defects import catalogue, details
from protoconform.mockserver.control.journal import Journal
from protoconform.mockserver.httpbody import read_body

if TYPE_CHECKING:
    from protoconform.mockserver.server import MockServer

PREFIX = "/control"
MAX_BODY_BYTES = 1024 * 1024  # control bodies are a few keys; more is not a control call
MAX_BODY_DEPTH = 8
JOURNAL_KEY = web.AppKey("control_journal", Journal)


def journal_of(server: MockServer) -> Journal | None:
    """The journal observing ``server``'s dispatcher, if the control API is installed."""
    for observer in server.dispatcher.observers:
        if isinstance(observer, Journal):
            return observer
    return None


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object of a control call; 400 for anything else (never 500)."""
    raw = await read_body(request, MAX_BODY_BYTES)
    if not raw.strip():
        return {}
    try:
        data = safejson.loads(raw, "body", max_depth=MAX_BODY_DEPTH)
    except safejson.DocumentRejected as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    except ValueError as exc:  # not JSON, or an integer of more digits than Python converts
        raise web.HTTPBadRequest(text=f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return data


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise web.HTTPBadRequest(text=f"{name}: must be true or false, not {json.dumps(value)[:40]}")
    return value


def _int_param(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: {raw!r} is not an integer") from None


FAMILY_HOOK = "control_endpoints"


def _install_family_endpoints(app: web.Application, server: MockServer) -> list[str]:
    """Each served family's own endpoints under ``/control/<family>/``; their index lines."""
    lines = []
    for family, module in server.families.items():
        hook = getattr(module, FAMILY_HOOK, None)
        if hook is None:
            continue
        for verb, path, handler, summary in hook():
            url = f"{PREFIX}/{family}/{path}"

            async def call(
                request: web.Request, family: str = family, handler: Callable[..., Any] = handler
            ) -> web.Response:
                body = await _body(request) if request.method in ("PUT", "POST") else {}
                try:
                    # the current state: a reset replaces it
                    answer = handler(server.states[family], dict(request.match_info), body)
                except LookupError as exc:
                    raise web.HTTPNotFound(text=str(exc.args[0] if exc.args else exc)) from None
                except ValueError as exc:
                    raise web.HTTPBadRequest(text=str(exc)) from None
                return web.json_response(answer)

            app.router.add_route(verb, url, call)
            lines.append(f"{verb} {url}: {summary}")
    return lines


def install(app: web.Application, server: MockServer) -> None:
    journal = journal_of(server)
    if journal is None:
        journal = Journal(server.registry)
        server.dispatcher.observers.append(journal)
    app[JOURNAL_KEY] = journal
    defects = server.dispatcher.defects  # a live set: handlers see changes on their next call

    def defect_state() -> dict[str, Any]:
        return {"available": catalogue(), "details": details(), "active": sorted(defects)}

    fault_lines = fault_endpoints.install(app, server.faults)
    family_endpoints = _install_family_endpoints(app, server)

    async def index(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "endpoints": [
                    "POST /control/reset",
                    "GET /control/journal?since=&method=&limit=",
                    "DELETE /control/journal",
                    "GET /control/calls",
                    "GET /control/defects",
                    "PUT /control/defects",
                    "PUT|DELETE /control/defects/{name}",
                    "GET /control/clock",
                    "POST /control/clock/advance",
                    "GET /control/workers",
                    *fault_lines,
                    *family_endpoints,
                ],
                "families": list(server.config.families),
            }
        )

    async def reset(request: web.Request) -> web.Response:
        body = await _body(request)
        clear_journal, clear_defects = _flag(body, "journal", True), _flag(body, "defects", False)
        server.reset_state()
        if clear_journal:
            journal.clear()
        if clear_defects:
            defects.clear()
        await _recheck()
        return web.json_response(
            {"reset": True, "families": list(server.config.families), "clock": clock_state()}
        )

    async def get_journal(request: web.Request) -> web.Response:
        since = _int_param(request, "since", 0) or 0
        limit = _int_param(request, "limit", None)
        methods = [m for value in request.query.getall("method", []) for m in value.split(",") if m]
        entries = journal.entries(since=since, methods=methods, limit=limit)
        return web.json_response({"entries": entries, "last": journal.last_seq()})

    async def clear_journal(request: web.Request) -> web.Response:
        journal.clear()
        return web.json_response({"cleared": True})

    async def calls(request: web.Request) -> web.Response:
        counts = dict(sorted(journal.counts.items()))
        return web.json_response({"counts": counts, "total": sum(counts.values())})

    async def get_defects(request: web.Request) -> web.Response:
        return web.json_response(defect_state())

    def known(name: str) -> str:
        if name not in catalogue():
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"unknown defect mode {name!r}", "available": sorted(catalogue())}),
                content_type="application/json",
            )
        return name

    async def put_defects(request: web.Request) -> web.Response:
        body = await _body(request)
        active = body.get("active")
        if not isinstance(active, list) or not all(isinstance(n, str) for n in active):
            raise web.HTTPBadRequest(text='body must be {"active": ["defect name", ...]}')
        names = {known(n) for n in active}
        defects.clear()
        defects.update(names)
        return web.json_response(defect_state())

    async def switch_on(request: web.Request) -> web.Response:
        defects.add(known(request.match_info["name"]))
        return web.json_response(defect_state())

    async def switch_off(request: web.Request) -> web.Response:
        defects.discard(known(request.match_info["name"]))
        return web.json_response(defect_state())

    def clock_state() -> dict[str, Any]:
        clock = server.clock
        return {
            "now": clock.now().isoformat(),
            "elapsed": clock.elapsed(),
            "headroom": clock.headroom(),
            "speed": clock.speed,
            "manual": clock.manual,
            "pending_timers": clock.pending(),
        }

    async def _recheck() -> None:
        # health follows at once what a control call changed
        if server.selfcheck is not None:
            await server.selfcheck.refresh()

    async def get_clock(request: web.Request) -> web.Response:
        return web.json_response(clock_state())

    async def advance(request: web.Request) -> web.Response:
        body = await _body(request)
        seconds = body.get("seconds")
        headroom = server.clock.headroom()
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or (isinstance(seconds, float) and not math.isfinite(seconds))
            or seconds < 0
        ):
            raise web.HTTPBadRequest(
                text='seconds: must be a finite number >= 0, as in {"seconds": 60}; '
                f"got {json.dumps(seconds)[:80]}"
            )
        if seconds > headroom:
            raise web.HTTPBadRequest(
                text=f"seconds: {seconds:g} is past the clock's headroom of {headroom:.0f} s "
                "(virtual time stays within a century of its start; POST /control/reset restarts it)"
            )
        ran = server.clock.advance(float(seconds))
        server.commit(clock_moved=True)
        await _recheck()
        return web.json_response({"timers_run": ran, **clock_state()})

    app.router.add_get(PREFIX, index)
    app.router.add_post(f"{PREFIX}/reset", reset)
    app.router.add_get(f"{PREFIX}/journal", get_journal)
    app.router.add_delete(f"{PREFIX}/journal", clear_journal)
    app.router.add_get(f"{PREFIX}/calls", calls)
    app.router.add_get(f"{PREFIX}/defects", get_defects)
    app.router.add_put(f"{PREFIX}/defects", put_defects)
    app.router.add_put(f"{PREFIX}/defects/{{name}}", switch_on)
    app.router.add_delete(f"{PREFIX}/defects/{{name}}", switch_off)
    app.router.add_get(f"{PREFIX}/clock", get_clock)
    app.router.add_post(f"{PREFIX}/clock/advance", advance)
