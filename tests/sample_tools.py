"""Tools registered at import time; used by the pytest suite and the Rust embedding tests."""

import asyncio
import contextvars
import dataclasses
import enum
from typing import Dict, List, Optional

import agent_runtime
from agent_runtime import tool

request_id: contextvars.ContextVar = contextvars.ContextVar("request_id", default="unset")
raised: List[BaseException] = []


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


@tool
def add(a: int, b: int = 1) -> int:
    """Add two integers.

    Args:
        a: First addend.
        b: Second addend.
    """
    return a + b


@tool(name="sample.greet", description="Greet someone.", timeout=5.0)
def greet(name: str, punctuation: Optional[str] = None) -> str:
    return "hello " + name + (punctuation or "")


@tool
async def async_add(a: int, b: int) -> int:
    """Add after yielding to the loop once."""
    await asyncio.sleep(0)
    return a + b


@tool
def identity(value: object = None) -> object:
    """Return the value as received (lets tests check what crossed)."""
    return value


@tool
def describe(data: bytes, color: Color, point: Point, tags: Dict[str, int]) -> Dict[str, object]:
    """Report the Python types the tool received."""
    return {
        "data": type(data).__name__,
        "data_len": len(data),
        "color": type(color).__name__,
        "point": type(point).__name__,
        "point_y": point.y,
        "tags": sorted(tags),
    }


@tool
def blob(data: bytes) -> bytes:
    """Reverse bytes."""
    return data[::-1]


@tool
def fail(message: str = "boom") -> None:
    """Raise ValueError(message), remembering the exception object."""
    try:
        raise ValueError(message)
    except ValueError as e:
        raised.append(e)
        raise


@tool
async def async_fail(message: str = "aboom") -> None:
    """Raise KeyError(message) from a coroutine."""
    await asyncio.sleep(0)
    e = KeyError(message)
    raised.append(e)
    raise e


@tool
def read_context() -> str:
    """The caller's `request_id` context variable."""
    return request_id.get()


@tool
async def async_read_context() -> str:
    """The caller's `request_id` context variable, read from a coroutine."""
    await asyncio.sleep(0)
    return request_id.get()


@tool
def noop() -> None:
    """Do nothing."""


@tool
async def async_noop() -> None:
    """Do nothing, asynchronously."""


agent_runtime.register_diagnostic_tools()
