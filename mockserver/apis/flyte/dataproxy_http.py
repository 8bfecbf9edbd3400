"""The blob store's side of DataProxyService: signed URLs served by this mock's own HTTP port.

A signed URL names an object of the metadata store (its ``native_url``), the verb
it allows, when it expires (virtual time) and, for uploads, the md5 the content
must have; an HMAC with a key of the family's state makes it unforgeable (kept in a durable store
with the objects, so URLs handed out before a restart still work after it).
``PUT`` stores the body as the family's object, ``GET`` answers it.  Refusals
are plain-text 4xx answers as a blob store gives them: 403 for a bad signature,
an expired URL or a Content-MD5 other than the signed one, 400 for a body whose
md5 is not its Content-MD5, 404 for a missing object, 413/507 past the limits of
``specs/flyte/dataproxy.yaml`` (one upload, all uploads together, their count).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from protoconform.mockserver.apis.flyte.defects import CONTENT_MD5_UNCHECKED, EXPIRED_UPLOAD_ACCEPTED
from protoconform.mockserver.apis.flyte.state import State
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.httpbody import read_body

if TYPE_CHECKING:
    from protoconform.mockserver.server import MockServer

PATH = "/protoconform/flyte/objects"


def settings(state: State) -> dict[str, Any]:
    return dict(state.rules.extra["dataproxy"])


def md5_text(digest: bytes) -> str:
    """The Content-MD5 form of a digest: base64."""
    return base64.b64encode(digest).decode()


class Signer:
    """Signs and verifies the URLs of one server (its HTTP address, a key of its own)."""

    def __init__(self, server: MockServer) -> None:
        self._server = server

    def _mac(self, verb: str, uri: str, expires: str, md5: str) -> str:
        text = "\n".join((verb, uri, expires, md5)).encode()
        key = self._server.states["flyte"].store.secret("dataproxy")  # per state: a reset draws a new one
        return hmac.new(key, text, hashlib.sha256).hexdigest()

    def sign(self, verb: str, uri: str, expires_at: datetime, md5: bytes = b"") -> str:
        expires = str(int(expires_at.timestamp() * 1000))
        digest = md5_text(md5) if md5 else ""
        query = {
            "uri": uri,
            "expires": expires,
            "md5": digest,
            "signature": self._mac(verb, uri, expires, digest),
        }
        return f"{self._server.http_scheme}://{self._server.http_address}{PATH}?{urlencode(query)}"

    def verify(self, verb: str, query: Any) -> tuple[str, datetime, str]:
        """(uri, expiry, md5 as base64) of a URL this server signed for ``verb``; 403 otherwise."""
        uri, expires, digest = (query.get(k, "") for k in ("uri", "expires", "md5"))
        given = query.get("signature", "")
        if not hmac.compare_digest(given.encode(), self._mac(verb, uri, expires, digest).encode()):
            raise web.HTTPForbidden(text=f"signature does not match: not a {verb} URL this server signed")
        return uri, datetime.fromtimestamp(int(expires) / 1000, UTC), digest


# The call context of a gRPC handler shares only the clock with the server, and the clock outlives a
# state reset (which replaces the family's state): signers are found by it.
_SIGNERS: weakref.WeakKeyDictionary[Clock, Signer] = weakref.WeakKeyDictionary()


def signer_for(clock: Clock) -> Signer | None:
    """The signer of the server running on ``clock`` (None when it serves no HTTP)."""
    return _SIGNERS.get(clock)


UPLOADS = "uploads"  # the table of upload sizes by object URI


def _usage(state: State) -> list[int]:
    """[count, bytes] of all uploads (derived from the uploads table, kept up to date by ``put``)."""
    found = state.caches.get("uploads")
    if found is None:
        sizes = list(state.table(UPLOADS).scan())
        found = state.caches["uploads"] = [len(sizes), sum(sizes)]
    return found


def install_routes(app: web.Application, server: MockServer) -> None:
    """Serve the signed URLs: PUT stores an upload, GET answers an object."""
    signer = Signer(server)
    _SIGNERS[server.clock] = signer

    def state() -> State:
        return server.states["flyte"]  # looked up per request: a reset replaces it

    def unexpired(expires_at: datetime, defect: str = "") -> None:
        if (not defect or defect not in server.dispatcher.defects) and server.clock.now() >= expires_at:
            raise web.HTTPForbidden(text=f"request has expired (at {expires_at.isoformat()})")

    async def put(request: web.Request) -> web.Response:
        uri, expires_at, signed_md5 = signer.verify("PUT", request.query)
        unexpired(expires_at, EXPIRED_UPLOAD_ACCEPTED)
        checked = CONTENT_MD5_UNCHECKED not in server.dispatcher.defects
        header = request.headers.get("Content-MD5", "")
        if checked and signed_md5 and header != signed_md5:
            raise web.HTTPForbidden(
                text=f"Content-MD5 [{header[:64]}] is not the md5 the URL was signed for [{signed_md5}]"
            )
        found = state()
        limits = settings(found)
        body = await read_body(request, int(limits["max_object_bytes"]))
        actual = md5_text(hashlib.md5(body).digest())
        if checked and header and header != actual:
            raise web.HTTPBadRequest(
                text=f"BadDigest: the body's md5 [{actual}] is not Content-MD5 [{header[:64]}]"
            )
        sizes = found.table(UPLOADS)
        previous = sizes.get(uri)
        usage = _usage(found)
        if previous is None and usage[0] >= int(limits["max_objects"]):
            raise web.HTTPInsufficientStorage(text=f"the store holds {limits['max_objects']} uploads already")
        total = usage[1] - (previous or 0) + len(body)
        if total > int(limits["max_total_bytes"]):
            raise web.HTTPInsufficientStorage(
                text=f"uploads would take {total} bytes, over the store's {limits['max_total_bytes']}"
            )
        found.store.put_object(uri, body)
        if previous is None:
            sizes.insert(uri, None, len(body))
            usage[0] += 1
        else:
            sizes.update(uri, len(body))
        usage[1] = total
        try:
            server.commit()  # on disk before the client hears it was stored
        except Exception as exc:
            raise web.HTTPServiceUnavailable(text=f"the upload could not be saved: {exc}") from None
        return web.Response(status=200, headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})

    async def get(request: web.Request) -> web.Response:
        uri, expires_at, _ = signer.verify("GET", request.query)
        unexpired(expires_at)
        data = state().store.get_object(uri)
        if data is None:
            raise web.HTTPNotFound(text=f"object not found: {uri}")
        return web.Response(body=data, content_type="application/octet-stream")

    app.router.add_put(PATH, put)
    app.router.add_get(PATH, get)
