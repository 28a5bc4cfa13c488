"""MCP, issue 14: logging (`ctx.log` → `notifications/message`), sampling and elicitation from
inside a tool (`ctx.sample` / `ctx.elicit`), over stdio and streamable HTTP, with the official
Python MCP client; NotSupported wherever the caller cannot answer."""

import asyncio
import base64
import logging
import sys
import time

import pytest

if sys.version_info < (3, 10):
    pytest.skip("the MCP Python SDK needs Python 3.10+", allow_module_level=True)
mcp = pytest.importorskip("mcp", reason="MCP tests need the `mcp` package (pip install mcp)")

import agent_runtime
import mcpa_tools  # noqa: F401  (the tools, in this process too)
from mcp_sdk_clients import Serve, run, text_of

from mcp import Client, types

# Logging and sampling are deprecated as of protocol 2026-07-28 (SEP-2577), still current for
# the handshake protocols these tests speak.
pytestmark = pytest.mark.filterwarnings("ignore:.*SEP-2577")

SERVE = Serve(["--import", "mcpa_tools"])
http_server = SERVE.http_server_fixture()
# Server-to-client requests and `logging/setLevel` belong to the handshake protocols (2025-*);
# protocol 2026-07-28 forbids them (see test_modern_protocol_*).
KINDS = ["stdio", "http"]


def legacy_client(kind, http_server, **callbacks) -> Client:
    return SERVE.client(kind, http_server, legacy=True, **callbacks)


async def eventually(cond, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


# -- logging ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_log_messages_honour_set_level(kind, http_server):
    got = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        got.append((params.level, params.data, params.logger))

    async def main():
        async with legacy_client(kind, http_server, logging_callback=on_log) as c:
            assert c.server_capabilities.logging is not None
            # No level set: everything.
            r = await c.call_tool("peer.log", {})
            assert not r.is_error and r.structured_content == {"result": 5}
            await eventually(lambda: len(got) == 5, "5 log messages")
            assert [g[0] for g in got] == ["debug", "info", "warning", "error", "emergency"]
            assert got[2] == ("warning", "warning message", "peer.log")

            # Filtered: the client asked for warning and above.
            got.clear()
            await c.set_logging_level("warning")
            await c.call_tool("peer.log", {})
            await eventually(lambda: len(got) >= 3, "3 log messages")
            # A marker call: anything filtered would have arrived before its messages.
            await c.call_tool("peer.log", {})
            await eventually(lambda: len(got) >= 6, "6 log messages")
            assert [g[0] for g in got] == ["warning", "error", "emergency"] * 2

    run(main())


def test_log_still_reaches_python_logging(caplog):
    with caplog.at_level(logging.DEBUG, logger="agent_runtime.tools"):
        assert agent_runtime.call("peer.log", {}) == 5
    msgs = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "agent_runtime.tools"]
    assert [m[0] for m in msgs] == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    assert "[peer.log #" in msgs[0][1] and msgs[0][1].endswith("debug message")


def test_log_level_names_are_checked():
    @agent_runtime.tool(name="mcpa.badlevel", replace=True)
    def badlevel(level: str, ctx: agent_runtime.Context) -> None:
        ctx.log("x", level)

    for ok in ("notice", "alert", "critical", "warn"):
        agent_runtime.call("mcpa.badlevel", {"level": ok})
    with pytest.raises(ValueError, match='unknown log level "verbose".*debug, info, notice'):
        agent_runtime.call("mcpa.badlevel", {"level": "verbose"})


# -- sampling --------------------------------------------------------------------------------


def text_answer(model="test-model"):
    seen = []

    async def on_sample(context, params: types.CreateMessageRequestParams):
        seen.append(params)
        last = params.messages[-1].content
        text = getattr(last, "text", None) or type(last).__name__
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"echo: {text}"),
            model=model,
            stop_reason="endTurn",
        )

    return on_sample, seen


@pytest.mark.parametrize("kind", KINDS)
def test_sampling(kind, http_server):
    on_sample, seen = text_answer()

    async def main():
        async with legacy_client(kind, http_server, sampling_callback=on_sample) as c:
            r = await c.call_tool("peer.sample", {"prompt": "hello"})
            assert not r.is_error, text_of(r)
            assert r.structured_content == {
                "text": "echo: hello",
                "model": "test-model",
                "stop_reason": "endTurn",
            }
            p = seen[-1]
            assert p.max_tokens == 50 and p.system_prompt == "be brief" and p.temperature == 0.25

            r = await c.call_tool("peer.sample_sync", {"prompt": "first"})
            assert not r.is_error, text_of(r)
            assert r.structured_content["text"] == "echo: go on"
            assert [m.role for m in seen[-1].messages] == ["user", "assistant", "user"]

            # Several at once: each answer reaches its own call.
            rs = await asyncio.gather(*(c.call_tool("peer.sample", {"prompt": f"p{i}"}) for i in range(8)))
            assert [r.structured_content["text"] for r in rs] == [f"echo: p{i}" for i in range(8)]

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_image_round_trip(kind, http_server):
    async def on_sample(context, params):
        img = params.messages[0].content
        assert isinstance(img, types.ImageContent) and img.mime_type == "image/png"
        return types.CreateMessageResult(
            role="assistant",
            content=types.ImageContent(type="image", data=img.data, mime_type="image/png"),
            model="m",
        )

    async def main():
        async with legacy_client(kind, http_server, sampling_callback=on_sample) as c:
            r = await c.call_tool("peer.sample_image", {})
            assert not r.is_error, text_of(r)
            [block] = r.content
            assert block.type == "image" and base64.b64decode(block.data) == b"\x89PNG\r\n\x1a\n\x00\x01\x02"

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_without_the_capability_is_not_supported(kind, http_server):
    async def main():
        async with legacy_client(kind, http_server) as c:  # no sampling_callback: no capability
            for tool in ("peer.sample", "peer.sample_sync"):
                r = await asyncio.wait_for(c.call_tool(tool, {"prompt": "x"}), 10)
                assert r.is_error and text_of(r).startswith("NotSupported:"), text_of(r)
                assert "'sampling' capability" in text_of(r)
            r = await c.call_tool("peer.elicit", {})
            assert r.is_error and "'elicitation' capability" in text_of(r)

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_client_error_is_a_tool_error(kind, http_server):
    async def on_sample(context, params):
        return types.ErrorData(code=-32000, message="the user refused")

    async def main():
        async with legacy_client(kind, http_server, sampling_callback=on_sample) as c:
            r = await c.call_tool("peer.sample", {"prompt": "x"})
            assert r.is_error and "the user refused" in text_of(r), text_of(r)

    run(main())


@pytest.mark.parametrize("tool", ["peer.sample_slow", "peer.sample_slow_sync"])
@pytest.mark.parametrize("kind", KINDS)
def test_tool_timeout_cancels_pending_sampling(kind, tool, http_server):
    cancelled = []

    async def on_sample(context, params):
        try:
            await asyncio.sleep(30)  # never answers in time
        except asyncio.CancelledError:
            cancelled.append(params.messages[0].content.text)
            raise
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="late"), model="m"
        )

    async def main():
        async with legacy_client(kind, http_server, sampling_callback=on_sample) as c:
            r = await asyncio.wait_for(c.call_tool(tool, {}), 15)
            assert r.is_error and text_of(r).startswith("ToolTimeout:"), text_of(r)
            # The server sent notifications/cancelled for the pending request.
            await eventually(lambda: cancelled == ["take your time"], "the client to see the cancellation")
            # The server stays usable.
            assert (await c.call_tool("rich.image", {})).content[0].type == "image"

    run(main())


def test_modern_protocol_has_no_server_to_client_requests(http_server):
    on_sample, _ = text_answer()

    async def main():
        async with Client(http_server.addr, sampling_callback=on_sample) as c:  # 2026-07-28
            r = await asyncio.wait_for(c.call_tool("peer.sample", {"prompt": "x"}), 10)
            assert r.is_error and text_of(r).startswith("NotSupported:"), text_of(r)
            assert "2026-07-28 has no server-to-client requests" in text_of(r)

    run(main())


def test_python_caller_gets_not_supported():
    for tool in ("peer.sample", "peer.sample_sync"):
        with pytest.raises(agent_runtime.NotSupported, match="sampling/createMessage needs an MCP client"):
            agent_runtime.call(tool, {"prompt": "x"})
    with pytest.raises(agent_runtime.NotSupported, match="elicitation/create"):
        agent_runtime.call("peer.elicit_sync", {})
    assert issubclass(agent_runtime.NotSupported, agent_runtime.AgentRuntimeError)

    async def main():
        with pytest.raises(agent_runtime.NotSupported):
            await agent_runtime.call_async("peer.sample", {"prompt": "x"})
        with pytest.raises(agent_runtime.NotSupported):
            await agent_runtime.call_async("peer.elicit", {})

    run(main())


def test_sampling_arguments_are_checked():
    @agent_runtime.tool(name="mcpa.badsample", replace=True)
    async def badsample(case: int, ctx: agent_runtime.Context) -> None:
        if case == 0:
            await ctx.sample("x", max_tokens=0)
        elif case == 1:
            await ctx.sample([], max_tokens=5)
        elif case == 2:
            await ctx.sample([42], max_tokens=5)
        else:
            ctx.sample_sync("x", max_tokens=5)  # on the event loop: refused, not a stall

    with pytest.raises(ValueError, match="max_tokens must be an int from 1 to"):
        agent_runtime.call("mcpa.badsample", {"case": 0})
    with pytest.raises(TypeError, match="non-empty list"):
        agent_runtime.call("mcpa.badsample", {"case": 1})
    with pytest.raises(TypeError, match=r"messages\[0\] must be a str or an agent_runtime.Message"):
        agent_runtime.call("mcpa.badsample", {"case": 2})
    with pytest.raises(RuntimeError, match="would block a running event loop"):
        agent_runtime.call("mcpa.badsample", {"case": 3})


# -- elicitation -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_elicitation_accept_decline_cancel(kind, http_server):
    answers = []
    requests = []

    async def on_elicit(context, params: types.ElicitRequestParams):
        requests.append(params)
        action, content = answers.pop(0)
        return types.ElicitResult(action=action, content=content)

    async def main():
        async with legacy_client(kind, http_server, elicitation_callback=on_elicit) as c:
            answers.append(("accept", {"name": "Ada"}))
            r = await c.call_tool("peer.elicit", {})
            assert not r.is_error, text_of(r)
            assert r.structured_content == {"action": "accept", "content": {"name": "Ada"}}
            assert requests[-1].message == "Your name?"
            assert requests[-1].requested_schema["properties"]["name"]["type"] == "string"

            answers.append(("decline", None))
            r = await c.call_tool("peer.elicit", {})
            assert r.structured_content == {"action": "decline", "content": None}

            answers.append(("cancel", None))
            r = await c.call_tool("peer.elicit_sync", {})
            assert r.structured_content == {"action": "cancel", "content": None}
            schema = requests[-1].requested_schema
            assert schema["type"] == "object" and set(schema["properties"]) == {"name", "age"}
            assert schema["properties"]["age"]["type"] == "integer"

    run(main())
