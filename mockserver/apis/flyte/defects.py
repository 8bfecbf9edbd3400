"""Deliberate deviations from specs/flyte, off by default (``--defect NAME``).

Each is a realistic bug a Flyte server could have, with the failure a default
conformance run must report for it; the harness proves its power by catching
every one.
"""

from __future__ import annotations

from protoconform.mockserver.apis.flyte.dataproxy_http import CONTENT_MD5_UNCHECKED, EXPIRED_UPLOAD_ACCEPTED
from protoconform.mockserver.control.defects import Defect

DEFECTS: dict[str, Defect] = {
    EXPIRED_UPLOAD_ACCEPTED: Defect(
        "a PUT to a signed upload URL is accepted after the URL's expires_at",
        rule="flyte.dataproxy.upload.expiry",
        methods=("DataProxyService.CreateUploadLocation",),
    ),
    CONTENT_MD5_UNCHECKED: Defect(
        "a PUT to a signed upload URL is stored whatever its Content-MD5 header and its body's md5",
        rule="flyte.dataproxy.upload.md5-checked",
        methods=("DataProxyService.CreateUploadLocation",),
    ),
}
