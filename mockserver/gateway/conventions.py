"""How each API family's real REST gateway speaks, as data.

Kubeflow Pipelines 1.8.5 serves REST through grpc-gateway v1.16 with the
default marshaler (``JSONPb{OrigName: true}``); Flyte Admin 1.16 through
grpc-gateway v2.19 with a snake_case marshaler registered for
``application/json``, a binary protobuf marshaler for
``application/octet-stream`` and grpc-gateway's own default (lowerCamelCase)
for everything else.  The two generations differ in JSON style, error body,
routing errors, verb splitting and query-string strictness; the transcoder,
the error writer and the OpenAPI generator all read those differences from
here instead of hard-coding either one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protoconform.specs.families import family

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
WILDCARD = "*"


@dataclass(frozen=True)
class Marshaler:
    """One grpc-gateway marshaler: how messages become bytes and back."""

    kind: str  # "json" or "proto" (binary protobuf)
    proto_names: bool = True  # snake_case keys (OrigName / UseProtoNames) instead of lowerCamelCase
    # Every field without presence is written even when it holds its default,
    # and unset singular message fields are written as null (protojson EmitUnpopulated).
    emit_unpopulated: bool = False
    discard_unknown: bool = True  # unknown JSON keys are ignored rather than rejected
    content_type: str = JSON


@dataclass(frozen=True)
class Convention:
    """The observable behaviour of one grpc-gateway generation as configured by a family's server."""

    name: str
    version: int  # grpc-gateway major version: 1 or 2
    marshalers: dict[str, Marshaler] = field(default_factory=dict)  # MIME type (or "*") -> marshaler
    # The first registered route wins in v1; v2 prepends, so the last registered wins.
    last_match_wins: bool = False

    def inbound(self, content_types: list[str]) -> Marshaler:
        """The marshaler for the request body: the first Content-Type with a registered marshaler."""
        for value in content_types:
            mime = value.split(";", 1)[0].strip().lower()
            if mime in self.marshalers and mime != WILDCARD:
                return self.marshalers[mime]
        return self.marshalers[WILDCARD]

    def outbound(self, accepts: list[str], inbound: Marshaler) -> Marshaler:
        """The marshaler for the response: an Accept value registered verbatim, else the inbound one."""
        for value in accepts:
            if value in self.marshalers and value != WILDCARD:
                return self.marshalers[value]
        return inbound


# grpc-gateway v1.16 as Kubeflow Pipelines 1.8.5 runs it: one marshaler for
# every content type; zero values omitted; unknown JSON fields ignored
# (the package-level allowUnknownFields defaults to true).
GRPC_GATEWAY_V1_KFP = Convention(
    name="grpc-gateway v1.16.0 (Kubeflow Pipelines 1.8.5)",
    version=1,
    marshalers={WILDCARD: Marshaler("json", proto_names=True, emit_unpopulated=False, discard_unknown=True)},
)

# grpc-gateway v2.19 as flyteadmin configures it (pkg/server/service.go).
GRPC_GATEWAY_V2_FLYTE = Convention(
    name="grpc-gateway v2.19.0 (flyteadmin 1.16)",
    version=2,
    marshalers={
        WILDCARD: Marshaler("json", proto_names=False, emit_unpopulated=True, discard_unknown=True),
        JSON: Marshaler("json", proto_names=True, emit_unpopulated=True, discard_unknown=False),
        OCTET_STREAM: Marshaler("proto", content_type=OCTET_STREAM),
    },
    last_match_wins=True,
)

# Plain grpc-gateway v2 defaults, for a family whose real server is not known to configure its own.
GRPC_GATEWAY_V2_DEFAULT = Convention(
    name="grpc-gateway v2 (defaults)",
    version=2,
    marshalers={WILDCARD: Marshaler("json", proto_names=False, emit_unpopulated=True, discard_unknown=True)},
    last_match_wins=True,
)

# The names a family entry's ``rest`` may take (specs/families.py).
CONVENTIONS: dict[str, Convention] = {
    "kfp": GRPC_GATEWAY_V1_KFP,
    "flyte": GRPC_GATEWAY_V2_FLYTE,
    "grpc-gateway-v2": GRPC_GATEWAY_V2_DEFAULT,
}


def for_family(name: str) -> Convention:
    wanted = family(name).rest
    try:
        return CONVENTIONS[wanted]
    except KeyError:
        known = ", ".join(CONVENTIONS)
        raise KeyError(f"family {name}: unknown REST convention {wanted!r}; known: {known}") from None
