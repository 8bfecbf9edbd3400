"""Dotted field paths over messages: fit a rule's path to a method, read and change values.

A rule names one field path for several methods whose messages differ, e.g.
``result.status`` for ``GetResult`` (``GetResultResponse.result``) and
``ListResults`` (``ListResultsResponse.results``, repeated).  :func:`fit`
finds where the path lands in a given message type: literally when it exists,
otherwise at the field with the same name and the same type (reached through
a field of the same message type when there is a choice).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from google.protobuf import descriptor, message
from protoconform.specs.fieldpath import MISSING, is_map, values_at

FD = descriptor.FieldDescriptor
MAX_DEPTH = 4


class PathError(KeyError):
    pass


def is_repeated(field: FD) -> bool:
    return field.is_repeated and not is_map(field)


def fields_of(desc: descriptor.Descriptor, path: str) -> list[FD] | None:
    """The field descriptors along ``path``, or None when it does not exist in ``desc``."""
    result = []
    current: descriptor.Descriptor | None = desc
    for part in path.split("."):
        if current is None:
            return None
        field = current.fields_by_name.get(part)
        if field is None:
            return None
        result.append(field)
        current = field.message_type if not is_map(field) else None
    return result


def _type_key(field: FD) -> tuple[int, str]:
    nested = field.message_type or field.enum_type
    return field.type, nested.full_name if nested is not None else ""


def _candidates(desc: descriptor.Descriptor, leaf: str) -> list[list[FD]]:
    """Every path (breadth first, bounded depth) in ``desc`` ending at a field named ``leaf``."""
    found: list[list[FD]] = []
    queue: deque[tuple[descriptor.Descriptor, list[FD]]] = deque([(desc, [])])
    while queue:
        current, trail = queue.popleft()
        if len(trail) >= MAX_DEPTH:
            continue
        for field in current.fields:
            if field.name == leaf:
                found.append([*trail, field])
            if field.message_type is not None and not is_map(field):
                above = {desc.full_name} | {f.message_type.full_name for f in trail}
                if field.message_type.full_name not in above:  # no walking round recursive types
                    queue.append((field.message_type, [*trail, field]))
    return found


def fit(path: str, desc: descriptor.Descriptor, reference: list[FD] | None = None) -> str:
    """Where ``path`` lands in ``desc``.

    ``reference`` is the path resolved in a message where it exists literally
    (so the leaf's type and its parent's type are known); without it only the
    leaf name is compared.  Raises :class:`PathError` when nothing fits or the
    choice is ambiguous.
    """
    if fields_of(desc, path) is not None:
        return path
    leaf = path.split(".")[-1]
    options = _candidates(desc, leaf)
    if reference:
        options = [o for o in options if _type_key(o[-1]) == _type_key(reference[-1])]
        if len(options) > 1 and len(reference) > 1:
            parent_type = reference[-2].message_type.full_name if reference[-2].message_type else ""
            same_parent = [o for o in options if len(o) > 1 and o[-2].message_type.full_name == parent_type]
            options = same_parent or options
    if len(options) > 1:
        shortest = min(len(o) for o in options)
        options = [o for o in options if len(o) == shortest]
    if len(options) != 1:
        what = "no field" if not options else "several fields"
        raise PathError(f"{what} of {desc.full_name} fit the path {path!r}")
    return ".".join(f.name for f in options[0])


def reference_for(path: str, descriptors: list[descriptor.Descriptor]) -> list[FD] | None:
    """The path resolved in the first message type where it exists literally."""
    for desc in descriptors:
        fields = fields_of(desc, path)
        if fields is not None:
            return fields
    return None


# -- reading (values_at and MISSING: protoconform.specs.fieldpath) ---------------------------


def is_set(value: Any) -> bool:
    """Set in the protobuf sense: present and not the zero value of its type."""
    if value is MISSING or value is None:
        return False
    if isinstance(value, message.Message):
        return True  # present (an empty message that is present counts as set)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    try:
        return len(value) > 0
    except TypeError:
        return True


# -- changing -------------------------------------------------------------------------


def parent_of(msg: message.Message, path: str) -> tuple[message.Message, FD]:
    """The message holding the last field of ``path`` (first element of repeated steps, created
    when missing) and that field's descriptor."""
    parts = path.split(".")
    current = msg
    for part in parts[:-1]:
        field = current.DESCRIPTOR.fields_by_name.get(part)
        if field is None or field.message_type is None or is_map(field):
            raise PathError(f"{current.DESCRIPTOR.full_name}.{part} is not a message field")
        container = getattr(current, part)
        current = (container[0] if len(container) else container.add()) if is_repeated(field) else container
    field = current.DESCRIPTOR.fields_by_name.get(parts[-1])
    if field is None:
        raise PathError(f"{current.DESCRIPTOR.full_name} has no field {parts[-1]!r}")
    return current, field


def clear(msg: message.Message, path: str, everywhere: bool = False) -> None:
    """Clear the field at ``path`` (in the first element of repeated steps, or in all of them)."""
    if not everywhere:
        parent, field = parent_of(msg, path)
        parent.ClearField(field.name)
        return
    head, _, rest = path.partition(".")
    if not rest:
        msg.ClearField(head)
        return
    field = msg.DESCRIPTOR.fields_by_name[head]
    value = getattr(msg, head)
    if is_repeated(field):
        for item in value:
            clear(item, rest, everywhere=True)
    elif msg.HasField(head):
        clear(value, rest, everywhere=True)


def assign(msg: message.Message, path: str, value: Any) -> None:
    """Set the field at ``path`` (first element of repeated steps; element 0 of a repeated scalar)."""
    parent, field = parent_of(msg, path)
    name = field.name
    if field.message_type is not None and not is_map(field):
        target = getattr(parent, name)
        if is_repeated(field):
            raise PathError(f"cannot assign a scalar to repeated message field {name}")
        kind = field.message_type.full_name
        if kind == "google.protobuf.Duration":
            target.seconds, target.nanos = int(value), 0
        elif (
            kind.startswith("google.protobuf.")
            and kind.endswith("Value")
            and "value" in target.DESCRIPTOR.fields_by_name
        ):
            target.value = value
        else:
            raise PathError(f"cannot assign {value!r} to message field {name} ({kind})")
        return
    if field.type == FD.TYPE_BYTES and isinstance(value, str):
        value = value.encode()
    if is_repeated(field):
        container = getattr(parent, name)
        if len(container):
            container[0] = value
        else:
            container.append(value)
        return
    setattr(parent, name, value)


def current_value(msg: message.Message, path: str) -> Any:
    """The first value at ``path`` (MISSING when there is none)."""
    values = values_at(msg, path)
    return values[0] if values else MISSING
