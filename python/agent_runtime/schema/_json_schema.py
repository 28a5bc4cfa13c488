"""JSON Schema (draft 2020-12) from Python annotations, and JSON-compatible values for
defaults and examples."""

import base64
import dataclasses
import enum
import json
import re
import typing
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from ._docstrings import _class_doc
from ._typing_compat import (
    _LIST_LIKE,
    _MAPPING_LIKE,
    _MAX_DEPTH,
    _NOT_REQUIRED_FORMS,
    _REQUIRED_FORMS,
    _SET_LIKE,
    _annotated_description,
    _eval_type_string,
    _get_args,
    _get_origin,
    _get_type_hints,
    _is_annotated,
    _is_any,
    _is_dataclass_type,
    _is_literal_origin,
    _is_none,
    _is_pydantic_v1,
    _is_pydantic_v2,
    _is_type_alias,
    _is_typeddict,
    _is_union_origin,
    _is_wrapper_origin,
    _module_globals,
    _strip_annotated,
    _type_repr,
)


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


# The JSON Schema type of a JSON-compatible value, first match wins (a bool is an int too).
_JSON_TYPES: Tuple[Tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def _json_type(value: Any) -> Optional[str]:
    if value is None:
        return "null"
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), None)


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
