"""HTTP request bodies, read within the server's size and time limits."""

from __future__ import annotations

import asyncio

from aiohttp import web
from protoconform.mockserver.config import Limits

LIMITS_KEY = web.AppKey("limits", Limits)


def _refuse(error: web.HTTPException) -> web.HTTPException:
    # The rest of the body is not read: close the connection instead of draining it.
    error.force_close()
    return error


async def read_body(request: web.Request, max_bytes: int | None = None) -> bytes:
    """The request body, within the server's size and time limits (413 / 408 otherwise).

    ``max_bytes`` lowers the server's limit for one route.  A body over the limit
    is refused from its Content-Length before a byte is read; a chunked one is
    counted while it arrives, and what was read of it is dropped at once rather
    than left to the garbage collector.
    """
    limits = request.app[LIMITS_KEY]
    cap = min(max_bytes or limits.max_body_bytes, limits.max_body_bytes)
    too_large = f"request body larger than {cap} bytes"
    if request.content_length is not None and request.content_length > cap:
        raise _refuse(web.HTTPRequestEntityTooLarge(cap, text=too_large))
    if not request.body_exists:
        return b""
    body = bytearray()
    try:
        async with asyncio.timeout(limits.body_timeout_seconds):
            while chunk := await request.content.readany():
                if len(body) + len(chunk) > cap:
                    body.clear()
                    raise _refuse(web.HTTPRequestEntityTooLarge(cap, text=too_large))
                body += chunk
    except TimeoutError:
        body.clear()
        raise _refuse(
            web.HTTPRequestTimeout(text=f"request body not received within {limits.body_timeout_seconds} s")
        ) from None
    return bytes(body)
