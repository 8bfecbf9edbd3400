"""AuthMetadataService and IdentityService, with flyteadmin's defaults.

flyteadmin serves both only with ``useAuth`` (else UNIMPLEMENTED, recorded as
``real_code`` in ``specs/flyte/auth.yaml``); this mock serves them always, so
clients that ask before an auth flow get a usable answer.  The values are the
``auth`` section of that file, overridden by ``serve --flyte-auth-*``.  The
REST gateway serves their ``google.api.http`` routes (``/.well-known/
oauth-authorization-server``, ``/config/v1/flyte_client``, ``/me``), the same
routes flyteadmin always mounts.

When ``serve`` requires tokens (:mod:`protoconform.mockserver.auth`),
AuthMetadataService stays anonymous and UserInfo answers the token's claims;
without auth, UserInfo answers an empty identity.
"""

from __future__ import annotations

from typing import Any

from protoconform.mockserver.apis.flyte.defects import METADATA_WITHOUT_TOKEN_ENDPOINT
from protoconform.mockserver.apis.flyte.service import admin
from protoconform.mockserver.rpc import CallContext

AUTH = "flyteidl.service.AuthMetadataService"
IDENTITY = "flyteidl.service.IdentityService"

# Defect mode (mockserver/apis/flyte/defects.py); "flyte." + a name would read as a rule id


def settings(state: Any) -> dict[str, Any]:
    """The ``auth`` section of the specs with the serve options applied."""
    found = dict(state.rules.extra["auth"])
    overrides = {
        "public_url": state.settings.auth_public_url,
        "client_id": state.settings.auth_client_id,
        "redirect_uri": state.settings.auth_redirect_uri,
    }
    found.update({k: v for k, v in overrides.items() if v})
    return found


USER_INFO_FIELDS = ("name", "preferred_username", "given_name", "family_name", "email", "picture")


def claims(ctx: CallContext) -> dict[str, Any]:
    """Who is calling, as UserInfoResponse fields; empty when anonymous (auth off).

    As flyteadmin builds it from an access token (auth/authzserver/resource_server.go and
    auth/identity_context.go): the fields from the token's ``user_info`` claim when it has one,
    else from the top-level OIDC claims; ``subject`` is ``sub``; every claim of the token is
    also in ``additional_claims``.
    """
    identity = ctx.identity
    if not identity:
        return {}
    nested = identity.get("user_info")
    source = nested if isinstance(nested, dict) else {}
    found: dict[str, Any] = {}
    for name in USER_INFO_FIELDS:
        value = source.get(name) or identity.get(name)
        if isinstance(value, str) and value:
            found[name] = value
    subject = source.get("subject") or source.get("sub") or identity.get("sub")
    if isinstance(subject, str) and subject:
        found["subject"] = subject
    found["additional_claims"] = dict(identity)
    return found


@admin("GetOAuth2Metadata", service=AUTH)
def get_oauth2_metadata(request: Any, ctx: CallContext) -> Any:
    found = settings(ctx.state)
    issuer = str(found["public_url"]).rstrip("/")
    reply = ctx.state.wire.new(
        "service.OAuth2MetadataResponse",
        issuer=issuer,
        authorization_endpoint=issuer + found["authorization_path"],
        token_endpoint=issuer + found["token_path"],
        jwks_uri=issuer + found["jwks_path"],
        response_types_supported=found["response_types_supported"],
        scopes_supported=found["scopes_supported"],
        token_endpoint_auth_methods_supported=found["token_endpoint_auth_methods_supported"],
        code_challenge_methods_supported=found["code_challenge_methods_supported"],
        grant_types_supported=found["grant_types_supported"],
    )
    if ctx.defect(METADATA_WITHOUT_TOKEN_ENDPOINT):
        reply.ClearField("token_endpoint")
    return reply


@admin("GetPublicClientConfig", service=AUTH)
def get_public_client_config(request: Any, ctx: CallContext) -> Any:
    found = settings(ctx.state)
    return ctx.state.wire.new(
        "service.PublicClientAuthConfigResponse",
        client_id=found["client_id"],
        redirect_uri=found["redirect_uri"],
        scopes=found["scopes"],
        authorization_metadata_key=found["authorization_metadata_key"],
    )


@admin("UserInfo", service=IDENTITY)
def user_info(request: Any, ctx: CallContext) -> Any:
    found = dict(claims(ctx))
    extra = found.pop("additional_claims", None)
    reply = ctx.state.wire.new("service.UserInfoResponse", **found)
    if extra:
        reply.additional_claims.update(extra)
    return reply
