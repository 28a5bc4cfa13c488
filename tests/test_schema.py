# The annotations in this file are test data: they must be real typing objects evaluated at
# runtime on every supported Python (3.8+), so `from __future__ import annotations` is not used.
"""Tests for ``agent_runtime.schema`` (pure Python: no native extension needed)."""

import asyncio
import base64
import dataclasses
import datetime
import enum
import functools
import importlib.util
import itertools
import json
import math
import sys
import textwrap
import typing
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import pytest
from agent_runtime.schema import ToolSignature, derive_tool_schema, make_coercer, to_json_compatible

try:
    from typing import Annotated
except ImportError:  # Python 3.8
    try:
        from typing_extensions import Annotated
    except ImportError:
        Annotated = None  # type: ignore[assignment,misc]

try:
    from typing import Literal
except ImportError:  # pragma: no cover - Literal is in typing since 3.8
    from typing_extensions import Literal  # type: ignore[assignment]

if sys.version_info >= (3, 11):
    from typing import TypedDict
else:
    try:
        from typing_extensions import TypedDict
    except ImportError:
        from typing import TypedDict

needs_annotated = pytest.mark.skipif(Annotated is None, reason="needs typing.Annotated or typing_extensions")
needs_py39 = pytest.mark.skipif(sys.version_info < (3, 9), reason="PEP 585 generics need Python 3.9+")
needs_py310 = pytest.mark.skipif(sys.version_info < (3, 10), reason="PEP 604 unions need Python 3.10+")


# ---------------------------------------------------------------------------
# helpers and module-level types (module level so string annotations resolve)
# ---------------------------------------------------------------------------

_module_counter = itertools.count()


@pytest.fixture
def load_module(tmp_path):
    """Write Python source to a file in tmp_path and import it as a fresh module."""
    created = []

    def load(source: str):
        name = f"_schema_case_{next(_module_counter)}"
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        spec = importlib.util.spec_from_file_location(name, str(path))
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        created.append(name)
        spec.loader.exec_module(module)
        return module

    yield load
    for name in created:
        sys.modules.pop(name, None)


def refs_in(schema: Any) -> List[str]:
    """Every $ref value inside a schema."""
    found: List[str] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref":
                found.append(value)
            else:
                found.extend(refs_in(value))
    elif isinstance(schema, list):
        for item in schema:
            found.extend(refs_in(item))
    return found


def props(fn: Any, **kwargs: Any) -> Dict[str, Any]:
    return derive_tool_schema(fn, **kwargs).input_schema["properties"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mixed(enum.Enum):
    """Values of several JSON types."""

    ONE = 1
    TWO = "two"


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


@dataclasses.dataclass
class Node:
    """A tree node.

    Attributes:
        value: The payload.
        children: Sub-trees.
    """

    value: int
    children: List["Node"] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Department:
    name: str
    employees: List["Employee"] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Employee:
    name: str
    department: Optional[Department] = None


@dataclasses.dataclass
class Event:
    name: str
    when: datetime.datetime


@dataclasses.dataclass
class Payload:
    kind: Color
    blob: bytes
    pair: Tuple[int, int]
    tags: List[Color] = dataclasses.field(default_factory=list)
    origin: Optional[Point] = None
    by_name: Dict[str, Point] = dataclasses.field(default_factory=dict)
    nested: Optional["Payload"] = None


class Movie(TypedDict):
    """A movie.

    Attributes:
        title: The title.
    """

    title: str
    year: int


class PartialMovie(TypedDict, total=False):
    title: str
    year: int


class BlobDict(TypedDict):
    name: str
    data: bytes


class Context:
    """Stand-in for the runtime's context object."""


class SubContext(Context):
    pass


# ---------------------------------------------------------------------------
# primitive types and the input object
# ---------------------------------------------------------------------------


def test_primitive_types():
    def f(
        i: int,
        n: float,
        s: str,
        b: bool,
        z: None,
        raw: bytes,
        buf: bytearray,
        anything: Any,
        unannotated,
        obj: object,
    ) -> None: ...

    sig = derive_tool_schema(f)
    assert isinstance(sig, ToolSignature)
    assert sig.input_schema == {
        "type": "object",
        "properties": {
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "s": {"type": "string"},
            "b": {"type": "boolean"},
            "z": {"type": "null"},
            "raw": {"type": "string", "contentEncoding": "base64"},
            "buf": {"type": "string", "contentEncoding": "base64"},
            "anything": {},
            "unannotated": {},
            "obj": {},
        },
        "required": ["i", "n", "s", "b", "z", "raw", "buf", "anything", "unannotated", "obj"],
        "additionalProperties": False,
    }
    assert sig.output_schema == {"type": "null"}
    assert sig.description == ""
    assert sig.context_param is None
    assert sig.is_async is False


def test_required_omitted_when_every_parameter_has_a_default():
    def f(a: int = 1, b: str = "x") -> int: ...

    schema = derive_tool_schema(f).input_schema
    assert "required" not in schema
    assert schema["properties"] == {
        "a": {"type": "integer", "default": 1},
        "b": {"type": "string", "default": "x"},
    }
    assert schema["additionalProperties"] is False


def test_no_parameters():
    def ping() -> str: ...

    assert derive_tool_schema(ping).input_schema == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


def test_var_keyword_allows_additional_properties():
    def f(a: int, **extra): ...

    def typed(a: int, **extra: int): ...

    schema = derive_tool_schema(f).input_schema
    assert schema["additionalProperties"] is True
    assert list(schema["properties"]) == ["a"]
    assert derive_tool_schema(typed).input_schema["additionalProperties"] == {"type": "integer"}


def test_var_positional_is_rejected():
    def spread(a: int, *values: int): ...

    with pytest.raises(TypeError, match=r"\*values.*'spread'.*keyword arguments"):
        derive_tool_schema(spread)


def test_positional_only_without_default_is_rejected():
    def pos(a: int, /, b: int): ...

    with pytest.raises(TypeError, match=r"'a' of tool 'pos' is positional-only"):
        derive_tool_schema(pos)


def test_positional_only_with_default_is_left_out():
    def pos(a: int = 1, /, b: int = 2): ...

    assert list(props(pos)) == ["b"]


def test_keyword_only_parameters():
    def f(*, a: int, b: str = "x"): ...

    schema = derive_tool_schema(f).input_schema
    assert schema["required"] == ["a"]
    assert list(schema["properties"]) == ["a", "b"]


# ---------------------------------------------------------------------------
# containers
# ---------------------------------------------------------------------------


def test_sequences_and_sets():
    def f(
        a: List[int],
        b: list,
        c: Sequence[str],
        d: Set[int],
        e: FrozenSet[str],
        f: set,
        g: Iterable[float],
        h: typing.List,
    ): ...

    assert props(f) == {
        "a": {"type": "array", "items": {"type": "integer"}},
        "b": {"type": "array"},
        "c": {"type": "array", "items": {"type": "string"}},
        "d": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
        "e": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "f": {"type": "array", "uniqueItems": True},
        "g": {"type": "array", "items": {"type": "number"}},
        "h": {"type": "array"},
    }


def test_mappings():
    def f(a: Dict[str, int], b: Mapping[str, List[str]], c: dict, d: Dict[str, Any]): ...

    assert props(f) == {
        "a": {"type": "object", "additionalProperties": {"type": "integer"}},
        "b": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "c": {"type": "object"},
        "d": {"type": "object", "additionalProperties": {}},
    }


def test_mapping_with_literal_keys_gets_property_names():
    def f(a: Dict[Literal["x", "y"], int]): ...

    assert props(f)["a"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "propertyNames": {"enum": ["x", "y"]},
    }


@pytest.mark.parametrize("key_type", [int, float, Tuple[int, int], Priority])
def test_mapping_with_non_string_keys_is_rejected(key_type):
    def f(counts: Dict[key_type, int]): ...  # type: ignore[valid-type]

    with pytest.raises(TypeError, match=r"parameter 'counts' of tool 'f'.*JSON object keys are strings"):
        derive_tool_schema(f)


def test_tuples():
    def f(a: Tuple[int, str], b: Tuple[int, ...], c: tuple, d: Tuple[Point, bool]): ...

    p = props(f)
    assert p["a"] == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "string"}],
        "items": False,
        "minItems": 2,
        "maxItems": 2,
    }
    assert p["b"] == {"type": "array", "items": {"type": "integer"}}
    assert p["c"] == {"type": "array"}
    assert p["d"]["prefixItems"][0]["title"] == "Point"


@needs_py39
def test_builtin_generics_pep585(load_module):
    mod = load_module(
        """
        def f(a: list[int], b: dict[str, float], c: tuple[int, str], d: tuple[str, ...], e: set[int]):
            ...
        """
    )
    assert props(mod.f) == {
        "a": {"type": "array", "items": {"type": "integer"}},
        "b": {"type": "object", "additionalProperties": {"type": "number"}},
        "c": {
            "type": "array",
            "prefixItems": [{"type": "integer"}, {"type": "string"}],
            "items": False,
            "minItems": 2,
            "maxItems": 2,
        },
        "d": {"type": "array", "items": {"type": "string"}},
        "e": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
    }


# ---------------------------------------------------------------------------
# unions, literals, enums
# ---------------------------------------------------------------------------


def test_optional_and_union():
    def f(a: Optional[int], b: Union[int, str], c: Union[int, str, None], d: Union[None, Point]): ...

    assert props(f) == {
        "a": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "b": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "c": {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]},
        "d": {
            "anyOf": [
                {
                    "type": "object",
                    "title": "Point",
                    "properties": {"x": {"type": "integer"}, "y": {"type": "integer", "default": 0}},
                    "required": ["x"],
                    "additionalProperties": False,
                },
                {"type": "null"},
            ]
        },
    }


@needs_py310
def test_pep604_unions(load_module):
    mod = load_module(
        """
        def f(a: int | None, b: int | str, c: list[int] | None = None) -> str | None:
            ...
        """
    )
    sig = derive_tool_schema(mod.f)
    assert sig.input_schema["properties"] == {
        "a": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "b": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "c": {"anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}], "default": None},
    }
    assert sig.input_schema["required"] == ["a", "b"]
    assert sig.output_schema == {"anyOf": [{"type": "string"}, {"type": "null"}]}


def test_literal():
    def f(
        mode: Literal["fast", "slow"],
        level: Literal[1, 2, 3],
        mixed: Literal[1, "a"],
        flag: Literal[True],
    ): ...

    assert props(f) == {
        "mode": {"enum": ["fast", "slow"], "type": "string"},
        "level": {"enum": [1, 2, 3], "type": "integer"},
        "mixed": {"enum": [1, "a"]},
        "flag": {"enum": [True], "type": "boolean"},
    }


def test_enums():
    def f(color: Color, priority: Priority, mixed: Mixed = Mixed.TWO): ...

    assert props(f) == {
        "color": {"title": "Color", "type": "string", "enum": ["red", "green"]},
        "priority": {"title": "Priority", "type": "integer", "enum": [1, 2]},
        "mixed": {
            "title": "Mixed",
            "description": "Values of several JSON types.",
            "enum": [1, "two"],
            "default": "two",
        },
    }


# ---------------------------------------------------------------------------
# TypedDict and dataclasses
# ---------------------------------------------------------------------------


def test_typeddict():
    def f(movie: Movie, partial: PartialMovie): ...

    p = props(f)
    assert p["movie"] == {
        "type": "object",
        "title": "Movie",
        "description": "A movie.",
        "properties": {"title": {"type": "string", "description": "The title."}, "year": {"type": "integer"}},
        "required": ["title", "year"],
        "additionalProperties": False,
    }
    assert p["partial"] == {
        "type": "object",
        "title": "PartialMovie",
        "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
        "additionalProperties": False,
    }


@pytest.mark.parametrize("future", [False, True])
def test_typeddict_required_and_not_required(load_module, future):
    if sys.version_info >= (3, 11):
        imports = "from typing import NotRequired, Required, TypedDict"
    else:
        pytest.importorskip("typing_extensions")
        imports = "from typing_extensions import NotRequired, Required, TypedDict"
    header = "from __future__ import annotations\n" if future else ""
    mod = load_module(
        header
        + imports
        + textwrap.dedent(
            """

            class Options(TypedDict, total=False):
                name: Required[str]
                size: int

            class Query(TypedDict):
                text: str
                limit: NotRequired[int]

            def f(options: Options, query: Query):
                ...
            """
        )
    )
    p = props(mod.f)
    assert p["options"]["required"] == ["name"]
    assert p["options"]["properties"] == {"name": {"type": "string"}, "size": {"type": "integer"}}
    assert p["query"]["required"] == ["text"]
    assert p["query"]["properties"] == {"text": {"type": "string"}, "limit": {"type": "integer"}}


def test_dataclass():
    @dataclasses.dataclass
    class Settings:
        """Tool settings.

        Attributes:
            name: Display name.
        """

        name: str
        retries: int = 3
        tags: List[str] = dataclasses.field(default_factory=list)
        color: Color = Color.GREEN
        factory: Point = dataclasses.field(default_factory=lambda: Point(1))
        note: str = dataclasses.field(default="", metadata={"description": "Free text."})
        internal: int = dataclasses.field(default=0, init=False)

    def f(settings: Settings): ...

    assert props(f)["settings"] == {
        "type": "object",
        "title": "Settings",
        "description": "Tool settings.",
        "properties": {
            "name": {"type": "string", "description": "Display name."},
            "retries": {"type": "integer", "default": 3},
            "tags": {"type": "array", "items": {"type": "string"}, "default": []},
            "color": {"title": "Color", "type": "string", "enum": ["red", "green"], "default": "green"},
            "factory": {
                "type": "object",
                "title": "Point",
                "properties": {"x": {"type": "integer"}, "y": {"type": "integer", "default": 0}},
                "required": ["x"],
                "additionalProperties": False,
            },
            "note": {"type": "string", "description": "Free text.", "default": ""},
        },
        "required": ["name"],
        "additionalProperties": False,
    }


def test_dataclass_generated_docstring_is_not_a_description():
    def f(p: Point): ...

    assert "description" not in props(f)["p"]


def test_nested_types_are_inlined_without_refs():
    @dataclasses.dataclass
    class Line:
        start: Point
        end: Point
        color: Color = Color.RED

    def f(lines: List[Line], movie: Movie) -> Line: ...

    sig = derive_tool_schema(f)
    assert refs_in(sig.input_schema) == []
    assert refs_in(sig.output_schema) == []
    assert "$defs" not in sig.input_schema
    assert "$defs" not in (sig.output_schema or {})
    line = sig.input_schema["properties"]["lines"]["items"]
    assert line["properties"]["start"]["title"] == "Point"
    assert line["properties"]["color"]["enum"] == ["red", "green"]


def test_recursive_dataclass_uses_defs_only_for_the_recursive_type():
    def f(tree: Node, origin: Point) -> Node: ...

    sig = derive_tool_schema(f)
    schema = sig.input_schema
    assert schema["properties"]["tree"] == {"$ref": "#/$defs/Node"}
    assert schema["properties"]["origin"]["title"] == "Point"  # not recursive: still inlined
    assert list(schema["$defs"]) == ["Node"]
    node = schema["$defs"]["Node"]
    assert node["description"] == "A tree node."
    assert node["properties"]["value"] == {"type": "integer", "description": "The payload."}
    assert node["properties"]["children"] == {
        "type": "array",
        "items": {"$ref": "#/$defs/Node"},
        "default": [],
        "description": "Sub-trees.",
    }
    assert sig.output_schema is not None
    assert sig.output_schema["$ref"] == "#/$defs/Node"
    assert list(sig.output_schema["$defs"]) == ["Node"]


def test_mutually_recursive_dataclasses():
    def f(employee: Employee, department: Department): ...

    schema = derive_tool_schema(f).input_schema
    # Every $ref points at a definition that exists.
    for ref in refs_in(schema):
        assert ref.startswith("#/$defs/")
        assert ref[len("#/$defs/") :] in schema["$defs"]
    assert set(schema["$defs"]) <= {"Employee", "Department"}


def test_inline_refs_false_puts_named_types_in_defs():
    def f(point: Point, color: Color, movie: Movie, tree: Optional[Node] = None) -> Point: ...

    sig = derive_tool_schema(f, inline_refs=False)
    schema = sig.input_schema
    assert schema["properties"]["point"] == {"$ref": "#/$defs/Point"}
    assert schema["properties"]["color"] == {"$ref": "#/$defs/Color"}
    assert schema["properties"]["movie"] == {"$ref": "#/$defs/Movie"}
    assert schema["properties"]["tree"] == {
        "anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}],
        "default": None,
    }
    assert set(schema["$defs"]) == {"Point", "Color", "Movie", "Node"}
    assert schema["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert schema["$defs"]["Color"] == {"title": "Color", "type": "string", "enum": ["red", "green"]}
    assert sig.output_schema == {
        "$ref": "#/$defs/Point",
        "$defs": {"Point": schema["$defs"]["Point"]},
    }


def test_two_classes_with_the_same_name_get_distinct_defs():
    def make():
        @dataclasses.dataclass
        class Point:
            label: str

        return Point

    other_point = make()

    def f(a: Point, b: other_point): ...  # type: ignore[valid-type]

    schema = derive_tool_schema(f, inline_refs=False).input_schema
    assert schema["properties"]["a"] == {"$ref": "#/$defs/Point"}
    assert schema["properties"]["b"] == {"$ref": "#/$defs/Point2"}
    assert schema["$defs"]["Point2"]["properties"] == {"label": {"type": "string"}}


# ---------------------------------------------------------------------------
# Annotated, NewType, TypeVar
# ---------------------------------------------------------------------------


@needs_annotated
def test_annotated_descriptions():
    class FieldInfo:
        def __init__(self, description: str) -> None:
            self.description = description

    def f(
        a: Annotated[int, "How many."],
        b: Annotated[str, FieldInfo("The name.")],
        c: Annotated[Optional[int], 42, "Maybe."] = None,
        d: Annotated[List[str], object()] = (),
    ):
        """Do it.

        Args:
            a: Docstring text loses to Annotated.
            d: From the docstring.
        """

    assert props(f) == {
        "a": {"type": "integer", "description": "How many."},
        "b": {"type": "string", "description": "The name."},
        "c": {"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "Maybe.", "default": None},
        "d": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "From the docstring.",
        },
    }


def test_newtype_and_typevar():
    UserId = typing.NewType("UserId", int)
    T = typing.TypeVar("T")
    B = typing.TypeVar("B", bound=str)

    def f(user: UserId, anything: T, text: B): ...  # type: ignore[valid-type]

    assert props(f) == {"user": {"type": "integer"}, "anything": {}, "text": {"type": "string"}}


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


def test_datetime_parameter_is_rejected():
    def f(when: datetime.datetime): ...

    with pytest.raises(TypeError) as info:
        derive_tool_schema(f)
    assert str(info.value) == "parameter 'when' of tool 'f': cannot derive JSON Schema for datetime.datetime"


def test_unknown_class_is_rejected():
    class Opaque:
        pass

    def g(thing: Opaque): ...

    with pytest.raises(
        TypeError, match=r"parameter 'thing' of tool 'g': cannot derive JSON Schema for .*Opaque"
    ):
        derive_tool_schema(g)


def test_unknown_type_nested_in_a_dataclass_names_the_field():
    def f(event: List[Event]): ...

    with pytest.raises(TypeError) as info:
        derive_tool_schema(f)
    message = str(info.value)
    assert message.startswith(
        "parameter 'event' of tool 'f': cannot derive JSON Schema for datetime.datetime"
    )
    assert "Event.when" in message


def test_unknown_return_type_is_rejected():
    def f() -> datetime.date: ...

    with pytest.raises(
        TypeError, match=r"return value of tool 'f': cannot derive JSON Schema for datetime.date"
    ):
        derive_tool_schema(f)


def test_unresolvable_string_annotation_is_rejected():
    def f(x: "DoesNotExist"): ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(
        TypeError, match=r"parameter 'x' of tool 'f': cannot resolve annotation 'DoesNotExist'"
    ):
        derive_tool_schema(f)


def test_callable_type_is_rejected():
    def f(cb: typing.Callable[[int], int]): ...

    with pytest.raises(TypeError, match="parameter 'cb'"):
        derive_tool_schema(f)


# ---------------------------------------------------------------------------
# defaults
# ---------------------------------------------------------------------------


def test_defaults_are_json_compatible():
    sentinel = object()

    def f(
        color: Color = Color.RED,
        pair: Tuple[int, int] = (1, 2),
        raw: bytes = b"\x00\x01",
        point: Point = Point(1, 2),  # noqa: B008
        opaque: Any = sentinel,
        ratio: float = math.inf,
        name: Optional[str] = None,
    ): ...

    p = props(f)
    assert p["color"]["default"] == "red"
    assert p["pair"]["default"] == [1, 2]
    assert p["raw"]["default"] == "AAE="
    assert p["point"]["default"] == {"x": 1, "y": 2}
    assert "default" not in p["opaque"]
    assert "default" not in p["ratio"]
    assert p["name"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}


def test_none_default_makes_the_property_nullable_on_every_python():
    # Python < 3.11 turns `x: int = None` into Optional[int]; the schema is the same everywhere.
    def f(limit: int = None): ...  # type: ignore[assignment]  # noqa: RUF013

    assert props(f)["limit"] == {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}


# ---------------------------------------------------------------------------
# docstrings and descriptions
# ---------------------------------------------------------------------------


def google_tool(a: int, b: str = "x", *, flag: bool = False) -> int:
    """Add things up.

    Longer explanation here.

    Args:
        a (int): The first
            number.
        b: The second.
        flag: Whether to
            do it.

    Returns:
        int: The sum.

    Raises:
        ValueError: never.
    """
    return a


def numpy_tool(x: float, y: float = 0.0) -> float:
    """Compute a distance.

    Parameters
    ----------
    x : float
        The x coordinate.
    y : float, optional
        The y
        coordinate.

    Returns
    -------
    float
        The distance.

    Notes
    -----
    Uses Euclid.
    """
    return x


def sphinx_tool(a: int) -> str:
    """Convert a number.

    :param a: The number.
    :type a: int
    :returns: The text.
    :rtype: str
    """
    return str(a)


def test_google_docstring():
    sig = derive_tool_schema(google_tool)
    assert sig.description == "Add things up.\n\nLonger explanation here.\n\nRaises:\n    ValueError: never."
    p = sig.input_schema["properties"]
    assert p["a"] == {"type": "integer", "description": "The first number."}
    assert p["b"] == {"type": "string", "description": "The second.", "default": "x"}
    assert p["flag"] == {"type": "boolean", "description": "Whether to do it.", "default": False}
    assert sig.output_schema == {"type": "integer", "description": "The sum."}


def test_google_docstring_variants():
    def f(items: List[str], **options: Any) -> None:
        """Summary line.

        Arguments:
            items (List[str], optional): The items.
            **options: Extra options.

        Returns: Nothing at all.
        """

    sig = derive_tool_schema(f)
    assert sig.description == "Summary line."
    assert sig.input_schema["properties"]["items"]["description"] == "The items."
    assert sig.output_schema == {"type": "null", "description": "Nothing at all."}


def test_numpy_docstring():
    sig = derive_tool_schema(numpy_tool)
    assert sig.description == "Compute a distance.\n\nNotes\n-----\nUses Euclid."
    p = sig.input_schema["properties"]
    assert p["x"] == {"type": "number", "description": "The x coordinate."}
    assert p["y"] == {"type": "number", "description": "The y coordinate.", "default": 0.0}
    assert sig.output_schema == {"type": "number", "description": "The distance."}


def test_sphinx_docstring():
    sig = derive_tool_schema(sphinx_tool)
    assert sig.description == "Convert a number."
    assert sig.input_schema["properties"]["a"]["description"] == "The number."
    assert sig.output_schema == {"type": "string", "description": "The text."}


def test_description_override_and_missing_docstring():
    def bare(a: int): ...

    assert derive_tool_schema(bare).description == ""
    sig = derive_tool_schema(google_tool, description="Custom.")
    assert sig.description == "Custom."
    assert sig.input_schema["properties"]["a"]["description"] == "The first number."


# ---------------------------------------------------------------------------
# return values
# ---------------------------------------------------------------------------


def test_output_schema():
    def none_annotation(): ...

    def returns_none() -> None: ...

    def returns_list() -> List[Point]: ...

    assert derive_tool_schema(none_annotation).output_schema is None
    assert derive_tool_schema(returns_none).output_schema == {"type": "null"}
    out = derive_tool_schema(returns_list).output_schema
    assert out is not None
    assert out["type"] == "array"
    assert out["items"]["title"] == "Point"


def test_output_dataclass_includes_non_init_fields():
    @dataclasses.dataclass
    class Result:
        value: int
        computed: int = dataclasses.field(init=False, default=0)

    def f(r: Result) -> Result: ...

    sig = derive_tool_schema(f)
    assert list(sig.input_schema["properties"]["r"]["properties"]) == ["value"]
    assert sig.output_schema is not None
    assert list(sig.output_schema["properties"]) == ["value", "computed"]


# ---------------------------------------------------------------------------
# kinds of callables
# ---------------------------------------------------------------------------


def test_async_function():
    async def fetch(url: str, retries: int = 3) -> Dict[str, str]:
        """Fetch a URL."""
        return {}

    sig = derive_tool_schema(fetch)
    assert sig.is_async is True
    assert sig.description == "Fetch a URL."
    assert sig.input_schema["required"] == ["url"]
    assert sig.output_schema == {"type": "object", "additionalProperties": {"type": "string"}}


def test_callable_objects():
    class Greeter:
        """Greets people."""

        def __call__(self, name: str, times: int = 1) -> str:
            """Say hello.

            Args:
                name: Who to greet.
            """
            return name * times

    class Counter:
        """Counts things."""

        async def __call__(self, items: List[int]) -> int:
            return len(items)

    sig = derive_tool_schema(Greeter())
    assert sig.description == "Say hello."
    assert sig.input_schema["properties"] == {
        "name": {"type": "string", "description": "Who to greet."},
        "times": {"type": "integer", "default": 1},
    }
    assert sig.is_async is False
    sig = derive_tool_schema(Counter())
    assert sig.description == "Counts things."
    assert sig.is_async is True
    assert sig.output_schema == {"type": "integer"}


def test_bound_methods_exclude_self_and_cls():
    class Service:
        def lookup(self, key: str) -> int:
            return 0

        @classmethod
        def build(cls, size: int) -> None:
            return None

        @staticmethod
        def helper(flag: bool) -> bool:
            return flag

    assert list(props(Service().lookup)) == ["key"]
    assert list(props(Service.build)) == ["size"]
    assert list(props(Service.helper)) == ["flag"]


def test_functools_partial():
    def base(a: int, b: str, c: float = 1.0, *, d: Color = Color.RED) -> str:
        """Base tool.

        Args:
            b: The b.
        """
        return b

    tool = functools.partial(base, 1, c=2.0)
    sig = derive_tool_schema(tool)
    assert sig.description == "Base tool."
    assert sig.input_schema["properties"] == {
        "b": {"type": "string", "description": "The b."},
        "d": {"title": "Color", "type": "string", "enum": ["red", "green"], "default": "red"},
    }
    assert sig.input_schema["required"] == ["b"]
    assert sig.output_schema == {"type": "string"}

    async def work(x: int, y: int) -> int:
        return x + y

    nested = functools.partial(functools.partial(work, y=2))
    sig = derive_tool_schema(nested)
    assert sig.is_async is True
    assert list(sig.input_schema["properties"]) == ["x"]


# ---------------------------------------------------------------------------
# context parameters
# ---------------------------------------------------------------------------


def test_context_parameter_is_excluded():
    def f(query: str, ctx: Context) -> str: ...

    def g(ctx: Optional[Context], query: str): ...

    def h(query: str, ctx: SubContext): ...

    for fn in (f, g, h):
        sig = derive_tool_schema(fn, context_types=(Context,))
        assert sig.context_param == "ctx"
        assert list(sig.input_schema["properties"]) == ["query"]
        assert sig.input_schema["required"] == ["query"]

    # Without context_types the parameter is an ordinary (and here underivable) one.
    with pytest.raises(TypeError, match="parameter 'ctx'"):
        derive_tool_schema(f)


def test_two_context_parameters_are_rejected():
    def f(a: Context, b: Context): ...

    with pytest.raises(TypeError, match="more than one context parameter"):
        derive_tool_schema(f, context_types=(Context,))


def test_context_parameter_with_unresolvable_name(load_module):
    mod = load_module(
        """
        from __future__ import annotations
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            from somewhere_else import Context

        def f(query: str, ctx: Context) -> str:
            ...
        """
    )
    sig = derive_tool_schema(mod.f, context_types=(Context,))
    assert sig.context_param == "ctx"
    assert list(sig.input_schema["properties"]) == ["query"]


def test_generic_context_parameter(load_module):
    T = typing.TypeVar("T")

    class RunContext(typing.Generic[T]):
        pass

    def f(ctx: RunContext[int], q: str): ...

    sig = derive_tool_schema(f, context_types=(RunContext,))
    assert sig.context_param == "ctx"
    assert list(sig.input_schema["properties"]) == ["q"]

    mod = load_module(
        """
        from __future__ import annotations

        def g(ctx: Optional[RunContext[Deps]], q: str):
            ...
        """
    )
    assert derive_tool_schema(mod.g, context_types=(RunContext,)).context_param == "ctx"


# ---------------------------------------------------------------------------
# string annotations
# ---------------------------------------------------------------------------


def test_string_annotations_without_future_import():
    def f(p: "Point", items: "List[Color]") -> "Optional[Node]": ...

    sig = derive_tool_schema(f)
    assert sig.input_schema["properties"]["p"]["title"] == "Point"
    assert sig.input_schema["properties"]["items"]["items"]["enum"] == ["red", "green"]
    assert sig.output_schema is not None
    assert sig.output_schema["anyOf"][0] == {"$ref": "#/$defs/Node"}


FUTURE_MODULE = """
from __future__ import annotations

import dataclasses
import enum
from typing import Dict, List, Optional


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclasses.dataclass
class Item:
    name: str
    mode: Mode = Mode.FAST
    children: List[Item] = dataclasses.field(default_factory=list)
    data: Optional[bytes] = None


def tool(item: Item, limit: Optional[int] = None, tags: List[str] = ()) -> Dict[str, int]:
    '''Process an item.

    Args:
        item: The item.
    '''
    return {}


async def atool(mode: Mode) -> Item:
    ...
"""


def test_future_annotations_module(load_module):
    mod = load_module(FUTURE_MODULE)
    sig = derive_tool_schema(mod.tool)
    schema = sig.input_schema
    assert sig.description == "Process an item."
    assert schema["properties"]["item"] == {"$ref": "#/$defs/Item", "description": "The item."}
    item = schema["$defs"]["Item"]
    assert item["properties"]["mode"] == {
        "title": "Mode",
        "type": "string",
        "enum": ["fast", "slow"],
        "default": "fast",
    }
    assert item["properties"]["children"] == {
        "type": "array",
        "items": {"$ref": "#/$defs/Item"},
        "default": [],
    }
    assert item["properties"]["data"] == {
        "anyOf": [{"type": "string", "contentEncoding": "base64"}, {"type": "null"}],
        "default": None,
    }
    assert schema["properties"]["limit"] == {
        "anyOf": [{"type": "integer"}, {"type": "null"}],
        "default": None,
    }
    assert schema["properties"]["tags"] == {"type": "array", "items": {"type": "string"}, "default": []}
    assert sig.output_schema == {"type": "object", "additionalProperties": {"type": "integer"}}

    asig = derive_tool_schema(mod.atool)
    assert asig.is_async is True
    assert asig.output_schema is not None
    assert asig.output_schema["$ref"] == "#/$defs/Item"

    coerce = make_coercer(mod.tool)
    assert coerce is not None
    out = coerce({"item": {"name": "a", "mode": "slow", "children": [{"name": "b", "data": b64(b"hi")}]}})
    assert out["item"] == mod.Item("a", mod.Mode.SLOW, [mod.Item("b", data=b"hi")])


def test_future_annotations_with_local_classes(load_module):
    # get_type_hints cannot see function-local classes: they are found through the tool's
    # closure and the classes met so far, and repeated string annotations are not mistaken
    # for recursive type aliases.
    mod = load_module(
        """
        from __future__ import annotations
        import dataclasses
        import enum
        from typing import List, Optional

        def make():
            class Tag(enum.Enum):
                NEW = "new"

            @dataclasses.dataclass
            class Item:
                name: str
                children: List[Item] = dataclasses.field(default_factory=list)
                tag: Optional[Tag] = None

            @dataclasses.dataclass
            class Wrapper:
                items: List[Item]
                first: Optional[Item] = None

            def tool(wrapper: Wrapper) -> List[Item]:
                return [Item, Wrapper, Tag]

            return tool, Item, Wrapper, Tag
        """
    )
    tool, item_cls, wrapper_cls, tag_cls = mod.make()
    sig = derive_tool_schema(tool)
    wrapper = sig.input_schema["properties"]["wrapper"]
    assert wrapper["title"] == "Wrapper"
    assert wrapper["properties"]["items"] == {"type": "array", "items": {"$ref": "#/$defs/Item"}}
    assert sig.input_schema["$defs"]["Item"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Item"}
    assert sig.output_schema is not None
    assert sig.output_schema["items"] == {"$ref": "#/$defs/Item"}
    coerce = make_coercer(tool)
    assert coerce is not None
    items = [{"name": "a", "children": [{"name": "b", "tag": "new"}]}]
    out = coerce({"wrapper": {"items": items, "first": {"name": "c"}}})
    assert out["wrapper"] == wrapper_cls([item_cls("a", [item_cls("b", tag=tag_cls.NEW)])], item_cls("c"))


def test_modern_syntax_in_string_annotations_works_on_every_python(load_module):
    # On 3.8 / 3.9 `int | None` and `list[int]` cannot be evaluated directly; the module
    # rewrites them to typing.Union / typing.List when get_type_hints fails.
    mod = load_module(
        """
        from __future__ import annotations
        import dataclasses

        @dataclasses.dataclass
        class Box:
            sizes: list[int]
            label: str | None = None

        def f(box: Box, counts: dict[str, int] | None = None, pair: tuple[int, str] = (1, "a")) -> list[Box]:
            ...
        """
    )
    sig = derive_tool_schema(mod.f)
    p = sig.input_schema["properties"]
    assert p["box"]["properties"] == {
        "sizes": {"type": "array", "items": {"type": "integer"}},
        "label": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
    }
    assert p["counts"] == {
        "anyOf": [{"type": "object", "additionalProperties": {"type": "integer"}}, {"type": "null"}],
        "default": None,
    }
    assert p["pair"]["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert sig.output_schema is not None
    assert sig.output_schema["items"]["title"] == "Box"
    coerce = make_coercer(mod.f)
    assert coerce is not None
    assert coerce({"box": {"sizes": [1]}, "pair": [2, "b"]}) == {"box": mod.Box([1]), "pair": (2, "b")}


JsonValue = Union[Dict[str, "JsonValue"], List["JsonValue"], str, int, float, bool, None]


def test_recursive_type_alias_is_rejected_quickly():
    def f(value: JsonValue): ...

    with pytest.raises(TypeError, match=r"parameter 'value' of tool 'f'.*recursive type alias 'JsonValue'"):
        derive_tool_schema(f)
    assert make_coercer(f) is None


@pytest.mark.skipif(sys.version_info < (3, 12), reason="PEP 695 type statements need Python 3.12+")
def test_pep695_type_alias(load_module):
    mod = load_module(
        """
        type Vector = list[float]
        type Tree = dict[str, Tree] | int

        def f(v: Vector, t: int = 0) -> Vector:
            ...

        def g(t: Tree):
            ...
        """
    )
    sig = derive_tool_schema(mod.f)
    assert sig.input_schema["properties"]["v"] == {"type": "array", "items": {"type": "number"}}
    assert sig.output_schema == {"type": "array", "items": {"type": "number"}}
    with pytest.raises(TypeError, match="recursive type alias"):
        derive_tool_schema(mod.g)


def test_class_and_decorated_function_tools():
    @dataclasses.dataclass
    class MakeThing:
        """Make a thing.

        Args:
            size: How big.
        """

        size: int
        color: Color = Color.RED

    sig = derive_tool_schema(MakeThing)
    assert sig.description == "Make a thing."
    assert sig.input_schema["properties"]["size"] == {"type": "integer", "description": "How big."}
    assert sig.output_schema is None
    coerce = make_coercer(MakeThing)
    assert coerce is not None
    assert MakeThing(**coerce({"size": 1, "color": "green"})) == MakeThing(1, Color.GREEN)

    def logged(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)

        return wrapper

    @logged
    def decorated(color: Color, n: int = 1) -> str:
        """Decorated tool."""
        return color.value * n

    sig = derive_tool_schema(decorated)
    assert sig.description == "Decorated tool."
    assert list(sig.input_schema["properties"]) == ["color", "n"]
    coerce = make_coercer(decorated)
    assert coerce is not None
    assert decorated(**coerce({"color": "red", "n": 2})) == "redred"


# ---------------------------------------------------------------------------
# make_coercer
# ---------------------------------------------------------------------------


def test_coercer_is_none_when_nothing_needs_conversion():
    def f(
        a: int,
        b: List[str],
        c: Optional[float] = None,
        d: Dict[str, int] = None,  # type: ignore[assignment]  # noqa: RUF013
        e: Literal["x"] = "x",
        f: Movie = None,  # type: ignore[assignment]
        g: Any = None,
        h=None,
        **rest: Any,
    ): ...

    assert make_coercer(f) is None


def test_coercer_bytes():
    def f(data: bytes, buf: bytearray, maybe: Optional[bytes] = None, many: List[bytes] = ()): ...

    coerce = make_coercer(f)
    assert coerce is not None
    kwargs = {"data": b64(b"\x00\xff"), "buf": b64(b"xy"), "maybe": None, "many": [b64(b"a"), b64(b"b")]}
    out = coerce(kwargs)
    assert out == {"data": b"\x00\xff", "buf": bytearray(b"xy"), "maybe": None, "many": [b"a", b"b"]}
    assert isinstance(out["buf"], bytearray)
    assert kwargs["data"] == b64(b"\x00\xff")  # the input dict is not modified
    # URL-safe alphabet and missing padding are accepted too.
    assert coerce({"data": "_-8"})["data"] == b"\xff\xef"
    # Real bytes pass through untouched.
    raw = b"abc"
    assert coerce({"data": raw})["data"] is raw


def test_coercer_invalid_base64_names_the_parameter():
    def f(data: bytes): ...

    coerce = make_coercer(f)
    assert coerce is not None
    with pytest.raises(ValueError, match=r"parameter 'data'.*invalid base64"):
        coerce({"data": "not base64!"})


def test_coercer_enums():
    def f(color: Color, priority: Priority = Priority.LOW): ...

    coerce = make_coercer(f)
    assert coerce is not None
    assert coerce({"color": "green", "priority": 2}) == {"color": Color.GREEN, "priority": Priority.HIGH}
    assert coerce({"color": Color.RED})["color"] is Color.RED
    with pytest.raises(ValueError, match=r"parameter 'color'.*purple"):
        coerce({"color": "purple"})


def test_coercer_tuples_and_sets():
    def f(
        pair: Tuple[int, str], rest: Tuple[Color, ...], plain: tuple, unique: Set[str], frozen: FrozenSet[int]
    ): ...

    coerce = make_coercer(f)
    assert coerce is not None
    out = coerce(
        {"pair": [1, "a"], "rest": ["red", "green"], "plain": [1], "unique": ["a", "a"], "frozen": [1]}
    )
    assert out == {
        "pair": (1, "a"),
        "rest": (Color.RED, Color.GREEN),
        "plain": (1,),
        "unique": {"a"},
        "frozen": frozenset([1]),
    }
    assert isinstance(out["frozen"], frozenset)
    given = (1, "a")
    assert coerce({"pair": given})["pair"] is given


def test_coercer_dataclasses_recursively():
    def f(payload: Payload, points: List[Point], lookup: Dict[str, Point], maybe: Optional[Point] = None): ...

    coerce = make_coercer(f)
    assert coerce is not None
    out = coerce(
        {
            "payload": {
                "kind": "red",
                "blob": b64(b"xyz"),
                "pair": [1, 2],
                "tags": ["green"],
                "origin": {"x": 5},
                "by_name": {"a": {"x": 1, "y": 2}},
                "nested": {"kind": "green", "blob": b64(b""), "pair": [3, 4]},
            },
            "points": [{"x": 1}, {"x": 2, "y": 3}],
            "lookup": {"k": {"x": 9}},
            "maybe": None,
            "unknown_key": {"x": 1},
        }
    )
    assert out["payload"] == Payload(
        kind=Color.RED,
        blob=b"xyz",
        pair=(1, 2),
        tags=[Color.GREEN],
        origin=Point(5),
        by_name={"a": Point(1, 2)},
        nested=Payload(kind=Color.GREEN, blob=b"", pair=(3, 4)),
    )
    assert out["points"] == [Point(1), Point(2, 3)]
    assert out["lookup"] == {"k": Point(9)}
    assert out["maybe"] is None
    assert out["unknown_key"] == {"x": 1}


def test_coercer_passes_real_objects_through():
    def f(payload: Payload, points: List[Point], tree: Node): ...

    coerce = make_coercer(f)
    assert coerce is not None
    payload = Payload(kind=Color.RED, blob=b"", pair=(1, 2))
    points = [Point(1), Point(2)]
    tree = Node(1, [Node(2)])
    out = coerce({"payload": payload, "points": points, "tree": tree})
    assert out["payload"] is payload
    assert out["points"] is points
    assert out["tree"] is tree


def test_coercer_recursive_dataclass():
    def f(tree: Node): ...

    coerce = make_coercer(f)
    assert coerce is not None
    out = coerce({"tree": {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]}})
    assert out["tree"] == Node(1, [Node(2, [Node(3)])])


def test_coercer_error_inside_a_dataclass_has_a_path():
    def f(payload: Payload): ...

    coerce = make_coercer(f)
    assert coerce is not None
    with pytest.raises(ValueError, match=r"parameter 'payload' \(at payload\.nested\.blob\): invalid base64"):
        coerce(
            {
                "payload": {
                    "kind": "red",
                    "blob": "",
                    "pair": [1, 2],
                    "nested": {"kind": "red", "blob": "!!", "pair": [1, 2]},
                }
            }
        )
    with pytest.raises(ValueError, match=r"parameter 'payload' \(at payload\.tags\[1\]\)"):
        coerce({"payload": {"kind": "red", "blob": "", "pair": [1, 2], "tags": ["red", "blue"]}})
    with pytest.raises(ValueError, match=r"parameter 'payload': cannot build Payload"):
        coerce({"payload": {"kind": "red"}})


def test_coercer_unions():
    def f(value: Union[Point, str], either: Union[Color, int] = 0, blob: Union[int, bytes] = 0): ...

    coerce = make_coercer(f)
    assert coerce is not None
    assert coerce({"value": {"x": 1}})["value"] == Point(1)
    assert coerce({"value": "text"})["value"] == "text"
    assert coerce({"either": "red"})["either"] is Color.RED
    assert coerce({"either": 7})["either"] == 7
    assert coerce({"blob": b64(b"q")})["blob"] == b"q"


def test_coercer_union_with_a_member_that_needs_no_conversion():
    def f(value: Union[Point, Dict[str, Any]], strict: Optional[Point] = None): ...

    coerce = make_coercer(f)
    assert coerce is not None
    assert coerce({"value": {"x": 3}})["value"] == Point(3)
    assert coerce({"value": {"z": 3}})["value"] == {"z": 3}  # fits Dict[str, Any] as it is
    with pytest.raises(ValueError, match=r"parameter 'strict': cannot build Point"):
        coerce({"strict": {"z": 3}})


def test_coercer_typeddict_with_bytes():
    def f(item: BlobDict): ...

    coerce = make_coercer(f)
    assert coerce is not None
    assert coerce({"item": {"name": "n", "data": b64(b"zz")}}) == {"item": {"name": "n", "data": b"zz"}}


def test_coercer_skips_context_and_partial_bound_parameters():
    def f(ctx: Color, data: bytes, mode: Color = Color.RED): ...

    coerce = make_coercer(f, context_param="ctx")
    assert coerce is not None
    out = coerce({"ctx": "raw", "data": b64(b"1")})
    assert out == {"ctx": "raw", "data": b"1"}

    bound = functools.partial(f, mode="not converted")
    coerce = make_coercer(bound, context_param="ctx")
    assert coerce is not None
    assert coerce({"mode": "green"}) == {"mode": "green"}

    only_ctx = functools.partial(f, data=b"", mode=Color.RED)
    assert make_coercer(only_ctx, context_param="ctx") is None


def test_coercer_callable_object_and_async():
    class Tool:
        async def __call__(self, color: Color) -> None: ...

    coerce = make_coercer(Tool())
    assert coerce is not None
    assert coerce({"color": "red"}) == {"color": Color.RED}


def test_coercer_result_calls_the_tool():
    async def tool(payload: Payload, when: Tuple[int, int]) -> str:
        return f"{payload.kind.value}:{payload.blob.decode()}:{when}"

    coerce = make_coercer(tool)
    assert coerce is not None
    kwargs = coerce({"payload": {"kind": "green", "blob": b64(b"ok"), "pair": [0, 0]}, "when": [1, 2]})
    assert asyncio.run(tool(**kwargs)) == "green:ok:(1, 2)"


# ---------------------------------------------------------------------------
# pydantic (real v2 when installed; a duck-typed v1 stand-in everywhere)
# ---------------------------------------------------------------------------


def _require_pydantic_v2() -> Any:
    pydantic = pytest.importorskip("pydantic")
    if not hasattr(pydantic.BaseModel, "model_json_schema"):
        pytest.skip("pydantic v2 required")
    return pydantic


def test_pydantic_v2_models():
    pydantic = _require_pydantic_v2()

    class Address(pydantic.BaseModel):
        street: str = pydantic.Field(description="The street")
        city: str = "Paris"

    class Person(pydantic.BaseModel):
        """A person."""

        name: str
        address: Address
        home: Optional[Address] = None
        default: Optional[Address] = None  # a property named like a JSON Schema keyword

    def f(person: Person, tags: List[Address] = ()) -> Person: ...

    sig = derive_tool_schema(f)
    assert refs_in(sig.input_schema) == []
    assert "$defs" not in sig.input_schema
    person = sig.input_schema["properties"]["person"]
    assert person["title"] == "Person"
    assert person["description"] == "A person."
    assert person["properties"]["address"]["properties"]["street"]["description"] == "The street"
    assert person["properties"]["home"]["anyOf"][0]["title"] == "Address"
    assert sig.output_schema is not None
    assert refs_in(sig.output_schema) == []

    sig = derive_tool_schema(f, inline_refs=False)
    assert sig.input_schema["properties"]["person"] == {"$ref": "#/$defs/Person"}
    assert set(sig.input_schema["$defs"]) == {"Person", "Address"}
    assert sig.input_schema["$defs"]["Person"]["properties"]["address"] == {"$ref": "#/$defs/Address"}

    coerce = make_coercer(f)
    assert coerce is not None
    out = coerce({"person": {"name": "Ann", "address": {"street": "Main"}}, "tags": [{"street": "x"}]})
    assert isinstance(out["person"], Person)
    assert out["person"].address.city == "Paris"
    assert isinstance(out["tags"][0], Address)
    existing = Person(name="Bo", address=Address(street="s"))
    assert coerce({"person": existing})["person"] is existing
    with pytest.raises(ValueError, match=r"parameter 'person'.*Person"):
        coerce({"person": {"name": "no address"}})


def test_pydantic_v2_recursive_model():
    pydantic = _require_pydantic_v2()

    class Tree(pydantic.BaseModel):
        value: int
        children: List["Tree"] = pydantic.Field(default_factory=list)

    Tree.model_rebuild()

    class Forest(pydantic.BaseModel):
        trees: List[Tree]
        name: str

    def f(tree: Tree, forest: Forest): ...

    schema = derive_tool_schema(f).input_schema
    assert schema["properties"]["tree"] == {"$ref": "#/$defs/Tree"}
    assert list(schema["$defs"]) == ["Tree"]
    assert schema["$defs"]["Tree"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Tree"}
    assert schema["properties"]["forest"]["properties"]["trees"]["items"] == {"$ref": "#/$defs/Tree"}
    assert schema["properties"]["forest"]["title"] == "Forest"  # not recursive: inlined


@needs_annotated
def test_pydantic_field_in_annotated():
    pydantic = _require_pydantic_v2()

    def f(q: Annotated[str, pydantic.Field(description="The query.")]): ...

    assert props(f)["q"] == {"type": "string", "description": "The query."}


class FakeV1Model:
    """Duck-typed stand-in for a pydantic v1 model (``schema()`` / ``parse_obj``)."""

    __fields__: typing.ClassVar[Dict[str, Any]] = {"x": None, "sub": None}

    def __init__(self, **data: Any) -> None:
        self.__dict__.update(data)

    @classmethod
    def schema(cls) -> Dict[str, Any]:
        return {
            "title": "FakeV1Model",
            "type": "object",
            "properties": {
                "x": {"title": "X", "type": "integer"},
                "sub": {"$ref": "#/definitions/Sub"},
            },
            "required": ["x"],
            "definitions": {
                "Sub": {"title": "Sub", "type": "object", "properties": {"y": {"type": "string"}}},
            },
        }

    @classmethod
    def parse_obj(cls, obj: Any) -> "FakeV1Model":
        if not isinstance(obj, dict) or "x" not in obj:
            raise ValueError("field required: x")
        return cls(**obj)


def test_pydantic_v1_duck_typed_model():
    def f(model: FakeV1Model): ...

    schema = derive_tool_schema(f).input_schema
    assert schema["properties"]["model"] == {
        "title": "FakeV1Model",
        "type": "object",
        "properties": {
            "x": {"title": "X", "type": "integer"},
            "sub": {"title": "Sub", "type": "object", "properties": {"y": {"type": "string"}}},
        },
        "required": ["x"],
    }
    schema = derive_tool_schema(f, inline_refs=False).input_schema
    assert schema["properties"]["model"] == {"$ref": "#/$defs/FakeV1Model"}
    assert schema["$defs"]["FakeV1Model"]["properties"]["sub"] == {"$ref": "#/$defs/Sub"}
    assert "Sub" in schema["$defs"]

    coerce = make_coercer(f)
    assert coerce is not None
    out = coerce({"model": {"x": 1}})
    assert isinstance(out["model"], FakeV1Model)
    assert out["model"].x == 1
    with pytest.raises(ValueError, match=r"parameter 'model'.*field required"):
        coerce({"model": {}})


# ---------------------------------------------------------------------------
# to_json_compatible
# ---------------------------------------------------------------------------


def test_to_json_compatible():
    assert to_json_compatible(None) is None
    assert to_json_compatible(Color.RED) == "red"
    assert to_json_compatible(Priority.HIGH) == 2
    assert type(to_json_compatible(Priority.HIGH)) is int
    assert to_json_compatible((1, (2, 3))) == [1, [2, 3]]
    assert to_json_compatible(b"\x00\x01") == "AAE="
    assert to_json_compatible(bytearray(b"hi")) == "aGk="
    assert to_json_compatible(Point(1, 2)) == {"x": 1, "y": 2}
    assert to_json_compatible(Payload(Color.RED, b"a", (1, 2))) == {
        "kind": "red",
        "blob": "YQ==",
        "pair": [1, 2],
        "tags": [],
        "origin": None,
        "by_name": {},
        "nested": None,
    }
    assert to_json_compatible({"k": [Color.GREEN], Color.RED: 1}) == {"k": ["green"], "red": 1}
    assert to_json_compatible({3, 1, 2}) == [1, 2, 3]
    result = to_json_compatible({"a": (1.5, True, "s")})
    assert json.loads(json.dumps(result)) == result


@pytest.mark.parametrize("value", [object(), datetime.date(2020, 1, 1), {1: "int key"}, [lambda: None]])
def test_to_json_compatible_rejects_other_values(value):
    with pytest.raises(TypeError):
        to_json_compatible(value)


# ---------------------------------------------------------------------------
# every produced schema is a valid draft 2020-12 schema that validates as expected
# ---------------------------------------------------------------------------


def _kitchen_sink(
    a: int,
    color: Color,
    point: Point,
    pair: Tuple[int, str],
    movie: Movie,
    mode: Literal["fast", "slow"] = "fast",
    opt: Optional[str] = None,
    tags: List[str] = (),
    scores: Dict[str, float] = None,  # type: ignore[assignment]  # noqa: RUF013
    blob: bytes = b"",
    tree: Optional[Node] = None,
) -> List[Point]:
    """Kitchen sink.

    Args:
        a: A number.
    """
    return []


def test_schemas_validate_with_jsonschema(load_module):
    jsonschema = pytest.importorskip("jsonschema")
    validator_cls = jsonschema.Draft202012Validator

    valid = {
        "a": 1,
        "color": "red",
        "point": {"x": 1},
        "pair": [1, "a"],
        "movie": {"title": "T", "year": 2000},
        "mode": "slow",
        "opt": None,
        "tags": ["x"],
        "scores": {"s": 1.5},
        "blob": b64(b"x"),
        "tree": {"value": 1, "children": [{"value": 2, "children": []}]},
    }
    invalid = [
        {**valid, "a": "1"},
        {k: v for k, v in valid.items() if k != "a"},
        {**valid, "unexpected": 1},
        {**valid, "color": "purple"},
        {**valid, "pair": [1, "a", 3]},
        {**valid, "pair": ["a", 1]},
        {**valid, "point": {"x": 1, "z": 2}},
        {**valid, "movie": {"title": "T"}},
        {**valid, "mode": "medium"},
        {**valid, "scores": {"s": "high"}},
        {**valid, "tree": {"value": 1, "children": [{"children": []}]}},
    ]
    for inline in (True, False):
        sig = derive_tool_schema(_kitchen_sink, inline_refs=inline)
        validator_cls.check_schema(sig.input_schema)
        assert sig.output_schema is not None
        validator_cls.check_schema(sig.output_schema)
        validator = validator_cls(sig.input_schema)
        assert list(validator.iter_errors(valid)) == []
        assert validator.is_valid(
            {"a": 1, "color": "green", "point": {"x": 1}, "pair": [2, "b"], "movie": valid["movie"]}
        )
        for instance in invalid:
            assert not validator.is_valid(instance), instance
        out_validator = validator_cls(sig.output_schema)
        assert out_validator.is_valid([{"x": 1, "y": 2}])
        assert not out_validator.is_valid([{"y": 2}])

    # The coerced arguments call the tool fine.
    coerce = make_coercer(_kitchen_sink)
    assert coerce is not None
    kwargs = coerce(valid)
    assert kwargs["point"] == Point(1)
    assert kwargs["tree"] == Node(1, [Node(2)])
    _kitchen_sink(**kwargs)

    # Every other schema produced in this file's scenarios is valid too.
    mod = load_module(FUTURE_MODULE)
    tools = [google_tool, numpy_tool, sphinx_tool, mod.tool, mod.atool, FakeV1Model.parse_obj]

    def emp(employee: Employee, department: Department) -> Employee: ...

    def tuples(a: Tuple[int, ...], b: tuple, c: Set[int], d: Mixed, e: Priority, **rest: Any) -> None: ...

    tools.extend([emp, tuples])
    for tool in tools:
        for inline in (True, False):
            sig = derive_tool_schema(tool, inline_refs=inline)
            validator_cls.check_schema(sig.input_schema)
            if sig.output_schema is not None:
                validator_cls.check_schema(sig.output_schema)
    validator = validator_cls(derive_tool_schema(emp).input_schema)
    assert validator.is_valid(
        {
            "employee": {"name": "a", "department": {"name": "d", "employees": [{"name": "b"}]}},
            "department": {"name": "x"},
        }
    )
    assert not validator.is_valid(
        {"employee": {"name": "a", "department": {"employees": []}}, "department": {"name": "x"}}
    )


def test_pydantic_schemas_validate_with_jsonschema():
    jsonschema = pytest.importorskip("jsonschema")
    pydantic = _require_pydantic_v2()

    class Leaf(pydantic.BaseModel):
        label: str
        children: List["Leaf"] = pydantic.Field(default_factory=list)

    Leaf.model_rebuild()

    class Holder(pydantic.BaseModel):
        leaf: Leaf
        count: int = 0

    def f(holder: Holder, leaf: Optional[Leaf] = None) -> Holder: ...

    for inline in (True, False):
        sig = derive_tool_schema(f, inline_refs=inline)
        jsonschema.Draft202012Validator.check_schema(sig.input_schema)
        validator = jsonschema.Draft202012Validator(sig.input_schema)
        assert validator.is_valid({"holder": {"leaf": {"label": "a", "children": [{"label": "b"}]}}})
        assert not validator.is_valid({"holder": {"leaf": {"label": "a", "children": [{"nolabel": 1}]}}})
        assert not validator.is_valid({"holder": {"count": 1}})
