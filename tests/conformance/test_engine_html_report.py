"""The HTML report renders in headless Chromium: the score and a failure row are on screen, and the
failures' details column stays whole and on screen at a 1280 px wide viewport.

A defect mode makes the run fail, so the report has a failure row; a report written from
results with long unbroken values (tokens, ids, JSON) is the worst case for the layout.
Chromium (Debian package ``chromium``; .ci/tools installs it) opens the file; through the
DevTools protocol the test takes a screenshot and asks the rendered page where the score
card and the first failure row are, whether they are what is actually painted at their
centre, and, with every collapsed part opened, where each failure's last cell (details) lies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from engine_support import Engine, engine_server, run_check  # noqa: F401
from protoconform.conformance.html import write_html
from protoconform.conformance.reports import CaseResult, Report
from tooling import require_tool

WIDTH = 1280  # a laptop's viewport

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

DEFECT = "kfp.get-run-wrong-status-for-missing"
RULE = "kfp.runs.get.not-found"  # the rule the defect breaks

VISIBLE = """
(() => {
  const RULE = "__RULE__";
  const seen = (el) => {
    if (!el) return null;
    el.scrollIntoView({block: "center"});
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    const x = r.left + Math.min(r.width / 2, 40), y = r.top + r.height / 2;
    const hit = document.elementFromPoint(x, y);
    return {
      text: el.innerText,
      width: r.width, height: r.height,
      inViewport: r.top >= 0 && r.bottom <= innerHeight && r.width > 0 && r.height > 0,
      painted: style.visibility === "visible" && style.display !== "none" && !!hit && el.contains(hit),
    };
  };
  window.scrollTo(0, 0);
  const score = seen(document.querySelector("#score-kfp .value"));
  // the failure row of the defect's rule (other rules may fail through it too, e.g. in a then: step)
  const rows = [...document.querySelectorAll("tr.failure")];
  const failure = seen(rows.find((tr) => tr.querySelector("td.rule code").textContent === RULE) || rows[0]);
  return JSON.stringify({score, failure, title: document.title});
})()
""".replace("__RULE__", RULE)

# Every failure row's last cell (details), with every <details> opened: its box in the viewport,
# and whether it or anything in it is wider than the space it is given (clipped or overflowing).
DETAILS_BOX = """
(() => {
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const page = document.documentElement;
  const wide = (el) => el.scrollWidth > el.clientWidth + 1;
  const rows = [...document.querySelectorAll("table.failures tr.failure")].map((tr) => {
    const cell = tr.lastElementChild;
    const r = cell.getBoundingClientRect();
    const inner = [...cell.querySelectorAll("*")].filter((el) => el.clientWidth && wide(el));
    return {left: r.left, right: r.right, width: r.width, overflows: wide(cell),
            innerOverflows: inner.map((el) => el.tagName)};
  });
  const header = document.querySelector("table.failures thead th:last-child");
  return JSON.stringify({viewport: page.clientWidth, pageWidth: page.scrollWidth, rows,
                         header: header ? header.getBoundingClientRect().right : null});
})()
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


async def _devtools(port: int, url: str, screenshot: Path, width: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            pages = [t for t in await response.json() if t["type"] == "page"]
        async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            counter = 0

            async def send(method: str, **params: Any) -> dict[str, Any]:
                nonlocal counter
                counter += 1
                await ws.send_json({"id": counter, "method": method, "params": params})
                while True:
                    message = json.loads((await ws.receive()).data)
                    if message.get("id") == counter:
                        if "error" in message:
                            raise RuntimeError(f"{method}: {message['error']}")
                        return message["result"]

            await send("Page.enable")
            await send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=1000,
                deviceScaleFactor=1,
                mobile=False,
            )
            await send("Page.navigate", url=url)
            for _ in range(100):  # wait until the document is complete
                state = await send("Runtime.evaluate", expression="document.readyState", returnByValue=True)
                if state["result"]["value"] == "complete":
                    break
                await asyncio.sleep(0.05)
            found = await send("Runtime.evaluate", expression=VISIBLE, returnByValue=True)
            result = json.loads(found["result"]["value"])
            boxes = await send("Runtime.evaluate", expression=DETAILS_BOX, returnByValue=True)
            result["details"] = json.loads(boxes["result"]["value"])
            await send(
                "Runtime.evaluate",
                expression="document.querySelector('tr.failure').scrollIntoView({block:'end'})",
            )
            shot = await send("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return result


def render(html: Path, screenshot: Path, profile: Path, width: int = WIDTH) -> dict[str, Any]:
    binary = chromium()
    assert binary is not None
    process = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, "chromium exited early"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        return asyncio.run(_devtools(port, html.resolve().as_uri(), screenshot, width))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def assert_details_visible(seen: dict[str, Any]) -> None:
    """Each failure's details cell lies inside the viewport, is given a fair share of it, and
    nothing in it is cut off; the page itself does not scroll sideways."""
    layout = seen["details"]
    viewport = layout["viewport"]
    assert layout["rows"], layout
    assert layout["pageWidth"] <= viewport, f"the page is wider than the viewport: {layout}"
    assert layout["header"] is not None and layout["header"] <= viewport, layout
    for row in layout["rows"]:
        assert row["left"] >= 0 and row["right"] <= viewport, f"details cell off-screen: {row}"
        assert row["width"] >= 0.25 * viewport, f"details cell squeezed: {row}"
        assert not row["overflows"] and not row["innerOverflows"], f"details clipped: {row}"


@pytest.mark.slow
def test_html_report_shows_score_and_failure(engine_server: Engine, tmp_path: Path) -> None:  # noqa: F811
    require_tool("chromium", "chromium-browser")
    engine_server.control.reset(defects=True)
    html = tmp_path / "report.html"
    with engine_server.control.defect(DEFECT):
        run = run_check(
            ["--api", "kfp", "--suite", "rules", "--html", str(html)], tmp_path, engine=engine_server
        )
    assert run.status == 1, run.stdout[-3000:]
    page = html.read_text()
    # Self-contained: nothing to fetch.
    assert "<script src" not in page and "<link" not in page and "url(" not in page

    shot = tmp_path / "report.png"
    seen = render(html, shot, tmp_path / "profile")
    score, failure = seen["score"], seen["failure"]
    assert score is not None and failure is not None, seen
    assert score["inViewport"] and score["painted"], score
    assert score["text"].endswith("%") and float(score["text"].rstrip("%")) < 100
    assert failure["inViewport"] and failure["painted"], failure
    assert RULE in failure["text"] and "RunService.GetRun" in failure["text"]
    assert "INTERNAL" in failure["text"]
    assert "specs/kfp/runs.yaml:" in failure["text"]  # where the rule is written
    assert_details_visible(seen)

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (WIDTH, 1000)
    assert len(data) > 20_000  # a page with content, not a blank frame
    kept = Path(__file__).resolve().parents[2] / "reports" / "conformance-report-screenshot.png"
    if kept.parent.is_dir():
        kept.write_bytes(data)  # for people to look at after a run


def _long_failures() -> Report:
    """A report whose failures carry the longest unbroken values a run produces."""
    token = "eyJtb2RlbCI6IlJ1biIsInNvcnQiOlsiaWQiLGZhbHNlXSwiZmlsdGVyIjoie1wicHJlZGljYXRlc1wiOi" * 4
    body = json.dumps({"page_token": token, "filter": '{"predicates":[{"key":"name","op":"EQUALS"}]}'})
    report = Report(
        target={"address": "127.0.0.1:50051"},
        families=["kfp"],
        suites=["properties", "rest"],
        seed=0,
        max_examples=25,
        read_only=False,
        lenient=False,
        exit_status=1,
    )
    report.results = [
        CaseResult(
            "properties.py::test_property[kfp:pagination[RunService.ListRuns]]",
            "kfp",
            "api.RunService",
            "ListRuns",
            "properties",
            "kfp.runs.list.pagination-with-a-long-rule-identifier-nobody-would-break",
            "failed",
            line=f"rule kfp.runs.list.pagination on RunService.ListRuns: expected a page token, got {token}",
            expected=f"next_page_token={token[:120]}",
            actual=token,
            detail=f"request {body}",
            hypothesis_example=f"Failing test case: pages(\n    size=1,\n    token={token!r},\n)",
            details=f"Traceback: {token}",
            description="Following next_page_token visits every matching run exactly once, in order.",
            spec={"file": "specs/kfp/list.yaml", "line": 57},
            reproducer={
                "method": "api.RunService.ListRuns",
                "request": body,
                "command": f"buf curl --protocol grpc -d '{body}' http://127.0.0.1:50051/api.RunService/ListRuns",
            },
        ),
        CaseResult(
            "rest.py::test_rest[kfp:schemathesis[kfp]]",
            "kfp",
            "api.RunService",
            "GetRun",
            "rest",
            "",
            "failed",
            expected="GET /apis/v1beta1/runs/{run_id}: a response that keeps the OpenAPI document",
            actual=f"HTTP 500: {body}",
        ),
    ]
    return report


@pytest.mark.slow
def test_details_column_stays_on_screen_with_long_values(tmp_path: Path) -> None:
    require_tool("chromium", "chromium-browser")
    html = tmp_path / "long.html"
    write_html(_long_failures(), html)
    seen = render(html, tmp_path / "long.png", tmp_path / "profile")
    assert seen["failure"] is not None and seen["failure"]["painted"], seen
    assert_details_visible(seen)


def test_baseline_accepts_a_known_deviation(engine_server: Engine, tmp_path: Path) -> None:  # noqa: F811
    """The same failure fails the run without a baseline (exit 1) and passes with it (exit 0)."""
    engine_server.control.reset(defects=True)
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(
        "deviations:\n"
        "  - rule: kfp.runs.get.not-found\n"
        "    method: RunService.GetRun\n"
        "    reason: our server reports storage errors as INTERNAL (ticket 42)\n"
        "  - {rule: kfp.runs.delete.not-found, reason: no longer happens}\n"
    )
    selection = ["--api", "kfp", "--suite", "rules", "--rule", "kfp.runs.get.not-found"]
    with engine_server.control.defect("kfp.get-run-wrong-status-for-missing"):
        failing = run_check(selection, tmp_path, name="without", engine=engine_server)
        accepted = run_check(
            [*selection, "--baseline", str(baseline)], tmp_path, name="with", engine=engine_server
        )
    assert failing.status == 1
    assert any(
        line.startswith("FAIL rule kfp.runs.get.not-found on RunService.GetRun")
        for line in failing.stdout.splitlines()
    )
    assert accepted.status == 0, accepted.stdout[-2000:]
    assert "KNOWN rule kfp.runs.get.not-found on RunService.GetRun" in accepted.stdout
    assert "stale baseline entry: kfp.runs.delete.not-found" in accepted.stdout
    assert accepted.report is not None
    outcomes = {c["outcome"] for c in accepted.report["cases"]}
    assert outcomes == {"known"} and accepted.report["scores"]["kfp"]["score"] == 0.0
