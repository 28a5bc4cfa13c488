"""The benchmark's echo tool as a plain function: ``echo(value) -> value``.

Deliberately imports nothing, so the design note's server and the subprocess-per-call approach
pay no extra import cost for it.
"""

from typing import Any


def echo(value: Any) -> Any:
    """Return ``value`` unchanged."""
    return value
