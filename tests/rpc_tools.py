"""Tools for the gRPC tests whose side effects are visible from another process (files)."""

import asyncio
import time

import agent_runtime


def _note(marker: str, text: str) -> None:
    with open(marker, "a") as f:
        f.write(text + "\n")


@agent_runtime.tool(name="grpc.slow")
async def slow(marker: str, seconds: float = 30.0) -> str:
    """Write 'started' to `marker`, sleep, and record how it ended."""
    _note(marker, "started")
    try:
        await asyncio.sleep(seconds)
        outcome = "finished"
        return "slept"
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        _note(marker, outcome)


@agent_runtime.tool(name="grpc.echo")
def echo(value: object = None) -> object:
    return value


@agent_runtime.tool(name="grpc.block")
def block(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
