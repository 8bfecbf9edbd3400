"""Mutation run: how many realistic bugs in the mock's handlers a full default ``protoconform check`` catches.

Collects mutation sites from the handler modules of the mock, samples N of them by seed, and for
each one: copies the package source tree to a temporary folder, applies the one mutation, starts the
mock from the copy (``serve --port 0 --http-port 0`` with ``PYTHONPATH`` pointing at the copy's
parent; the child prints the file of the mutated module, which must lie in the copy), and runs a full
default check against it with the installed harness (``protoconform check --target --rest --control
--json``, no suite or rule narrowing).  The installed package is copied once, when the run starts;
every mutant and the harness come from that copy, so the mock and the harness checking it stay of one
version while the working tree is edited.  A mutant is *killed* (the check failed, or the server did
not start: *killed at start*), *survived* (the check passed), *timeout* (the check outlasted
``--timeout``; counted as killed but reported apart) or *invalid* (it does not compile; not counted).
The unmutated copy is checked first: a tree that fails the check cannot judge mutants (with
``--tolerate-baseline-failures``, a mutant is then killed only by a case the unmutated copy passes).

Prints the totals and ``score = killed / (run - equivalent - invalid)``, where *equivalent* are the
survivors that the triage file (``mutation_triage.yaml`` beside this script) says behave the same
for every client; then each survivor with its original and mutated line.  Exit status 1 when the
score is under ``--min-score`` or a survivor is not triaged (an entry ``killed_by`` for a mutant that
still survives counts as not triaged), 2 when the run cannot be made.

    python -m protoconform.load.benchmarks.mutation [--api F] [--seed S] [--count N] [--jobs J] [--json PATH]
    python -m protoconform.load.benchmarks.mutation --mutant ID     # re-run one mutant
    python -m protoconform.load.benchmarks.mutation --list          # every site

Sites come from the handler modules of the families chosen with ``--api`` (default: every built-in
family: ``mockserver/apis/<family>/*.py``), and each check is a full default check of those families
(``--api`` again: a bug in one family's handlers cannot show in another's cases), except:

- ``defects.py``: the deliberate bugs behind ``--defect``, all off in a default run;
- ``compat.py``: the ``--armonik-compat reference-mock`` answers, not served by default;
- ``attach.py``: the client of a user's worker, used only with ``--armonik-worker``;
- ``__init__.py`` and ``options.py``: module wiring, ``serve`` option parsing and state creation.

Within the other files: code that runs only when a deliberate defect is on (the body of
``if ctx.defect(...)``, a statement marked ``deliberate defect``), logging calls, docstrings,
decorators, annotations, imports and asserts are not mutated, nor whole definitions deleted; at module
and class level only numbers and booleans are (module-level strings name services and rules: wiring).

Operators, each site named ``path:line:col:operator:index``:

- ``delete``: a statement in a function body replaced by ``pass``;
- ``negate``: the condition of ``if``/``elif``/``while``/a conditional expression/a comprehension
  filter negated (a single comparison is left to ``flip``);
- ``flip``: one comparison operator swapped for its opposite (``==``/``!=``, ``<``/``>=``,
  ``in``/``not in`` ...), ``index`` its position in a chain;
- ``constant``: a number to n+1, n-1 or 0, ``True``/``False`` swapped, a string emptied (an empty one
  filled), ``index`` the variant;
- ``return``: ``return x`` to ``return None`` (index 0) or to the empty value of x's kind (index 1:
  ``[]``, ``{}``, ``""``, ``0``, a message constructor called without arguments ...).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import copy
import importlib
import json
import math
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from protoconform.specs.families import TABLE

HANDLERS_PACKAGE = "protoconform.mockserver.apis."  # built-in families' handlers live below it
EXCLUDED_FILES = frozenset({"__init__.py", "defects.py", "compat.py", "attach.py", "options.py"})
# What the mock imports (protos <- specs <- mockserver) and the harness (conformance).
COPIED_PACKAGES = ("mockserver", "specs", "protos", "conformance")
DESCRIPTOR_SET = "protos/descriptors.binpb"
OPERATORS = ("delete", "negate", "flip", "constant", "return")
TRIAGE_FILE = Path(__file__).with_name("mutation_triage.yaml")
READY = re.compile(r"^protoconform ready grpc=(?P<grpc>\S+) http=(?P<http>\S+)$")
SOURCE_MARK = "protoconform mutant-source "
DEFECT_MARK = "deliberate defect"
LOGGERS = frozenset({"log", "logger", "logging"})
OUTCOMES = ("killed", "killed-at-start", "timeout", "survived", "invalid")

_FLIPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_SYMBOL = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.GtE: ">=",
    ast.Gt: ">",
    ast.LtE: "<=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
_EMPTY_CALLS = frozenset({"list", "dict", "set", "tuple", "frozenset", "str", "bytes"})


# -- sites --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Site:
    """One mutation: replace ``source[start:end]`` of the file at ``path`` with ``replacement``."""

    path: str  # relative to the package root, e.g. mockserver/apis/kfp/runs.py
    line: int
    col: int  # as ast counts it (UTF-8 bytes from the line start)
    operator: str
    index: int
    start: int  # character offsets in the file's text
    end: int
    replacement: str
    description: str

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}:{self.col}:{self.operator}:{self.index}"

    def apply(self, source: str) -> str:
        return source[: self.start] + self.replacement + source[self.end :]

    def lines(self, source: str) -> tuple[str, str]:
        """The original line(s) the mutation touches and the same line(s) mutated."""
        mutated = self.apply(source)
        return _lines_over(source, self.start, self.end), _lines_over(
            mutated, self.start, self.start + len(self.replacement)
        )


def _lines_over(text: str, start: int, stop: int) -> str:
    first = text.rfind("\n", 0, start) + 1
    last = text.find("\n", max(stop, start + 1) - 1)
    return text[first : len(text) if last < 0 else last]


def short(lines: str, width: int = 150) -> str:
    """One display line: the first line, stripped, and how many lines follow."""
    parts = lines.strip("\n").splitlines() or [""]
    text = parts[0].strip()
    if len(parts) > 1:
        text += f"  … (+{len(parts) - 1} lines)"
    return text if len(text) <= width else text[: width - 1] + "…"


class _Collector:
    """Walks one module's AST and records every site (see the module docstring for what is skipped)."""

    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.source = source
        self.lines = source.splitlines(keepends=True)
        self.line_starts = [0]
        for text in self.lines:
            self.line_starts.append(self.line_starts[-1] + len(text))
        self.sites: list[Site] = []

    # positions
    def offset(self, line: int, col: int) -> int:
        text = self.lines[line - 1] if line - 1 < len(self.lines) else ""
        return self.line_starts[line - 1] + len(text.encode("utf-8")[:col].decode("utf-8", "replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def segment(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.source[start:end]

    def add(self, node: ast.AST, operator: str, index: int, replacement: str, description: str) -> None:
        start, end = self.span(node)
        self.sites.append(
            Site(
                self.path,
                node.lineno,  # type: ignore[attr-defined]
                node.col_offset,  # type: ignore[attr-defined]
                operator,
                index,
                start,
                end,
                replacement,
                description,
            )
        )

    # statements
    def module(self, tree: ast.Module) -> None:
        self.body(tree.body, in_function=False)

    def body(self, statements: list[ast.stmt], in_function: bool) -> None:
        for position, statement in enumerate(statements):
            if position == 0 and _is_docstring(statement):
                continue
            self.statement(statement, in_function)

    def statement(self, node: ast.stmt, in_function: bool) -> None:
        if self.defect_only(node) or _is_log_call(node):
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self.expression(default, numbers_only=not in_function)
            self.body(node.body, in_function=True)
            return
        if isinstance(node, ast.ClassDef):
            self.body(node.body, in_function)
            return
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Global | ast.Nonlocal | ast.Assert | ast.Pass):
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return  # a bare literal does nothing
        if not in_function:
            self.module_level(node)
            return
        if self.deletable(node):
            self.add(node, "delete", 0, "pass", "statement -> pass")
        if isinstance(node, ast.Return) and node.value is not None:
            self.returned(node.value)
        if isinstance(node, ast.If):
            if _defect_guard(node.test):
                self.body(node.orelse, in_function)  # test and body run only with a defect on
                return
            self.condition(node.test)
            self.expression(node.test)
            self.body(node.body, in_function)
            self.body(node.orelse, in_function)
            return
        if isinstance(node, ast.While):
            self.condition(node.test)
            self.expression(node.test)
        if isinstance(node, ast.Match):
            self.expression(node.subject)
            for case in node.cases:  # patterns are not expressions: left alone
                if case.guard is not None:
                    self.condition(case.guard)
                    self.expression(case.guard)
                self.body(case.body, in_function)
            return
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment", "test"):
                continue
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                self.body(value, in_function)
            elif isinstance(value, list):
                for item in value:
                    self.child(item, in_function)
            else:
                self.child(value, in_function)

    def child(self, value: Any, in_function: bool) -> None:
        if isinstance(value, ast.expr):
            self.expression(value)
        elif isinstance(value, ast.withitem):
            self.expression(value.context_expr)
        elif isinstance(value, ast.excepthandler):
            self.body(value.body, in_function)
        elif isinstance(value, ast.stmt):
            self.statement(value, in_function)

    def module_level(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if not any(isinstance(t, ast.Name) and t.id.startswith("__") for t in targets):
                self.expression(node.value, numbers_only=True)
            return
        for name, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                self.body(value, in_function=False)
            elif name == "handlers":
                for handler in value:
                    self.body(handler.body, in_function=False)

    def deletable(self, node: ast.stmt) -> bool:
        if isinstance(node, ast.Return) and node.value is not None:
            return False  # ``return`` covers it
        # an ``elif``'s text is the tail of the enclosing if
        return not (isinstance(node, ast.If) and self.source.startswith("elif", self.span(node)[0]))

    def defect_only(self, node: ast.stmt) -> bool:
        """Runs only when a deliberate defect is on: changing it changes nothing in a default run."""
        if isinstance(node, ast.If) and not node.orelse:
            return _defect_guard(node.test) or all(self.defect_only(s) for s in node.body)
        if _is_compound(node):
            return False
        return any(DEFECT_MARK in self.lines[n - 1] for n in range(node.lineno, node.end_lineno + 1))  # type: ignore[operator]

    # expressions
    def condition(self, test: ast.expr) -> None:
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            return  # ``flip`` makes the same mutant
        if isinstance(test, ast.Constant):
            return
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            replacement = f"({self.segment(test.operand)})"
        else:
            replacement = f"not ({self.segment(test)})"
        self.add(test, "negate", 0, replacement, "c -> not c")

    def returned(self, value: ast.expr) -> None:
        if isinstance(value, ast.Constant) and value.value is None:
            return
        self.add(value, "return", 0, "None", "return x -> return None")
        empty = _empty_of(value, self.segment)
        if empty is not None and empty != self.segment(value):
            self.add(value, "return", 1, empty, f"return x -> return {empty}")

    def expression(self, node: ast.expr, numbers_only: bool = False) -> None:
        if _is_defect_call(node):
            return
        if isinstance(node, ast.JoinedStr):
            if not numbers_only:
                self.fstring(node)
            return  # positions inside f-strings are not reliable before Python 3.12
        if isinstance(node, ast.Lambda):
            self.expression(node.body, numbers_only)
            return
        number = _number(node)
        if number is not None:
            self.constant(node, number)
            return
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not numbers_only:
                self.constant(node, node.value)
            return
        if isinstance(node, ast.Compare) and not numbers_only:
            for position, op in enumerate(node.ops):
                flipped = copy.deepcopy(node)
                flipped.ops[position] = _FLIPPED[type(op)]()
                description = f"{_SYMBOL[type(op)]} -> {_SYMBOL[_FLIPPED[type(op)]]}"
                self.add(node, "flip", position, f"({ast.unparse(flipped)})", description)
        if isinstance(node, ast.IfExp):
            if _defect_guard(node.test):
                self.expression(node.orelse, numbers_only)
                return
            if not numbers_only:
                self.condition(node.test)
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            for generator in node.generators:
                for test in generator.ifs:
                    if not numbers_only:
                        self.condition(test)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expression(child, numbers_only)
            elif isinstance(child, ast.comprehension):
                for part in (child.iter, *child.ifs):
                    self.expression(part, numbers_only)
            elif isinstance(child, ast.keyword):
                self.expression(child.value, numbers_only)

    def constant(self, node: ast.expr, value: Any) -> None:
        for index, new in enumerate(_variants(value)):
            text = repr(new)
            if isinstance(new, int | float) and not isinstance(new, bool) and new < 0:
                text = f"({text})"
            self.add(node, "constant", index, text, f"{_literal(value)} -> {text}")

    def fstring(self, node: ast.JoinedStr) -> None:
        index = 0
        for position, part in enumerate(node.values):
            if not isinstance(part, ast.Constant) or not isinstance(part.value, str):
                continue
            for new in _variants(part.value):
                mutated = copy.deepcopy(node)
                mutated.values[position] = ast.Constant(new)
                self.add(
                    node, "constant", index, ast.unparse(mutated), f"{part.value!r} -> {new!r} in f-string"
                )
                index += 1


def _variants(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return []
        out: list[Any] = []
        for new in (value + 1, value - 1, type(value)(0)):
            if new != value and new not in out:
                out.append(new)
        return out
    if isinstance(value, str):
        return [""] if value else ["mutated"]
    return []  # None, bytes, Ellipsis


def _literal(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _number(node: ast.expr) -> int | float | None:
    """The value of a number literal, signed ones included (``-1`` is one site, not two)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _number(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    return None


def _empty_of(value: ast.expr, segment: Any) -> str | None:
    """Source of the empty value of the same kind as ``value``, when its kind shows in the syntax."""
    if isinstance(value, ast.List | ast.ListComp):
        return "[]"
    if isinstance(value, ast.Dict | ast.DictComp):
        return "{}"
    if isinstance(value, ast.Set | ast.SetComp):
        return "set()"
    if isinstance(value, ast.Tuple):
        return "()"
    if isinstance(value, ast.JoinedStr) or (isinstance(value, ast.Constant) and isinstance(value.value, str)):
        return '""'
    if isinstance(value, ast.Constant) and isinstance(value.value, bytes):
        return 'b""'
    number = _number(value)
    if number is not None:
        return "0.0" if isinstance(number, float) else "0"
    if isinstance(value, ast.Call) and (value.args or value.keywords):
        name = value.func.attr if isinstance(value.func, ast.Attribute) else getattr(value.func, "id", "")
        if name in _EMPTY_CALLS or name[:1].isupper():  # a builtin container or a message constructor
            return f"{segment(value.func)}()"
    return None


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _is_compound(node: ast.stmt) -> bool:
    return any(
        isinstance(v, list) and v and isinstance(v[0], ast.stmt) for _, v in ast.iter_fields(node)
    ) or (isinstance(node, ast.Try | ast.Match))


def _is_log_call(node: ast.stmt) -> bool:
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    func = node.value.func
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in LOGGERS


def _is_defect_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "defect"


def _defect_guard(test: ast.expr) -> bool:
    """Whether what ``test`` guards runs only with a defect on: ``ctx.defect(X)``, ``a and ctx.defect(X)``."""
    if _is_defect_call(test):
        return True
    return (
        isinstance(test, ast.BoolOp)
        and isinstance(test.op, ast.And)
        and any(map(_is_defect_call, test.values))
    )


def collect_file(path: str, source: str) -> list[Site]:
    collector = _Collector(path, source)
    collector.module(ast.parse(source))
    return collector.sites


def built_in_families() -> list[str]:
    """The families whose handlers are part of this package (those a snapshot can mutate)."""
    return [name for name, family in TABLE.items() if family.handlers_module.startswith(HANDLERS_PACKAGE)]


def handler_files(root: Path, families: Sequence[str] | None = None) -> list[str]:
    """The handler modules of ``families`` (default: every built-in one) under the package root
    ``root``, relative to it, sorted."""
    folders = [
        TABLE[name].handlers_module.removeprefix("protoconform.").replace(".", "/")
        for name in families or built_in_families()
    ]
    return sorted(
        f"{folder}/{file.name}"
        for folder in folders
        for file in (root / folder).glob("*.py")
        if file.name not in EXCLUDED_FILES
    )


def collect(root: Path, families: Sequence[str] | None = None) -> list[Site]:
    """Every site of the handler modules of ``families`` under ``root``, in id order (files, lines...)."""
    sites = [
        site
        for path in handler_files(root, families)
        for site in collect_file(path, (root / path).read_text("utf-8"))
    ]
    return sorted(sites, key=lambda s: (s.path, s.line, s.col, OPERATORS.index(s.operator), s.index))


def sample(sites: Sequence[Site], seed: int, count: int) -> list[Site]:
    return random.Random(seed).sample(list(sites), min(count, len(sites)))


class Unrunnable(Exception):
    """The run cannot be made (exit status 2)."""


# -- the package copy ---------------------------------------------------------------------------------
def package_folders() -> dict[str, Path]:
    """Where each copied part of the package is imported from (an editable or a regular install)."""
    return {
        name: Path(importlib.import_module(f"protoconform.{name}").__file__ or "").resolve().parent
        for name in COPIED_PACKAGES
    }


def snapshot(into: Path) -> Path:
    """Copy the package's parts the mock and the harness need to ``into/protoconform``; its root."""
    root = into / "protoconform"
    for name, folder in package_folders().items():
        shutil.copytree(folder, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if not (root / DESCRIPTOR_SET).is_file():  # git-ignored in a checkout: made by the install
        raise Unrunnable(
            f"{package_folders()['protos'] / Path(DESCRIPTOR_SET).name} is missing; "
            "install the package (pip install -e .) so the .proto files are compiled"
        )
    return root


def module_name(path: str) -> str:
    return "protoconform." + path.removesuffix(".py").replace("/", ".")


# -- one mutant ---------------------------------------------------------------------------------------
@dataclass
class Result:
    id: str
    outcome: str  # one of OUTCOMES
    path: str = ""
    line: int = 0
    operator: str = ""
    description: str = ""
    before: str = ""
    after: str = ""
    # the failures not tolerated: their rule ids (a case's node id when it has none) and node ids
    failing_rules: list[str] = field(default_factory=list)
    failing_cases: list[str] = field(default_factory=list)
    tolerated_failures: int = 0  # failing cases the unmutated copy fails too (--tolerate-baseline-failures)
    check_exit: int | None = None
    seconds: float = 0.0
    detail: str = ""


# A child: say which file the module named first would be imported from (found, not imported: the
# harness must be imported by pytest to get its asserts rewritten), then run ``protoconform ARGS``.
_BOOT = (
    "import importlib.util, runpy, sys\n"
    f"print({SOURCE_MARK!r} + importlib.util.find_spec(sys.argv[1]).origin, flush=True)\n"
    "sys.argv = ['protoconform', *sys.argv[2:]]\n"
    "runpy.run_module('protoconform.mockserver', run_name='__main__')\n"
)


_CHILDREN: set[subprocess.Popen[Any]] = set()
_CHILDREN_LOCK = threading.Lock()
_STOPPING = threading.Event()


def _spawn(parent: Path, module: str, arguments: list[str], cwd: Path, stdout: Any) -> subprocess.Popen[Any]:
    """``protoconform ARGUMENTS`` from the copy whose parent folder is ``parent``, in a process group of
    its own (so that it and its children can be stopped together); the first line it prints names the
    file of ``module`` it imported."""
    env = {**os.environ, "PYTHONPATH": str(parent), "PYTHONUNBUFFERED": "1"}
    env.pop("PROTOCONFORM_FAMILIES", None)
    with _CHILDREN_LOCK:
        if _STOPPING.is_set():
            raise KeyboardInterrupt
        process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, module, *arguments],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        _CHILDREN.add(process)
    return process


def _stop(process: subprocess.Popen[Any], grace: float) -> None:
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()
    with _CHILDREN_LOCK:
        _CHILDREN.discard(process)


def stop_all() -> None:
    """Stop every child still running and start no more (the run was interrupted)."""
    with _CHILDREN_LOCK:
        _STOPPING.set()
        children = list(_CHILDREN)
    for process in children:
        _signal_group(process, signal.SIGKILL)


def _imported_from(line: str, parent: Path, what: str) -> None:
    """Refuse a child that imported the package from elsewhere than the copy under ``parent``."""
    if not line.startswith(SOURCE_MARK):
        raise Unrunnable(f"the {what} did not say which source it imported (first line: {line!r})")
    source = line[len(SOURCE_MARK) :].strip()
    if not Path(source).resolve().is_relative_to(parent.resolve()):
        raise Unrunnable(f"the {what} imported {source}, not the copy in {parent}")


class Server:
    """``protoconform serve`` from a copy of the package."""

    def __init__(self, parent: Path, module: str) -> None:
        self.parent = parent
        self.output: list[str] = []
        self.grpc = self.http = ""
        arguments = ["serve", "--port", "0", "--http-port", "0"]
        self.process = _spawn(parent, module, arguments, cwd=parent, stdout=subprocess.PIPE)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_ready(self, timeout: float) -> bool:
        """True once the ready line came; False when the server exited or took longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if line is None:  # its output ended: it exited (or is about to)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(10)
                return False
            self.output.append(line)
            if len(self.output) == 1:
                _imported_from(line, self.parent, "mock")
            match = READY.match(line)
            if match:
                self.grpc, self.http = match["grpc"], match["http"]
                threading.Thread(target=self._drain, daemon=True).start()
                return True

    def _drain(self) -> None:
        while (line := self.lines.get()) is not None:
            self.output = [*self.output[-50:], line]

    def stop(self) -> None:
        _stop(self.process, grace=10)


def _signal_group(process: subprocess.Popen[Any], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


@dataclass
class Check:
    status: int | None  # None: still running at the deadline
    failures: list[dict[str, Any]]  # from the check's JSON report
    detail: str  # the last line it printed, when it failed without a failing case


def run_check(
    server: Server,
    harness: Path,
    workdir: Path,
    options: argparse.Namespace,
) -> Check:
    """A full default check of the run's families against ``server``, run by the harness of the
    unmutated copy whose parent folder is ``harness``."""
    report = workdir / "check.json"
    timeout, check_seed = options.timeout, options.check_seed
    arguments = [
        "check",
        "--api",
        ",".join(options.api),
        "--target",
        server.grpc,
        "--rest",
        f"http://{server.http}",
        "--control",
        f"http://{server.http}",
        "--json",
        str(report),
    ]
    if check_seed is not None:
        arguments += ["--seed", str(check_seed)]
    with open(workdir / "check.log", "w") as log:
        process = _spawn(harness, "protoconform.conformance.cli", arguments, cwd=workdir, stdout=log)
        try:
            status: int | None = process.wait(timeout)
        except subprocess.TimeoutExpired:
            status = None
        finally:
            _stop(process, grace=0)
    output = (workdir / "check.log").read_text(errors="replace").strip().splitlines()
    _imported_from(output[0] if output else "", harness, "harness")
    if status is None:
        return Check(None, [], f"check still running after {timeout:.0f} s")
    failures = json.loads(report.read_text()).get("failures", []) if report.is_file() else []
    detail = ""
    if status != 0 and not failures:
        detail = output[-1] if len(output) > 1 else f"check exited {status}"
    return Check(status, failures, detail)


def judge(check: Check, tolerated: frozenset[str]) -> str:
    """The outcome of a mutant: killed when the check failed, unless every failing case is one the
    unmutated copy fails too (``tolerated``, empty unless ``--tolerate-baseline-failures``)."""
    if check.status is None:
        return "timeout"
    if check.status == 0:
        return "survived"
    cases = {failure.get("nodeid", "") for failure in check.failures}
    return "survived" if check.status == 1 and cases and cases <= tolerated else "killed"


def run_mutant(site: Site | None, base: Path, options: argparse.Namespace) -> Result:
    """Copy the snapshot ``base``, apply ``site`` (none: the unmutated baseline), serve it, check it."""
    began = time.monotonic()
    result = Result(id=site.id if site else "baseline", outcome="invalid")
    with tempfile.TemporaryDirectory(prefix="protoconform-mutant-") as folder:
        parent = Path(folder)
        shutil.copytree(base, parent / "protoconform")
        module = "protoconform.mockserver.cli"
        if site is not None:
            target = parent / "protoconform" / site.path
            source = target.read_text("utf-8")
            mutated = site.apply(source)
            before, after = site.lines(source)
            result.path, result.line, result.operator = site.path, site.line, site.operator
            result.description, result.before, result.after = site.description, before, after
            try:
                compile(mutated, str(target), "exec")
            except (SyntaxError, ValueError) as exc:
                result.detail = f"does not compile: {exc}"
                result.seconds = round(time.monotonic() - began, 1)
                return result
            target.write_text(mutated, "utf-8")
            module = module_name(site.path)
        workdir = parent / "work"
        workdir.mkdir()
        server = Server(parent, module)
        try:
            if not server.wait_ready(options.start_timeout):
                result.outcome = "killed-at-start"
                status = server.process.poll()
                said = f": {short(server.output[-1])}" if server.output else ""
                waited = f"no ready line in {options.start_timeout:g} s"
                result.detail = (waited if status is None else f"exited with status {status}") + said
            else:
                check = run_check(server, base.parent, workdir, options)
                result.outcome, result.check_exit, result.detail = (
                    judge(check, options.tolerated),
                    check.status,
                    check.detail,
                )
                new = [f for f in check.failures if f.get("nodeid") not in options.tolerated]
                result.failing_rules = sorted({f.get("rule") or f.get("nodeid", "?") for f in new})
                result.failing_cases = sorted({f.get("nodeid", "?") for f in new})
                result.tolerated_failures = len(check.failures) - len(new)
        finally:
            server.stop()
    result.seconds = round(time.monotonic() - began, 1)
    return result


# -- triage and the report ----------------------------------------------------------------------------
def load_triage(path: Path) -> dict[str, dict[str, str]]:
    """``{mutant id: {"equivalent": reason} | {"killed_by": rule or test}}``."""
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    entries = data.get("mutants") or {}
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: 'mutants' must map mutant ids to entries")
    for key, entry in entries.items():
        if not (
            isinstance(entry, dict) and len(entry) == 1 and next(iter(entry)) in ("equivalent", "killed_by")
        ):
            raise ValueError(f"{path}: {key}: expected exactly one of equivalent: REASON or killed_by: CHECK")
        if not str(next(iter(entry.values())) or "").strip():
            raise ValueError(f"{path}: {key}: the {next(iter(entry))} entry needs a text")
    return entries


def summarize(results: list[Result], triage: dict[str, dict[str, str]], min_score: float) -> dict[str, Any]:
    count = {outcome: sum(r.outcome == outcome for r in results) for outcome in OUTCOMES}
    survivors = [r for r in results if r.outcome == "survived"]
    equivalent = [r for r in survivors if "equivalent" in triage.get(r.id, {})]
    untriaged = [r.id for r in survivors if "equivalent" not in triage.get(r.id, {})]
    killed = count["killed"] + count["killed-at-start"] + count["timeout"]
    counted = len(results) - len(equivalent) - count["invalid"]
    score = 100.0 * killed / counted if counted else 100.0
    return {
        "totals": {
            "run": len(results),
            "killed": killed,
            "killed_by_check": count["killed"],
            "killed_at_start": count["killed-at-start"],
            "timeouts": count["timeout"],
            "survived": count["survived"],
            "equivalent": len(equivalent),
            "invalid": count["invalid"],
        },
        "score": round(score, 1),
        "min_score": min_score,
        "untriaged_survivors": untriaged,
        # entries this run contradicts: a "killed_by" mutant that survived, an "equivalent" one killed
        "stale_triage": [
            r.id
            for r in results
            if (r.outcome == "survived" and "killed_by" in triage.get(r.id, {}))
            or (
                r.outcome in ("killed", "killed-at-start", "timeout") and "equivalent" in triage.get(r.id, {})
            )
        ],
        "passed": score >= min_score and not untriaged,
    }


def print_report(results: list[Result], summary: dict[str, Any], triage: dict[str, dict[str, str]]) -> None:
    t = summary["totals"]
    print(f"mutants run:  {t['run']}")
    print(
        f"killed:       {t['killed']} (check failed {t['killed_by_check']}, at start {t['killed_at_start']}, "
        f"timeouts {t['timeouts']})"
    )
    print(f"survived:     {t['survived']}")
    print(f"equivalent:   {t['equivalent']} (from the triage file)")
    print(f"invalid:      {t['invalid']}")
    print(f"timeouts:     {t['timeouts']} (counted as killed)")
    print(
        f"score:        {summary['score']:.1f}% = killed / (run - equivalent - invalid); "
        f"minimum {summary['min_score']:g}%"
    )
    for r in results:
        if r.outcome != "survived":
            continue
        entry = triage.get(r.id)
        if entry is None:
            status = "NOT in the triage file"
        elif "equivalent" in entry:
            status = f"triaged equivalent: {entry['equivalent']}"
        else:
            status = f"triage says killed_by {entry['killed_by']!r}, but it survived"
        print(f"survivor {r.id}  ({r.path}:{r.line}, {r.description}) — {status}")
        print(f"    - {short(r.before)}")
        print(f"    + {short(r.after)}")
    for key in summary["stale_triage"]:
        if any(r.id == key and r.outcome != "survived" for r in results):
            print(f"note: {key} is triaged equivalent, but this run killed it")


# -- command line -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m protoconform.load.benchmarks.mutation", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="which mutants are sampled (default: %(default)s)"
    )
    parser.add_argument(
        "--api",
        action="append",
        default=[],
        metavar="FAMILY",
        help="families whose handlers are mutated and checked; repeatable or comma-separated "
        f"(default: {','.join(built_in_families())})",
    )
    parser.add_argument("--count", type=int, default=40, help="mutants sampled (default: %(default)s)")
    parser.add_argument(
        "--mutant", action="append", default=[], metavar="ID", help="run this mutant (repeatable)"
    )
    parser.add_argument("--list", action="store_true", help="list every site and exit")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default: %(default)s)")
    parser.add_argument("--check-seed", type=int, help="--seed of each check (default: the check's own)")
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds one check may take (default: %(default)s)"
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=60.0,
        help="seconds a mutant may take to its ready line (default: %(default)s)",
    )
    parser.add_argument(
        "--min-score", type=float, default=90.0, help="exit 1 under this score (default: %(default)s)"
    )
    parser.add_argument(
        "--triage", type=Path, help=f"triage file (default: {TRIAGE_FILE.name} beside this script)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write a JSON summary here")
    parser.add_argument("--no-baseline", action="store_true", help="do not check the unmutated copy first")
    parser.add_argument(
        "--tolerate-baseline-failures",
        action="store_true",
        help="when the unmutated copy fails some cases, judge mutants by the other cases only "
        "(a mutant failing nothing else survives) instead of stopping",
    )
    args = parser.parse_args(argv)
    args.tolerated = frozenset()
    if args.count < 1 or args.jobs < 1:
        parser.error("--count and --jobs must be at least 1")
    known = built_in_families()
    args.api = [name for value in args.api for name in value.split(",") if name.strip()] or known
    unknown = sorted(set(args.api) - set(known))
    if unknown:
        parser.error(f"--api: {', '.join(unknown)} is not one of {', '.join(known)}")
    args.api = [name for name in known if name in args.api]  # one order: the same sample for the same set
    return args


def _triage(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    path = args.triage or TRIAGE_FILE
    if not path.is_file():
        if args.triage:
            raise Unrunnable(f"--triage {path}: no such file")
        print(f"note: no triage file at {path}; every survivor counts as untriaged")
        return {}
    try:
        return load_triage(path)
    except (ValueError, yaml.YAMLError) as exc:
        raise Unrunnable(str(exc)) from None


def _selected(sites: list[Site], args: argparse.Namespace) -> list[Site]:
    if not args.mutant:
        return sample(sites, args.seed, args.count)
    by_id = {site.id: site for site in sites}
    unknown = [key for key in args.mutant if key not in by_id]
    if unknown:
        raise Unrunnable(f"no such site: {', '.join(unknown)} (see --list)")
    return [by_id[key] for key in args.mutant]


def _run_all(selected: list[Site], base: Path, args: argparse.Namespace) -> Iterator[Result]:
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_mutant, site, base, args) for site in selected]
        for number, future in enumerate(futures, 1):
            try:
                result = future.result()
            except BaseException:  # interrupted, or a copy that imports the wrong source: stop everything
                pool.shutdown(wait=False, cancel_futures=True)
                stop_all()
                raise
            rules = f" ({', '.join(result.failing_rules[:4])}{' …' if len(result.failing_rules) > 4 else ''})"
            extra = rules if result.failing_rules else (f" ({result.detail})" if result.detail else "")
            print(
                f"[{number}/{len(futures)}] {result.outcome:<15} {result.id}  {result.seconds:.0f} s{extra}",
                flush=True,
            )
            yield result


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)  # stop the servers and checks as on Ctrl-C
    try:
        return run(args)
    except Unrunnable as exc:
        print(f"mutation: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mutation: interrupted; servers and checks stopped", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    if args.list:
        root = package_folders()["mockserver"].parent
        for site in collect(root, args.api):
            before, after = site.lines((root / site.path).read_text("utf-8"))
            print(f"{site.id}  {site.description}: {short(before, 70)!r} -> {short(after, 70)!r}")
        return 0
    triage = _triage(args)
    with tempfile.TemporaryDirectory(prefix="protoconform-mutation-") as folder:
        base = snapshot(Path(folder))  # one source tree for the whole run, whatever changes meanwhile
        sites = collect(base, args.api)
        selected = _selected(sites, args)
        print(
            f"sites: {len(sites)} in {len(handler_files(base, args.api))} files of {','.join(args.api)}; "
            f"running {len(selected)} mutants (seed {args.seed}, {args.jobs} at once)",
            flush=True,
        )
        baseline = None
        if not args.no_baseline:
            try:
                baseline = run_mutant(None, base, args)
            except BaseException:
                stop_all()
                raise
            print(f"baseline (unmutated): {baseline.outcome} in {baseline.seconds:.0f} s", flush=True)
            if baseline.outcome != "survived":
                failing = ", ".join(baseline.failing_cases) or baseline.detail
                if not (
                    args.tolerate_baseline_failures and baseline.check_exit == 1 and baseline.failing_cases
                ):
                    print(
                        f"mutation: the unmutated tree does not pass the check ({baseline.outcome}: "
                        f"{failing}); mutants cannot be judged (see --tolerate-baseline-failures)"
                    )
                    return 2
                args.tolerated = frozenset(baseline.failing_cases)
                print(f"warning: the unmutated tree fails {failing}; mutants are judged by the other cases")
        results = list(_run_all(selected, base, args))
    summary = summarize(results, triage, args.min_score)
    print_report(results, summary, triage)
    if args.tolerated:
        print(f"note: judged without the cases the unmutated copy fails: {', '.join(sorted(args.tolerated))}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "families": args.api,
            "seed": args.seed,
            "count": args.count,
            "check_seed": args.check_seed,
            "sites": len(sites),
            "baseline": asdict(baseline) if baseline else None,
            "tolerated_cases": sorted(args.tolerated),
            **summary,
            "mutants": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", "utf-8")
        print(f"summary: {args.json}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
