"""The ``protoconform`` command line.

Each subcommand lives with the part it drives and exposes
``add_arguments(parser)`` and ``run(args) -> int``; this module only wires them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from protoconform.mockserver import apis
from protoconform.mockserver.auth import AuthConfig
from protoconform.mockserver.config import Limits, ServerConfig
from protoconform.mockserver.store import StoreError
from protoconform.mockserver.tls import TlsConfig
from protoconform.specs.argtypes import host, port, positive
from protoconform.specs.registry import FAMILIES

# subcommand -> (module with add_arguments/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": (__name__, "run the mock server (gRPC + reflection + health, and the HTTP side)"),
    "specs": ("protoconform.specs.cli", "extract the documented inventory from seed docs; report drift"),
    "check": (
        "protoconform.conformance.cli",
        "check a server (real or mock) against the specs: conformance suites",
    ),
    "proxy": (
        "protoconform.mockserver.proxy",
        "forward gRPC calls to any server, injecting fault rules (latency, errors, cut streams)",
    ),
    # locust is imported only by the child process this command starts, never here
    "load": (
        "protoconform.load.cli",
        "run a load scenario with locust (headless): reports, thresholds as a CI gate, distributed",
    ),
}


def _families(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if names == ("all",):
        return FAMILIES
    unknown = [n for n in names if n not in FAMILIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown API family {unknown}; choose from {', '.join(FAMILIES)}, all"
        )
    return names


def _defect(name: str) -> str:
    from protoconform.mockserver.control.defects import catalogue

    known = catalogue()
    if name not in known:
        shown = ", ".join(list(known)[:5]) + (", ..." if len(known) > 5 else "")
        raise argparse.ArgumentTypeError(
            f"unknown defect mode {name!r}; known: {shown} "
            f"({len(known)} in all, listed by GET /control/defects)"
        )
    return name


MAX_WORKERS = 64


def _workers(text: str) -> int:
    value = int(positive(int)(text))
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_WORKERS} front-end processes")
    return value


def _store(text: str) -> str:
    kind, _, path = text.partition(":")
    if text == "memory" or (kind == "sqlite" and path):
        return text
    raise argparse.ArgumentTypeError(f"expected memory or sqlite:PATH, got {text!r}")


def _add_limits(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection limits")
    for item in dataclasses.fields(Limits):
        group.add_argument(
            "--" + item.name.replace("_", "-"),
            dest=f"limit_{item.name}",
            type=positive(type(item.default)),
            default=item.default,
            metavar="N",
            help=f"{item.metadata['help']} (default: %(default)s)",
        )


def _token(text: str) -> str:
    from protoconform.mockserver.auth import check_token_text

    try:
        return check_token_text(text, "token")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_tls_arguments(group: argparse._ActionsContainer) -> None:
    """``--tls-cert``, ``--tls-key``, ``--tls-client-ca``: shared by ``serve`` and ``proxy``."""
    group.add_argument("--tls-cert", default="", metavar="PEM", help="server certificate (chain): TLS on")
    group.add_argument("--tls-key", default="", metavar="PEM", help="private key of --tls-cert")
    group.add_argument(
        "--tls-client-ca",
        default="",
        metavar="PEM",
        help="CA of client certificates: clients must present one it signed (mutual TLS)",
    )


def add_control_token_argument(group: argparse._ActionsContainer, help_text: str) -> None:
    group.add_argument(
        "--control-token",
        default=None,  # not "": argparse would pass a string default through _token
        type=_token,
        metavar="TOKEN",
        help=help_text,
    )


def tls_from_args(args: argparse.Namespace) -> TlsConfig | None:
    """The listening side's TLS files, read and checked; ValueError naming the option."""
    from protoconform.mockserver import tls

    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        tls_config = tls.TlsConfig(args.tls_cert, args.tls_key, args.tls_client_ca)
        tls.load(tls_config)
        return tls_config
    if args.tls_client_ca:
        raise ValueError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)")
    return None


def _add_security(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("security (TLS on both ports, bearer tokens; see README: Security)")
    add_tls_arguments(group)
    group.add_argument(
        "--auth-token",
        action="append",
        default=[],
        type=_token,
        metavar="TOKEN",
        help="accept 'authorization: Bearer TOKEN' (repeatable; visible to ps: prefer --auth-token-file)",
    )
    group.add_argument(
        "--auth-token-file", default="", metavar="PATH", help="accepted tokens, one a line (# comments)"
    )
    group.add_argument(
        "--auth-jwt-key",
        default="",
        metavar="PEM",
        help="accept JWTs signed by the key of this RSA or EC public key or certificate "
        "(RS256/ES256...; exp required)",
    )
    group.add_argument("--auth-jwt-issuer", default="", metavar="ISS", help="required iss of a JWT")
    group.add_argument("--auth-jwt-audience", default="", metavar="AUD", help="required aud of a JWT")
    group.add_argument(
        "--auth-allow-reflection",
        action="store_true",
        help="serve gRPC reflection without a token (health always is)",
    )
    add_control_token_argument(
        group, "bearer token of the control API; with auth on and none given, the control API is refused"
    )


def security_from_args(args: argparse.Namespace) -> tuple[TlsConfig | None, AuthConfig]:
    """TLS files and auth settings, read and checked; ValueError naming the option."""
    from protoconform.mockserver.auth import Authenticator, read_token_file

    tls_config = tls_from_args(args)
    tokens = list(args.auth_token)
    if args.auth_token_file:
        tokens += read_token_file(args.auth_token_file)
    auth = AuthConfig(
        tokens=tuple(dict.fromkeys(tokens)),
        jwt_key=args.auth_jwt_key,
        jwt_issuer=args.auth_jwt_issuer,
        jwt_audience=args.auth_jwt_audience,
        allow_reflection=args.auth_allow_reflection,
        control_token=args.control_token or "",
    )
    if (auth.jwt_issuer or auth.jwt_audience) and not auth.jwt_key:
        raise ValueError("--auth-jwt-issuer and --auth-jwt-audience need --auth-jwt-key")
    if auth.allow_reflection and not auth.enabled:
        raise ValueError("--auth-allow-reflection needs --auth-token, --auth-token-file or --auth-jwt-key")
    if auth.enabled:
        Authenticator(auth)  # reads the key
    return tls_config, auth


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """``--faults`` and ``--fault-seed``: shared by ``serve`` and ``proxy``."""
    group = parser.add_argument_group("fault injection (README: Faults)")
    group.add_argument(
        "--faults",
        metavar="FILE",
        help="YAML or JSON file of fault rules applied from the start "
        "(changed at run time through /control/faults)",
    )
    group.add_argument(
        "--fault-seed",
        type=positive(int, zero=True),
        metavar="N",
        help="seed of the rules' random draws, for reproducible runs (default: a random one, "
        "shown by GET /control/faults)",
    )


def faults_from_args(args: argparse.Namespace) -> tuple[list[Any], int | None]:
    """The rules of ``--faults`` (checked) and the seed; a bad file is a ValueError naming it."""
    from protoconform.mockserver.faults import FaultSet, RuleError, load_file

    rules: list[Any] = []
    seed = args.fault_seed
    try:
        if args.faults:
            rules, file_seed = load_file(args.faults)
            seed = seed if seed is not None else file_seed
        FaultSet(rules, seed=seed if seed is not None else 0)  # checked now, while parsing
    except RuleError as exc:
        where = f"--faults {args.faults}" if args.faults else "--fault-seed"
        raise ValueError(f"{where}: {exc}") from None
    return rules, seed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", type=host, default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=port, default=50051, help="gRPC port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--http-port",
        type=port,
        default=8080,
        help="HTTP port for /healthz, /version, the REST gateway, OpenAPI and the control API; "
        "0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--api",
        dest="families",
        type=_families,
        default=FAMILIES,
        metavar="FAMILIES",
        help=f"comma-separated API families to serve: {', '.join(FAMILIES)} or all (default: all)",
    )
    parser.add_argument(
        "--clock-speed",
        type=positive(float, zero=True),
        default=1.0,
        help="virtual seconds per wall second for simulated lifecycles; 0 = manual clock, "
        "moved only through the control API (default: %(default)s)",
    )
    parser.add_argument(
        "--store",
        type=_store,
        default="memory",
        metavar="STORE",
        help="where state lasts: memory (lost at exit) or sqlite:PATH, which keeps every acknowledged "
        "write across restarts and crashes; a restarted server goes on from there (default: %(default)s)",
    )
    parser.add_argument(
        "--defect",
        type=_defect,
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a named deliberate deviation from the specs (repeatable); "
        "used to prove that conformance suites catch it",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="gRPC front-end processes sharing the gRPC port (1 = this process serves it): with N >= 2 "
        "each front-end runs grpcio's per-call work (HTTP/2, framing) on a core of its own and forwards "
        "API calls to the serving process, which keeps the state, the REST gateway and the control API; "
        "it helps only with cores to spare (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity, on stderr (default: %(default)s)",
    )
    _add_security(parser)
    _add_limits(parser)
    add_fault_arguments(parser)
    for name in FAMILIES:
        module = apis.family_module(name)
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser.add_argument_group(f"{name} options"))


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The server configuration; a family's bad option combination is a ValueError naming the option."""
    family_options = {}
    for name in FAMILIES:
        module = apis.family_module(name)
        if hasattr(module, "options_from_args"):
            family_options[name] = module.options_from_args(args)
    tls_config, auth = security_from_args(args)
    faults, fault_seed = faults_from_args(args)
    return ServerConfig(
        host=args.host,
        port=args.port,
        http_port=args.http_port,
        families=args.families,
        log_level=args.log_level,
        clock_speed=args.clock_speed,
        defects=frozenset(args.defect),
        store=args.store,
        limits=Limits(**{f.name: getattr(args, f"limit_{f.name}") for f in dataclasses.fields(Limits)}),
        family_options=family_options,
        tls=tls_config,
        auth=auth,
        faults=faults,
        fault_seed=fault_seed,
        workers=args.workers,
    )


def check_args(args: argparse.Namespace) -> None:
    """Checks that span several options, while parsing (so errors show serve's usage)."""
    args.config = config_from_args(args)


def run(args: argparse.Namespace) -> int:
    from protoconform.mockserver.server import serve

    config = getattr(args, "config", None) or config_from_args(args)
    logging.basicConfig(
        level=config.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(config))
    except (OSError, StoreError) as exc:
        print(f"protoconform: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _version_line() -> str:
    from protoconform.mockserver.httpapp import versions

    found = versions()
    return f"protoconform {found['protoconform']} (flyteidl {found['flyteidl']}, armonik {found['armonik']})"


class SubcommandParser(argparse.ArgumentParser):
    """The parser of a subcommand (and of its own subcommands).

    argparse hands a subparser's unrecognized arguments up to the top parser,
    which would report them under the top-level usage; this one reports them
    itself, as it does errors of ``check_args`` (a ValueError naming the option).
    """

    def __init__(
        self, *args: Any, check_args: Callable[[argparse.Namespace], None] | None = None, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.check_args = check_args

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        if self.check_args is not None:
            try:
                self.check_args(namespace)
            except ValueError as exc:
                self.error(str(exc))
        return namespace, extras


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="protoconform",
        description="Stateful mock server, conformance harness and load suites for the Flyte, "
        "Kubeflow Pipelines v1beta1 and ArmoniK control-plane APIs.",
    )
    parser.add_argument("--version", action="version", version=_version_line())
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=SubcommandParser
    )
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            name, help=help_text, description=help_text, check_args=getattr(module, "check_args", None)
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


# Exit status when stdout is closed early (``protoconform specs drift --json | head``): 128 + SIGPIPE,
# what a shell reports for tools killed by that signal, so ``set -o pipefail`` sees it as usual.
BROKEN_PIPE_STATUS = 141


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = int(args.run(args) or 0)
        sys.stdout.flush()  # output still buffered meets the closed pipe here, not at interpreter exit
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at devnull so that flush stays quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_STATUS
    return status


if __name__ == "__main__":
    sys.exit(main())
