"""Typing introspection that works the same on CPython 3.8 - 3.13, with or without
``typing_extensions``: recognising Any/Union/Literal/Annotated/TypedDict/pydantic models and
resolving string annotations (including ``X | Y`` on old Pythons)."""

import ast
import collections
import collections.abc
import dataclasses
import inspect
import sys
import types
import typing
from typing import Any, ClassVar, Dict, FrozenSet, List, Mapping, Optional, Tuple

try:  # optional: better Annotated / Literal / TypedDict support on old Pythons
    import typing_extensions as _te
except ImportError:  # pragma: no cover - depends on the environment
    _te = None  # type: ignore[assignment]


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
