"""JSON and YAML from the network, parsed with limits.

Every document a client sends (REST and control bodies, KFP manifests, page
tokens, filters) is hostile input: nesting deep enough to exhaust the
recursion limit of ``json``, ``yaml`` or ``json_format`` must be refused as
the client's mistake, before any recursive code sees it, and a YAML document
whose aliases expand to billions of nodes must not be walked to the end.

The depth of JSON text is measured without parsing it (a scan over its
brackets, strings removed), so a 100,000-level document costs one linear pass.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

import yaml

MAX_DEPTH = 100  # as protobuf's own parsers: far above any real manifest, far below Python's stack
MAX_NODES = 1_000_000  # values in one YAML document once its aliases are expanded

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")
_TOKEN = re.compile(_STRING.pattern + r"|[\[\]{}]", re.S)  # a string or a bracket, in text order
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class DocumentRejected(ValueError):
    """A document refused for its shape; the message names what was sent and the limit."""


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text (strings do not count)."""
    skeleton = _STRING.sub("", text)
    return max(accumulate(map(_STEP.__getitem__, _BRACKET.findall(skeleton))), default=0)


def check_json_text(text: str, what: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse JSON text nested deeper than ``max_depth`` before anything parses it."""
    if ("[" in text or "{" in text) and json_depth(text) > max_depth:
        raise DocumentRejected(f"{what}: JSON nested deeper than {max_depth} levels")


def check_json_value(text: str, pos: int, what: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse the JSON value starting at ``pos`` if it nests deeper than ``max_depth``.

    Only that value is scanned (up to its closing bracket), so a body holding
    several values is checked value by value in one pass over the whole text,
    and bytes after a value that is never read do not count.
    """
    if text[pos : pos + 1] not in ("[", "{"):
        return  # a scalar: nothing nests
    depth = 0
    for token in _TOKEN.finditer(text, pos):
        depth += _STEP.get(token.group(), 0)
        if depth > max_depth:
            raise DocumentRejected(f"{what}: JSON nested deeper than {max_depth} levels")
        if depth <= 0:
            return


def loads(text: str | bytes, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` with a depth limit; DocumentRejected for deep text, ValueError for bad JSON."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentRejected(f"{what}: not valid UTF-8 (at byte {exc.start})") from None
    check_json_text(text, what, max_depth)
    return json.loads(text)


def check_value(value: Any, what: str, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
    """Refuse a parsed value nested deeper than ``max_depth`` or with more than ``max_nodes`` values.

    The walk uses an explicit stack and counts a shared (aliased) value each time
    it is reached, so it stops early on an expansion bomb.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise DocumentRejected(f"{what}: more than {max_nodes} values")
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            raise DocumentRejected(f"{what}: nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)


class _TooDeep(Exception):
    """Raised from inside the composer; load_yaml names the document."""


class _DepthLimitedLoader(yaml.SafeLoader):
    """SafeLoader whose composer (one recursive call per level) stops past ``max_depth``.

    Stopping there also bounds the scanner's work: it keeps one pending simple key
    per open flow collection and rescans them all for every token.
    """

    def __init__(self, stream: str, max_depth: int) -> None:
        super().__init__(stream)
        self._max_depth = max_depth
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth > self._max_depth:  # one level of slack: a scalar in the deepest collection
            raise _TooDeep
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str, what: str, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Any:
    """``yaml.safe_load`` with depth and expanded-size limits; yaml.YAMLError for bad YAML."""
    loader = _DepthLimitedLoader(text, max_depth)
    try:
        value = loader.get_single_data()
    except _TooDeep:
        raise DocumentRejected(f"{what}: YAML nested deeper than {max_depth} levels") from None
    finally:
        loader.dispose()
    check_value(value, what, max_depth, max_nodes)
    return value
