"""The argparse types every subcommand's options share (``serve``, ``check``, ``specs``).

They live in the lowest layer both the mock and the harness may import.  Each
raises :class:`argparse.ArgumentTypeError`, so argparse reports a bad value in
one line that names the option: ``protoconform serve: error: argument --port: ...``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

MAX_PORT = 65535


def positive(kind: type[int] | type[float], zero: bool = False) -> Callable[[str], float | int]:
    """A finite number (``kind``) > 0, or >= 0 with ``zero``."""

    def parse(text: str) -> float | int:
        what = "an integer" if kind is int else "a finite number"
        bound = ">= 0" if zero else "> 0"
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(f"{text!r} must be {what} {bound}")
        return value

    return parse


def port(text: str) -> int:
    """A TCP port to listen on: 0 (pick a free one) .. 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0..{MAX_PORT})")
    return value


def _is_host(text: str) -> bool:
    """A host name or IP address: not empty, no scheme, path or spaces."""
    return bool(text) and "/" not in text and not any(c.isspace() for c in text)


def host(text: str) -> str:
    if not _is_host(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name or address")
    return text


def address(unix: bool = False) -> Callable[[str], str]:
    """``HOST:PORT`` to connect to (port 1..65535); with ``unix`` also ``unix:///path``."""
    shape = "HOST:PORT or unix:///PATH" if unix else "HOST:PORT"

    def parse(text: str) -> str:
        if unix and text.startswith("unix:"):
            if not text.removeprefix("unix:").lstrip("/"):
                raise argparse.ArgumentTypeError(f"{text!r}: the socket path is empty")
            return text
        name, _, number = text.rpartition(":")
        name = name.removeprefix("[").removesuffix("]")  # [::1]:50051 is an IPv6 host
        if not _is_host(name) or not number.isdigit() or not 0 < int(number) <= MAX_PORT:
            raise argparse.ArgumentTypeError(f"{text!r} is not {shape} (port 1..{MAX_PORT})")
        return text

    return parse


def url(text: str) -> str:
    """An ``http://`` or ``https://`` URL with a host (and a valid port, if given)."""
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - urllib checks the port range when it is read
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the port is not 1..{MAX_PORT}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


# The path types keep the text as given: the options they check are plain strings downstream.


def existing_folder(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not an existing folder")
    return text


def creatable_folder(text: str) -> str:
    """A folder that exists or can be created (tried now and undone: the option's user creates it)."""
    path = Path(text).absolute()
    if path.exists():
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is not a folder")
        return text
    missing = [path, *(p for p in path.parents if not p.exists())]  # deepest first
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} cannot be created: {exc.strerror}") from None
    for created in missing:
        created.rmdir()
    return text


def readable_file(text: str) -> str:
    """An existing file we may read."""
    try:
        with open(text, "rb"):
            pass
    except IsADirectoryError:
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file") from None
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc.strerror}") from None
    return text


def writable_file(text: str) -> str:
    """A file we may write (a report): its folder is made if missing; a file that was not there
    before is not left behind by the probe."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: cannot write there ({exc.strerror})") from None
    if not existed:
        path.unlink(missing_ok=True)
    return text
