"""The HTML report renders in headless Chromium: the score and a failure row are on screen.

A defect mode makes the run fail, so the report has a failure row.  Chromium
(Debian package ``chromium``; .ci/test installs it) opens the file; through the
DevTools protocol the test takes a screenshot and asks the rendered page where
the score card and the first failure row are, and whether they are what is
actually painted at their centre.
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
from tooling import require_tool

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

VISIBLE = """
(() => {
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
  const failure = seen(document.querySelector("tr.failure"));
  return JSON.stringify({score, failure, title: document.title});
})()
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


async def _devtools(port: int, url: str, screenshot: Path) -> dict[str, Any]:
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
                width=1400,
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
            await send(
                "Runtime.evaluate",
                expression="document.querySelector('tr.failure').scrollIntoView({block:'end'})",
            )
            shot = await send("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return result


def render(html: Path, screenshot: Path, profile: Path) -> dict[str, Any]:
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
        return asyncio.run(_devtools(port, html.resolve().as_uri(), screenshot))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.slow
def test_html_report_shows_score_and_failure(engine_server: Engine, tmp_path: Path) -> None:  # noqa: F811
    require_tool("chromium", "chromium-browser")
    engine_server.control.reset(defects=True)
    html = tmp_path / "report.html"
    with engine_server.control.defect("kfp.get-run-wrong-status-for-missing"):
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
    assert "kfp.runs.get.not-found" in failure["text"] and "RunService.GetRun" in failure["text"]
    assert "INTERNAL" in failure["text"]

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 1000)
    assert len(data) > 20_000  # a page with content, not a blank frame
    kept = Path(__file__).resolve().parents[2] / "reports" / "conformance-report-screenshot.png"
    if kept.parent.is_dir():
        kept.write_bytes(data)  # for people to look at after a run


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
