"""The HTML report: one self-contained page (inline style, no external resources).

It shows the conformance score and rule coverage per API family, the matrix of
service, method and suite (passed / failed / known / skipped / n.a.), every failure
with its rule (description and place in specs), expected and actual outcome,
hypothesis' falsifying example and a minimal reproducer (request JSON and a
``buf curl`` command line), known deviations from the baseline, stale baseline
entries, the rules no case checked and those counted apart (not checkable over the
wire, not applicable to the target).

The failure tables have a fixed layout: long unbroken values (ids, tokens, JSON) wrap
inside their column, so the details column stays on screen at a laptop's width.
"""

from __future__ import annotations

import datetime
from html import escape
from pathlib import Path

from protoconform.conformance.reports import CaseResult, Report

STYLE = """
:root { --pass:#1a7f37; --fail:#cf222e; --known:#9a6700; --skip:#6e7781; --na:#d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328;
       background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 16px 24px; }
header h1 { margin: 0 0 4px; font-size: 20px; }
header .meta { color: #d0d7de; font-size: 13px; }
main { padding: 16px 24px 48px; }
section { margin-top: 24px; }
h2 { font-size: 17px; margin: 0 0 8px; }
.scores { display: flex; gap: 16px; flex-wrap: wrap; }
.score { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 12px 16px;
         min-width: 220px; }
.score .family { font-weight: 600; text-transform: uppercase; letter-spacing: .04em; font-size: 12px;
                 color: #57606a; }
.score .value { font-size: 34px; font-weight: 700; }
.score.good .value { color: var(--pass); } .score.bad .value { color: var(--fail); }
.score .counts, .score .coverage { font-size: 12px; color: #57606a; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
         color: #fff; }
.badge.passed { background: var(--pass); } .badge.failed { background: var(--fail); }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eaeef2; font-weight: 600; }
td.cell { text-align: center; white-space: nowrap; font-size: 12px; }
td.passed { background: #dafbe1; color: var(--pass); }
td.failed { background: #ffebe9; color: var(--fail); font-weight: 700; }
td.known { background: #fff8c5; color: var(--known); }
td.skipped { background: #f6f8fa; color: var(--skip); }
td.na { background: #fff; color: var(--na); }
tr.service th { background: #f6f8fa; font-family: ui-monospace, monospace; }
td.method { font-family: ui-monospace, monospace; }
table.failures, table.known { table-layout: fixed; }
table.failures td, table.known td { overflow-wrap: break-word; }
col.rule { width: 20%; } col.method { width: 14%; } col.suite { width: 8%; }
col.expected { width: 13%; } col.actual { width: 13%; } col.details { width: 32%; }
tr.failure td { background: #fff5f5; }
td.rule code { font-family: ui-monospace, monospace; font-weight: 600; }
tr.failure td.rule code { color: var(--fail); }
tr.known td.rule code { color: var(--known); }
td.rule .description { margin-top: 4px; }
table.failures td.method, table.known td.method { font-size: 13px; }
td.rule .spec { font-family: ui-monospace, monospace; font-size: 12px; color: #57606a; }
.label { font-size: 12px; color: #57606a; margin-top: 4px; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: 6px 8px; margin: 4px 0; white-space: pre-wrap;
      overflow-wrap: anywhere; font-size: 12px; }
details summary { cursor: pointer; color: #0969da; }
.empty { color: #57606a; font-style: italic; }
.legend span { margin-right: 12px; }
"""

LABEL = {"passed": "✓", "failed": "✗", "known": "≈", "skipped": "○"}


def _cell(cell: dict[str, int] | None) -> str:
    state = Report.cell_state(cell)
    if state == "n.a.":
        return '<td class="cell na">n.a.</td>'
    parts = [f"{LABEL[o]}{n}" for o, n in sorted((cell or {}).items(), key=lambda kv: kv[0]) if n]
    title = ", ".join(f"{n} {o}" for o, n in (cell or {}).items())
    return f'<td class="cell {state}" title="{escape(title)}">{escape(" ".join(parts))}</td>'


def _scores(report: Report) -> str:
    cards = []
    for family, row in report.scores().items():
        score = row["score"]
        value = "&ndash;" if score is None else f"{score:.1f}%"
        mood = "good" if row["failed"] == 0 else "bad"
        cards.append(
            f'<div class="score {mood}" id="score-{escape(family)}">'
            f'<div class="family">{escape(family)}</div>'
            f'<div class="value">{value}</div>'
            f'<div class="counts">{row["passed"]} passed · {row["failed"]} failed · {row["known"]} known · '
            f"{row['skipped']} skipped</div>{_coverage(report, family)}</div>"
        )
    return '<div class="scores">' + "".join(cards) + "</div>"


def _coverage(report: Report, family: str) -> str:
    covered = report.coverage().get(family)
    if covered is None:
        return ""
    apart = [
        f"{covered[key]} {label}"
        for key, label in (("not_checkable", "not checkable"), ("not_applicable", "not applicable"))
        if covered[key]
    ]
    gate = ""
    if report.min_coverage is not None:
        below = family in report.below_min_coverage()
        gate = f" · {'below' if below else 'meets'} --min-coverage {report.min_coverage:g}%"
    return (
        f'<div class="coverage">rules checked {covered["checked"]}/{covered["checkable"]} '
        f"({covered['percent']:.1f}%){''.join(' · ' + a for a in apart)}{escape(gate)}</div>"
    )


def _matrix(report: Report) -> str:
    out = []
    suites = report.suites
    for family, services in report.matrix().items():
        out.append(f"<h3>{escape(family)}</h3>")
        out.append('<table class="matrix"><thead><tr><th>method</th>')
        out += [f"<th>{escape(s)}</th>" for s in suites]
        out.append("</tr></thead><tbody>")
        for service, methods in sorted(services.items()):
            out.append(f'<tr class="service"><th colspan="{len(suites) + 1}">{escape(service)}</th></tr>')
            for method, cells in methods.items():
                out.append(f'<tr><td class="method">{escape(method)}</td>')
                out += [_cell(cells.get(s)) for s in suites]
                out.append("</tr>")
        out.append("</tbody></table>")
    return "".join(out)


def _reproducer(result: CaseResult) -> str:
    rep = result.reproducer
    if not rep:
        return ""
    return (
        "<details><summary>reproducer</summary>"
        f"<div>request to <code>{escape(rep.get('method', ''))}</code>:</div>"
        f"<pre>{escape(rep.get('request', ''))}</pre>"
        f"<pre>{escape(rep.get('command', ''))}</pre></details>"
    )


def _dotted(name: str) -> str:
    """A dotted name that may wrap after its dots (and its slashes) rather than inside a word."""
    return escape(name).replace(".", ".<wbr>").replace("/", "/<wbr>")


def _rule_cell(r: CaseResult) -> str:
    if not r.rule:
        return f"<code>(suite {escape(r.suite)})</code>"
    description = f'<div class="description">{escape(r.description)}</div>' if r.description else ""
    spec = f'<div class="spec">{_dotted(r.spec_location)}</div>' if r.spec_location else ""
    return f"<code>{_dotted(r.rule)}</code>{description}{spec}"


def _details_cell(r: CaseResult) -> str:
    parts = []
    if r.outcome == "known":
        parts.append(f"<div><em>baseline: {escape(r.reason)}</em></div>")
    if r.detail:
        parts.append(f"<div>{escape(r.detail)}</div>")
    if r.hypothesis_example:
        parts.append(f'<div class="label">falsifying example</div><pre>{escape(r.hypothesis_example)}</pre>')
    if r.details:
        parts.append(f'<div class="label">traceback</div><pre>{escape(r.details)}</pre>')
    parts.append(_reproducer(r))
    return "".join(parts)


TABLE_HEAD = (
    '<colgroup><col class="rule"><col class="method"><col class="suite"><col class="expected">'
    '<col class="actual"><col class="details"></colgroup>'
    "<thead><tr><th>rule</th><th>method</th><th>suite</th><th>expected</th><th>got</th>"
    "<th>details</th></tr></thead>"
)


def _failure_rows(results: list[CaseResult], css: str) -> str:
    return "".join(
        f'<tr class="{css}"><td class="rule">{_rule_cell(r)}</td>'
        f'<td class="method">{_dotted(r.short_method)}</td><td class="suite">{escape(r.suite)}</td>'
        f'<td class="expected">{escape(r.expected)}</td><td class="actual">{escape(r.actual)}</td>'
        f'<td class="details">{_details_cell(r)}</td></tr>'
        for r in results
    )


def _failures(report: Report) -> str:
    failed = [r for r in report.results if r.outcome == "failed"]
    if not failed:
        return '<p class="empty">No failures.</p>'
    return f'<table class="failures">{TABLE_HEAD}<tbody>{_failure_rows(failed, "failure")}</tbody></table>'


def _known(report: Report) -> str:
    known = [r for r in report.results if r.outcome == "known"]
    stale = report.stale_baseline
    out = []
    if known:
        out.append(f'<table class="known">{TABLE_HEAD}<tbody>{_failure_rows(known, "known")}</tbody></table>')
    if stale:
        items = "".join(
            f"<li><code>{escape(s['rule'])}</code> {escape(s.get('method', ''))}: {escape(s['reason'])}</li>"
            for s in stale
        )
        out.append(f"<p>Baseline entries that matched no failure (can be removed):</p><ul>{items}</ul>")
    return "".join(out) or '<p class="empty">None.</p>'


def _uncovered(report: Report) -> str:
    parts = []
    for family, ids in report.uncovered_rules().items():
        if ids:
            items = ", ".join(f"<code>{escape(i)}</code>" for i in ids)
            parts.append(f"<p><strong>{escape(family)}</strong> ({len(ids)}): {items}</p>")
    return "".join(parts) or '<p class="empty">Every rule of the selected families was checked.</p>'


def _apart(rules: dict[str, dict[str, str]], empty: str) -> str:
    rows = "".join(
        f"<tr><td>{escape(family)}</td><td><code>{escape(rule)}</code></td><td>{escape(why)}</td></tr>"
        for family, found in rules.items()
        for rule, why in sorted(found.items())
    )
    if not rows:
        return f'<p class="empty">{empty}</p>'
    head = "<thead><tr><th>family</th><th>rule</th><th>why</th></tr></thead>"
    return f"<table>{head}<tbody>{rows}</tbody></table>"


def _skipped(report: Report) -> str:
    reasons: dict[str, int] = {}
    for r in report.results:
        if r.outcome == "skipped":
            reasons[r.reason or "skipped"] = reasons.get(r.reason or "skipped", 0) + 1
    if not reasons:
        return '<p class="empty">None.</p>'
    rows = "".join(f"<tr><td>{n}</td><td>{escape(reason)}</td></tr>" for reason, n in sorted(reasons.items()))
    return f"<table><thead><tr><th>cases</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>"


def render(report: Report) -> str:
    totals = report.counts()
    status = "passed" if report.exit_status == 0 else "failed"
    when = datetime.datetime.fromtimestamp(report.started, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    flags = [f for f, on in (("read-only", report.read_only), ("lenient", report.lenient)) if on]
    target = report.target.get("address", "")
    meta = (
        f"target <code>{escape(target)}</code> · families {escape(', '.join(report.families))} · "
        f"suites {escape(', '.join(report.suites))} · seed {report.seed} · "
        f"max examples {report.max_examples} · "
        f"{escape(when)} · {report.elapsed:.1f} s" + (f" · {escape(', '.join(flags))}" if flags else "")
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>protoconform report: {escape(target)}</title>
<style>{STYLE}</style></head>
<body>
<header><h1>protoconform conformance report <span class="badge {status}">{status}</span></h1>
<div class="meta">{meta}</div></header>
<main>
<section id="scores"><h2>Score per API family</h2>{_scores(report)}
<p>{totals["passed"]} passed, {totals["failed"]} failed, {totals["known"]} known deviations,
{totals["skipped"]} skipped.</p></section>
<section id="failures"><h2>Failures</h2>{_failures(report)}</section>
<section id="matrix"><h2>Matrix: service &times; method &times; suite</h2>
<p class="legend"><span>✓ passed</span><span>✗ failed</span><span>≈ known (baseline)</span>
<span>○ skipped</span><span>n.a. no case</span></p>{_matrix(report)}</section>
<section id="known"><h2>Known deviations (baseline)</h2>{_known(report)}</section>
<section id="uncovered"><h2>Rules no case checked</h2>{_uncovered(report)}</section>
<section id="not-applicable"><h2>Rules not applicable to this target</h2>
{_apart(report.not_applicable, "None: the target serves every service the rules are about.")}</section>
<section id="not-checkable"><h2>Rules no client can check over the wire</h2>
{_apart(report.not_checkable, "None.")}</section>
<section id="skipped"><h2>Skipped cases</h2>{_skipped(report)}</section>
</main></body></html>
"""


def write_html(report: Report, path: str | Path) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(report), encoding="utf-8")
