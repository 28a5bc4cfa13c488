"""Property tests: arbitrary Python values through ``call()`` / ``call_async()`` of Python and
Rust tools.

The contract checked (README "Values across the boundary", src/python/convert.rs):

* Python caller → Python tool: the argument objects are passed through untouched, whatever they
  are (the tool gets the very same object; validation never fails on what JSON cannot express).
* Crossing to JSON (a Rust tool, or a Python tool called from Rust): ``None``/``bool``/``str``
  stay; ``int`` must fit i64/u64; ``float`` must be finite (``-0.0`` and subnormals survive
  bit-exact); ``bytes``/``bytearray`` become base64 strings; lists and tuples become lists;
  dicts (any dict subclass) become dicts and need ``str`` keys; nesting deeper than
  ``MAX_DEPTH`` containers is refused. Anything else is refused. A refusal is a
  ``ConversionError`` whose ``path`` names the first offending place in iteration order
  (``args.v[3].k``); never another exception, a crash or a hang.

:func:`expected_json` is that contract as a reference model; every property compares the
runtime with it exactly (types included: ``1``, ``1.0`` and ``True`` are different values).

Runtime: profile ``ci`` (default, 100 examples per property); ``HYPOTHESIS_PROFILE=quick``
(25, used per interpreter by .ci/abi3-matrix) or ``long`` (2000).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import enum
import math
import os
import struct
from typing import Any, List, Optional, Tuple

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="property tests need hypothesis (the [test] extra)")
import agent_runtime
from agent_runtime import ConversionError, _native, call, call_async
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "quick",  # .ci/abi3-matrix: the same properties on every interpreter, fewer examples
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

MAX_DEPTH = _native.MAX_DEPTH
I64_MIN, U64_MAX = -(2**63), 2**64 - 1


@agent_runtime.tool(name="hyp.echo", replace=True)
def hyp_echo(v: object = None) -> object:
    """Return the argument as received."""
    return v


@agent_runtime.tool(name="hyp.aecho", replace=True)
async def hyp_aecho(v: object = None) -> object:
    """Return the argument as received, after a suspension point."""
    await asyncio.sleep(0)
    return v


@agent_runtime.tool(name="hyp.kwargs", replace=True)
def hyp_kwargs(**kwargs: object) -> object:
    """Return the keyword arguments as received."""
    return kwargs


agent_runtime.register_diagnostic_tools()


# ---------------------------------------------------------------- the reference model


class Refused(Exception):
    """The model's verdict: conversion must fail at ``path``."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def expected_json(value: Any, path: str, depth: int) -> Any:
    """What ``value`` (a container at ``depth`` levels below the converted root) becomes as
    JSON-then-Python, or :class:`Refused` at the first place the runtime must refuse."""
    if isinstance(value, str):
        if not _utf8(value):
            raise Refused(path, "str is not valid UTF-8")
        return str(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if I64_MIN <= value <= U64_MAX:
            return int(value)
        raise Refused(path, "integer does not fit in 64 bits")
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        raise Refused(path, "float is not valid JSON")
    is_container = isinstance(value, (dict, list, tuple))
    if is_container and depth >= MAX_DEPTH:
        raise Refused(path, "nesting deeper than MAX_DEPTH")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise Refused(path, "dict key is not a str")
            if not _utf8(k):
                raise Refused(path, "dict key is not valid UTF-8")
            out[str(k)] = expected_json(v, f"{path}.{k}", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [expected_json(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise Refused(path, f"{type(value).__name__} is not serializable")


def same(a: Any, b: Any) -> bool:
    """Exact equality: same JSON types (bool ≠ int ≠ float), floats bit for bit, containers
    element by element (dict order aside: JSON objects are unordered)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def check(run: Any, value: Any, root: str, depth: int, wrap: Any) -> None:
    """``run()`` converts ``value`` (found at ``root`` / ``depth`` on the way in) and returns
    the result; ``wrap(x)`` is where the converted value sits in that result."""
    try:
        want = expected_json(value, root, depth)
    except Refused as r:
        with pytest.raises(ConversionError) as ei:
            run()
        assert type(ei.value) is ConversionError
        assert ei.value.path == r.path, (ei.value.path, r.path, str(ei.value))
        return
    got = run()
    assert same(got, wrap(want)), (got, wrap(want))


# ---------------------------------------------------------------- strategies


class Color(enum.IntEnum):
    RED = 1
    BIG = 2**70  # an int subclass outside 64 bits


class Name(str):
    pass


class Ratio(float):
    pass


surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
any_text = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=6),  # incl. surrogates
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=3), surrogates, st.text(max_size=3)),
    st.text(max_size=8).map(Name),
)
odd_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931308623157e308, 0.1]),
    st.floats(allow_nan=False, allow_infinity=False).map(Ratio),
)
odd_ints = st.one_of(
    st.integers(min_value=I64_MIN, max_value=U64_MAX),
    st.integers(),  # unbounded
    st.sampled_from([I64_MIN, I64_MIN - 1, 2**63 - 1, 2**63, U64_MAX, U64_MAX + 1, -(2**200), 10**400]),
    st.sampled_from(list(Color)),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=I64_MIN, max_value=U64_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
py_scalars = st.one_of(
    json_scalars,
    odd_ints,
    odd_floats,
    any_text,
    st.binary(max_size=16),
    st.binary(max_size=8).map(bytearray),
    st.builds(object),
    st.frozensets(st.integers(), max_size=3),
    st.sets(st.integers(), max_size=3),
    st.just(Ellipsis),
    st.complex_numbers(max_magnitude=10),
)
hashable_keys = st.one_of(
    any_text,
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
    st.tuples(st.integers(), st.text(max_size=2)),
    st.binary(max_size=4),
)


def _containers(children: Any, keys: Any) -> Any:
    return st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(keys, children, max_size=5),
        st.dictionaries(st.text(max_size=4), children, max_size=4).map(collections.OrderedDict),
    )


json_values = st.recursive(
    json_scalars,
    lambda c: st.one_of(st.lists(c, max_size=5), st.dictionaries(st.text(max_size=8), c, max_size=5)),
    max_leaves=25,
)
py_values = st.recursive(py_scalars, lambda c: _containers(c, hashable_keys), max_leaves=25)
# Mostly-JSON values with the odd bad leaf, so refusals happen deep inside real structures.
mostly_json = st.recursive(
    st.one_of(json_scalars, json_scalars, json_scalars, py_scalars),
    lambda c: _containers(c, st.one_of(st.text(max_size=6), st.text(max_size=6), hashable_keys)),
    max_leaves=30,
)


@st.composite
def deep(draw: Any) -> Any:
    """Nesting right around MAX_DEPTH: a chain of lists/tuples/dicts, some levels with
    siblings, ending in a scalar or an empty container. The chain's shape comes from one
    seeded ``Random`` (a draw per level would make generation the slowest part of the suite)."""
    levels = draw(st.integers(min_value=MAX_DEPTH - 4, max_value=MAX_DEPTH + 4))
    rnd = draw(st.randoms(use_true_random=False))
    value: Any = draw(st.one_of(json_scalars, st.just([]), st.just({}), st.just(())))
    for n in range(levels):
        kind = rnd.choice(("list", "tuple", "dict"))
        extra = [n] * rnd.choice((0, 0, 0, 1, 2))
        if kind == "dict":
            d: Any = {f"s{i}": x for i, x in enumerate(extra)}
            d[rnd.choice(("", "k", "\u00e9", "a.b"))] = value
            value = d
        else:
            items = [*extra, value]
            value = items if kind == "list" else tuple(items)
    return value


anything = st.one_of(py_values, mostly_json, json_values, deep())

# Regression / edge examples worth keeping whatever the generator does.
EDGE_EXAMPLES: List[Any] = [
    -0.0,
    5e-324,
    2**64,
    I64_MIN - 1,
    "\ud800",
    {"\udfff": 1},
    {1: "x"},
    {"a": [1, (2, {"b": float("nan")})]},
    b"\x00\xff",
    [bytearray(b"xy"), ()],
    Color.BIG,
    Color.RED,
]


def _nest(levels: int) -> Any:
    v: Any = []
    for _ in range(levels):
        v = [v]
    return v


# ---------------------------------------------------------------- properties


def _every(examples: List[Any]) -> Any:
    def deco(fn: Any) -> Any:
        for e in reversed(examples):
            fn = example(e)(fn)
        return fn

    return deco


WITH_EDGES = _every(EDGE_EXAMPLES + [_nest(MAX_DEPTH - 2), _nest(MAX_DEPTH - 1), _nest(MAX_DEPTH)])


@given(anything)
@WITH_EDGES
def test_python_tool_gets_the_same_object(value: Any) -> None:
    # Python → Python: no conversion at all, whatever the value.
    assert call("hyp.echo", {"v": value}) is value


@given(anything)
@WITH_EDGES
def test_async_python_tool_gets_the_same_object(value: Any) -> None:
    assert call("hyp.aecho", {"v": value}) is value
    assert asyncio.run(call_async("hyp.aecho", {"v": value})) is value
    assert asyncio.run(call_async("hyp.echo", {"v": value})) is value


@given(anything)
@WITH_EDGES
def test_rust_echo_round_trips_or_refuses_cleanly(value: Any) -> None:
    # args is the root container (depth 0), so v sits at depth 1.
    check(lambda: call("diag.echo", {"v": value}), value, "args.v", 1, lambda w: {"v": w})


@given(anything)
@WITH_EDGES
def test_rust_echo_via_call_async(value: Any) -> None:
    check(
        lambda: asyncio.run(call_async("diag.echo", {"v": value})),
        value,
        "args.v",
        1,
        lambda w: {"v": w},
    )


@given(anything)
@WITH_EDGES
def test_python_tool_called_from_rust(value: Any) -> None:
    # Python → Rust (diag.call) → Python tool → back: the value crosses to JSON once at
    # args.args.v (depth 2); the tool gets JSON-made objects and returns them.
    check(
        lambda: call("diag.call", {"name": "hyp.echo", "args": {"v": value}}),
        value,
        "args.args.v",
        2,
        lambda w: w,
    )


@given(anything)
@WITH_EDGES
def test_native_roundtrip(value: Any) -> None:
    # Python → JSON → Python without a tool, the value itself the root (depth 0). Bytes need a
    # schema to come back as bytes, so without one they stay base64 strings.
    check(lambda: _native._roundtrip(value, None), value, "value", 0, lambda w: w)


@settings(max_examples=max(settings.default.max_examples // 4, 1))  # each example runs an event loop
@given(st.lists(mostly_json, min_size=1, max_size=8))
def test_concurrent_async_calls_each_get_their_own_answer(values: List[Any]) -> None:
    async def main() -> List[Tuple[Optional[Any], Optional[BaseException]]]:
        coros = [call_async("diag.echo", {"v": v}) for v in values]
        done = await asyncio.gather(*coros, return_exceptions=True)
        return [(None, d) if isinstance(d, BaseException) else (d, None) for d in done]

    for v, (got, err) in zip(values, asyncio.run(main())):
        try:
            want = expected_json(v, "args.v", 1)
        except Refused as r:
            assert type(err) is ConversionError and err.path == r.path, (err, r.path)
            continue
        assert err is None, err
        assert same(got, {"v": want}), (got, want)


def test_model_agrees_with_the_documented_examples() -> None:
    # Guards the reference model itself against drifting from the documented contract.
    assert expected_json((1, b"ab"), "x", 0) == [1, "YWI="]
    with pytest.raises(Refused) as ei:
        expected_json({"a": [1, {2: 3}]}, "args", 0)
    assert ei.value.path == "args.a[1]"
    with pytest.raises(Refused) as ei:
        expected_json(_nest(MAX_DEPTH), "r", 0)
    assert ei.value.path == "r" + "[0]" * MAX_DEPTH
    assert not same(1, 1.0) and not same(0.0, -0.0) and not same(True, 1) and same([-0.0], [-0.0])


_NO_KEY = object()


@given(st.dictionaries(hashable_keys, py_scalars, max_size=4))
@example({1: "x"})  # regression: was CPython's bare "keywords must be strings" TypeError
@example({"a": 1, None: 2})
@example({"\ud800": b"x"})
def test_argument_names_must_be_str(args: Any) -> None:
    # Arguments are keyword arguments: a non-str name is refused the same way for Python and
    # Rust tools (a ConversionError at "args" naming the key), before the tool runs.
    bad = next((k for k in args if not isinstance(k, str)), _NO_KEY)
    for run in (lambda: call("hyp.kwargs", args), lambda: asyncio.run(call_async("hyp.kwargs", args))):
        if bad is _NO_KEY:
            got = run()
            assert got == args and all(got[k] is args[k] for k in args)
        else:
            with pytest.raises(ConversionError) as ei:
                run()
            assert ei.value.path == "args"
            assert f"dict key {bad!r} ({type(bad).__name__}) is not a str" in str(ei.value)
    check(lambda: call("diag.echo", args), args, "args", 0, lambda w: w)


def test_undecodable_argument_name_is_named_in_validation_errors() -> None:
    # A str name with a lone surrogate is shown with U+FFFD, not as an empty name.
    with pytest.raises(agent_runtime.InvalidArguments) as ei:
        call("hyp.echo", {"\ud800": 1})
    assert ei.value.path and set(ei.value.path) == {"\ufffd"}, ei.value.path
    assert f"'{ei.value.path}' was unexpected" in str(ei.value)
