"""The inventory extractor (one parser per seed format), the committed inventory
and the drift report against the descriptors the server is built from."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path

import pytest
from protoconform import specs
from protoconform.specs import drift, extract

# -- samples of the three seed formats -------------------------------------------

RST_SAMPLE = """\
######################
Protocol Documentation
######################

.. _ref_acme/v1/shop.proto:

acme/v1/shop.proto
==================================================================

.. _ref_acme.v1.Order:

Order
------------------------------------------------------------------

An order.

.. csv-table:: Order type fields
   :header: "Field", "Type", "Label", "Description"
   :widths: auto

   "id", ":ref:`ref_string`", "", "Unique id."
   "lines", ":ref:`ref_acme.v1.Order.Line`", "repeated", "See :ref:`ref_acme.v1.Order.Line` for details."
   "state", ":ref:`ref_acme.v1.State`", "", ""

.. _ref_acme.v1.Order.Line:

Order.Line
------------------------------------------------------------------

.. csv-table:: Order.Line type fields
   :header: "Field", "Type", "Label", "Description"
   :widths: auto

   "sku", ":ref:`ref_string`", "", ""

.. _ref_acme.v1.Ping:

Ping
------------------------------------------------------------------

..
   end messages

.. _ref_acme.v1.State:

State
------------------------------------------------------------------

.. csv-table:: Enum State values
   :header: "Name", "Number", "Description"
   :widths: auto

   "OPEN", "0", ""
   "CLOSED", "3", "No more changes."

..
   end enums

..
   end HasExtensions

.. _ref_acme.v1.Shop:

Shop
------------------------------------------------------------------

.. csv-table:: Shop service methods
   :header: "Method Name", "Request Type", "Response Type", "Description"
   :widths: auto

   "Get", ":ref:`ref_acme.v1.Ping`", ":ref:`ref_acme.v1.Order`", "Fetches an :ref:`ref_acme.v1.Order`.

Second paragraph, with option = { description: "quoted, unescaped" };"
   "Watch", ":ref:`ref_acme.v1.Ping` stream", ":ref:`ref_acme.v1.Order` stream", "Both ways."

..
   end services
"""

PROTO_SAMPLE = (
    '// Copyright notice // more notice syntax = "proto3"; package shop; '
    'import "google/protobuf/empty.proto"; option go_package = "x/y"; '
    "option (some.ext) = { a: { b: 1 } // inner comment\n }; "
    "service Shop { // Gets one. The order. rpc Get(GetRequest) returns (Order) "
    '{ option (google.api.http) = { get: "/v1/{id}" }; } '
    "rpc Watch(stream GetRequest) returns (stream google.protobuf.Empty); } "
    "message GetRequest { // The id of the order. string id = 1; } "
    "message Order { // Output. Unique id. string id = 1; enum State { // Default value if not present. "
    "UNSPECIFIED = 0; // Open for changes. OPEN = 1; } State state = 4; repeated Line lines = 2; "
    "message Line { string sku = 1; } oneof price { // In cents. int64 cents = 3; } "
    "map<string, string> labels = 5; reserved 6, 7; Customer customer = 8; } "
    "// Next field number of Order will be 9"
)

CELLS_SAMPLE = """\
V1

things_common.proto

Messages about things.

Thing

A thing.
Used everywhere.

Field

Type

Label

Description

id

string

The thing ID.

tags

string

repeated

sort

Thing.Sort

The sort.

Must be set for every request. | | with_extras | bool | | Return extras too |

Thing.Sort

Field

Type

Label

Description

direction

armonik.api.grpc.v1.sort_direction.SortDirection

status

task_status.TaskStatus

The status.

Empty

Blob

Field

Type

Label

Description

ok

Empty

chunk

bytes

A chunk of data. |

Mode

Name

Number

Description

MODE_IS

0

Is

MODE_NOT

1

Not equal

Top

things_service.proto

Things

Service for things.

Method Name

Request Type

Response Type

Description

GetThing

Thing

Blob

Get one thing.

Upload

Blob stream

.armonik.api.grpc.v1.Empty

Watch

stream Thing

Thing stream

Streams things both ways.

Top

Scalar Value Types

.proto Type

Notes
"""

HTML_CELLS_SAMPLE = """\
Protocol Documentation#

acme/v1/shop.proto#

Ping#

Shop#

A shop.

Shop service methods#

Method Name

Request Type

Response Type

Description

Get

Ping

Order

Fetches an Order.

Extra

Ping

Ping
"""


# -- format parsers ------------------------------------------------------------------


def test_format_and_family_detection() -> None:
    assert extract.detect_format(RST_SAMPLE) == "rst"
    assert extract.detect_format(PROTO_SAMPLE) == "proto"
    assert extract.detect_format(CELLS_SAMPLE) == "cells"
    assert extract.detect_family("see flyteidl.admin.Task") == "flyte"
    assert extract.detect_family(CELLS_SAMPLE) == "armonik"
    assert extract.detect_family(PROTO_SAMPLE.replace("package shop", "package api")) == "kfp"
    with pytest.raises(ValueError):
        extract.detect_family("nothing recognisable")


def test_rst_parser_reads_messages_enums_and_services() -> None:
    doc = extract.parse_rst(RST_SAMPLE, "s.rst")
    messages = {m.name: m for m in doc.messages}
    assert list(messages) == ["acme.v1.Order", "acme.v1.Order.Line", "acme.v1.Ping"]
    order = messages["acme.v1.Order"]
    assert [(f.name, f.type, f.label) for f in order.fields] == [
        ("id", "string", ""),
        ("lines", "acme.v1.Order.Line", "repeated"),
        ("state", "acme.v1.State", ""),
    ]
    assert order.fields[1].description == "See acme.v1.Order.Line for details."
    assert messages["acme.v1.Ping"].fields == []
    (state,) = doc.enums
    assert (state.name, [(v.name, v.number) for v in state.values]) == (
        "acme.v1.State",
        [("OPEN", 0), ("CLOSED", 3)],
    )
    (shop,) = doc.services
    get, watch = shop.methods
    assert (get.request, get.response, get.client_streaming, get.server_streaming) == (
        "acme.v1.Ping",
        "acme.v1.Order",
        False,
        False,
    )
    # A cell spanning lines with unescaped quotes stays one description.
    assert get.description.startswith("Fetches an acme.v1.Order. Second paragraph")
    assert get.description.endswith('{ description: "quoted, unescaped" };')
    assert (watch.client_streaming, watch.server_streaming) == (True, True)


def test_proto_parser_reads_a_flattened_file() -> None:
    doc = extract.parse_proto(PROTO_SAMPLE, "s.proto")
    (shop,) = doc.services
    assert shop.name == "shop.Shop"
    get, watch = shop.methods
    assert (get.name, get.request, get.response, get.description) == (
        "Get",
        "GetRequest",
        "Order",
        "Gets one. The order.",
    )
    assert (watch.request, watch.response, watch.client_streaming, watch.server_streaming) == (
        "GetRequest",
        "google.protobuf.Empty",
        True,
        True,
    )
    messages = {m.name: m for m in doc.messages}
    assert list(messages) == ["shop.GetRequest", "shop.Order", "shop.Order.Line"]
    assert messages["shop.GetRequest"].fields[0].description == "The id of the order."
    order = messages["shop.Order"]
    assert [(f.name, f.type, f.label, f.number) for f in order.fields] == [
        ("id", "string", "", 1),
        ("state", "State", "", 4),
        ("lines", "Line", "repeated", 2),
        ("cents", "int64", "", 3),
        ("labels", "map<string,string>", "map", 5),
        ("customer", "Customer", "", 8),
    ]
    assert order.fields[0].description == "Output. Unique id."
    (state,) = doc.enums
    # comment words right before a value are not read as a field type
    assert [(v.name, v.number, v.description) for v in state.values] == [
        ("UNSPECIFIED", 0, "Default value if not present."),
        ("OPEN", 1, "Open for changes."),
    ]
    assert doc.notes == []


def test_cells_parser_infers_dropped_cells() -> None:
    packages = {
        "things_common.proto": "armonik.api.grpc.v1.things",
        "things_service.proto": "armonik.api.grpc.v1.things",
    }
    doc = extract.parse_cells(CELLS_SAMPLE, "s.txt", packages.__getitem__)
    messages = {m.name.rpartition("things.")[2]: m for m in doc.messages}
    assert list(messages) == ["Thing", "Thing.Sort", "Empty", "Blob"]
    assert [(f.name, f.type, f.label, f.description) for f in messages["Thing"].fields] == [
        ("id", "string", "", "The thing ID."),
        ("tags", "string", "repeated", ""),
        ("sort", "Thing.Sort", "", "The sort. Must be set for every request."),
        ("with_extras", "bool", "", "Return extras too"),  # a row run into the previous description
    ]
    assert [(f.name, f.type) for f in messages["Thing.Sort"].fields] == [
        ("direction", "armonik.api.grpc.v1.sort_direction.SortDirection"),
        ("status", "task_status.TaskStatus"),
    ]
    assert messages["Empty"].fields == []  # no table, but used as a type: a declaration
    assert [(f.name, f.description) for f in messages["Blob"].fields] == [
        ("ok", ""),
        ("chunk", "A chunk of data."),
    ]
    (mode,) = doc.enums
    # "Is" is never used as a type: a one-word description, not an empty message
    assert [(v.name, v.number, v.description) for v in mode.values] == [
        ("MODE_IS", 0, "Is"),
        ("MODE_NOT", 1, "Not equal"),
    ]
    (things,) = doc.services
    assert things.name == "armonik.api.grpc.v1.things.Things"
    assert [
        (m.name, m.request, m.response, m.client_streaming, m.server_streaming, m.description)
        for m in things.methods
    ] == [
        ("GetThing", "Thing", "Blob", False, False, "Get one thing."),
        ("Upload", "Blob", ".armonik.api.grpc.v1.Empty", True, False, ""),
        ("Watch", "Thing", "Thing", True, True, "Streams things both ways."),
    ]
    assert any("with_extras recovered" in note for note in doc.notes)


def test_cells_parser_reads_html_headings_and_captions() -> None:
    doc = extract.parse_cells(HTML_CELLS_SAMPLE, "h.txt", extract.flyte_package)
    assert [m.name for m in doc.messages] == ["acme.v1.Ping"]
    (shop,) = doc.services
    assert shop.name == "acme.v1.Shop"
    assert [(m.name, m.request, m.response, m.description) for m in shop.methods] == [
        ("Get", "Ping", "Order", "Fetches an Order."),
        ("Extra", "Ping", "Ping", ""),
    ]


def test_armonik_packages_follow_the_wheel() -> None:
    packages = extract.armonik_package_map()
    assert packages["sessions_service.proto"] == "armonik.api.grpc.v1.sessions"
    assert packages["objects.proto"] == "armonik.api.grpc.v1"  # the naming convention alone would miss this
    assert extract.armonik_package_by_convention("task_status.proto") == "armonik.api.grpc.v1.task_status"


# -- normalisation -------------------------------------------------------------------


def test_normalise_merges_documents_and_resolves_names() -> None:
    rst = extract.parse_rst(RST_SAMPLE, "000_a.txt")
    html = extract.parse_cells(HTML_CELLS_SAMPLE, "001_b.txt", extract.flyte_package)
    extract.FAMILY_PREFIXES["acme"] = ("acme.",)
    try:
        inventory = extract.normalise("acme", [rst, html])
    finally:
        del extract.FAMILY_PREFIXES["acme"]
    assert inventory["sources"] == ["000_a.txt", "001_b.txt"]
    (shop,) = inventory["services"]
    # the short names of the second document agree with the first; its extra method is kept
    assert [(m["name"], m["request"], m["response"]) for m in shop["methods"]] == [
        ("Get", "acme.v1.Ping", "acme.v1.Order"),
        ("Watch", "acme.v1.Ping", "acme.v1.Order"),
        ("Extra", "acme.v1.Ping", "acme.v1.Ping"),
    ]
    assert any("Extra documented only here" in note for note in inventory["notes"])
    assert any("001_b.txt: lacks 1" in note and "Shop.Watch" in note for note in inventory["notes"])


def test_normalise_reports_conflicts_and_unresolved_names() -> None:
    first = extract.Doc("a", services=[extract.DocService("x.S", [extract.DocMethod("M", "x.A", "x.B")])])
    second = extract.Doc("b", services=[extract.DocService("x.S", [extract.DocMethod("M", "C", "B", True)])])
    first.messages = [extract.DocMessage("x.A", [extract.DocField("f", "Missing")])]
    extract.FAMILY_PREFIXES["x"] = ("x.",)
    try:
        inventory = extract.normalise("x", [first, second])
    finally:
        del extract.FAMILY_PREFIXES["x"]
    notes = "\n".join(inventory["notes"])
    assert "b: x.S.M: request 'C' conflicts with 'x.A' (kept)" in notes
    assert "b: x.S.M: client_streaming True conflicts with False (kept)" in notes
    assert "x.A.f: type 'Missing' is not declared in the documents; assumed x.Missing" in notes
    assert inventory["services"][0]["methods"][0]["response"] == "x.B"


def test_resolver_follows_protobuf_scoping() -> None:
    resolve = extract.TypeResolver(
        ["a.b.Outer", "a.b.Outer.Inner", "a.b.Inner", "a.task_status.TaskStatus", "a.b.Other"]
    )
    assert resolve("Inner", "a.b.Outer", "w") == "a.b.Outer.Inner"  # innermost scope wins
    assert resolve("Inner", "a.b.Other", "w") == "a.b.Inner"
    assert resolve("task_status.TaskStatus", "a.b.Outer", "w") == "a.task_status.TaskStatus"
    assert resolve(".a.b.Other", "z", "w") == "a.b.Other"
    assert resolve("google.protobuf.Timestamp", "a.b.Outer", "w") == "google.protobuf.Timestamp"
    assert resolve("int64", "a.b.Outer", "w") == "int64"
    assert resolve("map<string,Inner>", "a.b.Outer", "w") == "map<string,a.b.Outer.Inner>"
    assert resolve.notes == []


def test_extract_command_is_deterministic(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "000_shop.txt").write_text(PROTO_SAMPLE.replace("package shop", "package api"), encoding="utf-8")
    outputs = []
    for run in ("one", "two"):
        assert extract.main(["--seeds", str(seeds), "--out", str(tmp_path / run), "--quiet"]) == 0
        outputs.append((tmp_path / run / "kfp.json").read_bytes())
    assert outputs[0] == outputs[1]
    inventory = json.loads(outputs[0])
    assert inventory["family"] == "kfp" and inventory["sources"] == ["000_shop.txt"]
    assert [s["name"] for s in inventory["services"]] == ["api.Shop"]
    assert (
        "api.Order.customer: type 'Customer' is not declared in the documents; assumed api.Customer"
        in inventory["notes"]
    )


# -- the committed inventory ---------------------------------------------------------

EXPECTED = {"flyte": (9, 72), "kfp": (1, 10), "armonik": (12, 61)}


@pytest.mark.parametrize("family", specs.FAMILIES)
def test_committed_inventory_counts(family: str) -> None:
    inventory = specs.load_inventory(family)
    assert inventory["family"] == family
    services = inventory["services"]
    assert (len(services), sum(len(s["methods"]) for s in services)) == EXPECTED[family]
    assert [s["name"] for s in services] == sorted(s["name"] for s in services)
    for message in inventory["messages"]:
        for field in message["fields"]:
            assert field["type"] in extract.SCALARS or "." in field["type"], (message["name"], field)


def test_committed_inventory_totals_and_method_list() -> None:
    methods = specs.documented_methods()
    assert len(methods) == 143 and len(set(methods)) == 143
    assert len({service for service, _ in methods}) == 22
    assert ("flyteidl.service.CacheService", "EvictTaskExecutionCache") in methods
    assert specs.documented_methods("kfp")[0] == ("api.RunService", "CreateRun")


def test_committed_inventory_is_in_canonical_form() -> None:
    for family in specs.FAMILIES:
        text = (
            resources.files("protoconform.specs").joinpath("inventory", f"{family}.json").read_text("utf-8")
        )
        assert extract.dumps(json.loads(text)) == text, family


def test_load_inventory_returns_a_fresh_copy() -> None:
    first = specs.load_inventory("kfp")
    first["services"].clear()
    assert specs.load_inventory("kfp")["services"]
    with pytest.raises(KeyError):
        specs.load_inventory("nope")


# -- drift ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def descriptors() -> drift.Descriptors:
    return drift.load_descriptors()


def test_drift_matches_the_known_list_exactly(descriptors: drift.Descriptors) -> None:
    assert descriptors.notes == []  # the registry and our own protos loaded
    found = drift.drift(descriptors=descriptors)
    new, stale = drift.check(found, drift.load_known())
    assert [str(d) for d in new] == []
    assert stale == []


def test_every_known_difference_has_a_reason() -> None:
    for entry in drift.load_known():
        assert entry["reason"].strip() and not entry["reason"].startswith("UNREVIEWED"), entry


def test_drift_detects_every_kind(descriptors: drift.Descriptors) -> None:
    inventory = copy.deepcopy(specs.load_inventory("kfp"))
    service = inventory["services"][0]
    get_run = next(m for m in service["methods"] if m["name"] == "GetRun")
    get_run["request"] = "api.CreateRunRequest"
    get_run["server_streaming"] = True
    service["methods"] = [m for m in service["methods"] if m["name"] != "RetryRun"]
    service["methods"].append(dict(get_run, name="Bogus"))
    inventory["services"].append({"name": "api.NoSuchService", "methods": []})
    messages = {m["name"]: m for m in inventory["messages"]}
    run = messages["api.Run"]["fields"]
    run[0]["type"] = "int64"
    run[1]["label"] = "repeated"
    run[2]["number"] = 99
    messages["api.Run"]["fields"] = [f for f in run if f["name"] != "error"] + [dict(run[0], name="ghost")]
    inventory["messages"].append({"name": "api.NoSuchMessage", "fields": []})
    enum = next(e for e in inventory["enums"] if e["name"] == "api.Run.StorageState")
    enum["values"][0]["number"] = 7
    enum["values"] = [*enum["values"][:1], {"name": "STORAGESTATE_GONE", "number": 2, "description": ""}]
    inventory["enums"].append({"name": "api.NoSuchEnum", "values": []})

    found = {(d.kind, d.subject) for d in drift.compare(inventory, descriptors)}
    assert found == {
        ("request-type-mismatch", "api.RunService.GetRun"),
        ("streaming-mismatch", "api.RunService.GetRun"),
        ("undocumented-method", "api.RunService.RetryRun"),
        ("missing-method", "api.RunService.Bogus"),
        ("missing-service", "api.NoSuchService"),
        ("field-type-mismatch", "api.Run.id"),
        ("field-label-mismatch", "api.Run.name"),
        ("field-number-mismatch", "api.Run.storage_state"),
        ("undocumented-field", "api.Run.error"),
        ("missing-field", "api.Run.ghost"),
        ("missing-message", "api.NoSuchMessage"),
        ("enum-value-number-mismatch", "api.Run.StorageState.STORAGESTATE_AVAILABLE"),
        ("undocumented-enum-value", "api.Run.StorageState.STORAGESTATE_ARCHIVED"),
        ("missing-enum-value", "api.Run.StorageState.STORAGESTATE_GONE"),
        ("missing-enum", "api.NoSuchEnum"),
    }


def test_drift_lists_undocumented_services(descriptors: drift.Descriptors) -> None:
    found = drift.compare(specs.load_inventory("flyte"), descriptors)
    assert (
        drift.Difference(
            "flyte",
            "undocumented-service",
            "flyteidl.service.SyncAgentService",
            "flyteidl/service/agent.proto defines 1 method(s)",
        )
        in found
    )


def test_drift_command_fails_on_new_and_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    known = drift.load_known()
    flyte_known = [entry for entry in known if entry["family"] == "flyte"]
    assert flyte_known, "the flyte docs are older than the wheel"
    stale_entry = dict(flyte_known[0], subject="flyteidl.service.Gone")
    path = tmp_path / "known.json"

    path.write_text(drift.dumps_known(known), encoding="utf-8")
    assert drift.main(["--known", str(path)]) == 0

    path.write_text(drift.dumps_known([*known, stale_entry]), encoding="utf-8")
    assert drift.main(["--known", str(path)]) == 1
    assert "STALE  flyte" in capsys.readouterr().out

    path.write_text(drift.dumps_known(known[1:]), encoding="utf-8")
    assert drift.main(["--known", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(d["kind"], d["subject"]) for d in report["new"]] == [(known[0]["kind"], known[0]["subject"])]

    assert drift.main(["--known", str(path), "--update"]) == 0
    rewritten = drift.load_known(path)
    assert [drift._key(e) for e in rewritten] == [drift._key(e) for e in known]
    assert rewritten[0]["reason"] == drift.UNREVIEWED and rewritten[1:] == known[1:]
