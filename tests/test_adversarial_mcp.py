"""Hostile input to the MCP server (`agent-runtime serve --mcp-http / --mcp-stdio`), sent raw
(http.client, a subprocess's stdin) where the official client cannot send it: every bad message
gets the JSON-RPC error naming the problem, the server keeps serving, a client that goes away
cancels its tool, foreign origins are refused, and kept-alive connections are not slower than
fresh ones (TCP_NODELAY, issue 19)."""

import http.client
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import pytest
from servers import HERE, ServerProcess, server_env, wait_for_file

TOOL_ARGS = ["--import", "mcp_tools", "--import", "sample_tools"]
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
LEGACY = "2025-06-18"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def server():
    s = ServerProcess([*TOOL_ARGS, "serve", "--mcp-http", "127.0.0.1:0", "--max-message-size", "200000"])
    yield s
    assert s.stop() == 0, "".join(s.lines)


class Http:
    """One kept-alive connection to the endpoint, with an optional legacy session."""

    def __init__(self, url: str):
        u = urlsplit(url)
        self.host, self.port, self.path = u.hostname or "127.0.0.1", u.port or 80, u.path
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.session: Optional[str] = None

    def close(self) -> None:
        self.conn.close()

    def post(
        self, body: Any = None, raw: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None
    ) -> Tuple[int, Dict[str, str], bytes]:
        h = {"content-type": "application/json", "accept": ACCEPT}
        if self.session:
            h["mcp-session-id"] = self.session
            h["mcp-protocol-version"] = LEGACY
        h.update(headers or {})
        data = raw if raw is not None else json.dumps(body).encode()
        self.conn.request("POST", self.path, body=data, headers=h)
        r = self.conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()

    def rpc(self, body: Any = None, raw: Optional[bytes] = None, **kw: Any) -> Tuple[int, Dict[str, Any]]:
        """POST one message; the JSON-RPC answer (from a JSON body or the SSE stream's last event)."""
        status, headers, data = self.post(body, raw, **kw)
        return status, decode_answer(headers, data)

    def handshake(self) -> "Http":
        status, headers, data = self.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
            }
        )
        assert status == 200, data
        self.session = headers["mcp-session-id"]
        status, _, _ = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert status == 202
        return self


def decode_answer(headers: Dict[str, str], data: bytes) -> Dict[str, Any]:
    if headers.get("content-type", "").startswith("text/event-stream"):
        events = [ln[5:].strip() for ln in data.decode().splitlines() if ln.startswith("data:")]
        return json.loads([e for e in events if e][-1])
    return json.loads(data) if data else {}


def error_of(answer: Dict[str, Any]) -> Tuple[int, str]:
    assert "error" in answer, answer
    return answer["error"]["code"], answer["error"]["message"]


def call(name: Any, arguments: Any = None, rid: Any = 1, **extra: Any) -> Dict[str, Any]:
    params: Dict[str, Any] = {"name": name, **extra}
    if arguments is not None:
        params["arguments"] = arguments
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}


@pytest.fixture
def session(server):
    h = Http(server.addr).handshake()
    yield h
    h.close()


def assert_still_serving(h: Http) -> None:
    status, a = h.rpc(call("mcp.add", {"a": 2, "b": 3}, rid=99))
    assert status == 200 and a["result"]["structuredContent"] == {"result": 5}, a


# --- issue 13: params checked per method (−32602 naming the problem, not −32601) ------------


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"name": "mcp.add", "arguments": [1, 2]}, "params.arguments must be an object"),
        ({"name": "mcp.add", "arguments": "a=1"}, "params.arguments must be an object"),
        (None, "params are required"),
        ({"arguments": {}}, "params.name (the tool's name) is required"),
        ({"name": 5}, "params.name must be a string, got a number"),
        ({"name": ["mcp.add"]}, "params.name must be a string, got an array"),
        ([1, 2], "params must be an object, got an array"),
    ],
)
def test_tools_call_bad_params_are_invalid_params(session, params, needle):
    body: Dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": "tools/call"}
    if params is not None:
        body["params"] = params
    status, a = session.rpc(body)
    assert status == 200
    code, message = error_of(a)
    assert code == INVALID_PARAMS and a["id"] == 7, a
    assert message.startswith("Invalid params for tools/call: ") and needle in message, message
    assert_still_serving(session)


def test_other_methods_params_are_checked(session):
    for body in [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": 5}},
        {"jsonrpc": "2.0", "id": 2, "method": "ping", "params": "now"},
        {"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {"protocolVersion": 2025}},
        {"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {}},
    ]:
        status, a = session.rpc(body)
        code, message = error_of(a)
        assert (status, code, a["id"]) == (200, INVALID_PARAMS, body["id"]), a
        assert message.startswith(f"Invalid params for {body['method']}: "), message
    assert_still_serving(session)


def test_unknown_methods_and_notifications_with_ids(session):
    status, a = session.rpc({"jsonrpc": "2.0", "id": 5, "method": "tools/destroy"})
    assert status == 200 and error_of(a) == (METHOD_NOT_FOUND, 'Method not found: "tools/destroy"')
    status, a = session.rpc({"jsonrpc": "2.0", "id": 6, "method": "notifications/initialized"})
    code, message = error_of(a)
    assert code == INVALID_REQUEST and "send it without an \"id\"" in message
    # An unknown notification is ignored (JSON-RPC: no answer to notifications).
    status, _, data = session.post({"jsonrpc": "2.0", "method": "notifications/whatever"})
    assert status == 202 and data == b""
    assert_still_serving(session)


def test_huge_names_are_capped_and_not_echoed(session):
    for body, code in [
        (call("x" * 150_000), INVALID_PARAMS),
        ({"jsonrpc": "2.0", "id": 1, "method": "m" * 100_000}, METHOD_NOT_FOUND),
    ]:
        status, a = session.rpc(body)
        assert status == 200
        got, message = error_of(a)
        assert got == code and len(message) < 300, message[:300]
    _, a = session.rpc(call("x" * 1000))
    assert "at most 256 bytes" in error_of(a)[1]
    assert_still_serving(session)


# --- issue 13: malformed JSON is a −32700 parse error; wrong types stay 415 -------------------


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"\xff\xfe\x00", b'{"jsonrpc":"2.0","id":1,"method":"\xc3\x28"}', b"[" * 100_000],
    ids=["syntax", "empty", "binary", "invalid-utf8", "deep-nesting"],
)
def test_malformed_json_is_a_parse_error(session, raw):
    status, headers, data = session.post(raw=raw)
    assert status == 400 and headers["content-type"] == "application/json", data[:200]
    a = json.loads(data)
    assert a["id"] is None and a["error"]["code"] == PARSE_ERROR, a
    assert a["error"]["message"].startswith("Parse error: ")
    assert_still_serving(session)


def test_envelope_errors_are_invalid_requests(session):
    for body, needle in [
        ([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], "batches"),
        ("ping", "must be an object, got a string"),
        ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, '"jsonrpc" must be "2.0"'),
        ({"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}, '"id" must be a string or an integer'),
        ({"jsonrpc": "2.0", "id": 1, "method": 3}, '"method" must be a string'),
    ]:
        status, a = session.rpc(body)
        code, message = error_of(a)
        assert (status, code) == (400, INVALID_REQUEST) and needle in message, (body, a)
    assert_still_serving(session)


def test_wrong_content_type_is_415_with_a_message(session):
    status, _, data = session.post(raw=b"{}", headers={"content-type": "text/plain"})
    assert status == 415 and b"Content-Type must be application/json" in data
    status, _, data = session.post(raw=b"{not json", headers={"content-type": "application/x-www-form-urlencoded"})
    assert status == 415
    assert_still_serving(session)


def test_oversized_body_is_413_naming_the_cap(server, session):
    big = call("diag.echo", {"s": "z" * 300_000})
    status, _, data = session.post(big)
    assert status == 413, data[:200]
    assert b"exceeds 200000 bytes" in data and b"--max-message-size" in data
    # The server still serves, on a new connection too.
    assert_still_serving(Http(server.addr).handshake())


# --- issue 13: Origin validated as the streamable-HTTP spec asks; Host checks kept --------------


def post_once(url: str, body: Any = None, raw: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None):
    """One request on its own connection (a refused request's connection is closed)."""
    h = Http(url)
    try:
        return h.post(body, raw, headers=headers)
    finally:
        h.close()


def test_foreign_origins_are_refused(server, session):
    port = session.port
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    hdrs = {"mcp-session-id": session.session or "", "mcp-protocol-version": LEGACY}
    for origin in ["http://evil.example.com", f"http://localhost:{port + 1}", "null", "http://localhost", "garbage"]:
        status, _, data = post_once(server.addr, ping, headers={**hdrs, "origin": origin})
        assert status == 403 and b"Origin" in data and b"not allowed" in data, (origin, data)
    for origin in [f"http://localhost:{port}", f"http://127.0.0.1:{port}", f"http://[::1]:{port}"]:
        status, a = session.rpc({"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers={"origin": origin})
        assert status == 200 and a == {"jsonrpc": "2.0", "id": 2, "result": {}}, (origin, a)
    # Refused before anything else is looked at, even a malformed body.
    status, _, _ = post_once(server.addr, raw=b"{", headers={"origin": "http://evil.example.com"})
    assert status == 403
    status, _, _ = post_once(server.addr, ping, headers={**hdrs, "host": "evil.example.com"})
    assert status == 403
    assert_still_serving(session)


def test_allowed_origin_and_host_flags():
    s = ServerProcess(
        [
            *TOOL_ARGS, "serve", "--mcp-http", "127.0.0.1:0",
            "--mcp-allowed-origin", "https://app.example.com",
            "--mcp-allowed-host", "mcp.example.com",
        ]
    )  # fmt: skip
    try:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        hdrs = {"mcp-protocol-version": LEGACY}
        for origin, host, want in [
            ("https://app.example.com", None, 400),  # allowed origin: on to rmcp (no session: 400)
            ("https://app.example.com:443", None, 400),
            ("http://app.example.com", None, 403),
            ("https://mcp.example.com:8443", "mcp.example.com", 400),
            ("https://evil.example.com", "mcp.example.com", 403),
        ]:
            extra = {**hdrs, "origin": origin, **({"host": host} if host else {})}
            status, _, data = post_once(s.addr or "", ping, headers=extra)
            assert status == want, (origin, host, status, data)
    finally:
        assert s.stop() == 0, "".join(s.lines)
    bad = subprocess.run(
        [sys.executable, "-m", "agent_runtime", "serve", "--mcp-http", "127.0.0.1:0", "--mcp-allowed-origin", "example.com"],
        check=False, capture_output=True, text=True, env=server_env(), timeout=60, cwd=HERE,
    )  # fmt: skip
    assert bad.returncode == 2 and "--mcp-allowed-origin" in bad.stderr, bad.stderr


# --- issue 13: a client that goes away cancels its tool -----------------------------------------


def _wait_started_then(marker: str, close) -> None:
    assert wait_for_file(marker, "started", 30), "the tool did not start"
    close()
    cancelled = wait_for_file(marker, "cancelled", 30)
    with open(marker) as f:
        seen = f.read().split()
    assert cancelled and seen == ["started", "cancelled"], seen


def test_http_disconnect_cancels_the_call_of_a_session(server, tmp_path):
    marker = str(tmp_path / "m.txt")
    h = Http(server.addr).handshake()
    body = json.dumps(call("mcp.slow", {"marker": marker, "seconds": 60})).encode()
    hdrs = {"content-type": "application/json", "accept": ACCEPT, "mcp-session-id": h.session or "",
            "mcp-protocol-version": LEGACY}  # fmt: skip
    h.conn.request("POST", h.path, body=body, headers=hdrs)
    _wait_started_then(marker, h.close)
    # The session itself goes on.
    h2 = Http(server.addr)
    h2.session = h.session
    assert_still_serving(h2)


def test_http_disconnect_cancels_a_stateless_call(server, tmp_path):
    marker = str(tmp_path / "m.txt")
    h = Http(server.addr)
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"},
    }
    body = call("mcp.slow", {"marker": marker, "seconds": 60}, _meta=meta)
    hdrs = {"content-type": "application/json", "accept": ACCEPT, "mcp-protocol-version": MODERN,
            "mcp-method": "tools/call", "mcp-name": "mcp.slow"}  # fmt: skip
    h.conn.request("POST", h.path, body=json.dumps(body).encode(), headers=hdrs)
    _wait_started_then(marker, h.close)


def test_http_disconnect_with_progress_stream_cancels(server, tmp_path):
    marker = str(tmp_path / "m.txt")
    h = Http(server.addr).handshake()
    body = call("mcp.slow", {"marker": marker, "seconds": 60}, _meta={"progressToken": "p1"})
    hdrs = {"content-type": "application/json", "accept": ACCEPT, "mcp-session-id": h.session or "",
            "mcp-protocol-version": LEGACY}  # fmt: skip
    h.conn.request("POST", h.path, body=json.dumps(body).encode(), headers=hdrs)
    r = h.conn.getresponse()  # an SSE stream: the client asked for progress
    assert r.getheader("content-type", "").startswith("text/event-stream")
    _wait_started_then(marker, h.close)


# --- issue 19: JSON when nothing streams; kept-alive not slower than new connections ---------


def test_single_answers_are_json_and_progress_streams(session):
    status, headers, data = session.post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(data) == {"jsonrpc": "2.0", "id": 1, "result": {}}
    status, headers, data = session.post(call("mcp.steps", {"n": 3}, rid=2, _meta={"progressToken": "t"}))
    assert headers["content-type"].startswith("text/event-stream")
    events = [json.loads(ln[5:]) for ln in data.decode().splitlines() if ln.startswith("data:") and ln[5:].strip()]
    assert [e["params"]["progress"] for e in events[:-1]] == [1, 2, 3]
    assert events[-1]["id"] == 2 and events[-1]["result"]["structuredContent"] == {"result": 3}


def _median_ping_ms(url: str, session_id: str, keep_alive: bool, n: int) -> float:
    times: List[float] = []
    h = Http(url)
    h.session = session_id
    for i in range(n):
        if not keep_alive:
            h.close()
            h = Http(url)
            h.session = session_id
        t0 = time.perf_counter()
        status, a = h.rpc({"jsonrpc": "2.0", "id": i, "method": "ping"})
        times.append(time.perf_counter() - t0)
        assert status == 200 and a["result"] == {}
    h.close()
    return statistics.median(times) * 1e3


def test_kept_alive_connection_is_not_slower_than_new_ones(server, session):
    """Nagle + delayed ACK made every kept-alive request ~40 ms (issue 19): ratio in one run."""
    url, sid = server.addr, session.session or ""
    _median_ping_ms(url, sid, True, 5)  # warm up
    kept, fresh = [], []
    for _ in range(3):  # interleaved, so a busy machine slows both alike
        kept.append(_median_ping_ms(url, sid, True, 15))
        fresh.append(_median_ping_ms(url, sid, False, 15))
    k, f = statistics.median(kept), statistics.median(fresh)
    assert k <= 2 * f, f"kept-alive median {k:.2f} ms vs new connection {f:.2f} ms"


# --- stdio: every line answered, EOF cancels -----------------------------------------------------


class Stdio:
    def __init__(self, *extra: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent_runtime", *TOOL_ARGS, "serve", "--mcp-stdio", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=server_env(), cwd=HERE,
        )  # fmt: skip
        self.lines: List[Dict[str, Any]] = []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cv:
                self.lines.append(json.loads(line))
                self.cv.notify_all()

    def send(self, raw: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(raw)
        self.proc.stdin.flush()

    def next(self, timeout: float = 30) -> Dict[str, Any]:
        with self.cv:
            assert self.cv.wait_for(lambda: self.lines, timeout), "no answer"
            return self.lines.pop(0)

    def rpc(self, body: Any) -> Dict[str, Any]:
        self.send(json.dumps(body).encode() + b"\n")
        return self.next()

    def handshake(self) -> "Stdio":
        a = self.rpc(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
            }
        )
        assert a["result"]["serverInfo"]["name"] == "agent-runtime"
        self.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        return self

    def stop(self) -> int:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def test_stdio_answers_every_bad_line_and_keeps_serving():
    s = Stdio("--max-message-size", "10000").handshake()
    try:
        for raw, code, rid in [
            (b"this is not json\n", PARSE_ERROR, None),
            (b"\xff\xfe garbage\n", PARSE_ERROR, None),
            (b"[" * 50_00 + b"\n", PARSE_ERROR, None),
            (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]\n', INVALID_REQUEST, None),
            (b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"mcp.add","arguments":[1]}}\n', INVALID_PARAMS, 2),
            (b'{"jsonrpc":"2.0","id":3,"method":"tools/call"}\n', INVALID_PARAMS, 3),
            (b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":4}}\n', INVALID_PARAMS, 4),
            (b'{"jsonrpc":"2.0","id":5,"method":"nope"}\n', METHOD_NOT_FOUND, 5),
            (b'{"jsonrpc":"2.0","id":6,"method":"notifications/initialized"}\n', INVALID_REQUEST, 6),
            (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"' + b"x" * 5000 + b'"}}\n', INVALID_PARAMS, 7),
            (b'{"jsonrpc":"2.0","id":8,"method":"ping","pad":"' + b"p" * 20_000 + b'"}\n', INVALID_REQUEST, None),
        ]:  # fmt: skip
            s.send(b"\n   \n")  # blank lines are skipped, not answered
            s.send(raw)
            a = s.next()
            assert a["id"] == rid and a["error"]["code"] == code, (raw[:80], a)
            assert len(a["error"]["message"]) < 300
        a = s.rpc({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "mcp.add", "arguments": {"a": 1, "b": 2}}})
        assert a["id"] == 9 and a["result"]["structuredContent"] == {"result": 3}
        assert "exceeds" not in json.dumps(a)
    finally:
        assert s.stop() == 0


def test_stdio_oversized_line_names_the_cap():
    s = Stdio("--max-message-size", "1000").handshake()
    try:
        s.send(b'{"jsonrpc":"2.0","id":1,"method":"ping","x":"' + b"y" * 5000 + b'"}\n')
        a = s.next()
        assert a["id"] is None and a["error"]["code"] == INVALID_REQUEST
        assert "longer than 1000 bytes" in a["error"]["message"] and "--max-message-size" in a["error"]["message"]
        assert s.rpc({"jsonrpc": "2.0", "id": 2, "method": "ping"}) == {"jsonrpc": "2.0", "id": 2, "result": {}}
    finally:
        assert s.stop() == 0


def test_stdio_eof_cancels_running_calls(tmp_path):
    marker = str(tmp_path / "m.txt")
    s = Stdio().handshake()
    s.send(json.dumps(call("mcp.slow", {"marker": marker, "seconds": 60})).encode() + b"\n")
    _wait_started_then(marker, lambda: s.proc.stdin and s.proc.stdin.close())
    assert s.stop() == 0


def test_stdio_sdk_client_sees_protocol_errors():
    """The official client gets −32602 for a tool name it may send but the server refuses."""
    if sys.version_info < (3, 10):
        pytest.skip("the MCP Python SDK needs Python 3.10+")
    mcp = pytest.importorskip("mcp")
    import asyncio

    from mcp import Client, StdioServerParameters

    async def main():
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "agent_runtime", *TOOL_ARGS, "serve", "--mcp-stdio"],
            env=server_env(),
            cwd=HERE,
        )
        async with Client(params) as c:
            with pytest.raises(mcp.MCPError) as ei:
                await c.call_tool("n" * 100_000, {})
            assert "at most 256 bytes" in str(ei.value) and len(str(ei.value)) < 400
            assert (await c.call_tool("mcp.add", {"a": 1, "b": 1})).structured_content == {"result": 2}

    asyncio.run(asyncio.wait_for(main(), 60))


def test_nothing_listens_on_unexpected_paths(server):
    """The body checks apply to the endpoint only: other paths are plain 404s."""
    u = urlsplit(server.addr)
    c = http.client.HTTPConnection(u.hostname or "", u.port or 80, timeout=10)
    c.request("POST", "/elsewhere", body=b"{", headers={"content-type": "application/json", "accept": ACCEPT})
    r = c.getresponse()
    r.read()
    assert r.status == 404
    c.close()


def test_half_sent_body_does_not_hang_the_server(server):
    u = urlsplit(server.addr)
    with socket.create_connection((u.hostname or "", u.port or 80), timeout=10) as sock:
        sock.sendall(
            b"POST " + u.path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Accept: " + ACCEPT.encode() + b"\r\nContent-Length: 100000\r\n\r\n{\"jsonrpc\":"
        )
    h = Http(server.addr).handshake()
    assert_still_serving(h)
    h.close()

