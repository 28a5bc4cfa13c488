"""MCP resources (issue 14, point 4): `@agent_runtime.resource` functions served by
`agent-runtime serve`, driven by the official Python MCP client over stdio and streamable HTTP
(2026 discovery and the legacy handshake): listing, reading text/blobs/templates (sync and async
functions), the errors of bad input, subscriptions and list changes. Registration checks run
in-process."""

import asyncio
import base64
import sys
import urllib.parse
import warnings

import agent_runtime
import pytest
from servers import wait_for_file

if sys.version_info < (3, 10):
    pytest.skip("the MCP Python SDK needs Python 3.10+", allow_module_level=True)
mcp = pytest.importorskip("mcp", reason="MCP tests need the `mcp` package (pip install mcp)")

from mcp.shared.exceptions import MCPError
from mcp_sdk_clients import TRANSPORTS, Serve, run

from mcp import Client

SERVE = Serve(["--import", "mcpb_catalog"])
http_server = SERVE.http_server_fixture()
client_for = SERVE.client


def text(result) -> str:
    (c,) = result.contents
    return c.text


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_list_and_read(kind, http_server):
    async def main():
        async with client_for(kind, http_server) as c:
            caps = c.server_capabilities
            assert caps.resources is not None and caps.resources.list_changed
            listed = {r.uri: r for r in (await c.list_resources()).resources}
            assert set(listed) >= {"cat://text", "cat://blob", "cat://untyped", "cat://broken"}
            assert listed["cat://text"].name == "cat_text"
            assert listed["cat://text"].description == "Plain text, read by a sync function."
            assert listed["cat://text"].mime_type == "text/plain"
            assert listed["cat://blob"].name == "blob" and listed["cat://blob"].mime_type == "image/png"
            templates = {t.uri_template: t for t in (await c.list_resource_templates()).resource_templates}
            assert set(templates) == {"cat://items/{n}/of/{owner}", "cat://async/{key}", "cat://slow/{marker}"}
            assert templates["cat://items/{n}/of/{owner}"].description == "Item n of an owner."
            # Templates are not listed as resources.
            assert not any("{" in u for u in listed)

            r = await c.read_resource("cat://text")
            (content,) = r.contents
            assert (str(content.uri), content.mime_type, content.text) == (
                "cat://text",
                "text/plain",
                "hello from a sync resource",
            )
            (blob,) = (await c.read_resource("cat://blob")).contents
            assert base64.b64decode(blob.blob) == b"\x89PNG\r\n\x1a\n-not-really"
            assert blob.mime_type == "image/png"
            # Without a declared MIME type: text/plain for text.
            (u,) = (await c.read_resource("cat://untyped")).contents
            assert u.mime_type == "text/plain"
            # Template variables: converted to the parameter's type, percent-decoded.
            assert text(await c.read_resource("cat://items/41/of/ann")) == "item 42 of ann (read by 'resource cat_item')"
            assert text(await c.read_resource("cat://items/1/of/a%20b")).startswith("item 2 of a b")
            assert text(await c.read_resource("cat://async/k1")) == "async k1"

    run(main())


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_bad_input_is_a_clear_mcp_error(kind, http_server):
    # "Resource not found" is -32002 before protocol 2026-07-28, -32602 from it on (rmcp maps it).
    not_found = -32002 if kind == "http-legacy" else -32602

    async def main():
        async with client_for(kind, http_server) as c:
            with pytest.raises(MCPError) as e:
                await c.read_resource("cat://nothing-here")
            assert e.value.code == not_found and "Resource not found: cat://nothing-here" in e.value.message
            assert e.value.data == {"uri": "cat://nothing-here"}
            # A template that matches nothing (an empty variable) is not found either.
            with pytest.raises(MCPError) as e:
                await c.read_resource("cat://items//of/ann")
            assert e.value.code == not_found and e.value.data == {"uri": "cat://items//of/ann"}
            # A variable that does not convert to the parameter's type.
            with pytest.raises(MCPError) as e:
                await c.read_resource("cat://items/x/of/ann")
            assert e.value.code == -32602 and "cat://items/x/of/ann" in e.value.message and "n" in e.value.message
            # The function raising: an internal error naming the resource and the exception.
            with pytest.raises(MCPError) as e:
                await c.read_resource("cat://broken")
            assert e.value.code == -32603
            assert "reading resource 'cat://broken'" in e.value.message
            assert "ValueError: the disk is on fire" in e.value.message
            assert e.value.data["type"] == "ValueError"
            with pytest.raises(MCPError) as e:
                await c.read_resource("cat://wrong-type")
            assert e.value.code == -32603 and "must return str (text) or bytes (a blob), not int" in e.value.message
            # The session is still fine afterwards.
            assert text(await c.read_resource("cat://text")) == "hello from a sync resource"

    run(main())


def _method(message):
    root = getattr(message, "root", message)
    return getattr(root, "method", None), getattr(getattr(root, "params", None), "uri", None)


@pytest.mark.parametrize("kind", ["stdio", "http-legacy"])
def test_subscribe_updated_and_unsubscribe(kind, http_server):
    """Handshake sessions: resources/subscribe, then notify_resource_updated reaches them."""

    async def main():
        updated: asyncio.Queue[str] = asyncio.Queue()

        async def handler(message):
            method, uri = _method(message)
            if method == "notifications/resources/updated":
                updated.put_nowait(str(uri))

        async with client_for(kind, http_server, legacy=True, message_handler=handler) as c:
            assert c.server_capabilities.resources.subscribe
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await c.subscribe_resource("cat://text")
                await c.subscribe_resource("cat://items/1/of/ann")  # a template's URI
                await c.call_tool("catalog.touch", {"uri": "cat://text"})
                assert await asyncio.wait_for(updated.get(), 10) == "cat://text"
                await c.unsubscribe_resource("cat://text")
                # Not subscribed: no notification; the next one is the subscribed URI's.
                await c.call_tool("catalog.touch", {"uri": "cat://text"})
                await c.call_tool("catalog.touch", {"uri": "cat://blob"})
                await c.call_tool("catalog.touch", {"uri": "cat://items/1/of/ann"})
                assert await asyncio.wait_for(updated.get(), 10) == "cat://items/1/of/ann"
                assert updated.empty()
                # Subscribing to a URI no resource has is refused.
                with pytest.raises(MCPError) as e:
                    await c.subscribe_resource("cat://nothing-here")
                assert e.value.code == -32002

    run(main())


def test_subscription_stream_gets_updates_and_list_changes(http_server):
    """2026-07-28 `subscriptions/listen`: resource subscriptions and resources list changes."""

    async def main():
        async with Client(http_server.addr) as c, c.listen(
            resources_list_changed=True, resource_subscriptions=["cat://blob"]
        ) as sub:
            await c.call_tool("catalog.touch", {"uri": "cat://text"})  # not subscribed
            await c.call_tool("catalog.touch", {"uri": "cat://blob"})
            event = await asyncio.wait_for(sub.__anext__(), 10)
            assert "cat://blob" in str(event)
            await c.call_tool("catalog.add_resource", {"uri": "cat://dyn-listen", "text": "x"})
            event = await asyncio.wait_for(sub.__anext__(), 10)
            assert "list" in str(event).lower() or "list" in type(event).__name__.lower()
            await c.call_tool("catalog.remove_resource", {"uri": "cat://dyn-listen"})

    run(main())


@pytest.mark.parametrize("kind", ["stdio", "http-legacy"])
def test_list_changed_when_resources_come_and_go(kind, http_server):
    async def main():
        changed = asyncio.Event()

        async def handler(message):
            if _method(message)[0] == "notifications/resources/list_changed":
                changed.set()

        async with client_for(kind, http_server, legacy=True, message_handler=handler) as c:
            uri = f"cat://dyn-{kind}"
            await c.call_tool("catalog.add_resource", {"uri": uri, "text": "dynamic"})
            await asyncio.wait_for(changed.wait(), 10)
            assert uri in {str(r.uri) for r in (await c.list_resources()).resources}
            assert text(await c.read_resource(uri)) == "dynamic"
            changed.clear()
            await c.call_tool("catalog.remove_resource", {"uri": uri})
            await asyncio.wait_for(changed.wait(), 10)
            assert uri not in {str(r.uri) for r in (await c.list_resources()).resources}

    run(main())


# ----- registration (in-process) -----


def test_registration_checks_templates_against_parameters():
    reg = agent_runtime.Registry()

    with pytest.raises(agent_runtime.RegistrationError, match=r"placeholder '\{b\}' is not a parameter"):

        @reg.resource("x://{a}/{b}")
        def two(a: str) -> str:
            return a

    with pytest.raises(agent_runtime.RegistrationError, match="required parameter 'b' is not a placeholder"):

        @reg.resource("x://{a}")
        def extra(a: str, b: str) -> str:
            return a

    with pytest.raises(agent_runtime.RegistrationError, match="required parameter 'a'"):

        @reg.resource("x://static")
        def needs(a: str) -> str:
            return a

    for bad, why in [("x://{a", "without a matching"), ("x://{+a}", "level-1"), ("x://{a}/{a}", "twice")]:
        with pytest.raises(agent_runtime.RegistrationError, match=why):
            reg.resource(bad)(lambda a: a)

    with pytest.raises(agent_runtime.RegistrationError, match="must not be empty"):
        reg.resource("")(lambda: "")
    with pytest.raises(agent_runtime.RegistrationError, match="'notes' has no scheme"):
        reg.resource("notes")(lambda: "")
    with pytest.raises(TypeError, match="needs a callable"):
        reg.resource("x://c")(42)
    with pytest.raises(TypeError, match="not a bare @resource"):

        @reg.resource  # type: ignore[arg-type]
        def forgot() -> str:
            return ""

    assert reg.resources() == [] and reg.resource_templates() == []

    # Defaulted parameters need no placeholder; a Context parameter is not one.
    @reg.resource("x://{a}")
    def ok(a: str, b: str = "B", ctx: agent_runtime.Context = None) -> str:
        return a + b

    @reg.resource("x://plain", description="given", mime_type="text/csv")
    async def plain() -> str:
        return ""

    (t,) = reg.resource_templates()
    assert (t["uri"], t["name"], t["description"]) == ("x://{a}", "ok", "")
    (p,) = reg.resources()
    assert (p["uri"], p["name"], p["description"], p["mime_type"]) == ("x://plain", "plain", "given", "text/csv")


def test_duplicates_replace_and_removal():
    reg = agent_runtime.Registry()

    def first() -> str:
        return "1"

    def second() -> str:
        return "2"

    reg.resource("x://r")(first)
    # The same function again (a module reload) replaces silently; another one is refused.
    reg.resource("x://r")(first)
    with pytest.raises(agent_runtime.RegistrationError, match="already registered"):
        reg.resource("x://r")(second)
    reg.resource("x://r", replace=True)(second)
    assert [r["name"] for r in reg.resources()] == ["second"]
    assert reg.remove_resource("x://r") is True
    assert reg.remove_resource("x://r") is False
    assert reg.resources() == []
    # A failed registration leaves no trace.
    with pytest.raises(agent_runtime.RegistrationError):
        reg.resource("x://{nope}")(first)
    reg.resource("x://r")(second)
    with pytest.raises(TypeError):
        reg.notify_resource_updated(3)  # type: ignore[arg-type]
    reg.notify_resource_updated("x://r")  # nobody listens: a no-op


@pytest.mark.parametrize("kind", ["stdio", "http"])
def test_concurrent_reads(kind, http_server):
    """Many reads in flight on one session (async and sync functions): each gets its own answer."""

    async def main():
        async with client_for(kind, http_server) as c:
            keys = [f"k{i}" for i in range(40)]
            asyncs = [c.read_resource(f"cat://async/{k}") for k in keys]
            syncs = [c.read_resource(f"cat://items/{i}/of/o{i}") for i in range(40)]
            results = await asyncio.gather(*asyncs, *syncs)
            assert [text(r) for r in results[:40]] == [f"async {k}" for k in keys]
            assert [text(r).split(" (")[0] for r in results[40:]] == [f"item {i + 1} of o{i}" for i in range(40)]

    run(main())


def test_registering_from_many_threads():
    import threading

    reg = agent_runtime.Registry()
    errors = []

    def worker(t: int) -> None:
        try:
            for i in range(25):

                def read(i: int = i) -> str:
                    return str(i)

                reg.resource(f"x://t{t}/{i}", name=f"r{t}-{i}")(read)
                reg.resources()
                reg.resource_templates()
        except Exception as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(reg.resources()) == 200


@pytest.mark.parametrize("kind", ["stdio", "http"])
def test_cancelling_a_read_cancels_the_function(kind, http_server, tmp_path):
    marker = str(tmp_path / "slow.txt")
    uri = "cat://slow/" + urllib.parse.quote(marker, safe="")

    async def main():
        async with client_for(kind, http_server) as c:
            task = asyncio.ensure_future(c.read_resource(uri))
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, wait_for_file, marker, "started")
            task.cancel()  # the SDK sends notifications/cancelled
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await loop.run_in_executor(None, wait_for_file, marker, "cancelled")
            assert text(await c.read_resource("cat://text")) == "hello from a sync resource"

    run(main())
    with open(marker) as f:
        assert f.read().split() == ["started", "cancelled"]
