"""Derive JSON Schemas for Python tool functions and coerce JSON arguments back.

This module is pure Python (standard library only; ``typing_extensions`` and
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
"""

import ast
import base64
import binascii
import collections
import collections.abc
import dataclasses
import enum
import functools
import inspect
import json
import re
import sys
import types
import typing
from typing import Any, Callable, ClassVar, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Set, Tuple

try:  # optional: better Annotated / Literal / TypedDict support on old Pythons
    import typing_extensions as _te
except ImportError:  # pragma: no cover - depends on the environment
    _te = None  # type: ignore[assignment]

__all__ = [
    "ToolSignature",
    "derive_tool_schema",
    "make_coercer",
    "to_json_compatible",
]


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


# ---------------------------------------------------------------------------
# typing introspection helpers (CPython 3.8 - 3.13, with or without typing_extensions)
# ---------------------------------------------------------------------------


def _typing_objects(name: str) -> Tuple[Any, ...]:
    """Collect ``typing.<name>`` and ``typing_extensions.<name>`` (when they exist)."""
    found: List[Any] = []
    for module in (typing, _te):
        if module is None:
            continue
        obj = getattr(module, name, None)
        if obj is not None and not any(obj is other for other in found):
            found.append(obj)
    return tuple(found)


_ANY_TYPES = _typing_objects("Any")
_UNION_FORMS = _typing_objects("Union")
_LITERAL_FORMS = _typing_objects("Literal")
_WRAPPER_FORMS = (
    _typing_objects("Final")
    + _typing_objects("ClassVar")
    + _typing_objects("Required")
    + _typing_objects("NotRequired")
    + _typing_objects("ReadOnly")
)
_REQUIRED_FORMS = _typing_objects("Required")
_NOT_REQUIRED_FORMS = _typing_objects("NotRequired")
_UNION_TYPE = getattr(types, "UnionType", None)  # PEP 604 ``X | Y`` (3.10+)
_NONE_TYPE = type(None)
_EMPTY = inspect.Parameter.empty
_MAX_DEPTH = 64

if _te is not None and hasattr(_te, "get_origin"):
    _get_origin = _te.get_origin
    _get_args = _te.get_args
else:  # pragma: no cover - depends on the environment
    _get_origin = typing.get_origin
    _get_args = typing.get_args

_HAS_INCLUDE_EXTRAS = sys.version_info >= (3, 9) or _te is not None

_LIST_LIKE: FrozenSet[Any] = frozenset(
    [
        list,
        collections.deque,
        collections.abc.Sequence,
        collections.abc.MutableSequence,
        collections.abc.Iterable,
        collections.abc.Collection,
    ]
)
_SET_LIKE: FrozenSet[Any] = frozenset([set, frozenset, collections.abc.Set, collections.abc.MutableSet])
_MAPPING_LIKE: FrozenSet[Any] = frozenset([dict, collections.abc.Mapping, collections.abc.MutableMapping])


def _get_type_hints(obj: Any, localns: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """``get_type_hints`` keeping ``Annotated`` metadata where supported."""
    if _te is not None:
        return _te.get_type_hints(obj, localns=localns, include_extras=True)
    if _HAS_INCLUDE_EXTRAS:
        return typing.get_type_hints(obj, localns=localns, include_extras=True)
    return typing.get_type_hints(obj, localns=localns)  # pragma: no cover


def _is_any(tp: Any) -> bool:
    return tp is _EMPTY or tp is object or any(tp is a for a in _ANY_TYPES)


def _is_none(tp: Any) -> bool:
    return tp is None or tp is _NONE_TYPE


def _is_annotated(tp: Any) -> bool:
    return hasattr(tp, "__metadata__") and hasattr(tp, "__origin__")


def _is_union_origin(origin: Any) -> bool:
    if _UNION_TYPE is not None and origin is _UNION_TYPE:
        return True
    return any(origin is u for u in _UNION_FORMS)


def _is_literal_origin(origin: Any) -> bool:
    return any(origin is lit for lit in _LITERAL_FORMS)


def _is_wrapper_origin(origin: Any) -> bool:
    return any(origin is w for w in _WRAPPER_FORMS)


def _is_type_alias(tp: Any) -> bool:
    """PEP 695 ``type X = ...`` aliases (3.12+) and ``typing_extensions.TypeAliasType``."""
    return type(tp).__name__ == "TypeAliasType" and hasattr(tp, "__value__")


def _is_typeddict(tp: Any) -> bool:
    return (
        isinstance(tp, type)
        and issubclass(tp, dict)
        and hasattr(tp, "__total__")
        and hasattr(tp, "__annotations__")
    )


def _is_pydantic_v2(tp: Any) -> bool:
    return (
        isinstance(tp, type)
        and callable(getattr(tp, "model_json_schema", None))
        and callable(getattr(tp, "model_validate", None))
    )


def _is_pydantic_v1(tp: Any) -> bool:
    return (
        isinstance(tp, type)
        and not _is_pydantic_v2(tp)
        and callable(getattr(tp, "schema", None))
        and callable(getattr(tp, "parse_obj", None))
        and hasattr(tp, "__fields__")
    )


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _strip_annotated(tp: Any) -> Any:
    while _is_annotated(tp):
        tp = tp.__origin__
    return tp


def _type_repr(tp: Any) -> str:
    if isinstance(tp, type):
        if tp.__module__ == "builtins":
            return tp.__qualname__
        return f"{tp.__module__}.{tp.__qualname__}"
    return repr(tp)


def _annotated_description(metadata: Tuple[Any, ...]) -> Optional[str]:
    """First ``str`` metadata, or first metadata object with a ``str`` ``.description``."""
    for item in metadata:
        if isinstance(item, str):
            if item.strip():
                return item.strip()
            continue
        if isinstance(item, type):
            continue
        desc = getattr(item, "description", None)
        if isinstance(desc, str) and desc.strip():
            return desc.strip()
    return None


class _ModernSyntaxRewriter(ast.NodeTransformer):
    """Rewrite ``A | B`` and ``list[int]`` so string annotations evaluate on 3.8 / 3.9."""

    _BUILTIN_GENERICS: ClassVar[Dict[str, str]] = {
        "list": "List",
        "dict": "Dict",
        "set": "Set",
        "frozenset": "FrozenSet",
        "tuple": "Tuple",
        "type": "Type",
    }

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.BitOr):
            call = ast.Call(
                func=ast.Name(id="__schema_union__", ctx=ast.Load()),
                args=[node.left, node.right],
                keywords=[],
            )
            return ast.copy_location(call, node)
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        self.generic_visit(node)
        value = node.value
        if isinstance(value, ast.Name) and value.id in self._BUILTIN_GENERICS:
            replacement = ast.Attribute(
                value=ast.Name(id="__schema_typing__", ctx=ast.Load()),
                attr=self._BUILTIN_GENERICS[value.id],
                ctx=ast.Load(),
            )
            node.value = ast.copy_location(replacement, value)
        return node


def _eval_type_string(text: str, globalns: Mapping[str, Any], localns: Mapping[str, Any]) -> Any:
    """Evaluate a string annotation; on 3.8/3.9 also accept PEP 604 / PEP 585 syntax."""
    g = dict(globalns)
    try:
        return eval(text, g, dict(localns))
    except TypeError:
        if sys.version_info >= (3, 10):
            raise
        tree = _ModernSyntaxRewriter().visit(ast.parse(text.strip(), mode="eval"))
        ast.fix_missing_locations(tree)
        g["__schema_union__"] = lambda a, b: typing.Union[a, b]
        g["__schema_typing__"] = typing
        return eval(compile(tree, "<annotation>", "eval"), g, dict(localns))


def _module_globals(obj: Any) -> Dict[str, Any]:
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    namespace = getattr(module, "__dict__", None)
    return namespace if isinstance(namespace, dict) else {}


def _function_namespaces(fn: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Globals and closure variables used to evaluate a function's string annotations."""
    target = fn
    for _ in range(100):
        if isinstance(target, (classmethod, staticmethod)) or inspect.ismethod(target):
            target = target.__func__
        elif hasattr(target, "__wrapped__"):
            target = target.__wrapped__
        else:
            break
    globalns = getattr(target, "__globals__", None)
    if not isinstance(globalns, dict):
        globalns = _module_globals(target)
    localns: Dict[str, Any] = {}
    code = getattr(target, "__code__", None)
    closure = getattr(target, "__closure__", None)
    if code is not None and closure:
        for name, cell in zip(code.co_freevars, closure):
            try:
                localns[name] = cell.cell_contents
            except ValueError:  # empty cell
                pass
    return globalns, localns


# ---------------------------------------------------------------------------
# JSON helpers
# ---------------------------------------------------------------------------


def to_json_compatible(value: Any) -> Any:
    """Convert a Python value into plain JSON-compatible data.

    ``None``, ``bool``, ``int``, ``float`` and ``str`` are returned as they are
    (subclasses become the plain type); enum members become their (converted)
    value; lists and tuples (including named tuples) become lists; sets become
    lists sorted by their JSON text; ``bytes``/``bytearray``/``memoryview``
    become base64 strings; dataclass instances become dicts of their fields;
    pydantic models become ``model_dump(mode="json")`` (v1: ``json()``); and
    mappings become dicts (keys must be strings or enum members with string
    values).

    Raises:
        TypeError: the value (or something inside it) has no JSON equivalent.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, enum.Enum):
        return to_json_compatible(value.value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_compatible(getattr(value, f.name)) for f in dataclasses.fields(value)}
    value_type = type(value)
    if callable(getattr(value_type, "model_dump", None)) and callable(
        getattr(value_type, "model_json_schema", None)
    ):
        return value.model_dump(mode="json")
    if _is_pydantic_v1(value_type):
        return json.loads(value.json())
    if isinstance(value, Mapping):
        out: Dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, enum.Enum) and isinstance(key.value, str):
                key = key.value
            if not isinstance(key, str):
                raise TypeError(f"cannot convert mapping key {key!r} to JSON: JSON object keys are strings")
            out[str.__str__(key)] = to_json_compatible(item)
        return out
    if isinstance(value, (list, tuple)):
        return [to_json_compatible(item) for item in value]
    if isinstance(value, (set, frozenset)):
        items = [to_json_compatible(item) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    raise TypeError(f"cannot convert {_type_repr(value_type)} to a JSON-compatible value")


def _json_default(value: Any) -> Tuple[bool, Any]:
    """``(True, json_value)`` when ``value`` can be written as a JSON ``default``."""
    try:
        converted = to_json_compatible(value)
        json.dumps(converted, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False, None
    return True, converted


def _json_type(value: Any) -> Optional[str]:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


def _uniform_json_type(values: List[Any]) -> Optional[str]:
    kinds = {_json_type(v) for v in values}
    if kinds == {"integer", "number"}:
        return "number"
    if len(kinds) == 1:
        return kinds.pop()
    return None


_ANNOTATION_ONLY_KEYS = frozenset(["description", "title", "default", "examples", "$comment"])


def _allows_null(schema: Dict[str, Any]) -> bool:
    """Conservative check: does ``schema`` accept JSON ``null``?"""
    if set(schema) <= _ANNOTATION_ONLY_KEYS:
        return True
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if "enum" in schema:
        return None in schema["enum"]
    for key in ("anyOf", "oneOf"):
        if any(isinstance(b, dict) and _allows_null(b) for b in schema.get(key, ())):
            return True
    return False


def _with_default(schema: Dict[str, Any], default: Any) -> Dict[str, Any]:
    """Add ``default`` (when JSON-compatible); a ``None`` default makes the schema nullable."""
    if default is None and not _allows_null(schema):
        schema = {"anyOf": [schema, {"type": "null"}]}
    ok, converted = _json_default(default)
    if ok:
        schema = dict(schema)
        schema["default"] = converted
    return schema


def _set_description(schema: Dict[str, Any], description: Optional[str]) -> Dict[str, Any]:
    if description and "description" not in schema:
        schema = dict(schema)
        schema["description"] = description
    return schema


# ---------------------------------------------------------------------------
# docstrings (Google, NumPy and Sphinx field lists)
# ---------------------------------------------------------------------------


class _DocInfo(NamedTuple):
    description: str
    params: Dict[str, str]
    returns: Optional[str]


_PARAM_HEADERS = frozenset(
    [
        "args",
        "arguments",
        "parameters",
        "params",
        "keyword args",
        "keyword arguments",
        "kwargs",
        "other parameters",
        "attributes",
    ]
)
_RETURN_HEADERS = frozenset(["returns", "return"])
_GOOGLE_HEADER_RE = re.compile(r"^([A-Za-z][A-Za-z ]*?)\s*:\s*(.*)$")
_GOOGLE_ENTRY_RE = re.compile(r"^(\*{0,2}[A-Za-z_]\w*)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_RETURN_TYPE_RE = re.compile(
    r"^([A-Za-z_][\w.]*(?:\[.*\])?(?:\s*\|\s*[A-Za-z_][\w.]*(?:\[.*\])?)*)\s*:\s+(.+)$"
)
_DASHES_RE = re.compile(r"^\s*-{3,}\s*$")
_SPHINX_PARAM_RE = re.compile(r"^:(?:param|parameter|arg|argument|key|keyword)\s+([^:]+?)\s*:\s*(.*)$")
_SPHINX_RETURN_RE = re.compile(r"^:returns?\s*:\s*(.*)$")
_SPHINX_OTHER_RE = re.compile(
    r"^:(?:type\s+[^:]+|rtype|raises?(?:\s+[^:]+)?|except(?:ion)?(?:\s+[^:]+)?"
    r"|var\s+[^:]+|ivar\s+[^:]+|cvar\s+[^:]+)\s*:"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _join_text(lines: List[str]) -> str:
    return " ".join(part.strip() for part in lines if part.strip())


def _is_numpy_header(lines: List[str], i: int) -> bool:
    return (
        i + 1 < len(lines)
        and bool(lines[i].strip())
        and not _DASHES_RE.match(lines[i])
        and bool(_DASHES_RE.match(lines[i + 1]))
    )


def _parse_google_params(body: List[str], params: Dict[str, str]) -> None:
    entry_indent: Optional[int] = None
    name: Optional[str] = None
    desc: List[str] = []

    def flush() -> None:
        if name is not None and name not in params:
            text = _join_text(desc)
            if text:
                params[name] = text

    for line in body:
        if not line.strip():
            continue
        if entry_indent is None:
            entry_indent = _indent(line)
        if _indent(line) <= entry_indent:
            match = _GOOGLE_ENTRY_RE.match(line.strip())
            if match:
                flush()
                name = match.group(1).lstrip("*")
                desc = [match.group(3)]
                continue
        if name is not None:
            desc.append(line)
    flush()


def _parse_numpy_params(body: List[str], params: Dict[str, str]) -> None:
    base: Optional[int] = None
    names: List[str] = []
    desc: List[str] = []

    def flush() -> None:
        text = _join_text(desc)
        if text:
            for n in names:
                if n.isidentifier() and n not in params:
                    params[n] = text

    for line in body:
        if not line.strip():
            continue
        if base is None:
            base = _indent(line)
        if _indent(line) <= base:
            flush()
            head = line.strip()
            name_part = head.split(":", 1)[0] if ":" in head else head
            names = [n.strip().lstrip("*") for n in name_part.split(",")]
            desc = []
        else:
            desc.append(line)
    flush()


def _numpy_returns(body: List[str]) -> str:
    base: Optional[int] = None
    heads: List[str] = []
    descs: List[str] = []
    for line in body:
        if not line.strip():
            continue
        if base is None:
            base = _indent(line)
        if _indent(line) <= base:
            heads.append(line)
        else:
            descs.append(line)
    return _join_text(descs) or _join_text(heads)


def _google_returns(body: List[str]) -> str:
    lines = [line.strip() for line in body if line.strip()]
    if lines:
        match = _RETURN_TYPE_RE.match(lines[0])
        if match:
            lines[0] = match.group(2)
    return _join_text(lines)


def _parse_docstring(doc: Optional[str]) -> _DocInfo:
    """Split a docstring into description, per-parameter texts and the Returns text."""
    if not doc or not doc.strip():
        return _DocInfo("", {}, None)
    lines = inspect.cleandoc(doc).splitlines()
    kept: List[str] = []
    params: Dict[str, str] = {}
    returns: List[str] = []
    n = len(lines)
    i = 0
    while i < n:
        line = lines[i]
        stripped = line.strip()
        indent = _indent(line)
        # NumPy style: "Parameters\n----------"
        if _is_numpy_header(lines, i) and stripped.lower() in (_PARAM_HEADERS | _RETURN_HEADERS):
            j = i + 2
            body: List[str] = []
            while j < n and not _is_numpy_header(lines, j):
                body.append(lines[j])
                j += 1
            if stripped.lower() in _PARAM_HEADERS:
                _parse_numpy_params(body, params)
            else:
                text = _numpy_returns(body)
                if text:
                    returns.append(text)
            i = j
            continue
        # Google style: "Args:" / "Returns:" (inline text allowed for Returns)
        match = _GOOGLE_HEADER_RE.match(stripped)
        if match:
            header = match.group(1).lower()
            inline = match.group(2).strip()
            is_params = header in _PARAM_HEADERS and not inline
            is_returns = header in _RETURN_HEADERS
            if is_params or is_returns:
                j = i + 1
                body = [inline] if inline else []
                while j < n and (not lines[j].strip() or _indent(lines[j]) > indent):
                    body.append(lines[j])
                    j += 1
                if is_params:
                    _parse_google_params(body, params)
                else:
                    text = _google_returns(body)
                    if text:
                        returns.append(text)
                i = j
                continue
        # Sphinx / reST field lists: ":param x: text", ":returns: text", ":rtype: int"
        if stripped.startswith(":"):
            pmatch = _SPHINX_PARAM_RE.match(stripped)
            rmatch = _SPHINX_RETURN_RE.match(stripped)
            if pmatch or rmatch or _SPHINX_OTHER_RE.match(stripped):
                j = i + 1
                cont: List[str] = []
                while j < n and lines[j].strip() and _indent(lines[j]) > indent:
                    cont.append(lines[j])
                    j += 1
                if pmatch:
                    pname = pmatch.group(1).split()[-1].lstrip("*")
                    text = _join_text([pmatch.group(2)] + cont)
                    if text and pname not in params:
                        params[pname] = text
                elif rmatch:
                    text = _join_text([rmatch.group(1)] + cont)
                    if text:
                        returns.append(text)
                i = j
                continue
        kept.append(line)
        i += 1
    description = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    return _DocInfo(description, params, " ".join(returns) if returns else None)


def _own_class_docstring(cls: type) -> Optional[str]:
    """The class's own docstring, ignoring the ones generated by ``@dataclass`` and ``Enum``."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return None
    if dataclasses.is_dataclass(cls) and doc.startswith(cls.__name__ + "("):
        return None  # generated by @dataclass
    if issubclass(cls, enum.Enum) and doc.strip() == "An enumeration.":
        return None  # generated by Enum on 3.8 - 3.10
    return doc


def _class_doc(cls: type) -> _DocInfo:
    """Docstring info of a dataclass / TypedDict / Enum."""
    return _parse_docstring(_own_class_docstring(cls))


# ---------------------------------------------------------------------------
# schema generation
# ---------------------------------------------------------------------------


class _SchemaError(Exception):
    """Internal: a type has no JSON Schema; ``where`` says where it was nested."""

    def __init__(self, message: str, where: Tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def nested(self, place: str) -> "_SchemaError":
        return _SchemaError(self.message, (place,) + self.where)

    def __str__(self) -> str:
        if not self.where:
            return self.message
        where = " -> ".join(self.where)
        return f"{self.message} (in {where})"


def _local_ref_name(ref: str) -> Optional[str]:
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :].replace("~1", "/").replace("~0", "~")
    return None


_RAW_VALUE_KEYWORDS = frozenset(["default", "examples", "example", "const", "enum"])
_SCHEMA_MAP_KEYWORDS = frozenset(
    ["properties", "patternProperties", "dependentSchemas", "$defs", "definitions"]
)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=repr)


class _SchemaBuilder:
    """Builds one JSON Schema document (collecting ``$defs`` for it)."""

    def __init__(
        self,
        inline_refs: bool,
        mode: str,
        globalns: Dict[str, Any],
        localns: Dict[str, Any],
    ) -> None:
        self.inline = inline_refs
        self.mode = mode  # "validation" (arguments) or "serialization" (return values)
        self.defs: Dict[str, Dict[str, Any]] = {}
        self._def_names: Dict[Any, str] = {}
        self._stack: List[Any] = []
        self._recursive: Set[Any] = set()
        self._depth = 0
        self._namespaces: List[Tuple[Dict[str, Any], Dict[str, Any]]] = [(globalns, localns)]
        self._seen_classes: Dict[str, type] = {}
        self._aliases: List[Any] = []  # forward references / type aliases being expanded

    # -- public entry -----------------------------------------------------

    def schema(self, tp: Any) -> Dict[str, Any]:
        self._depth += 1
        try:
            if self._depth > _MAX_DEPTH:
                raise _SchemaError(f"type nesting is too deep (recursive type alias?) at {_type_repr(tp)}")
            return self._schema(tp)
        finally:
            self._depth -= 1

    # -- helpers -----------------------------------------------------------

    def _eval(self, text: str) -> Any:
        globalns, localns = self._namespaces[-1]
        names = dict(self._namespaces[0][1])  # the tool's closure variables
        names.update(self._seen_classes)
        names.update(localns)
        try:
            return _eval_type_string(text, globalns, names)
        except Exception as exc:  # noqa: BLE001
            raise _SchemaError(f"cannot resolve annotation {text!r} ({type(exc).__name__}: {exc})") from None

    def _class_hints(self, cls: type) -> Dict[str, Any]:
        try:
            return _get_type_hints(cls)
        except Exception:  # noqa: BLE001, S110
            pass
        localns = dict(self._seen_classes)
        localns[cls.__name__] = cls
        try:
            return _get_type_hints(cls, localns=localns)
        except Exception:  # noqa: BLE001
            return {}  # raw annotations are evaluated one by one (see _eval)

    def _def_name(self, key: Any, name: str) -> str:
        existing = self._def_names.get(key)
        if existing is not None:
            return existing
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "Model"
        taken = set(self._def_names.values())
        candidate = base
        counter = 2
        while candidate in taken:
            candidate = f"{base}{counter}"
            counter += 1
        self._def_names[key] = candidate
        return candidate

    def _named(self, key: Any, name: str, build: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
        """Schema of a named type: inlined, or a ``$ref`` into ``$defs``."""
        if self.inline:
            if key in self._stack:  # recursion point: cannot be inlined
                self._recursive.add(key)
                return {"$ref": "#/$defs/" + self._def_name(key, name)}
            if key in self._recursive:
                ref_name = self._def_name(key, name)
                if ref_name in self.defs:
                    return {"$ref": "#/$defs/" + ref_name}
            self._stack.append(key)
            try:
                schema = self._build(build)
            finally:
                self._stack.pop()
            if key in self._recursive:
                ref_name = self._def_name(key, name)
                self.defs.setdefault(ref_name, schema)
                return {"$ref": "#/$defs/" + ref_name}
            return schema
        ref_name = self._def_name(key, name)
        if ref_name not in self.defs:
            self.defs[ref_name] = {}  # placeholder: keeps order, stops recursion
            try:
                self.defs[ref_name] = self._build(build)
            except BaseException:
                del self.defs[ref_name]
                raise
        return {"$ref": "#/$defs/" + ref_name}

    def _build(self, build: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
        """Build a named type's schema; alias recursion is tracked per named type."""
        aliases, self._aliases = self._aliases, []
        try:
            return build()
        finally:
            self._aliases = aliases

    def _push_class_namespace(self, cls: type) -> None:
        self._seen_classes.setdefault(cls.__name__, cls)
        self._namespaces.append((_module_globals(cls), {cls.__name__: cls}))

    # -- dispatch ----------------------------------------------------------

    def _expand_alias(self, key: Any, label: str, target: Callable[[], Any]) -> Dict[str, Any]:
        """Schema of a forward reference / type alias, rejecting recursive aliases."""
        if key in self._aliases:
            raise _SchemaError(f"cannot derive JSON Schema for the recursive type alias {label}")
        resolved = target()
        self._aliases.append(key)
        try:
            return self.schema(resolved)
        finally:
            self._aliases.pop()

    def _schema(self, tp: Any) -> Dict[str, Any]:
        if isinstance(tp, (str, typing.ForwardRef)):
            text = tp if isinstance(tp, str) else tp.__forward_arg__
            key = (text, id(self._namespaces[-1][0]))
            return self._expand_alias(key, repr(text), lambda: self._eval(text))
        if _is_type_alias(tp):
            return self._expand_alias(tp, repr(tp), lambda: tp.__value__)
        if _is_any(tp):
            return {}
        if _is_none(tp):
            return {"type": "null"}
        if _is_annotated(tp):
            schema = self.schema(tp.__origin__)
            return _set_description(dict(schema), _annotated_description(tp.__metadata__))
        origin = _get_origin(tp)
        if origin is not None:
            return self._generic(tp, origin, _get_args(tp))
        if isinstance(tp, typing.TypeVar):
            if tp.__bound__ is not None:
                return self.schema(tp.__bound__)
            if tp.__constraints__:
                return {"anyOf": [self.schema(c) for c in tp.__constraints__]}
            return {}
        supertype = getattr(tp, "__supertype__", None)
        if supertype is not None and callable(tp):  # typing.NewType
            return self.schema(supertype)
        if isinstance(tp, type):
            return self._class(tp)
        raise _SchemaError(f"cannot derive JSON Schema for {_type_repr(tp)}")

    def _generic(self, tp: Any, origin: Any, args: Tuple[Any, ...]) -> Dict[str, Any]:
        if _is_union_origin(origin):
            return self._union(args)
        if _is_literal_origin(origin):
            return self._literal(args)
        if _is_wrapper_origin(origin):
            return self.schema(args[0]) if args else {}
        if origin in _LIST_LIKE:
            return self._array(args[0] if args else None)
        if origin in _SET_LIKE:
            schema = self._array(args[0] if args else None)
            schema["uniqueItems"] = True
            return schema
        if origin is tuple:
            return self._tuple(args)
        if origin in _MAPPING_LIKE or (isinstance(origin, type) and issubclass(origin, dict)):
            return self._mapping(args)
        if isinstance(origin, type) and (
            _is_dataclass_type(origin)
            or _is_typeddict(origin)
            or _is_pydantic_v2(origin)
            or _is_pydantic_v1(origin)
        ):
            return self._class(origin)  # generic user class: type parameters become {}
        raise _SchemaError(f"cannot derive JSON Schema for {_type_repr(tp)}")

    def _union(self, args: Tuple[Any, ...]) -> Dict[str, Any]:
        branches = [self.schema(a) for a in args if not _is_none(a)]
        # (Python < 3.11 wraps `x: Annotated[Optional[int], ...] = None` in another Optional.)
        if any(_is_none(a) for a in args) and not any(_allows_null(b) for b in branches):
            branches.append({"type": "null"})
        if len(branches) == 1:
            return branches[0]
        return {"anyOf": branches}

    def _literal(self, args: Tuple[Any, ...]) -> Dict[str, Any]:
        values: List[Any] = []
        pending = list(args)
        while pending:
            item = pending.pop(0)
            if _is_literal_origin(_get_origin(item)):
                pending[0:0] = list(_get_args(item))
            else:
                values.append(item)
        try:
            enum_values = [to_json_compatible(v) for v in values]
        except TypeError as exc:
            raise _SchemaError(f"cannot derive JSON Schema for Literal: {exc}") from None
        schema: Dict[str, Any] = {"enum": enum_values}
        kind = _uniform_json_type(enum_values)
        if kind is not None:
            schema["type"] = kind
        return schema

    def _array(self, item: Any) -> Dict[str, Any]:
        schema: Dict[str, Any] = {"type": "array"}
        if item is not None:
            schema["items"] = self.schema(item)
        return schema

    def _tuple(self, args: Tuple[Any, ...]) -> Dict[str, Any]:
        if not args:
            return {"type": "array"}
        if args == ((),):  # Tuple[()] on 3.8 - 3.10
            return {"type": "array", "maxItems": 0}
        if len(args) == 2 and args[1] is Ellipsis:
            return self._array(args[0])
        return {
            "type": "array",
            "prefixItems": [self.schema(a) for a in args],
            "items": False,
            "minItems": len(args),
            "maxItems": len(args),
        }

    def _mapping(self, args: Tuple[Any, ...]) -> Dict[str, Any]:
        schema: Dict[str, Any] = {"type": "object"}
        if len(args) != 2:
            return schema
        key, value = args
        property_names = self._key_schema(key)
        schema["additionalProperties"] = self.schema(value)
        if property_names:
            schema["propertyNames"] = property_names
        return schema

    def _key_schema(self, key: Any) -> Optional[Dict[str, Any]]:
        """Validate a mapping key type; ``propertyNames`` for str enums / str literals."""
        bare = _strip_annotated(key)
        while getattr(bare, "__supertype__", None) is not None:
            bare = _strip_annotated(bare.__supertype__)
        if isinstance(bare, (str, typing.ForwardRef)):
            bare = self._eval(bare if isinstance(bare, str) else bare.__forward_arg__)
        if _is_any(bare):
            return None
        if isinstance(bare, type) and issubclass(bare, str):
            if issubclass(bare, enum.Enum):
                return {"enum": [to_json_compatible(m.value) for m in bare]}
            return None
        if _is_literal_origin(_get_origin(bare)):
            literal = self._literal(_get_args(bare))
            if literal.get("type") == "string":
                return {"enum": literal["enum"]}
        raise _SchemaError(
            f"cannot derive JSON Schema for a mapping with {_type_repr(key)} keys: "
            "JSON object keys are strings"
        )

    def _class(self, tp: type) -> Dict[str, Any]:
        if issubclass(tp, enum.Enum):
            return self._enum(tp)
        if _is_pydantic_v2(tp) or _is_pydantic_v1(tp):
            return self._pydantic(tp)
        if _is_dataclass_type(tp):
            return self._dataclass(tp)
        if _is_typeddict(tp):
            return self._typeddict(tp)
        if issubclass(tp, bool):
            return {"type": "boolean"}
        if issubclass(tp, int):
            return {"type": "integer"}
        if issubclass(tp, float):
            return {"type": "number"}
        if issubclass(tp, str):
            return {"type": "string"}
        if issubclass(tp, (bytes, bytearray)):
            return {"type": "string", "contentEncoding": "base64"}
        if tp in _SET_LIKE:
            return {"type": "array", "uniqueItems": True}
        if tp in _LIST_LIKE or tp is tuple:
            return {"type": "array"}
        if tp in _MAPPING_LIKE or (issubclass(tp, dict) and not _is_typeddict(tp)):
            return {"type": "object"}
        raise _SchemaError(f"cannot derive JSON Schema for {_type_repr(tp)}")

    # -- named types -------------------------------------------------------

    def _enum(self, cls: type) -> Dict[str, Any]:
        def build() -> Dict[str, Any]:
            try:
                values = [to_json_compatible(m.value) for m in cls]
            except TypeError as exc:
                raise _SchemaError(f"cannot derive JSON Schema for {_type_repr(cls)}: {exc}") from None
            schema: Dict[str, Any] = {"title": cls.__name__}
            description = _class_doc(cls).description
            if description:
                schema["description"] = description
            kind = _uniform_json_type(values)
            if kind is not None:
                schema["type"] = kind
            schema["enum"] = values
            return schema

        return self._named(cls, cls.__name__, build)

    def _dataclass(self, cls: type) -> Dict[str, Any]:
        def build() -> Dict[str, Any]:
            hints = self._class_hints(cls)
            doc = _class_doc(cls)
            properties: Dict[str, Any] = {}
            required: List[str] = []
            self._push_class_namespace(cls)
            try:
                for field in dataclasses.fields(cls):
                    if self.mode == "validation" and not field.init:
                        continue
                    tp = hints.get(field.name, field.type)
                    try:
                        schema = dict(self.schema(tp))
                    except _SchemaError as exc:
                        raise exc.nested(f"{cls.__name__}.{field.name}") from None
                    meta_desc = field.metadata.get("description") if field.metadata else None
                    description = meta_desc if isinstance(meta_desc, str) else None
                    schema = _set_description(schema, description or doc.params.get(field.name))
                    if field.default is not dataclasses.MISSING:
                        schema = _with_default(schema, field.default)
                    elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                        factory = field.default_factory  # type: ignore[misc]
                        if factory in (list, dict, tuple, set, frozenset):
                            schema = _with_default(schema, factory())
                    else:
                        required.append(field.name)
                    properties[field.name] = schema
            finally:
                self._namespaces.pop()
            return _object_schema(cls.__name__, doc.description, properties, required)

        return self._named(cls, cls.__name__, build)

    def _typeddict(self, cls: type) -> Dict[str, Any]:
        def build() -> Dict[str, Any]:
            hints = self._class_hints(cls)
            if not hints:
                hints = dict(getattr(cls, "__annotations__", {}))
            doc = _class_doc(cls)
            required_keys = getattr(cls, "__required_keys__", None)
            if required_keys is None:
                required_set = set(hints) if getattr(cls, "__total__", True) else set()
            else:
                required_set = set(required_keys)
            properties: Dict[str, Any] = {}
            self._push_class_namespace(cls)
            try:
                for name, tp in hints.items():
                    marker = tp
                    while True:  # honour explicit Required / NotRequired (also under ReadOnly)
                        origin = _get_origin(marker)
                        if any(origin is r for r in _REQUIRED_FORMS):
                            required_set.add(name)
                        elif any(origin is r for r in _NOT_REQUIRED_FORMS):
                            required_set.discard(name)
                        if origin is not None and _is_wrapper_origin(origin) and _get_args(marker):
                            marker = _get_args(marker)[0]
                            continue
                        break
                    try:
                        schema = dict(self.schema(tp))
                    except _SchemaError as exc:
                        raise exc.nested(f"{cls.__name__}.{name}") from None
                    properties[name] = _set_description(schema, doc.params.get(name))
            finally:
                self._namespaces.pop()
            required = [name for name in properties if name in required_set]
            return _object_schema(cls.__name__, doc.description, properties, required)

        return self._named(cls, cls.__name__, build)

    # -- pydantic ----------------------------------------------------------

    def _pydantic(self, model: type) -> Dict[str, Any]:
        if _is_pydantic_v2(model):
            try:
                raw = model.model_json_schema(mode=self.mode)  # type: ignore[attr-defined]
            except TypeError:
                raw = model.model_json_schema()  # type: ignore[attr-defined]
        else:
            raw = model.schema()  # type: ignore[attr-defined]
        raw = dict(raw)
        local_defs = raw.pop("$defs", None)
        if local_defs is None:
            local_defs = raw.pop("definitions", None)
        local_defs = dict(local_defs or {})
        ref = raw.get("$ref")
        if set(raw) == {"$ref"} and isinstance(ref, str):
            name = _local_ref_name(ref)
            if name is not None and name in local_defs:
                return self._pydantic_def(name, local_defs)
        key = ("pydantic", model.__name__, _canonical(raw))
        return self._named(key, model.__name__, lambda: self._resolve(raw, local_defs))

    def _pydantic_def(self, name: str, local_defs: Dict[str, Any]) -> Dict[str, Any]:
        definition = local_defs[name]
        key = ("pydantic", name, _canonical(definition))
        return self._named(key, name, lambda: self._resolve(definition, local_defs))

    def _resolve(self, node: Any, local_defs: Dict[str, Any]) -> Any:
        """Copy a pydantic schema, replacing its local ``$ref``s by our own."""
        if isinstance(node, list):
            return [self._resolve(item, local_defs) for item in node]
        if not isinstance(node, dict):
            return node
        out: Dict[str, Any] = {}
        for key, value in node.items():
            if key in _RAW_VALUE_KEYWORDS:
                out[key] = value
            elif key in _SCHEMA_MAP_KEYWORDS and isinstance(value, dict):
                out[key] = {name: self._resolve(sub, local_defs) for name, sub in value.items()}
            elif key != "$ref":
                out[key] = self._resolve(value, local_defs)
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = _local_ref_name(ref)
            if name is not None and name in local_defs:
                target = self._pydantic_def(name, local_defs)
                if not out:
                    return target
                merged = dict(target)
                merged.update(out)
                return merged
            out = dict([("$ref", ref)] + list(out.items()))
        all_of = out.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
            only = all_of[0]
            rest = {k: v for k, v in out.items() if k != "allOf"}
            if not set(only) & set(rest):  # pydantic's {"allOf": [{"$ref": ...}], ...} wrapper
                merged = dict(only)
                merged.update(rest)
                return merged
        return out


def _object_schema(
    title: str, description: str, properties: Dict[str, Any], required: List[str]
) -> Dict[str, Any]:
    schema: Dict[str, Any] = {"type": "object", "title": title}
    if description:
        schema["description"] = description
    schema["properties"] = properties
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


# ---------------------------------------------------------------------------
# inspecting the tool callable
# ---------------------------------------------------------------------------


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


def derive_tool_schema(
    fn: Callable[..., Any],
    *,
    description: Optional[str] = None,
    inline_refs: bool = True,
    context_types: Tuple[type, ...] = (),
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
    if return_annotation is not _EMPTY or "return" in info.hints:
        resolved = _annotation(info, "return", return_annotation)
        if isinstance(resolved, _Unresolved):
            raise TypeError(
                f"return value of tool {tool!r}: "
                f"cannot resolve annotation {resolved.text!r} ({resolved.error})"
            )
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


# ---------------------------------------------------------------------------
# coercion of JSON-decoded arguments
# ---------------------------------------------------------------------------

_Converter = Callable[[Any], Any]


class _Mismatch(Exception):
    """Internal: the value does not have the shape this converter handles."""


class _CoerceError(ValueError):
    """Internal: a value of the right shape is invalid (path says where)."""

    def __init__(self, reason: str, cause: Optional[BaseException] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause
        self.path: List[str] = []


def _apply(converter: _Converter, value: Any, segment: str) -> Any:
    """Convert a nested value: shape mismatches pass through, errors get a path."""
    try:
        return converter(value)
    except _Mismatch:
        return value
    except _CoerceError as exc:
        exc.path.insert(0, segment)
        raise


def _same_items(new: List[Any], old: Any) -> bool:
    return all(a is b for a, b in zip(new, old))


class _ConverterBuilder:
    """Precomputes converters from annotations (once per tool)."""

    def __init__(self, globalns: Dict[str, Any], localns: Dict[str, Any]) -> None:
        self._cache: Dict[type, Optional[_Converter]] = {}
        self._namespaces: List[Tuple[Dict[str, Any], Dict[str, Any]]] = [(globalns, localns)]
        self._depth = 0
        self._aliases: List[Any] = []

    def converter(self, tp: Any) -> Optional[_Converter]:
        self._depth += 1
        try:
            if self._depth > _MAX_DEPTH:
                return None
            return self._converter(tp)
        except Exception:  # noqa: BLE001
            return None  # anything we cannot understand is passed through unchanged
        finally:
            self._depth -= 1

    def _eval(self, text: str) -> Any:
        globalns, localns = self._namespaces[-1]
        names = dict(self._namespaces[0][1])  # the tool's closure variables
        names.update(localns)
        return _eval_type_string(text, globalns, names)

    def _class_hints(self, cls: type) -> Dict[str, Any]:
        try:
            return _get_type_hints(cls)
        except Exception:  # noqa: BLE001, S110
            pass
        try:
            return _get_type_hints(cls, localns={cls.__name__: cls})
        except Exception:  # noqa: BLE001
            return {}

    @staticmethod
    def _lazy(holder: List[Optional[_Converter]]) -> _Converter:
        def lazy(value: Any) -> Any:
            real = holder[0] if holder else None
            return real(value) if real is not None else value

        return lazy

    def _expand_alias(self, key: Any, target: Callable[[], Any]) -> Optional[_Converter]:
        if key in self._aliases:
            return None  # recursive type alias: such values are left as they are
        resolved = target()
        self._aliases.append(key)
        try:
            return self.converter(resolved)
        finally:
            self._aliases.pop()

    def _converter(self, tp: Any) -> Optional[_Converter]:
        if isinstance(tp, (str, typing.ForwardRef)):
            text = tp if isinstance(tp, str) else tp.__forward_arg__
            return self._expand_alias((text, id(self._namespaces[-1][0])), lambda: self._eval(text))
        if _is_type_alias(tp):
            return self._expand_alias(tp, lambda: tp.__value__)
        if _is_any(tp) or _is_none(tp):
            return None
        if _is_annotated(tp):
            return self.converter(tp.__origin__)
        origin = _get_origin(tp)
        if origin is not None:
            args = _get_args(tp)
            if _is_union_origin(origin):
                return self._union(args)
            if _is_literal_origin(origin):
                return None
            if _is_wrapper_origin(origin):
                return self.converter(args[0]) if args else None
            if origin in _LIST_LIKE:
                return self._sequence(args[0] if args else None)
            if origin in _SET_LIKE:
                target = frozenset if origin is frozenset else set
                return self._set(args[0] if args else None, target)
            if origin is tuple:
                return self._tuple(args)
            if origin in _MAPPING_LIKE or (isinstance(origin, type) and issubclass(origin, dict)):
                return self._mapping(args[1] if len(args) == 2 else None)
            if isinstance(origin, type):
                return self._class(origin)
            return None
        supertype = getattr(tp, "__supertype__", None)
        if supertype is not None and callable(tp):
            return self.converter(supertype)
        if isinstance(tp, type):
            return self._class(tp)
        return None

    def _class(self, cls: type) -> Optional[_Converter]:
        if issubclass(cls, enum.Enum):
            return _enum_converter(cls)
        if _is_pydantic_v2(cls) or _is_pydantic_v1(cls):
            return _pydantic_converter(cls)
        if _is_dataclass_type(cls):
            return self._dataclass(cls)
        if _is_typeddict(cls):
            return self._typeddict(cls)
        if issubclass(cls, (bytes, bytearray)):
            return _bytes_converter(bytearray if issubclass(cls, bytearray) else bytes)
        if cls is tuple:
            return self._tuple(())
        if cls in (set, frozenset):
            return self._set(None, cls)
        return None

    def _union(self, args: Tuple[Any, ...]) -> Optional[_Converter]:
        members = [a for a in args if not _is_none(a)]
        converters = [c for c in (self.converter(m) for m in members) if c is not None]
        if not converters:
            return None
        # A member that needs no conversion (str, Literal, Dict[str, Any], ...) may accept the
        # value as it is: then a failed conversion leaves the value alone instead of raising.
        lenient = len(converters) < len(members)
        leaf_types = tuple(m for m in (_strip_annotated(m) for m in members) if _usable_in_isinstance(m)) + (
            _NONE_TYPE,
        )
        literal_values: List[Any] = []
        for member in members:
            bare = _strip_annotated(member)
            if _is_literal_origin(_get_origin(bare)):
                literal_values.extend(_get_args(bare))

        def convert_union(value: Any) -> Any:
            if isinstance(value, leaf_types):
                return value
            for literal in literal_values:
                if type(literal) is type(value) and literal == value:
                    return value
            first_error: Optional[_CoerceError] = None
            for converter in converters:
                try:
                    return converter(value)
                except _Mismatch:
                    continue
                except _CoerceError as exc:
                    if first_error is None:
                        first_error = exc
            if first_error is not None and not lenient:
                raise first_error
            raise _Mismatch

        return convert_union

    def _sequence(self, item: Any) -> Optional[_Converter]:
        item_conv = self.converter(item) if item is not None else None
        if item_conv is None:
            return None

        def convert_sequence(value: Any) -> Any:
            if not isinstance(value, (list, tuple)):
                raise _Mismatch
            new = [_apply(item_conv, x, f"[{i}]") for i, x in enumerate(value)]
            if _same_items(new, value):
                return value
            return new if isinstance(value, list) else tuple(new)

        return convert_sequence

    def _set(self, item: Any, target: type) -> _Converter:
        item_conv = self.converter(item) if item is not None else None

        def convert_set(value: Any) -> Any:
            if isinstance(value, (set, frozenset)):
                return value
            if not isinstance(value, (list, tuple)):
                raise _Mismatch
            items = value
            if item_conv is not None:
                items = [_apply(item_conv, x, f"[{i}]") for i, x in enumerate(value)]
            try:
                return target(items)
            except TypeError as exc:
                raise _CoerceError(str(exc), exc) from None

        return convert_set

    def _tuple(self, args: Tuple[Any, ...]) -> _Converter:
        if args == ((),):
            args = ()
        if len(args) == 2 and args[1] is Ellipsis:
            item_conv = self.converter(args[0])
            positional: Optional[List[Optional[_Converter]]] = None
        else:
            item_conv = None
            positional = [self.converter(a) for a in args] if args else None
            if positional is not None and not any(positional):
                positional = None

        def convert_tuple(value: Any) -> Any:
            if not isinstance(value, (list, tuple)):
                raise _Mismatch
            if item_conv is None and positional is None:
                return value if isinstance(value, tuple) else tuple(value)
            new: List[Any] = []
            for i, x in enumerate(value):
                conv = item_conv
                if positional is not None:
                    conv = positional[i] if i < len(positional) else None
                new.append(_apply(conv, x, f"[{i}]") if conv is not None else x)
            if isinstance(value, tuple) and _same_items(new, value):
                return value
            return tuple(new)

        return convert_tuple

    def _mapping(self, value_type: Any) -> Optional[_Converter]:
        value_conv = self.converter(value_type) if value_type is not None else None
        if value_conv is None:
            return None

        def convert_mapping(value: Any) -> Any:
            if not isinstance(value, dict):
                raise _Mismatch
            new = {k: _apply(value_conv, v, f"[{k!r}]") for k, v in value.items()}
            if _same_items(list(new.values()), list(value.values())):
                return value
            return new

        return convert_mapping

    def _dataclass(self, cls: type) -> _Converter:
        if cls in self._cache:
            cached = self._cache[cls]
            assert cached is not None
            return cached
        holder: List[Optional[_Converter]] = []
        self._cache[cls] = self._lazy(holder)  # recursion: resolved when called
        hints = self._class_hints(cls)
        self._namespaces.append((_module_globals(cls), {cls.__name__: cls}))
        aliases, self._aliases = self._aliases, []
        try:
            field_convs: List[Tuple[str, _Converter]] = []
            for field in dataclasses.fields(cls):
                if not field.init:
                    continue
                conv = self.converter(hints.get(field.name, field.type))
                if conv is not None:
                    field_convs.append((field.name, conv))
        finally:
            self._namespaces.pop()
            self._aliases = aliases
        convs = tuple(field_convs)
        name = cls.__name__

        def convert_dataclass(value: Any) -> Any:
            if isinstance(value, cls):
                return value
            if not isinstance(value, dict):
                raise _Mismatch
            kwargs = dict(value)
            for field_name, conv in convs:
                if field_name in kwargs:
                    kwargs[field_name] = _apply(conv, kwargs[field_name], "." + field_name)
            try:
                return cls(**kwargs)
            except (TypeError, ValueError) as exc:
                raise _CoerceError(f"cannot build {name}: {exc}", exc) from None

        holder.append(convert_dataclass)
        self._cache[cls] = convert_dataclass
        return convert_dataclass

    def _typeddict(self, cls: type) -> Optional[_Converter]:
        if cls in self._cache:
            return self._cache[cls]
        holder: List[Optional[_Converter]] = []
        self._cache[cls] = self._lazy(holder)
        hints = self._class_hints(cls) or dict(getattr(cls, "__annotations__", {}))
        self._namespaces.append((_module_globals(cls), {cls.__name__: cls}))
        aliases, self._aliases = self._aliases, []
        try:
            field_convs = [
                (key, conv)
                for key, conv in ((k, self.converter(t)) for k, t in hints.items())
                if conv is not None
            ]
        finally:
            self._namespaces.pop()
            self._aliases = aliases
        if not field_convs:
            holder.append(None)
            self._cache[cls] = None
            return None
        convs = tuple(field_convs)

        def convert_typeddict(value: Any) -> Any:
            if not isinstance(value, dict):
                raise _Mismatch
            new = dict(value)
            changed = False
            for key, conv in convs:
                if key in new:
                    converted = _apply(conv, new[key], "." + key)
                    if converted is not new[key]:
                        new[key] = converted
                        changed = True
            return new if changed else value

        holder.append(convert_typeddict)
        self._cache[cls] = convert_typeddict
        return convert_typeddict


def _usable_in_isinstance(tp: Any) -> bool:
    """Plain classes only (not Any, TypedDicts, parameterized generics, protocols)."""
    if not isinstance(tp, type) or _is_any(tp) or _get_origin(tp) is not None:
        return False
    try:
        isinstance(None, tp)
    except TypeError:
        return False
    return True


def _enum_converter(cls: type) -> _Converter:
    def convert_enum(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except (TypeError, ValueError) as exc:
            raise _CoerceError(str(exc), exc) from None

    return convert_enum


def _bytes_converter(target: type) -> _Converter:
    def convert_bytes(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return value
        if not isinstance(value, str):
            raise _Mismatch
        text = "".join(value.split())
        text += "=" * (-len(text) % 4)
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            try:
                data = base64.b64decode(text, altchars=b"-_", validate=True)
            except (binascii.Error, ValueError) as exc:
                raise _CoerceError(f"invalid base64 data ({exc})", exc) from None
        return data if target is bytes else target(data)

    return convert_bytes


def _pydantic_converter(cls: type) -> _Converter:
    validate = cls.model_validate if _is_pydantic_v2(cls) else cls.parse_obj  # type: ignore[attr-defined]
    name = cls.__name__

    def convert_model(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return validate(value)
        except (TypeError, ValueError) as exc:
            raise _CoerceError(f"invalid {name}: {exc}", exc) from None

    return convert_model


def _coercion_error(param: str, exc: _CoerceError) -> ValueError:
    if exc.path:
        return ValueError(f"parameter {param!r} (at {param}{''.join(exc.path)}): {exc.reason}")
    return ValueError(f"parameter {param!r}: {exc.reason}")


def make_coercer(
    fn: Callable[..., Any], *, context_param: Optional[str] = None
) -> Optional[Callable[[Dict[str, Any]], Dict[str, Any]]]:
    """Build a converter from JSON-decoded keyword arguments to the types ``fn`` expects.

    The per-parameter converters are computed once, here.  When no parameter
    needs conversion this returns ``None`` (the common, free case).  Otherwise
    the returned function takes the decoded kwargs and returns a new dict in
    which:

    * ``bytes`` / ``bytearray`` parameters given as base64 strings are decoded;
    * ``Enum`` parameters given as values become members (``Enum(value)``);
    * dataclass parameters given as dicts are constructed, recursively
      converting nested dataclass / Enum / bytes / tuple fields and
      ``List[...]`` / ``Dict[str, ...]`` / ``Optional[...]`` / ``Union[...]``
      of those (TypedDict values are converted the same way);
    * ``tuple`` parameters given as lists become tuples, ``set`` / ``frozenset``
      parameters given as lists become sets;
    * pydantic models are built with ``Model.model_validate`` (v1: ``parse_obj``).

    Values that already have the target type (or that have a shape the
    converter does not handle) pass through unchanged, as do unknown keys and
    the ``context_param``.

    Args:
        fn: the tool callable (same kinds as :func:`derive_tool_schema` accepts).
        context_param: name of the runtime-provided parameter to leave alone.

    Returns:
        ``None``, or a function ``kwargs -> new kwargs`` that raises
        ``ValueError`` naming the parameter (and the path inside it) for
        invalid values such as bad base64 data or an unknown enum value.
    """
    info = _inspect_tool(fn)
    builder = _ConverterBuilder(info.globalns, info.localns)
    converters: List[Tuple[str, _Converter]] = []
    for param in info.signature.parameters.values():
        if param.name == context_param or param.name in info.bound:
            continue
        if param.kind not in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ):
            continue
        annotation = _annotation(info, param.name, param.annotation)
        if annotation is _EMPTY or isinstance(annotation, _Unresolved):
            continue
        converter = builder.converter(annotation)
        if converter is not None:
            converters.append((param.name, converter))
    if not converters:
        return None
    plan = tuple(converters)

    def coerce(kwargs: Dict[str, Any]) -> Dict[str, Any]:
        out = dict(kwargs)
        for name, converter in plan:
            if name in out:
                try:
                    out[name] = converter(out[name])
                except _Mismatch:
                    pass
                except _CoerceError as exc:
                    raise _coercion_error(name, exc) from exc.cause
        return out

    return coerce
