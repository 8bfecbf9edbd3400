"""The mutator of the mutation run (load/benchmarks/mutation.py): sites, operators, ids, sampling, score."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest
from protoconform.load.benchmarks import mutation as m

REPO_TRIAGE = Path(__file__).resolve().parents[1] / "load" / "benchmarks" / "mutation_triage.yaml"
ID = re.compile(r"^mockserver/apis/\w+/\w+\.py:\d+:\d+:(delete|negate|flip|constant|return):\d+$")

SOURCE = textwrap.dedent(
    '''\
    """Module docstring."""
    import logging

    SVC = "pkg.Service"
    LIMIT = 64
    log = logging.getLogger(__name__)


    @handler(SVC, "Get")
    def get(request, ctx, page_size: int = 10) -> Reply:
        """Docstring."""
        assert request is not None
        log.info("called %s", request)
        if ctx.defect(BROKEN):
            return Reply(broken=True)
        total = len(request.items)
        if total > 3 and request.name:
            total -= 1
        while not request.done:
            request.step()
        names = [n for n in request.names if n]
        return Reply(total=total, names=names, kind="x" if total == 0 else "y")


    def helper(flag):
        if flag:
            flag = 2  # deliberate defect: never on by default
        return f"n={flag}"
    '''
)


@pytest.fixture(scope="module")
def sites() -> list[m.Site]:
    return m.collect_file("mockserver/apis/kfp/sample.py", SOURCE)


def _by(sites: list[m.Site], operator: str) -> list[tuple[str, str]]:
    """(original line, mutated line) of each site of ``operator``."""
    return [tuple(s.strip() for s in site.lines(SOURCE)) for site in sites if site.operator == operator]  # type: ignore[misc]


def test_each_operator_finds_its_sites(sites: list[m.Site]) -> None:
    deleted = {before for before, _ in _by(sites, "delete")}
    assert "total = len(request.items)" in deleted and "total -= 1" in deleted and "request.step()" in deleted
    assert ("if total > 3 and request.name:", "if not (total > 3 and request.name):") in _by(sites, "negate")
    assert ("while not request.done:", "while (request.done):") in _by(sites, "negate")
    assert any("if not (n)]" in after for _, after in _by(sites, "negate"))  # a comprehension filter
    assert not any("not (total == 0)" in after for _, after in _by(sites, "negate"))  # left to flip
    flips = _by(sites, "flip")
    assert ("if total > 3 and request.name:", "if (total <= 3) and request.name:") in flips
    assert any("(total != 0)" in after for _, after in flips)
    constants = {after for _, after in _by(sites, "constant")}
    assert {
        "if total > 4 and request.name:",
        "if total > 2 and request.name:",
        "if total > 0 and request.name:",
    } <= constants
    assert "LIMIT = 65" in constants and "total -= 0" in constants
    assert any("kind='' if" in after or "kind=''" in after for after in constants)
    assert any(after.startswith("return f'") or after.startswith('return f"') for after in constants)
    returns = {after for _, after in _by(sites, "return")}
    assert {"return None", "return Reply()", 'return ""'} <= returns


def test_what_is_left_alone(sites: list[m.Site]) -> None:
    touched = {site.line for site in sites}
    lines = SOURCE.splitlines()

    def line_of(text: str) -> int:
        return next(number for number, line in enumerate(lines, 1) if text in line)

    for untouched in (
        '"""Module docstring."""',
        "import logging",
        'SVC = "pkg.Service"',  # module-level strings name services and rules
        '@handler(SVC, "Get")',
        '"""Docstring."""',
        "assert request is not None",
        'log.info("called %s", request)',
        "if ctx.defect(BROKEN):",  # runs only with a defect on
        "return Reply(broken=True)",
        "if flag:",  # guards only a deliberate defect
        "flag = 2  # deliberate defect",
    ):
        assert line_of(untouched) not in touched, untouched
    assert not any(site.operator == "delete" and site.line == line_of("def helper") for site in sites)


def test_every_mutant_compiles_and_differs(sites: list[m.Site]) -> None:
    for site in sites:
        mutated = site.apply(SOURCE)
        assert mutated != SOURCE, site.id
        ast.parse(mutated)


def test_handler_files_and_exclusions() -> None:
    root = m.package_folders()["mockserver"].parent
    files = m.handler_files(root)
    for family in ("armonik", "kfp", "flyte"):
        assert any(f.startswith(f"mockserver/apis/{family}/") for f in files), family
    assert not {Path(f).name for f in files} & m.EXCLUDED_FILES
    # --api narrows the sites to one family's handlers
    kfp_only = m.handler_files(root, ["kfp"])
    assert kfp_only and all(f.startswith("mockserver/apis/kfp/") for f in kfp_only)
    assert {s.path for s in m.collect(root, ["kfp"])} <= set(kfp_only)


def test_real_sites_ids_and_mutants() -> None:
    root = m.package_folders()["mockserver"].parent
    sites = m.collect(root)
    ids = [site.id for site in sites]
    assert len(ids) == len(set(ids)), "ids must name one site each"
    assert all(ID.match(key) for key in ids)
    assert {site.operator for site in sites} == set(m.OPERATORS)
    # stable: the same tree gives the same ids, and a file's sites do not depend on the others
    assert [site.id for site in m.collect(root)] == ids
    first = sites[0].path
    assert [s.id for s in m.collect_file(first, (root / first).read_text("utf-8"))] == [
        s.id for s in sites if s.path == first
    ]
    # a spread of real mutants, each operator: valid Python, different from the original
    sources: dict[str, str] = {}
    for operator in m.OPERATORS:
        for site in m.sample([s for s in sites if s.operator == operator], seed=7, count=40):
            source = sources.setdefault(site.path, (root / site.path).read_text("utf-8"))
            mutated = site.apply(source)
            assert mutated != source, site.id
            compile(mutated, site.path, "exec")


def test_sampling_is_deterministic(sites: list[m.Site]) -> None:
    assert m.sample(sites, 1, 5) == m.sample(sites, 1, 5)
    assert [s.id for s in m.sample(sites, 1, 5)] != [s.id for s in m.sample(sites, 2, 5)]
    assert sorted(s.id for s in m.sample(sites, 1, 10_000)) == sorted(s.id for s in sites)


def _result(key: str, outcome: str) -> m.Result:
    return m.Result(id=key, outcome=outcome)


def test_score_and_triage() -> None:
    results = [
        *(_result(f"k{i}", "killed") for i in range(6)),
        _result("start", "killed-at-start"),
        _result("slow", "timeout"),
        _result("bad", "invalid"),
        _result("same", "survived"),
        _result("open", "survived"),
    ]
    triage = {"same": {"equivalent": "only a log line changes"}}
    summary = m.summarize(results, triage, min_score=90)
    assert summary["totals"] == {
        "run": 11,
        "killed": 8,
        "killed_by_check": 6,
        "killed_at_start": 1,
        "timeouts": 1,
        "survived": 2,
        "equivalent": 1,
        "invalid": 1,
    }
    assert summary["score"] == pytest.approx(100 * 8 / 9, abs=0.05)
    assert summary["untriaged_survivors"] == ["open"]
    assert summary["passed"] is False
    triage["open"] = {"killed_by": "armonik.sessions.output"}  # claims a check catches it: this run says not
    again = m.summarize(results, triage, min_score=80)
    assert again["untriaged_survivors"] == ["open"] and again["stale_triage"] == ["open"]
    triage["open"] = {"equivalent": "a cache"}
    assert m.summarize(results, triage, min_score=80)["passed"] is True


def test_triage_file(tmp_path: Path) -> None:
    assert isinstance(m.load_triage(REPO_TRIAGE), dict)  # the committed file is well formed
    bad = tmp_path / "triage.yaml"
    bad.write_text("mutants:\n  a:b:1:0:delete:0: {equivalent: x, killed_by: y}\n")
    with pytest.raises(ValueError, match="exactly one"):
        m.load_triage(bad)
    bad.write_text("mutants:\n  a:b:1:0:delete:0: {equivalent: ''}\n")
    with pytest.raises(ValueError, match="needs a text"):
        m.load_triage(bad)


def test_judge() -> None:
    def check(status: int | None, *cases: str) -> m.Check:
        return m.Check(status, [{"nodeid": case, "rule": ""} for case in cases], "")

    known = frozenset({"rest.py::a"})
    assert m.judge(check(0), frozenset()) == "survived"
    assert m.judge(check(None), frozenset()) == "timeout"
    assert m.judge(check(1, "rest.py::a"), frozenset()) == "killed"
    assert m.judge(check(1, "rest.py::a"), known) == "survived"  # fails only where the unmutated copy fails
    assert m.judge(check(1, "rest.py::a", "rules.py::b"), known) == "killed"
    assert m.judge(check(2), known) == "killed"  # the target could not be tested
