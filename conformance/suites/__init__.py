"""Conformance suites: one module per suite, collected by ``protoconform check``.

Each case carries ``@pytest.mark.conformance(...)`` (see
:mod:`protoconform.conformance.plugin`) and is generated from descriptors and
``specs/`` data, never from rules restated in code.
"""
