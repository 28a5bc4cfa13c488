"""A module for the RunFunction/RunScript rule tests (tests/test_adversarial_grpccli.py): public
functions defined here may be called; dunders, private names, imported functions, classes and
other objects may not, unless listed in ``__all__``."""

import asyncio
import sys  # noqa: F401 - a module object: not callable remotely
import time
from json import dumps as exported_dumps
from os import getpid as main  # noqa: F401 - imported: RunScript must refuse it
from os import system  # noqa: F401 - imported: must not be callable remotely

__all__ = ["Exported", "exported_dumps", "now", "own_name", "slow_marker"]

SECRET = "hunter2-do-not-leak"
COUNT = 3


class Hidden:
    """A class not exported: refused."""


class Exported:
    """A class exported in __all__: allowed (its instance is not JSON, though)."""


def now() -> float:
    """Uses the module global `time`: breaks if a caller could rebind it."""
    return time.time()


def own_name() -> str:
    return __name__


def _private() -> str:
    return "private"


def add(a: int, b: int) -> int:
    return a + b


def _note(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text + "\n")


async def slow_marker(path: str, seconds: float) -> str:
    """Note 'started', sleep, then note 'ran on'; a cancelled run notes 'cancelled'."""
    _note(path, "started")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        _note(path, "cancelled")
        raise
    _note(path, "ran on")
    return "done"


def nul_join(*args: str) -> str:
    return "|".join(args)


def big(n: int) -> str:
    """A small request, a large response."""
    return "x" * n
