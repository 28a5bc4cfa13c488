"""What a tool callable looks like to the runtime: :class:`ToolSignature` and
:func:`derive_tool_schema`."""

import functools
import inspect
import re
from typing import Any, Callable, Dict, FrozenSet, List, NamedTuple, Optional, Set, Tuple

from ._docstrings import _own_class_docstring, _parse_docstring
from ._json_schema import _SchemaBuilder, _SchemaError, _set_description, _with_default
from ._typing_compat import (
    _EMPTY,
    _eval_type_string,
    _function_namespaces,
    _get_args,
    _get_origin,
    _get_type_hints,
    _is_none,
    _is_union_origin,
    _strip_annotated,
)


class ToolSignature(NamedTuple):
    """What :func:`derive_tool_schema` learns about a tool callable."""

    description: str
    """Docstring without its parameter / return sections (or the explicit override)."""
    input_schema: Dict[str, Any]
    """JSON Schema of the keyword-arguments object."""
    output_schema: Optional[Dict[str, Any]]
    """JSON Schema of the return value; ``None`` when there is no return annotation."""
    context_param: Optional[str]
    """Name of the parameter annotated with one of ``context_types`` (not in the schema)."""
    is_async: bool
    """Whether calling the tool returns a coroutine that must be awaited."""


class _Unresolved(NamedTuple):
    text: str
    error: str


class _ToolInfo(NamedTuple):
    name: str
    signature: inspect.Signature
    hints: Dict[str, Any]
    doc: Optional[str]
    bound: FrozenSet[str]
    globalns: Dict[str, Any]
    localns: Dict[str, Any]
    is_async: bool
    return_annotation: Any


def _iscoroutinefunction(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn)


def _inspect_tool(fn: Any) -> _ToolInfo:
    if not callable(fn):
        raise TypeError(f"tool {fn!r} is not callable")
    bound: Set[str] = set()
    target = fn
    while isinstance(target, functools.partial):
        bound.update(target.keywords or {})
        target = target.func
    if inspect.isclass(target):
        name = target.__name__
        hint_target: Any = target.__init__
        doc = _own_class_docstring(target)
        is_async = False
    elif inspect.isroutine(target):
        name = getattr(target, "__name__", None) or repr(target)
        hint_target = target
        doc = inspect.getdoc(target)
        is_async = _iscoroutinefunction(target)
    else:  # callable object: its __call__ is the tool
        call = type(target).__call__
        name = type(target).__name__
        hint_target = call
        doc = inspect.getdoc(call) or inspect.getdoc(type(target))
        is_async = _iscoroutinefunction(call)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot inspect the signature of tool {name!r}: {exc}") from None
    try:
        hints = _get_type_hints(hint_target)
    except Exception:  # noqa: BLE001
        hints = {}  # resolved per parameter below, with clear errors
    return_annotation = signature.return_annotation
    if inspect.isclass(target):  # __init__ returns None; calling the class returns an instance
        hints.pop("return", None)
        return_annotation = _EMPTY
    globalns, localns = _function_namespaces(hint_target)
    return _ToolInfo(
        name, signature, hints, doc, frozenset(bound), globalns, localns, is_async, return_annotation
    )


def _annotation(info: _ToolInfo, name: str, raw: Any) -> Any:
    """The resolved annotation of a parameter (``"return"`` for the return value)."""
    annotation = info.hints.get(name, raw)
    if isinstance(annotation, str):
        try:
            return _eval_type_string(annotation, info.globalns, info.localns)
        except Exception as exc:  # noqa: BLE001
            return _Unresolved(annotation, f"{type(exc).__name__}: {exc}")
    return annotation


def _is_context_annotation(annotation: Any, context_types: Tuple[type, ...]) -> bool:
    if not context_types or annotation is _EMPTY:
        return False
    if isinstance(annotation, _Unresolved):
        text = annotation.text.strip().strip("'\"")
        match = re.match(r"^(?:typing\.)?Optional\[(.+)\]$", text)
        if match:
            text = match.group(1).strip()
        text = re.sub(r"^None\s*\|\s*|\s*\|\s*None$", "", text).strip("'\" ")
        text = re.sub(r"\[.*\]$", "", text)  # RunContext[Deps] -> RunContext
        for ctx in context_types:
            names = {
                getattr(ctx, "__name__", None),
                getattr(ctx, "__qualname__", None),
                f"{getattr(ctx, '__module__', '')}.{getattr(ctx, '__qualname__', '')}",
            }
            if text in names or text.endswith("." + str(getattr(ctx, "__name__", ""))):
                return True
        return False
    tp = _strip_annotated(annotation)
    if _is_union_origin(_get_origin(tp)):
        members = [a for a in _get_args(tp) if not _is_none(a)]
        if len(members) != 1:
            return False
        tp = _strip_annotated(members[0])
    origin = _get_origin(tp)
    if isinstance(origin, type):  # a parameterized generic context such as Context[Deps]
        tp = origin
    for ctx in context_types:
        if tp is ctx:
            return True
        if isinstance(tp, type) and isinstance(ctx, type):
            try:
                if issubclass(tp, ctx):
                    return True
            except TypeError:
                pass
    return False


def _mentions_content(tp: Any, depth: int = 0) -> bool:
    """Whether a return annotation involves rich content (``Image``, ``Audio``,
    ``EmbeddedResource``, or anything whose class sets ``__agent_runtime_content__``): such a
    result is content blocks, not structured data, so the tool gets no output schema."""
    if depth > 16:
        return False
    if isinstance(tp, type) and getattr(tp, "__agent_runtime_content__", False):
        return True
    return any(_mentions_content(a, depth + 1) for a in getattr(tp, "__args__", None) or () if a is not Ellipsis)


def derive_tool_schema(
    fn: Callable[..., Any],
    *,
    description: Optional[str] = None,
    inline_refs: bool = True,
    context_types: Tuple[type, ...] = (),
    output: bool = True,
) -> ToolSignature:
    """Derive the tool description and JSON Schemas (draft 2020-12) of a callable.

    ``fn`` may be a plain or ``async`` function, a bound method, a
    :func:`functools.partial` (keywords it binds are left out of the schema),
    a callable object (its ``__call__`` is inspected) or a class (its
    constructor; no output schema).  String / forward annotations
    (``from __future__ import annotations``) are resolved; on 3.8 / 3.9 string
    annotations may also use ``X | None`` and ``list[int]``.

    The input schema is ``{"type": "object", "properties": ..., "required":
    [...], "additionalProperties": false}``: ``required`` lists parameters
    without defaults (omitted when empty); a ``**kwargs`` parameter makes
    ``additionalProperties`` ``true`` (or the schema of its annotation);
    positional-only parameters with a default are left out (they cannot be
    passed by keyword); defaults are included when they are JSON-compatible,
    and a ``None`` default makes the property nullable (on every Python
    version, as ``typing.get_type_hints`` does before 3.11).  Per-parameter descriptions come
    from ``Annotated[T, "text"]`` (or metadata with a ``.description``) and
    from Google (``Args:``), NumPy (``Parameters`` / ``----------``) or Sphinx
    (``:param x:``) docstring sections; the ``Returns`` text becomes the
    output schema's ``description``.  The tool description is the docstring
    without those sections, unless ``description`` is given.

    With ``inline_refs=True`` (the default) every schema is self-contained and
    uses no ``$ref`` / ``$defs`` -- except for *recursive* types (a dataclass,
    TypedDict or pydantic model that contains itself), which cannot be
    inlined: those alone are put under the document's top-level ``"$defs"``
    and referenced with ``{"$ref": "#/$defs/Name"}``.  With
    ``inline_refs=False`` every dataclass, TypedDict, Enum and pydantic model
    goes into ``"$defs"`` and is referenced by ``"$ref"``.

    A parameter annotated with one of ``context_types`` (or ``Optional`` of
    one) is left out of the schema and reported as ``context_param``.

    Args:
        fn: the tool callable.
        description: overrides the description taken from the docstring.
        inline_refs: inline named types instead of using ``$defs``.
        context_types: types that mark the runtime-provided context parameter.
        output: derive the output schema from the return annotation (off for functions whose
            result is not a tool result, e.g. resources and prompts: no output schema).

    Returns:
        A :class:`ToolSignature`.

    Raises:
        TypeError: ``fn`` has a ``*args`` parameter, a positional-only
            parameter without default, more than one context parameter, an
            annotation that cannot be resolved, a recursive type alias, or a
            type with no JSON Schema (e.g. ``datetime``, or a ``dict`` with
            non-``str`` keys); the message names the tool and the parameter.
    """
    info = _inspect_tool(fn)
    tool = info.name
    doc = _parse_docstring(info.doc)
    builder = _SchemaBuilder(inline_refs, "validation", info.globalns, info.localns)
    properties: Dict[str, Any] = {}
    required: List[str] = []
    additional: Any = False
    context_param: Optional[str] = None

    for param in info.signature.parameters.values():
        if param.name in info.bound:
            continue
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise TypeError(
                f"parameter '*{param.name}' of tool {tool!r} is not supported: tools are called with "
                "keyword arguments only"
            )
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            if param.default is _EMPTY:
                raise TypeError(
                    f"parameter {param.name!r} of tool {tool!r} is positional-only and has no default: "
                    "tools are called with keyword arguments only"
                )
            continue  # cannot be passed by keyword; its default is always used
        annotation = _annotation(info, param.name, param.annotation)
        if _is_context_annotation(annotation, context_types):
            if context_param is not None:
                raise TypeError(
                    f"tool {tool!r} has more than one context parameter "
                    f"({context_param!r} and {param.name!r})"
                )
            context_param = param.name
            continue
        if isinstance(annotation, _Unresolved):
            raise TypeError(
                f"parameter {param.name!r} of tool {tool!r}: "
                f"cannot resolve annotation {annotation.text!r} ({annotation.error})"
            )
        try:
            schema = dict(builder.schema(annotation))
        except _SchemaError as exc:
            raise TypeError(f"parameter {param.name!r} of tool {tool!r}: {exc}") from None
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            additional = schema if schema else True
            continue
        if param.default is not _EMPTY:
            schema = _with_default(schema, param.default)
        else:
            required.append(param.name)
        properties[param.name] = _set_description(schema, doc.params.get(param.name))

    input_schema: Dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = required
    input_schema["additionalProperties"] = additional
    if builder.defs:
        input_schema["$defs"] = builder.defs

    output_schema: Optional[Dict[str, Any]] = None
    return_annotation = info.return_annotation
    if output and (return_annotation is not _EMPTY or "return" in info.hints):
        resolved = _annotation(info, "return", return_annotation)
        if isinstance(resolved, _Unresolved):
            raise TypeError(
                f"return value of tool {tool!r}: "
                f"cannot resolve annotation {resolved.text!r} ({resolved.error})"
            )
        if not _mentions_content(resolved):
            out_builder = _SchemaBuilder(inline_refs, "serialization", info.globalns, info.localns)
            try:
                output_schema = dict(out_builder.schema(resolved))
            except _SchemaError as exc:
                raise TypeError(f"return value of tool {tool!r}: {exc}") from None
            if doc.returns:
                output_schema["description"] = doc.returns
            if out_builder.defs:
                output_schema["$defs"] = out_builder.defs

    return ToolSignature(
        description=doc.description if description is None else description,
        input_schema=input_schema,
        output_schema=output_schema,
        context_param=context_param,
        is_async=info.is_async,
    )
