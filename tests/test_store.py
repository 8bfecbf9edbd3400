"""The durable store: what it writes comes back, in order, and it admits nothing but its own records."""

from __future__ import annotations

import json
import pickle
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from armonik.protogen.common.objects_pb2 import TaskOptions
from protoconform.mockserver.apis.kfp.state import RunRecord
from protoconform.mockserver.launcher import ServerProcess
from protoconform.mockserver.store import FORMAT, SqliteStore, StoreError, open_store
from protoconform.specs.registry import default_registry


def Thing(name: str, options: Any, run: Any = None) -> Any:
    """A record of this project's own (the store admits no other classes), holding a message."""
    return RunRecord(run=run or RUN(id=name), experiment_id=name, workflow={"options": options})


RUN = default_registry().message_class("api.Run")  # a class made from descriptors, not imported


def _open(path: Path) -> SqliteStore:
    store = open_store(f"sqlite:{path}", default_registry().message_class)
    assert isinstance(store, SqliteStore)
    return store


def test_records_come_back_in_first_written_order_with_their_messages(tmp_path: Path) -> None:
    run = RUN(id="r1", name="first run")
    store = _open(tmp_path / "s.db")
    table = store.family("demo").table("things")
    for name in ("a", "b", "c"):
        table.put(name, Thing(name, TaskOptions(priority=3)), scope=("p", "d"))
    store.commit()
    live = Thing("b", TaskOptions(priority=7), run)
    table.put("b", live)  # an update keeps its place
    live.experiment_id = "b2"  # staged records are written as they are at commit
    table.delete("a")
    table.put("a", Thing("a", TaskOptions()))  # deleted then written again: now the last one
    store.family("demo").table("blobs", raw=True).put("k", b"\x00payload")
    store.family("demo").set_meta("next_row", 42)
    store.commit()
    store.close()

    again = _open(tmp_path / "s.db")
    loaded = list(again.family("demo").table("things").load())
    assert [thing.experiment_id for _, thing in loaded] == ["b2", "c", "a"]
    scope, b = loaded[0]
    assert scope is None and b.workflow["options"].priority == 7 and b.run.name == "first run"
    assert isinstance(b.workflow["options"], TaskOptions) and type(b.run) is RUN
    assert loaded[1][0] == ("p", "d")
    assert list(again.family("demo").table("blobs", raw=True).load()) == [(None, b"\x00payload")]
    assert again.family("demo").get_meta("next_row") == 42
    assert list(again.family("other").table("things").load()) == []


def test_a_record_naming_foreign_code_is_refused(tmp_path: Path) -> None:
    store = _open(tmp_path / "s.db")
    store.family("demo").table("things").put("x", Thing("x", None))
    store.commit()
    store.close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("UPDATE demo__things SET value = ?", (pickle.dumps(subprocess.Popen),))
    db.commit()
    db.close()
    with pytest.raises(pickle.UnpicklingError, match=r"subprocess\.Popen"):
        list(_open(tmp_path / "s.db").family("demo").table("things").load())


def test_a_file_of_another_format_is_refused(tmp_path: Path) -> None:
    _open(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("UPDATE meta SET value = ? WHERE name = 'format'", (pickle.dumps("other-format/9"),))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=f"other-format/9, this server writes {FORMAT}"):
        _open(tmp_path / "s.db")


def test_one_server_per_file(tmp_path: Path) -> None:
    first = _open(tmp_path / "s.db")
    with pytest.raises(StoreError, match="in use by another server"):
        _open(tmp_path / "s.db")
    first.close()
    _open(tmp_path / "s.db").close()


def test_serve_refuses_a_bad_store_option_and_a_missing_folder(tmp_path: Path) -> None:
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "protoconform.mockserver", "serve", "--port", "0", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    bad = serve("--store", "postgres://x")
    assert bad.returncode == 2 and "--store: expected memory or sqlite:PATH" in bad.stderr
    missing = serve("--http-port", "0", "--store", f"sqlite:{tmp_path}/nowhere/s.db")
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def test_the_virtual_clock_goes_on_after_a_crash(tmp_path: Path) -> None:
    args = ["--api", "kfp", "--clock-speed", "0", "--store", f"sqlite:{tmp_path}/s.db"]
    with ServerProcess(args) as first:
        before = _post(f"{first.http_url}/control/clock/advance", {"seconds": 3600})
        first.stop(signal.SIGKILL)
    with ServerProcess(args) as second:
        after = _get(f"{second.http_url}/control/clock")
    assert after["elapsed"] >= 3600 and after["now"] == before["now"]
