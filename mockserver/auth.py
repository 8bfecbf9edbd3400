"""Bearer-token authentication: one check for gRPC and REST calls, reflection, and the control API.

Auth is on when ``serve`` is given accepted tokens (``--auth-token``,
``--auth-token-file``) or a JWT public key (``--auth-jwt-key``).  Then every
API call must carry ``authorization: Bearer <token>`` (gRPC metadata; the
``Authorization`` header over REST, which the gateway turns into that
metadata).  A static token is compared in constant time; a JWT is verified
against the key (RS* for an RSA key, ES* for an EC key), its ``exp`` required,
and ``iss`` / ``aud`` compared when ``--auth-jwt-issuer`` /
``--auth-jwt-audience`` are given.  Anything else is UNAUTHENTICATED with a
message saying what is wrong (missing, not a bearer token, expired, wrong
audience or issuer, bad signature...), never echoing the token.

The check runs in the dispatcher (:mod:`.dispatch`), so the REST gateway and
gRPC share it, and its identity (the JWT's claims, or ``{"sub": "token-N"}``
for the N-th static token) reaches handlers as ``CallContext.identity``.
Left open: what the documents declare anonymous (:data:`ANONYMOUS_SERVICES`),
gRPC health, ``/healthz``, ``/version``, OpenAPI documents, and URLs the server
signed itself (their signature is their credential).  Reflection needs a token
unless ``--auth-allow-reflection``.

The control API has its own token (``--control-token``): with auth on and no
control token it is refused (403), so API clients cannot reset or reconfigure
the server; a control token alone guards it without guarding the APIs.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from aiohttp import web
from protoconform.mockserver.rpc import ApiError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

# PyJWT and cryptography are imported by the Authenticator only: a server without JWT auth
# does not pay for them at start.

# Metadata keys a token may come in: the standard one, and Flyte's (GetPublicClientConfig's
# authorization_metadata_key), which flytekit sends and flyteadmin reads as "authorization".
TOKEN_KEYS = ("authorization", "flyte-authorization")
# Services a real server answers without a bearer token: flyteadmin's AuthMetadataService (how a
# client learns to get one), and ArmoniK's Agent, which a worker reaches inside its pod with no
# bearer token: the communication token of each request is its credential.
ANONYMOUS_SERVICES = frozenset({"flyteidl.service.AuthMetadataService", "armonik.api.grpc.v1.agent.Agent"})
REFLECTION_PREFIX = "/grpc.reflection."
MAX_TOKEN_BYTES = 8192  # a JWT with generous claims is ~2 KiB
MAX_TOKENS = 10_000
LEEWAY_SECONDS = 30  # clock skew allowed on exp / nbf / iat
CONTROL_PREFIX = "/control"


@dataclass(frozen=True)
class AuthConfig:
    """Who may call (``serve`` options); the JWT key is a path, read by :class:`Authenticator`."""

    tokens: tuple[str, ...] = ()
    jwt_key: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    allow_reflection: bool = False
    control_token: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.tokens or self.jwt_key)

    def __repr__(self) -> str:  # never print secrets in logs or tracebacks
        return (
            f"AuthConfig(tokens=<{len(self.tokens)}>, jwt_key={self.jwt_key!r}, "
            f"jwt_issuer={self.jwt_issuer!r}, jwt_audience={self.jwt_audience!r}, "
            f"allow_reflection={self.allow_reflection}, "
            f"control_token=<{'set' if self.control_token else 'none'}>)"
        )


def read_token_file(path: str) -> tuple[str, ...]:
    """One token a line; blank lines and ``#`` comments ignored.  ValueError naming the option."""
    try:
        with Path(path).open("rb") as file:
            limit = MAX_TOKENS * (MAX_TOKEN_BYTES + 1)
            raw = file.read(limit + 1)
        if len(raw) > limit:
            raise ValueError(f"--auth-token-file {path}: larger than {limit} bytes")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ValueError(f"--auth-token-file {path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"--auth-token-file {path}: not UTF-8 text") from None
    lines = (line.strip() for line in text.splitlines())
    tokens = tuple(line for line in lines if line and not line.startswith("#"))
    if not tokens:
        raise ValueError(f"--auth-token-file {path}: no token in it (one a line)")
    for number, token in enumerate(tokens, 1):
        check_token_text(token, f"--auth-token-file {path}: token {number}")
    return tokens


def check_token_text(token: str, what: str) -> str:
    if not token or len(token.encode()) > MAX_TOKEN_BYTES or any(c.isspace() for c in token):
        raise ValueError(f"{what}: a token is 1 to {MAX_TOKEN_BYTES} bytes without spaces")
    return token


def _load_key(path: str) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from cryptography.x509 import load_pem_x509_certificate

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"--auth-jwt-key {path}: cannot read: {exc.strerror}") from None
    try:
        if b"-----BEGIN CERTIFICATE" in data:  # the signer's certificate holds its public key
            key = load_pem_x509_certificate(data).public_key()
        else:
            key = load_pem_public_key(data)
    except ValueError:
        if b"PRIVATE KEY" in data:
            raise ValueError(
                f"--auth-jwt-key {path}: a private key; give the public key (openssl pkey -in KEY -pubout)"
            ) from None
        raise ValueError(f"--auth-jwt-key {path}: not a PEM public key or certificate") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError(f"--auth-jwt-key {path}: an RSA or EC public key is needed (RS256/ES256)")
    return key


def _when(timestamp: Any) -> str:
    try:
        return datetime.fromtimestamp(float(timestamp), UTC).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return repr(timestamp)[:40]


def unauthenticated(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNAUTHENTICATED, message)


def bearer_token(metadata: Mapping[str, str]) -> str:
    """The token of ``authorization: Bearer <token>``; UNAUTHENTICATED saying what is missing."""
    value = next((metadata[k] for k in TOKEN_KEYS if metadata.get(k)), None)
    if value is None:
        raise unauthenticated("missing bearer token: send 'authorization: Bearer <token>'")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("authorization is not a bearer token: send 'authorization: Bearer <token>'")
    token = token.strip()
    if len(token.encode()) > MAX_TOKEN_BYTES:
        raise unauthenticated(f"bearer token longer than {MAX_TOKEN_BYTES} bytes")
    return token


class Authenticator:
    """Checks a call's bearer token against the configured tokens and key; answers the identity."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self._tokens = [t.encode() for t in config.tokens]
        self._key = _load_key(config.jwt_key) if config.jwt_key else None
        self._algorithms = ["ES256", "ES384", "ES512"]  # an EC key's
        if self._key is not None:
            from cryptography.hazmat.primitives.asymmetric import rsa

            if isinstance(self._key, rsa.RSAPublicKey):
                self._algorithms = ["RS256", "RS384", "RS512"]

    def identity(self, metadata: Mapping[str, str]) -> dict[str, Any]:
        """The caller's claims; UNAUTHENTICATED naming what is wrong with its token."""
        token = bearer_token(metadata)
        encoded = token.encode()
        # every static token is compared, so the time taken says nothing of which one matched
        matched = [i for i, t in enumerate(self._tokens) if hmac.compare_digest(encoded, t)]
        if matched:
            return {"sub": f"token-{matched[0] + 1}"}
        if self._key is None:
            raise unauthenticated("bearer token not accepted: not one of the server's tokens")
        return self._verify_jwt(token)

    def _verify_jwt(self, token: str) -> dict[str, Any]:
        import jwt

        options: dict[str, Any] = {"require": ["exp"], "verify_aud": bool(self.config.jwt_audience)}
        try:
            claims = jwt.decode(
                token,
                self._key,  # type: ignore[arg-type]
                algorithms=self._algorithms,
                audience=self.config.jwt_audience or None,
                issuer=self.config.jwt_issuer or None,
                leeway=LEEWAY_SECONDS,
                options=options,
            )
        except jwt.ExpiredSignatureError:
            expired = jwt.decode(token, options={"verify_signature": False}).get("exp")
            raise unauthenticated(f"bearer token expired at {_when(expired)}") from None
        except jwt.ImmatureSignatureError:
            raise unauthenticated("bearer token not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise unauthenticated(
                f"bearer token audience is not {self.config.jwt_audience!r} ({self._claim(token, 'aud')})"
            ) from None
        except jwt.InvalidIssuerError:
            raise unauthenticated(
                f"bearer token issuer is not {self.config.jwt_issuer!r} ({self._claim(token, 'iss')})"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise unauthenticated(f"bearer token has no {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise unauthenticated("bearer token signature does not verify with the server's key") from None
        except jwt.InvalidAlgorithmError:
            raise unauthenticated(
                f"bearer token algorithm {self._header(token)!r} not accepted with the server's key "
                f"({', '.join(self._algorithms)})"
            ) from None
        except jwt.DecodeError:
            what = "not one of the server's tokens, nor" if self._tokens else "not"
            raise unauthenticated(f"bearer token {what} a JWT") from None
        except jwt.InvalidTokenError as exc:
            raise unauthenticated(f"bearer token refused: {type(exc).__name__}: {exc}") from None
        return claims

    @staticmethod
    def _claim(token: str, name: str) -> str:
        import jwt

        value = jwt.decode(token, options={"verify_signature": False}).get(name)
        return f"it says {str(value)[:100]!r}" if value is not None else f"it has no {name!r}"

    @staticmethod
    def _header(token: str) -> str:
        import jwt

        try:
            return str(jwt.get_unverified_header(token).get("alg"))[:20]
        except jwt.DecodeError:
            return "?"

    def check(self, method_path: str, metadata: Mapping[str, str]) -> dict[str, Any] | None:
        """The identity of a call to ``method_path``; None for an anonymous service."""
        service = method_path.strip("/").partition("/")[0]
        if service in ANONYMOUS_SERVICES:
            return None
        return self.identity(metadata)


# -- gRPC: reflection (the dispatcher checks API calls; health stays open) -------------------


def reflection_guard(authenticator: Authenticator) -> grpc.aio.ServerInterceptor:
    """A server interceptor refusing reflection calls without a valid token."""

    class ReflectionGuard(grpc.aio.ServerInterceptor):
        async def intercept_service(
            self,
            continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
            details: grpc.HandlerCallDetails,
        ) -> grpc.RpcMethodHandler:
            if details.method.startswith(REFLECTION_PREFIX):
                metadata = {k: v for k, v in details.invocation_metadata or () if isinstance(v, str)}
                try:
                    authenticator.identity(metadata)
                except ApiError as error:
                    return _refusal(error)
            return await continuation(details)

    return ReflectionGuard()


def _refusal(error: ApiError) -> grpc.RpcMethodHandler:
    async def refuse(requests: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(error.code, error.message)

    return grpc.stream_stream_rpc_method_handler(refuse)


# -- HTTP: the control API -----------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def control_guard(config: AuthConfig) -> Any:
    """An aiohttp middleware guarding ``/control``: its own token, or refused while auth is on."""
    expected = config.control_token.encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path != CONTROL_PREFIX and not path.startswith(CONTROL_PREFIX + "/"):
            return await handler(request)
        if not expected:
            raise web.HTTPForbidden(
                text="the control API is off: the server requires tokens and was started without "
                "--control-token"
            )
        try:
            token = bearer_token({"authorization": request.headers.get("Authorization", "")})
        except ApiError as error:
            raise _unauthorized(f"control API: {error.message}") from None
        if not hmac.compare_digest(token.encode(), expected):
            raise _unauthorized("control API: bearer token is not the control token")
        return await handler(request)

    return guard


def _unauthorized(message: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(text=message, headers={"WWW-Authenticate": 'Bearer realm="control"'})
