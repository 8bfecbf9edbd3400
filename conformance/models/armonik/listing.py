"""ArmoniK's list dialect: page-number lists filtered by an OR of ANDs of typed field conditions.

Which fields an entity has and which conditions each field type takes come
from specs/armonik (``fields``, ``filter_types`` and the ``lists:`` contracts);
the dialect builds requests from them and evaluates a filter on an item the way
the filter semantics rule says a server must.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.armonik.populations import POPULATIONS
from protoconform.conformance.models.armonik.requests import TIER_KEY
from protoconform.conformance.models.base import Env
from protoconform.conformance.models.listing import ListDialect, Population, Sort

ORDERED_TYPES = ("string", "number", "date", "status", "boolean", "duration")


@dataclass(frozen=True)
class FieldRef:
    """One filterable/sortable field: the member of the entity's *Field oneof, its enum (or key), its type."""

    member: str
    name: str
    type: str

    def json(self) -> dict[str, Any]:
        return {self.member: {"field": self.name}}

    def __str__(self) -> str:
        return self.name if "generic" not in self.member else f"options[{self.name}]"


def time_value(value: Any) -> tuple[int, int]:
    return (value.seconds, value.nanos)


def rfc3339(value: tuple[int, int]) -> str:
    from google.protobuf import timestamp_pb2

    return timestamp_pb2.Timestamp(seconds=value[0], nanos=value[1]).ToJsonString()


def duration_text(value: tuple[int, int]) -> str:
    from google.protobuf import duration_pb2

    return duration_pb2.Duration(seconds=value[0], nanos=value[1]).ToJsonString()


class ArmonikList(ListDialect):
    """Page-number lists filtered by an OR of ANDs of typed field conditions (specs/armonik lists.yaml)."""

    PAGINATION_RULE = TOTAL_RULE = SORT_RULE = "armonik.lists.pagination"
    FILTER_RULE = CONTAINS_RULE = "armonik.filters.semantics"

    def __init__(self, env: Env, method: str) -> None:
        super().__init__(env, method)
        contract = env.rules.lists[env.full(method)]
        self.entity: str = contract["entity"]
        self.items_field: str = contract["items"]
        self.multi = contract.get("sort") == "multi-field"
        self.fields: dict[str, Any] = env.rules.extra["fields"][self.entity]
        self.types: dict[str, Any] = env.rules.extra["filter_types"]

    # -- fields -------------------------------------------------------------------------
    def refs(self) -> list[FieldRef]:
        found = []
        for member, spec in self.fields.items():
            if isinstance(spec, dict):
                found += [FieldRef(member, name, kind) for name, kind in spec.items()]
            else:
                found.append(FieldRef(member, TIER_KEY, spec))
        return found

    def value(self, item: Any, ref: FieldRef) -> Any:
        if "generic" in ref.member:
            return item.options.options.get(ref.name) if item.HasField("options") else None
        if ref.member == "task_option_field" and not item.HasField("options"):
            return None
        holder = item.options if ref.member == "task_option_field" else item
        attr = ref.name.partition("_ENUM_FIELD_")[2].lower()
        fields = holder.DESCRIPTOR.fields_by_name
        if attr not in fields and attr == f"{self.entity}_id":
            attr = "id"
        if attr not in fields:
            return None
        field = fields[attr]
        value = getattr(holder, attr)
        if field.is_repeated:
            return list(value)
        if field.message_type is not None:
            return time_value(value) if holder.HasField(attr) else None
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, bytes):
            return None  # a bytes field listed as a string: how it compares is not documented
        return value

    def key(self, item: Any) -> str:
        if self.entity == "application":
            return "/".join([item.name, item.version, item.namespace, item.service])
        ident = self.value(item, self.id_ref()) if self.id_ref() else None
        return str(ident)

    def id_ref(self) -> FieldRef | None:
        for ref in self.refs():
            suffix = ref.name.partition("_ENUM_FIELD_")[2]
            if suffix in (f"{self.entity.upper()}_ID", "ID"):
                return ref
        return None

    # -- requests ------------------------------------------------------------------------
    def condition(self, ref: FieldRef, operator: str, value: Any) -> dict[str, Any]:
        kind = self.types[ref.type]
        if ref.type == "date":
            value = rfc3339(value)
        elif ref.type == "duration":
            value = duration_text(value)
        elif ref.type == "boolean":
            value = bool(value)
        return {"field": ref.json(), kind["condition"]: {"value": value, "operator": operator}}

    def page(
        self, population: Population, size: int, cursor: Any, sort: Sort | None, where: Any
    ) -> tuple[Reply, list[Any], Any, int]:
        page = cursor or 0
        scope: list[list[dict[str, Any]]] = population.scope or [[]]
        extra: list[list[dict[str, Any]]] = self.page_where(where) if where else [[]]
        ors = [scoped + wanted for scoped in scope for wanted in extra if scoped + wanted]
        sort = sort or self.stable_sort()
        assert sort is not None
        direction = "SORT_DIRECTION_DESC" if sort.descending else "SORT_DIRECTION_ASC"
        refs = sort.spec if isinstance(sort.spec, list) else [sort.spec]
        sort_json = (
            {"fields": [r.json() for r in refs], "direction": direction}
            if self.multi
            else {"field": refs[0].json(), "direction": direction}
        )
        request = {
            "page": page,
            "page_size": size,
            "filters": {"or": [{"and": conjunction} for conjunction in ors]},
            "sort": sort_json,
        }
        if "with_task_options" in self.request_type().fields_by_name:
            request["with_task_options"] = True  # so items carry the options filters and sorts read
        reply = self.env.rpc(self.METHOD, request)
        if not reply.ok:
            return reply, [], None, -1
        items = list(getattr(reply.response, self.items_field))
        total = reply.response.total
        following = page + 1 if size > 0 and (page + 1) * size < total else None
        return reply, items, following, total

    # -- sorts -----------------------------------------------------------------------------
    def stable_sort(self) -> Sort | None:
        if self.entity == "application":
            refs = [r for r in self.refs() if r.type == "string"]
            return Sort("name, version, namespace, service", refs)
        ref = self.id_ref()
        return Sort(str(ref), ref) if ref else None

    def sorts(self, items: list[Any]) -> list[Sort]:
        found = []
        for ref in self.refs():
            if ref.type not in ORDERED_TYPES or any(self.value(i, ref) is None for i in items):
                continue
            found += [Sort(str(ref), ref, False), Sort(str(ref), ref, True)]
        return found

    def sort_value(self, item: Any, sort: Sort) -> Any:
        refs = sort.spec if isinstance(sort.spec, list) else [sort.spec]
        values = [self.value(item, r) for r in refs]
        return values[0] if len(values) == 1 else tuple(values)

    # -- filters ---------------------------------------------------------------------------
    def filters(self, items: list[Any]) -> st.SearchStrategy[Any]:
        usable = [
            r
            for r in self.refs()
            if r.type in ORDERED_TYPES
            and self.filterable(r)
            and items
            and all(self.value(i, r) is not None for i in items)
        ]
        if not usable:
            return st.just([[]])

        def values_for(ref: FieldRef, operator: str) -> st.SearchStrategy[Any]:
            seen = sorted({self.value(i, ref) for i in items}, key=repr)
            if ref.type == "string":
                pieces = {v[:k] for v in seen for k in (1, 3)} | {v[-3:] for v in seen} | {"zz-none"}
                return st.sampled_from(sorted(set(seen) | pieces))
            if ref.type == "number":
                return st.sampled_from(sorted({v + d for v in seen for d in (-1, 0, 1)}))
            if ref.type == "boolean":
                return st.sampled_from([0, 1])
            if ref.type == "status":
                enum_values = (
                    [v.number for v in self.status_enum(ref).values] if self.status_enum(ref) else []
                )
                return st.sampled_from(sorted(set(seen) | set(enum_values)))
            return st.sampled_from(seen)  # date, duration: values that exist

        def conditions() -> st.SearchStrategy[dict[str, Any]]:
            return st.sampled_from(usable).flatmap(
                lambda ref: st.sampled_from(self.types[ref.type]["operators"]).flatmap(
                    lambda op: values_for(ref, op).map(lambda v: {"ref": ref, "op": op, "value": v})
                )
            )

        conjunction = st.lists(conditions(), min_size=1, max_size=2)
        return st.lists(conjunction, min_size=1, max_size=2).map(
            lambda ors: [
                [self.condition(c["ref"], c["op"], c["value"]) | {"_model": c} for c in conjunction]
                for conjunction in ors
            ]
        )

    def request_type(self) -> Any:
        return self.env.rpc.registry.message_descriptor(self.env.rpc.resolve(self.METHOD).request_type)

    def filter_field(self) -> Any:
        """The descriptor of one condition (FilterField) of this list's filters."""
        filters = self.request_type().fields_by_name["filters"].message_type
        conjunction = filters.fields_by_name["or"].message_type
        return conjunction.fields_by_name["and"].message_type

    def filterable(self, ref: FieldRef) -> bool:
        """Whether this list's FilterField has the condition the ref's type needs (the descriptors decide)."""
        return self.types[ref.type]["condition"] in self.filter_field().fields_by_name

    def status_enum(self, ref: FieldRef) -> Any:
        condition = self.filter_field().fields_by_name[self.types[ref.type]["condition"]]
        return condition.message_type.fields_by_name["value"].enum_type

    def page_where(self, where: Any) -> Any:
        return [[{k: v for k, v in c.items() if k != "_model"} for c in conjunction] for conjunction in where]

    def evaluate(self, where: Any, item: Any) -> bool:
        return any(all(self.holds(c["_model"], item) for c in conjunction) for conjunction in where)

    def holds(self, condition: dict[str, Any], item: Any) -> bool:
        ref, op, wanted = condition["ref"], condition["op"], condition["value"]
        actual = self.value(item, ref)
        verb = op.rpartition("_OPERATOR_")[2]
        if ref.type == "array":
            return (wanted in actual) == (verb == "CONTAINS")
        if actual is None:
            return verb == "NOT_EQUAL"
        text = {
            "EQUAL": actual == wanted,
            "NOT_EQUAL": actual != wanted,
            "IS": actual == wanted,
        }
        if verb in text:
            return bool(text[verb])
        if ref.type == "string":
            return {
                "CONTAINS": wanted in actual,
                "NOT_CONTAINS": wanted not in actual,
                "STARTS_WITH": actual.startswith(wanted),
                "ENDS_WITH": actual.endswith(wanted),
            }[verb]
        order = {
            "LESS_THAN": actual < wanted,
            "LESS_THAN_OR_EQUAL": actual <= wanted,
            "GREATER_THAN_OR_EQUAL": actual >= wanted,
            "GREATER_THAN": actual > wanted,
            "BEFORE": actual < wanted,
            "BEFORE_OR_EQUAL": actual <= wanted,
            "AFTER_OR_EQUAL": actual >= wanted,
            "AFTER": actual > wanted,
            "SHORTER_THAN": actual < wanted,
            "SHORTER_THAN_OR_EQUAL": actual <= wanted,
            "LONGER_THAN_OR_EQUAL": actual >= wanted,
            "LONGER_THAN": actual > wanted,
        }
        return bool(order[verb])

    def describe(self, where: Any) -> str:
        def one(model: dict[str, Any]) -> str:
            return f"{model['ref']} {model['op'].rpartition('_OPERATOR_')[2]} {model['value']!r}"

        return " or ".join(" and ".join(one(c["_model"]) for c in conjunction) for conjunction in where)

    # -- populations ---------------------------------------------------------------------------
    def populate(self) -> Population:
        maker = POPULATIONS.get(self.entity)
        if maker is None:  # what the server has (partitions are configured, not created)
            return Population([], None)
        key = f"armonik.population.{self.entity}"
        if key not in self.env.cache:
            self.env.cache[key] = maker(self.env)
        return self.env.cache[key]


def list_dialects(env: Env) -> list[ListDialect]:
    """A dialect for every list method of specs/armonik that has a contract."""
    found = []
    for method in env.rules.lists:
        service, _, name = method.rpartition(".")
        found.append(ArmonikList(env, f"{service.rpartition('.')[2]}.{name}"))
    return found
