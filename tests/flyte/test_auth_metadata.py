"""AuthMetadataService and IdentityService over gRPC and their HTTP routes: flyteadmin's defaults,
the serve options that change them, an anonymous UserInfo, and the defect mode that bends them."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import grpc
import pytest
import requests
from google.protobuf import json_format
from protoconform.mockserver.apis.flyte import add_arguments, options_from_args
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ThreadedServer
from service_client import ServiceClient

JSON = {"Accept": "application/json"}  # flyteadmin's JSON marshaler: proto field names


class Auth(ServiceClient):
    SERVICE = "flyteidl.service.AuthMetadataService"
    FAMILY = "flyte"


class Identity(ServiceClient):
    SERVICE = "flyteidl.service.IdentityService"
    FAMILY = "flyte"


@pytest.fixture
def auth(fresh_server: ThreadedServer, flyte_channel: grpc.Channel) -> Auth:
    return Auth(flyte_channel, fresh_server)


@pytest.fixture
def identity(fresh_server: ThreadedServer, flyte_channel: grpc.Channel) -> Identity:
    return Identity(flyte_channel, fresh_server)


def as_dict(reply: object) -> dict:
    return json_format.MessageToDict(reply, preserving_proto_field_name=True)  # type: ignore[arg-type]


def test_oauth2_metadata_has_flyteadmins_defaults(auth: Auth) -> None:
    metadata = auth.GetOAuth2Metadata()
    assert metadata.issuer == "http://localhost:30080"
    assert metadata.authorization_endpoint == "http://localhost:30080/oauth2/authorize"
    assert metadata.token_endpoint == "http://localhost:30080/oauth2/token"
    assert metadata.jwks_uri == "http://localhost:30080/oauth2/jwks"
    assert list(metadata.code_challenge_methods_supported) == ["S256"]
    assert list(metadata.response_types_supported) == ["code", "token", "code token"]
    assert list(metadata.grant_types_supported) == [
        "client_credentials",
        "refresh_token",
        "authorization_code",
    ]
    assert list(metadata.scopes_supported) == ["all"]


def test_public_client_config_has_flyteadmins_defaults(auth: Auth) -> None:
    config = auth.GetPublicClientConfig()
    assert (config.client_id, config.redirect_uri) == ("flytectl", "http://localhost:53593/callback")
    assert list(config.scopes) == ["all", "offline"]
    assert config.authorization_metadata_key == "flyte-authorization"


def test_user_info_is_anonymous(identity: Identity) -> None:
    reply = identity.UserInfo()
    assert reply.ByteSize() == 0  # no subject, no claims


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/.well-known/oauth-authorization-server", "GetOAuth2Metadata"),
        ("/config/v1/flyte_client", "GetPublicClientConfig"),
    ],
)
def test_the_http_routes_answer_like_grpc(
    fresh_server: ThreadedServer, auth: Auth, path: str, method: str
) -> None:
    answer = requests.get(fresh_server.http_url + path, headers=JSON, timeout=10)
    assert answer.status_code == 200
    expected = as_dict(getattr(auth, method)())
    assert {k: v for k, v in answer.json().items() if v not in ("", [], None)} == expected


def test_me_answers_an_empty_identity(fresh_server: ThreadedServer) -> None:
    answer = requests.get(fresh_server.http_url + "/me", headers=JSON, timeout=10)
    assert answer.status_code == 200
    assert not any(answer.json().values())


@pytest.fixture(scope="module")
def configured() -> Iterator[ThreadedServer]:
    parser = argparse.ArgumentParser()
    add_arguments(parser.add_argument_group("flyte"))
    args = parser.parse_args(
        [
            "--flyte-auth-public-url",
            "https://flyte.example.com/",
            "--flyte-auth-client-id",
            "my-client",
            "--flyte-auth-redirect-uri",
            "http://localhost:1234/cb",
        ]
    )
    options = options_from_args(args)
    config = ServerConfig(
        clock_speed=0, grace_seconds=0.2, families=("flyte",), family_options={"flyte": options}
    )
    with ThreadedServer(config) as server:
        yield server


def test_serve_options_set_the_issuer_and_the_client(configured: ThreadedServer) -> None:
    with grpc.insecure_channel(configured.grpc_address) as channel:
        auth = Auth(channel, configured)
        metadata = auth.GetOAuth2Metadata()
        config = auth.GetPublicClientConfig()
    assert metadata.issuer == "https://flyte.example.com"
    assert metadata.token_endpoint == "https://flyte.example.com/oauth2/token"
    assert (config.client_id, config.redirect_uri) == ("my-client", "http://localhost:1234/cb")
    assert list(config.scopes) == ["all", "offline"]


def test_defect_metadata_without_token_endpoint(auth: Auth, fresh_server: ThreadedServer) -> None:
    fresh_server.server.dispatcher.defects.add("flyte.auth-metadata-without-token-endpoint")
    metadata = auth.GetOAuth2Metadata()
    assert metadata.token_endpoint == "" and metadata.issuer and metadata.jwks_uri
    assert auth.GetPublicClientConfig().client_id == "flytectl"
