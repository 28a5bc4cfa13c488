"""A Python client for the ``python.PythonService`` gRPC contract (``agent-runtime serve --grpc``).

Mirrors the design note's Go client: :meth:`Client.run_script`, :meth:`Client.run_function`,
:meth:`Client.run_tool`, :meth:`Client.close`. Needs ``grpcio`` (``pip install
agent-runtime[grpc]``); the six small messages are encoded here, so no generated code or
``protobuf`` package is required.

Given several addresses (replicas of one service), calls go round robin over those that are up;
an endpoint that could not take a call (UNAVAILABLE before the call left: connection refused,
no route, name not resolved) is skipped for a backoff that doubles while it stays down, and the
call goes to the next one. A call whose connection was lost after it was sent may have run, so
that failure is raised, never re-sent (the rule ``WorkerCrashed`` follows).
"""

import itertools
import json
import math
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

try:
    import grpc
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("agent_runtime.grpc needs grpcio: pip install 'agent-runtime[grpc]'") from e

from ._native import ToolError

_SERVICE = "/python.PythonService/"
# Deadlines longer than this (100 years, as the native side's "forever") mean none at all.
_FOREVER_SECONDS = 100 * 365 * 86400.0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _encode(fields: Sequence[Tuple[int, str]]) -> bytes:
    out = bytearray()
    for number, text in fields:
        data = text.encode("utf-8")
        out += _varint(number << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def _read_varint(buf: bytes, i: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated or oversized varint in response")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _decode(buf: bytes) -> Dict[int, str]:
    """String fields by number (last one wins, as protobuf does); other fields skipped."""
    out: Dict[int, str] = {}
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 2:
            n, i = _read_varint(buf, i)
            if i + n > len(buf):
                raise ValueError(f"field {number} claims {n} bytes, {len(buf) - i} present in response")
            out[number] = buf[i : i + n].decode("utf-8")
            i += n
        elif wire == 0:
            _, i = _read_varint(buf, i)
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            if i > len(buf):
                raise ValueError("truncated fixed-width field in response")
        else:
            raise ValueError(f"unsupported wire type {wire} in response")
    return out


def _identity(b: bytes) -> bytes:
    return b


# What gRPC core says when a call could not leave the client: the endpoint was never reached.
_NOT_STARTED = (
    "failed to connect",
    "connection refused",
    "connect failed",
    "dns resolution failed",
    "name resolution",
    "no route to host",
    "network is unreachable",
)

_BACKOFF_MIN = 0.25
_BACKOFF_MAX = 30.0


def not_started(error: "grpc.RpcError") -> bool:
    """Whether a failed call certainly never reached the server (safe to send elsewhere)."""
    code = getattr(error, "code", None)
    if not callable(code) or code() != grpc.StatusCode.UNAVAILABLE:
        return False
    details = getattr(error, "details", None)
    text = (details() if callable(details) else "") or ""
    return any(p in text.lower() for p in _NOT_STARTED)


class _Endpoint:
    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(address)
        self.calls = {
            name: self.channel.unary_unary(
                _SERVICE + name, request_serializer=_identity, response_deserializer=_identity
            )
            for name in ("RunScript", "RunFunction", "RunTool")
        }
        self.down_until = 0.0
        self.backoff = 0.0


class Client:
    """A connection to a PythonService server.

    ``address`` is one ``host:port`` or a list of replicas' addresses. ``token`` is sent as
    ``authorization: Bearer <token>``; ``timeout`` (seconds) is the deadline of each call (the
    server cancels the tool when it passes). ``retries`` bounds how often a call that never
    started is sent to another endpoint (default: the number of endpoints plus 2).
    """

    def __init__(
        self,
        address: Union[str, Sequence[str]],
        token: Optional[str] = None,
        timeout: Optional[float] = None,
        retries: Optional[int] = None,
    ) -> None:
        addresses = [address] if isinstance(address, str) else list(address)
        if not addresses or not all(isinstance(a, str) and a for a in addresses):
            raise ValueError(f"address must be a non-empty 'host:port' or a list of them, got {address!r}")
        if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
            raise ValueError(f"retries must be a non-negative int, got {retries!r}")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
            if math.isnan(timeout) or timeout <= 0:
                raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
            if math.isinf(timeout) or timeout > _FOREVER_SECONDS:
                timeout = None  # no deadline (grpcio treats inf and huge deadlines as expired)
        self._endpoints = [_Endpoint(a) for a in addresses]
        self._next = itertools.count()
        self._lock = threading.Lock()
        self._retries = len(addresses) + 2 if retries is None else retries
        self._timeout = timeout
        self._metadata: List[Tuple[str, str]] = [("authorization", f"Bearer {token}")] if token else []

    @property
    def endpoints(self) -> List[Tuple[str, bool]]:
        """Each endpoint's address and whether it is up (not in a backoff)."""
        now = time.monotonic()
        with self._lock:
            return [(e.address, e.down_until <= now) for e in self._endpoints]

    def _pick(self) -> _Endpoint:
        """The next endpoint round robin that is up; all down: the one up soonest."""
        now = time.monotonic()
        n = len(self._endpoints)
        start = next(self._next)
        with self._lock:
            ring = [self._endpoints[(start + k) % n] for k in range(n)]
            for e in ring:
                if e.down_until <= now:
                    return e
            return min(ring, key=lambda e: e.down_until)

    def _mark(self, e: _Endpoint, up: bool) -> None:
        with self._lock:
            if up:
                e.down_until, e.backoff = 0.0, 0.0
            else:
                e.backoff = min(_BACKOFF_MAX, e.backoff * 2) if e.backoff else _BACKOFF_MIN
                e.down_until = time.monotonic() + e.backoff

    def _call(self, method: str, request: bytes) -> Dict[int, str]:
        attempt = 0
        while True:
            e = self._pick()
            try:
                reply = e.calls[method](request, timeout=self._timeout, metadata=self._metadata)
            except grpc.RpcError as err:
                if not not_started(err):
                    raise
                self._mark(e, up=False)
                if attempt >= self._retries:
                    raise
                attempt += 1
                now = time.monotonic()
                with self._lock:
                    all_down = all(x.down_until > now for x in self._endpoints)
                if all_down:
                    time.sleep(min(5.0, 0.05 * 2**attempt))
                continue
            if e.down_until:
                self._mark(e, up=True)
            break
        fields = _decode(reply)
        error = fields.get(2, "")
        if error:
            raise ToolError(f"{method} failed remotely: {error}")
        return fields

    def run_script(self, script: str, *args: str) -> str:
        """``RunScript``: ``str(script.main(*args))`` on the server."""
        return self._call("RunScript", _encode([(1, script)] + [(2, str(a)) for a in args])).get(1, "")

    def run_function(self, module: str, function: str, *args: Any) -> Any:
        """``RunFunction``: ``module.function(*args)`` with JSON arguments and result."""
        req = _encode([(1, module), (2, function), (3, json.dumps(list(args)))])
        return json.loads(self._call("RunFunction", req).get(1, "null") or "null")

    def run_tool(self, tool_name: str, args: Optional[Dict[str, Any]] = None) -> Any:
        """``RunTool``: call a registered tool with JSON arguments."""
        req = _encode([(1, tool_name), (2, json.dumps(args or {}))])
        return json.loads(self._call("RunTool", req).get(1, "null") or "null")

    def close(self) -> None:
        for e in self._endpoints:
            e.channel.close()

    def __enter__(self) -> "Client":  # noqa: PYI034 - Self needs typing_extensions on 3.8
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
