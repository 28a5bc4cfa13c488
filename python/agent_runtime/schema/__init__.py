"""Derive JSON Schemas for Python tool functions and coerce JSON arguments back.

This package is pure Python (standard library only; ``typing_extensions`` and
``pydantic`` are used when they happen to be importable) and does not import
anything else from the ``agent_runtime`` package, so it can be used and tested
on its own.

* :func:`derive_tool_schema` inspects a callable and returns a
  :class:`ToolSignature`: the tool description, the JSON Schema (draft 2020-12)
  of its keyword arguments, the JSON Schema of its return value, the name of
  its context parameter (if any) and whether it must be awaited.
* :func:`make_coercer` precomputes a converter that turns JSON-decoded keyword
  arguments (dicts, lists, strings, numbers) into the Python types the
  function's annotations ask for (bytes, enums, dataclasses, tuples, pydantic
  models, ...).
* :func:`to_json_compatible` turns Python values (enum members, tuples, bytes,
  dataclass instances, ...) into JSON-compatible values; it is used for
  parameter defaults.

Layout, one concern per module: ``_typing_compat`` (typing introspection across Python
versions), ``_docstrings`` (descriptions from docstrings), ``_json_schema`` (JSON Schema
derivation and JSON-compatible values), ``_signature`` (:func:`derive_tool_schema`) and
``_coerce`` (:func:`make_coercer`).
"""

from ._coerce import make_coercer
from ._json_schema import to_json_compatible
from ._signature import ToolSignature, derive_tool_schema

__all__ = [
    "ToolSignature",
    "derive_tool_schema",
    "make_coercer",
    "to_json_compatible",
]
