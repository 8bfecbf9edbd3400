"""AuthMetadataService and IdentityService, anonymously, with flyteadmin's defaults.

flyteadmin serves both only with ``useAuth`` (else UNIMPLEMENTED, recorded as
``real_code`` in ``specs/flyte/auth.yaml``); this mock serves them always, so
clients that ask before an auth flow get a usable answer.  The values are the
``auth`` section of that file, overridden by ``serve --flyte-auth-*``.  The
REST gateway serves their ``google.api.http`` routes (``/.well-known/
oauth-authorization-server``, ``/config/v1/flyte_client``, ``/me``), the same
routes flyteadmin always mounts.
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


def claims(ctx: CallContext) -> dict[str, Any]:
    """Who is calling: the identity's claims (UserInfoResponse fields), empty when anonymous.

    The one source of identity: the mock has no authentication yet, so every caller is anonymous.
    """
    return {}


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
