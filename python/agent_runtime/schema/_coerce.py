"""Coercion of JSON-decoded keyword arguments into the Python types a tool's annotations ask
for (bytes, enums, dataclasses, tuples, pydantic models, ...)."""

import base64
import binascii
import dataclasses
import enum
import inspect
import typing
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._signature import _annotation, _inspect_tool, _Unresolved
from ._typing_compat import (
    _EMPTY,
    _LIST_LIKE,
    _MAPPING_LIKE,
    _MAX_DEPTH,
    _NONE_TYPE,
    _SET_LIKE,
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
)

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
