"""The data root: the one folder ArmoniK's Worker, Agent and worker attachment read and write.

It is ``--armonik-data-root`` (``ArmonikOptions.data_root``) or, by default, a
private temporary folder (mode 0700) per server, removed when the server stops.
Whatever a request names -- a data folder, a result id used as a file name --
must stay inside it: folders are compared as real paths (symbolic links
resolved) with :func:`os.path.commonpath`, file names must be one plain path
component, and files are opened without following a symbolic link in the last
component.  A refused path raises :class:`Refused`, whose callers answer with a
fixed message: nothing about the path (exists, kind, permissions) leaks out.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile

from protoconform.mockserver.apis.armonik import lifecycle
from protoconform.mockserver.apis.armonik.state import ArmonikState

_temporary: dict[int, str] = {}  # event loop (one per server) -> its temporary data root
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted in the root must not hang a call
_BINARY = getattr(os, "O_BINARY", 0)


class Refused(ValueError):
    """A folder or file name that is not inside the data root (deliberately without details)."""


def data_root(state: ArmonikState) -> str:
    """The real path of the server's data root, created on first use."""
    if state.options.data_root:
        os.makedirs(state.options.data_root, mode=0o700, exist_ok=True)
        return os.path.realpath(state.options.data_root)
    loop = id(asyncio.get_running_loop())
    if loop not in _temporary:
        _temporary[loop] = os.path.realpath(tempfile.mkdtemp(prefix="protoconform-armonik-"))
    return _temporary[loop]


async def release(state: ArmonikState) -> None:
    folder = _temporary.pop(id(asyncio.get_running_loop()), None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def is_plain_name(name: str) -> bool:
    """One path component that names an entry of its folder (no separator, no NUL, not . or ..)."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root


def folder_in(root: str, folder: str) -> str:
    """The real path of ``folder`` (a relative one is taken inside ``root``), if it is ``root`` or below."""
    if not folder or "\0" in folder:
        raise Refused(folder)
    path = os.path.realpath(os.path.join(root, folder))
    if not _inside(root, path):
        raise Refused(folder)
    return path


def file_in(folder: str, name: str, root: str | None = None) -> str:
    """``folder/name`` for a plain ``name`` whose real path stays inside ``root`` (default ``folder``)."""
    if not is_plain_name(name):
        raise Refused(name)
    path = os.path.join(folder, name)
    if not _inside(os.path.realpath(root or folder), os.path.realpath(path)):
        raise Refused(name)  # a symbolic link pointing out
    return path


def read(path: str) -> bytes:
    """The content of a regular file; OSError for anything else (a link, a folder, a FIFO...)."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(path)
        return handle.read()


def write(path: str, data: bytes) -> None:
    """Create or replace the regular file ``path``; a symbolic link there is not followed (OSError)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW | _NONBLOCK | _BINARY, 0o666)
    with os.fdopen(fd, "wb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(path)
        handle.write(data)


lifecycle.SHUTDOWN_HOOKS.append(release)
