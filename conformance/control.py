"""Python client for the mock's control API (see :mod:`protoconform.mockserver.control`).

control = ControlClient("http://127.0.0.1:8080")   # token=..., ca=... for a secured mock
control.reset()
with control.defect("kfp.sort-ignored"):
    ...                      # the mock misbehaves in this block only
calls = control.journal(method="api.RunService.CreateRun")
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

import requests


class ControlError(RuntimeError):
    """The control API answered with an error, or could not be reached."""


class ControlClient:
    """``token``: the mock's ``--control-token``; ``ca`` / ``cert`` + ``key``: over https, as for the
    REST gateway (the CA that signed the mock's certificate; a client certificate for mutual TLS)."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        token: str = "",
        ca: str = "",
        cert: str = "",
        key: str = "",
    ) -> None:
        if "://" not in base_url:
            base_url = f"http://{base_url}"
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/control"):
            self.base_url += "/control"
        self.timeout = timeout
        self._session = requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        # per request: requests lets REQUESTS_CA_BUNDLE win over a session's own ``verify``
        self._verify: str | bool = ca or True
        if cert:
            self._session.cert = (cert, key) if key else cert

    def _call(self, verb: str, path: str = "", **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        try:
            response = self._session.request(verb, url, timeout=self.timeout, verify=self._verify, **kwargs)
        except requests.RequestException as exc:
            raise ControlError(f"control API at {self.base_url} unreachable: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise ControlError(f"{verb} {url} -> HTTP {response.status_code}: {response.text.strip()[:300]}")
        return response.json()

    def index_response(self, timeout: float) -> requests.Response:
        """``GET /control`` as it answered, any status (the harness's probe); requests' errors pass."""
        return self._session.get(self.base_url, timeout=timeout, allow_redirects=False, verify=self._verify)

    def close(self) -> None:
        self._session.close()

    # -- endpoints -----------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return self._call("GET")

    def reset(self, journal: bool = True, defects: bool = False) -> None:
        """Fresh state; by default also forgets the journal, keeps the defect modes."""
        self._call("POST", "/reset", json={"journal": journal, "defects": defects})

    def journal(
        self, since: int = 0, method: str | Iterable[str] = (), limit: int | None = None
    ) -> list[dict]:
        params: dict[str, Any] = {"since": since}
        if isinstance(method, str):
            method = [method] if method else []
        if method:
            params["method"] = ",".join(method)
        if limit is not None:
            params["limit"] = limit
        return self._call("GET", "/journal", params=params)["entries"]

    def last_seq(self) -> int:
        """Sequence number of the newest journal entry (0 when empty): a bookmark for ``since``."""
        return int(self._call("GET", "/journal", params={"limit": 0})["last"])

    def clear_journal(self) -> None:
        self._call("DELETE", "/journal")

    def calls(self) -> dict[str, int]:
        return self._call("GET", "/calls")["counts"]

    def defects(self) -> dict[str, str]:
        """The catalogue: every defect mode the mock offers, name -> description."""
        return self._call("GET", "/defects")["available"]

    def defect_details(self) -> dict[str, dict[str, Any]]:
        """name -> what must catch each defect mode: ``rule``, ``methods`` and ``suite``."""
        return self._call("GET", "/defects")["details"]

    def active_defects(self) -> list[str]:
        return self._call("GET", "/defects")["active"]

    def set_defect(self, name: str, on: bool = True) -> None:
        self._call("PUT" if on else "DELETE", f"/defects/{name}")

    def set_defects(self, names: Iterable[str]) -> None:
        self._call("PUT", "/defects", json={"active": list(names)})

    @contextlib.contextmanager
    def defect(self, name: str) -> Iterator[None]:
        """Switch one defect mode on for the duration of a block."""
        self.set_defect(name, True)
        try:
            yield
        finally:
            self.set_defect(name, False)

    # -- fault rules (README: Faults); the same endpoints serve ``protoconform proxy`` --
    def faults(self) -> dict[str, Any]:
        """``{"rules": [rule with kind, matched, hits, spent], "seed": N}``."""
        return self._call("GET", "/faults")

    def add_faults(self, *rules: dict[str, Any]) -> dict[str, Any]:
        """Adds rules, all or none (a refused one is a ControlError naming the field)."""
        return self._call("POST", "/faults", json={"rules": list(rules)})

    def set_faults(self, rules: Iterable[dict[str, Any]], seed: int | None = None) -> dict[str, Any]:
        """Replaces every rule; ``seed`` restarts the random draws from that seed."""
        body: dict[str, Any] = {"rules": list(rules)}
        if seed is not None:
            body["seed"] = seed
        return self._call("PUT", "/faults", json=body)

    def remove_fault(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"/faults/{quote(name, safe='')}")

    def clear_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "/faults")

    @contextlib.contextmanager
    def fault(self, rule: dict[str, Any]) -> Iterator[str]:
        """One rule for the duration of a block; yields its name."""
        name = self.add_faults(rule)["rules"][-1]["name"]
        try:
            yield name
        finally:
            self.remove_fault(name)

    def clock(self) -> dict[str, Any]:
        return self._call("GET", "/clock")

    def advance(self, seconds: float) -> dict[str, Any]:
        return self._call("POST", "/clock/advance", json={"seconds": seconds})

    # -- ArmoniK: where tasks are processed (GET /control lists these under /control/armonik/) --
    def armonik_workers(self) -> dict[str, Any]:
        """``{"workers": {partition: {"address", "set_by"}}, "default_worker", "worker_agent"}``."""
        return self._call("GET", "/armonik/workers")

    def route_armonik_worker(self, partition: str, address: str) -> dict[str, Any]:
        """Send the tasks of ``partition`` (created if needed) to the Worker at ``address``
        (a loopback ``HOST:PORT`` or ``unix:`` socket); a reset drops the route."""
        return self._call("PUT", f"/armonik/workers/{quote(partition, safe='')}", json={"address": address})

    def unroute_armonik_worker(self, partition: str) -> dict[str, Any]:
        return self._call("DELETE", f"/armonik/workers/{quote(partition, safe='')}")

    def set_armonik_worker_agent(self, address: str) -> dict[str, Any]:
        """The Agent the mock's built-in Worker notifies of its outputs (loopback or ``unix:``)."""
        return self._call("PUT", "/armonik/worker-agent", json={"address": address})

    def clear_armonik_worker_agent(self) -> dict[str, Any]:
        return self._call("DELETE", "/armonik/worker-agent")
