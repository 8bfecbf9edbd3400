"""The protobuf well-known types, classified once for every part that treats them specially.

Their JSON forms are not objects of their fields (protojson), and grpc-gateway
fills some of them from one string in a path or query parameter.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor as FD

# wrapper message -> the scalar type of its one ``value`` field
WRAPPERS: dict[str, int] = {
    "google.protobuf.DoubleValue": FD.TYPE_DOUBLE,
    "google.protobuf.FloatValue": FD.TYPE_FLOAT,
    "google.protobuf.Int64Value": FD.TYPE_INT64,
    "google.protobuf.UInt64Value": FD.TYPE_UINT64,
    "google.protobuf.Int32Value": FD.TYPE_INT32,
    "google.protobuf.UInt32Value": FD.TYPE_UINT32,
    "google.protobuf.BoolValue": FD.TYPE_BOOL,
    "google.protobuf.StringValue": FD.TYPE_STRING,
    "google.protobuf.BytesValue": FD.TYPE_BYTES,
}
# read from one string: a path component or a query value
FROM_ONE_STRING = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask", *WRAPPERS}
)
# JSON form is not an object of the message's fields
NOT_JSON_OBJECTS = frozenset(
    {
        *FROM_ONE_STRING,
        "google.protobuf.Any",
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
    }
)
