"""DataProxyService: locations over gRPC and REST, and the signed URLs the mock's HTTP port serves."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import grpc
import pytest
import requests
from flyte_support import DOMAIN, Admin
from protoconform.mockserver.apis.flyte import dataproxy_http, defects
from protoconform.mockserver.launcher import ThreadedServer
from service_client import ServiceClient

HELLO = b"hello"
HELLO_MD5 = hashlib.md5(HELLO).digest()
HELLO_B64 = base64.b64encode(HELLO_MD5).decode()
HASH_HEX = HELLO_MD5.hex()


class DataProxy(ServiceClient):
    SERVICE = "flyteidl.service.DataProxyService"
    FAMILY = "flyte"


@pytest.fixture
def proxy(fresh_server: ThreadedServer, flyte_channel: grpc.Channel) -> DataProxy:
    return DataProxy(flyte_channel, fresh_server)


def put(url: str, body: bytes, md5: str | None = HELLO_B64) -> requests.Response:
    headers = {"Content-MD5": md5} if md5 is not None else {}
    return requests.put(url, data=body, headers=headers, timeout=10)


def download(proxy: DataProxy, native_url: str) -> requests.Response:
    signed = proxy.CreateDownloadLocation(native_url=native_url, expires_in="60s").signed_url
    return requests.get(signed, timeout=10)


def location(proxy: DataProxy, **fields: Any) -> Any:
    return proxy.CreateUploadLocation(
        {"project": "p1", "domain": DOMAIN, "content_md5": HELLO_B64, "filename": "hello.txt", **fields}
    )


def test_an_upload_is_stored_at_its_native_url(proxy: DataProxy) -> None:
    made = location(proxy)
    assert made.native_url.endswith("/uploads/p1/development/LVAUAKV4JMVHNOLRTWIRAF6FSI======/hello.txt")
    assert made.headers["Content-MD5"] == HELLO_B64
    assert made.signed_url.startswith(proxy.server.http_url + dataproxy_http.PATH)
    now = proxy.server.run(proxy.server.server.clock.now).timestamp()
    assert abs(made.expires_at.seconds - (now + 3600)) <= 1  # the default expiry is the maximum, 1 h
    answer = put(made.signed_url, HELLO)
    assert answer.status_code == 200 and answer.headers["ETag"] == f'"{HASH_HEX}"'
    got = download(proxy, made.native_url)
    assert got.status_code == 200 and got.content == HELLO


def test_the_rest_routes_answer_like_grpc(proxy: DataProxy) -> None:
    base = proxy.server.http_url
    body = {"project": "p1", "domain": DOMAIN, "content_md5": HELLO_B64, "filename": "hello.txt"}
    made = requests.post(f"{base}/api/v1/dataproxy/artifact_urn", json=body, timeout=10)
    assert made.status_code == 200, made.text
    assert made.json()["native_url"] == location(proxy).native_url
    assert put(made.json()["signed_url"], HELLO).status_code == 200
    query = {"native_url": made.json()["native_url"], "expires_in": "60s"}
    json_please = {"Accept": "application/json"}  # else grpc-gateway's default marshaler: camelCase
    down = requests.get(
        f"{base}/api/v1/dataproxy/artifact_urn", params=query, headers=json_please, timeout=10
    )
    assert down.status_code == 200 and requests.get(down.json()["signed_url"], timeout=10).content == HELLO
    refused = requests.post(f"{base}/api/v1/dataproxy/artifact_urn", json={"project": "p1"}, timeout=10)
    assert refused.status_code == 400 and "domain" in refused.json()["message"]
    bad = requests.get(f"{base}/api/v1/data", params={"flyte_url": "s3://x/y"}, timeout=10)
    assert bad.status_code == 400 and "failed to validate resolve artifact request" in bad.json()["message"]


@pytest.mark.parametrize(
    ("fields", "code", "text"),
    [
        ({"project": ""}, grpc.StatusCode.INVALID_ARGUMENT, "project: project and domain are required"),
        ({"domain": ""}, grpc.StatusCode.INVALID_ARGUMENT, "domain: project and domain are required"),
        ({"content_md5": ""}, grpc.StatusCode.INVALID_ARGUMENT, "content_md5 or filename_root is a required"),
        (
            {"expires_in": "7200s"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "cannot exceed max allowed expiration [1h0m0s]",
        ),
        ({"filename": "x" * 1100}, grpc.StatusCode.INVALID_ARGUMENT, "native_url longer than 1024 bytes"),
    ],
)
def test_refused_locations(
    proxy: DataProxy, fields: dict[str, Any], code: grpc.StatusCode, text: str
) -> None:
    error = proxy.error(
        "CreateUploadLocation", {"project": "p1", "domain": DOMAIN, "content_md5": HELLO_B64, **fields}
    )
    assert error.code() == code and text in error.details()


def test_a_known_location_holding_another_content_is_not_handed_out(proxy: DataProxy) -> None:
    made = location(proxy, filename_root="root")
    assert made.native_url.endswith("/p1/development/root/hello.txt")
    assert put(made.signed_url, HELLO).status_code == 200
    other = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    error = proxy.error(
        "CreateUploadLocation",
        project="p1",
        domain=DOMAIN,
        content_md5=other,
        filename="hello.txt",
        filename_root="root",
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and made.native_url in error.details()
    assert location(proxy, filename_root="root").native_url == made.native_url  # the same content: again


def test_a_random_filename_when_none_is_given(proxy: DataProxy) -> None:
    first, second = (location(proxy, filename="").native_url.rsplit("/", 1)[1] for _ in range(2))
    assert len(first) == 20 and first != second and first.isalnum()


def test_uploads_that_do_not_match_the_location_are_refused(proxy: DataProxy) -> None:
    made = location(proxy)
    other = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    wrong_header = put(made.signed_url, b"other", md5=other)
    assert wrong_header.status_code == 403 and "Content-MD5" in wrong_header.text
    wrong_body = put(made.signed_url, b"other")
    assert wrong_body.status_code == 400 and "BadDigest" in wrong_body.text
    assert put(made.signed_url, HELLO, md5=None).status_code == 403  # the signed md5 needs its header
    assert download(proxy, made.native_url).status_code == 404


def test_expired_and_forged_urls_are_refused(proxy: DataProxy) -> None:
    made = location(proxy, expires_in="10s")
    parts = urlsplit(made.signed_url)
    query = dict(parse_qsl(parts.query))
    later = urlunsplit(
        parts._replace(query=urlencode({**query, "expires": str(int(query["expires"]) + 10**6)}))
    )
    forged = put(later, HELLO)
    assert forged.status_code == 403 and "signature" in forged.text
    as_get = requests.get(made.signed_url, timeout=10)  # an upload URL is no download URL
    assert as_get.status_code == 403
    proxy.advance(11)
    expired = put(made.signed_url, HELLO)
    assert expired.status_code == 403 and "expired" in expired.text
    assert download(proxy, made.native_url).status_code == 404


@pytest.mark.parametrize(
    "query", ["", "?uri=s3://x/y&expires=1&md5=&signature=00", "?signature=" + "f" * 5000]
)
def test_urls_this_server_did_not_sign_are_refused(proxy: DataProxy, query: str) -> None:
    for verb in ("PUT", "GET"):
        answer = requests.request(
            verb, proxy.server.http_url + dataproxy_http.PATH + query, data=b"x", timeout=10
        )
        assert answer.status_code == 403 and "signature does not match" in answer.text
    assert requests.get(proxy.server.http_url + "/healthz", timeout=10).status_code == 200


def test_a_reset_forgets_uploads(proxy: DataProxy) -> None:
    made = location(proxy)
    assert put(made.signed_url, HELLO).status_code == 200
    proxy.server.run(proxy.server.server.reset_state)
    assert download(proxy, made.native_url).status_code == 404


def test_uploads_are_capped_one_by_one_in_total_and_in_count(
    proxy: DataProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = proxy.state().rules.extra["dataproxy"]
    monkeypatch.setitem(limits, "max_object_bytes", 8)
    monkeypatch.setitem(limits, "max_total_bytes", 12)
    monkeypatch.setitem(limits, "max_objects", 3)
    big = b"0123456789"
    made = proxy.CreateUploadLocation(project="p1", domain=DOMAIN, filename_root="r", filename="big")
    answer = requests.put(made.signed_url, data=big, timeout=10)
    assert answer.status_code == 413
    steps = (("a", 5, 200), ("b", 5, 200), ("a", 6, 200), ("c", 2, 507), ("c", 1, 200), ("d", 0, 507))
    # signed before anything is stored (a known location holding an object needs its md5)
    urls = [
        proxy.CreateUploadLocation(project="p1", domain=DOMAIN, filename_root="r", filename=name).signed_url
        for name, _, _ in steps
    ]
    for url, (name, size, status) in zip(urls, steps, strict=True):
        got = requests.put(url, data=b"x" * size, timeout=10)
        assert got.status_code == status, (name, size, got.text)


def test_a_deck_link_signs_the_node_s_deck(admin: Admin, proxy: DataProxy) -> None:
    plan = admin.registered()
    execution = admin.execute(plan, name="e1", a=1, b=2)
    admin.advance(30)  # the propeller runs it to its end
    node = {"node_id": "n0", "execution_id": execution}
    with pytest.raises(grpc.RpcError) as caught:
        proxy.CreateDownloadLink(artifact_type="ARTIFACT_TYPE_DECK", node_execution_id=node)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "no deckUrl found" in caught.value.details()
    deck = proxy.CreateUploadLocation(
        project="p1", domain=DOMAIN, filename_root="decks", filename="deck.html"
    )
    assert requests.put(deck.signed_url, data=b"<html/>", timeout=10).status_code == 200
    record = admin.state().table("node_executions").scan()
    target = next(r for r in record if r.node.id.node_id == "n0")
    proxy.server.run(lambda: setattr(target.node.closure, "deck_uri", deck.native_url))
    link = proxy.CreateDownloadLink(artifact_type="ARTIFACT_TYPE_DECK", node_execution_id=node)
    assert list(link.signed_url) == list(link.pre_signed_urls.signed_url)
    assert requests.get(link.signed_url[0], timeout=10).content == b"<html/>"
    data = proxy.GetData(flyte_url="flyte://v1/p1/development/e1/n0/d")
    assert requests.get(data.pre_signed_urls.signed_url[0], timeout=10).content == b"<html/>"


def test_get_data_resolves_node_and_attempt_urls(admin: Admin, proxy: DataProxy) -> None:
    plan = admin.registered()
    admin.execute(plan, name="e1", a=1, b=2)
    admin.advance(30)
    outputs = proxy.GetData(flyte_url="flyte://v1/p1/development/e1/n0/o")
    assert outputs.literal_map.literals["o0"].scalar.primitive.integer == 3
    one = proxy.GetData(flyte_url="flyte://v1/p1/development/e1/n0/0/i/b")
    assert one.literal.scalar.primitive.integer == 2
    for url, text in (
        ("flyte://v1/p1/development/e1/n0/7/o", "no task executions were listed"),
        ("flyte://v1/p1/development/e1/n0/o/zz", "name [zz] not found"),
        ("flyte://v1/p1/development/e1/n0/0/d", "deck type cannot be specified with a retry attempt"),
        ("flyte://v1/p1/development/e1/n0/q", "failed to parse [flyte://v1/p1/development/e1/n0/q]"),
    ):
        error = proxy.error("GetData", flyte_url=url)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and text in error.details(), url
    missing = proxy.error("GetData", flyte_url="flyte://v1/p1/development/e2/n0/o")
    assert missing.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("defect", [defects.EXPIRED_UPLOAD_ACCEPTED, defects.CONTENT_MD5_UNCHECKED])
def test_each_defect_bends_only_its_check(proxy: DataProxy, defect: str) -> None:
    proxy.server.server.dispatcher.defects.add(defect)
    made = location(proxy, expires_in="10s")
    wrong = put(made.signed_url, b"other")  # Content-MD5 of hello, another body
    proxy.advance(11)
    late = put(made.signed_url, HELLO)
    if defect == defects.EXPIRED_UPLOAD_ACCEPTED:
        assert (wrong.status_code, late.status_code) == (400, 200)
        assert download(proxy, made.native_url).content == HELLO
    else:
        assert (wrong.status_code, late.status_code) == (200, 403)
        assert download(proxy, made.native_url).content == b"other"
