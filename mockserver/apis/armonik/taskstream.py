"""The legacy task-creation stream shared by ``Agent.CreateTask`` and ``Submitter.CreateLargeTasks``.

After a first message carrying the request-level options, each task is an
``init_task.header`` (expected outputs, data dependencies), then its payload as
``task_payload.data`` chunks closed by ``task_payload.data_complete``; the stream
ends with ``init_task.last_task``.  Both request types use the same field names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class StreamTask:
    expected_output_keys: list[str]
    data_dependencies: list[str]
    payload: bytes


class StreamTruncated(Exception):
    """The stream ended where another message was due."""


class StreamDisorder(Exception):
    """A message that does not fit the sequence; ``str()`` says where and what."""

    def __init__(self, position: int, what: str) -> None:
        super().__init__(
            f"message {position} of the stream is {what}; expected a task header, its payload chunks "
            "closed by data_complete, and init_task.last_task at the end"
        )
        self.position = position


def _kind(message: Any) -> str:
    return message.WhichOneof("type") or "an empty message"


def parse_task_stream(messages: Sequence[Any], start: int = 1) -> list[StreamTask]:
    """The tasks of a stream whose messages from ``start`` on describe tasks."""
    tasks: list[StreamTask] = []
    position = start

    def at(index: int) -> Any:
        if index >= len(messages):
            raise StreamTruncated("Missing message in request")
        return messages[index]

    while True:
        message = at(position)
        kind = message.WhichOneof("type")
        init = message.init_task.WhichOneof("type") if kind == "init_task" else None
        if init == "last_task" and message.init_task.last_task:
            if position != len(messages) - 1:
                raise StreamDisorder(position + 1, "a message after init_task.last_task")
            return tasks
        if init != "header":
            raise StreamDisorder(position, f"{kind or 'an empty message'} where a task header was due")
        header = message.init_task.header
        position += 1
        chunks: list[bytes] = []
        while True:
            message = at(position)
            if message.WhichOneof("type") != "task_payload":
                raise StreamDisorder(position, f"{_kind(message)} inside a task payload")
            chunk = message.task_payload.WhichOneof("type")
            position += 1
            if chunk == "data":
                chunks.append(bytes(message.task_payload.data))
            elif chunk == "data_complete" and message.task_payload.data_complete:
                break
            else:
                raise StreamDisorder(position - 1, "an empty payload chunk")
        tasks.append(
            StreamTask(list(header.expected_output_keys), list(header.data_dependencies), b"".join(chunks))
        )
