"""Live resource and prompt lists of a mounted MCP server (issue 16): a Python-SDK upstream that adds
a resource or prompt at runtime and sends `notifications/resources/list_changed` /
`prompts/list_changed` is followed without reconnecting, the gateway's own MCP clients are told,
and the upstream's `notifications/resources/updated` reaches a client subscribed through the
gateway."""

import contextlib
from typing import Any, Iterator, List

import pytest

pytest.importorskip("mcp.server.mcpserver")

from agent_runtime import Registry
from mcphost2_util import gateway, http_upstream, mounted_upstream, stdio_command, wait_until

# The gateway's clients subscribe the handshake way (`resources/subscribe`), which the SDK marks
# deprecated for protocol 2026-07-28 but which earlier protocol versions, and so we, still serve.
pytestmark = pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")


@pytest.fixture(params=["stdio", "http"])
def mounted(request: Any) -> Iterator[Any]:
    r = Registry()
    with mounted_upstream(request.param, r) as m:
        yield r, m


def uris(reg: Registry) -> List[str]:
    return [r["uri"] for r in reg.resources()]


def prompts(reg: Registry) -> List[str]:
    return [p["name"] for p in reg.prompts()]


def test_lists_grow_without_reconnecting(mounted: Any) -> None:
    reg, m = mounted
    assert "note://first" in uris(reg) and "up.greet" in prompts(reg)
    assert reg.call("up.add_note", {"name": "second", "text": "2nd"}) == {"result": "added"}
    wait_until(lambda: "note://second" in uris(reg))
    assert reg.call("up.add_prompt", {"name": "late"}) == {"result": "added"}
    wait_until(lambda: "up.late" in prompts(reg))
    # Nothing was lost on the way: the earlier entries stayed.
    assert {"note://first", "note://second"} <= set(uris(reg))
    assert {"up.greet", "up.late"} <= set(prompts(reg))
    assert m.connected
    m.close()
    assert not any(u.startswith("note://") for u in uris(reg))
    assert not any(p.startswith("up.") for p in prompts(reg))


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_gateway_clients_hear_list_changes_and_updates(transport: str) -> None:
    import anyio

    from mcp import Client

    seen: List[Any] = []

    async def on_message(msg: Any) -> None:
        params = getattr(msg, "params", None)
        seen.append((getattr(msg, "method", None), getattr(params, "uri", None)))

    def got(method: str, uri: Any = None) -> bool:
        return any(m == method and (uri is None or u == uri) for m, u in seen)

    async def until(method: str, uri: Any = None) -> None:
        with anyio.fail_after(20):
            while not got(method, uri):
                await anyio.sleep(0.05)

    async def go(url: str) -> Any:
        async with Client(url, mode="legacy", message_handler=on_message) as c:
            assert "note://first" in [str(r.uri) for r in (await c.list_resources()).resources]
            await c.subscribe_resource("note://first")

            seen.clear()
            await c.call_tool("up.add_note", {"name": "third", "text": "3rd"})
            await until("notifications/resources/list_changed")
            assert "note://third" in [str(r.uri) for r in (await c.list_resources()).resources]
            read = await c.read_resource("note://third")
            assert read.contents[0].text == "3rd"

            seen.clear()
            await c.call_tool("up.add_prompt", {"name": "p2"})
            await until("notifications/prompts/list_changed")
            assert "up.p2" in [p.name for p in (await c.list_prompts()).prompts]
            got_prompt = await c.get_prompt("up.p2")
            assert got_prompt.messages[0].content.text == "prompt p2"

            seen.clear()
            await c.call_tool("up.touch", {"uri": "note://first"})
            await until("notifications/resources/updated", "note://first")

    with contextlib.ExitStack() as stack:
        up = stdio_command() if transport == "stdio" else stack.enter_context(http_upstream())
        url = stack.enter_context(gateway(up))
        anyio.run(go, url)



@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_subscribing_through_the_gateway_subscribes_upstream(transport: str) -> None:
    """The upstream notifies only subscribers (`touch_subscribed`): the gateway subscribes upstream
    while a client of its own is subscribed to the URI, and unsubscribes when it lets go."""
    import anyio

    from mcp import Client

    seen: List[Any] = []

    async def on_message(msg: Any) -> None:
        if getattr(msg, "method", None) == "notifications/resources/updated":
            seen.append(str(msg.params.uri))

    async def upstream_subscriptions(c: Any) -> Any:
        return (await c.call_tool("up.subscriptions", {})).structured_content["result"]

    async def go(url: str) -> None:
        async with Client(url, mode="legacy", message_handler=on_message) as c:
            assert await upstream_subscriptions(c) == []
            await c.subscribe_resource("note://first")
            with anyio.fail_after(20):
                while await upstream_subscriptions(c) != ["note://first"]:
                    await anyio.sleep(0.05)
            touched = await c.call_tool("up.touch_subscribed", {"uri": "note://first"})
            assert touched.structured_content == {"result": True}
            with anyio.fail_after(20):
                while "note://first" not in seen:
                    await anyio.sleep(0.05)
            await c.unsubscribe_resource("note://first")
            with anyio.fail_after(20):
                while await upstream_subscriptions(c) != []:
                    await anyio.sleep(0.05)

    with contextlib.ExitStack() as stack:
        up = stdio_command() if transport == "stdio" else stack.enter_context(http_upstream())
        url = stack.enter_context(gateway(up))
        anyio.run(go, url)
