"""Proof of power: every defect mode of the mock, switched on alone, makes a full default `check`
of its family (every suite, every rule: no narrowing) fail with the rule and method that the
defect's own definition names.

The run stops at its first failing case (``-x``; the cases and their order are the full default
run's): when that failure is the defect's rule on one of its methods, the full run fails with it
too, and the rest of the run is not needed.  When the first failure is another one, the full run
is made and judged as a whole.  The defect modes come from the mock's control API (so a new one
cannot be forgotten); four mocks run the proofs four at a time (a proof spends much of its time
waiting for lifecycles to move, and the longest takes half the run).  The figure "defects caught: N/N"
is printed and must be 100%.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Queue

import pytest
from engine_support import CheckRun, Engine, run_check
from protoconform.conformance.control import ControlClient
from protoconform.mockserver.launcher import ServerProcess

pytestmark = pytest.mark.slow  # a full check per defect mode: the end-to-end tier
AT_ONCE = 4


def family_of(defect: dict) -> str:
    """The family a defect mode lives in: that of the rule that must catch it (rule ids start with
    their family). The other families' checks cannot see it and would only add minutes."""
    from protoconform.specs import FAMILIES

    family = str(defect["rule"]).partition(".")[0]
    assert family in FAMILIES, f"{defect}: rule of no family"
    return family


def test_every_defect_is_caught(tmp_path: Path) -> None:
    with ServerProcess() as first:
        wanted = ControlClient(first.http_url).defect_details()
    catalogue = sorted(wanted)
    assert len(catalogue) >= 12

    servers: Queue[Engine] = Queue()
    processes = [ServerProcess().start() for _ in range(AT_ONCE)]
    for process in processes:
        servers.put(Engine(process, ControlClient(process.http_url)))

    def prove(name: str) -> tuple[str, CheckRun, bool]:
        engine = servers.get()
        try:
            expected = wanted[name]
            methods = set(expected.get("methods") or [])

            def caught(run: CheckRun) -> bool:
                return run.status == 1 and any(
                    rule == expected["rule"] and (not methods or method in methods)
                    for rule, method in run.failed_rules()
                )

            # the default run of the defect's family, as users run it (every suite, every rule)
            args = ["--api", family_of(expected)]
            for stop_early in (True, False):
                engine.control.reset(defects=True)
                engine.control.set_defects([name])
                run = run_check(args, tmp_path, name=name, engine=engine, pytest_args=("-x",) * stop_early)
                engine.control.set_defects([])
                if caught(run) or run.status != 1:
                    break  # judged: its first failure is the defect's, or the run did not fail at all
        finally:
            servers.put(engine)
        return name, run, caught(run)

    try:
        with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
            results = list(pool.map(prove, sorted(catalogue)))
    finally:
        for process in processes:
            process.stop()
    caught = [name for name, _, ok in results if ok]
    print(f"\ndefects caught: {len(caught)}/{len(results)}")
    missed = []
    for name, run, ok in results:
        lines = [line for line in run.stdout.splitlines() if line.startswith("FAIL ")]
        verdict = "caught" if ok else "MISSED"
        print(f"  {verdict} {name} ({run.elapsed:.1f} s): {lines[0] if lines else 'no failure'}")
        if not ok:
            missed.append(
                f"{name} (want {wanted[name]['rule']}): " + ("; ".join(lines[:3]) or run.stdout[-500:])
            )
    assert not missed, "\n".join(missed)
