"""A module for run_function / run_script tests (no tools)."""

import asyncio
from typing import Any, Dict


def main(*args: str) -> str:
    return "main:" + "|".join(args)


def add(a: int, b: int) -> int:
    return a + b


async def aadd(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def kw(x: int, y: int = 1) -> Dict[str, Any]:
    return {"x": x, "y": y}


def boom() -> None:
    raise RuntimeError("script failed")


def not_json() -> object:
    return object()
