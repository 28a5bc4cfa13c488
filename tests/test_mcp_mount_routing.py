"""Which caller gets an upstream's log messages and sampling requests (issue 16) when calls to one
mounted server overlap. Over streamable HTTP the upstream sends them on the response stream of
the call they belong to, so each caller gets its own: two MCP clients of the gateway call the same
upstream tool, the first one's call logs (or asks for a completion) while the second, later call
is still running — a most-recent-call guess would hand it to the wrong client."""

from typing import Any, Dict, List, Tuple

import pytest

pytest.importorskip("mcp.server.mcpserver")

from mcphost2_util import gateway, http_upstream


def overlapping(url: str, tool: str, answer_as: bool) -> Tuple[Dict[str, List[str]], Dict[str, Any]]:
    """Client A calls `tool` with word alpha (acting after 0.3 s), client B, a moment later, with
    word beta (acting after 1.5 s). Returns each client's log messages and tool results."""
    import anyio

    from mcp import Client, types

    logs: Dict[str, List[str]] = {"A": [], "B": []}
    results: Dict[str, Any] = {}

    def client(name: str) -> Any:
        async def on_log(params: Any) -> None:
            logs[name].append(str(params.data))

        async def on_sample(context: Any, params: Any) -> Any:
            asked = params.messages[0].content.text
            return types.CreateMessageResult(
                role="assistant", content=types.TextContent(text=f"{name} answers {asked}"), model="test"
            )

        return Client(url, mode="legacy", logging_callback=on_log,
                      sampling_callback=on_sample if answer_as else None)

    async def run(name: str, word: str, delay: float, ready: Any, go: Any) -> None:
        async with client(name) as c:
            ready.set()
            await go.wait()
            if name == "B":
                await anyio.sleep(0.15)  # A's call is in flight upstream first
            r = await c.call_tool(tool, {"word": word, "delay": delay})
            results[name] = r
            # Logs may trail the result a little on the client's own stream.
            with anyio.fail_after(10):
                while not logs[name] and tool == "up.speak":
                    await anyio.sleep(0.05)

    async def main() -> None:
        ready_a, ready_b, go = anyio.Event(), anyio.Event(), anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "A", "alpha", 0.3, ready_a, go)
            tg.start_soon(run, "B", "beta", 1.5, ready_b, go)
            await ready_a.wait()
            await ready_b.wait()
            go.set()

    anyio.run(main)
    return logs, results


def test_each_caller_gets_its_own_log_messages_over_http() -> None:
    with http_upstream() as up, gateway(up) as url:
        logs, results = overlapping(url, "up.speak", answer_as=False)
    assert results["A"].structured_content == {"result": "alpha"}
    assert results["B"].structured_content == {"result": "beta"}
    assert logs == {"A": ["said alpha"], "B": ["said beta"]}


def test_each_caller_answers_its_own_sampling_requests_over_http() -> None:
    with http_upstream() as up, gateway(up) as url:
        _, results = overlapping(url, "up.ask_model", answer_as=True)
    assert not results["A"].is_error and not results["B"].is_error
    assert results["A"].structured_content == {"result": "A answers alpha"}
    assert results["B"].structured_content == {"result": "B answers beta"}
