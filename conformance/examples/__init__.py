"""Valid requests and effects as data (``specs/<family>/examples.yaml``, ``effects.yaml``).

:mod:`.parsing` reads the data into examples, counter-examples and effects per family;
:mod:`.running` runs them against a target (:class:`Scenario`, the ``scenario`` fixture).
"""

from __future__ import annotations

from protoconform.conformance.examples.expectations import field_mismatch, lookup
from protoconform.conformance.examples.parsing import (
    Example,
    ExampleError,
    FamilyExamples,
    Step,
    book,
    functions,
    placeholders,
    without,
)
from protoconform.conformance.examples.running import Scenario

__all__ = [
    "Example",
    "ExampleError",
    "FamilyExamples",
    "Scenario",
    "Step",
    "book",
    "field_mismatch",
    "functions",
    "lookup",
    "placeholders",
    "without",
]
