"""A Python client for the ``python.PythonService`` gRPC contract (``agent-runtime serve --grpc``).

Mirrors the design note's Go client: :meth:`Client.run_script`, :meth:`Client.run_function`,
:meth:`Client.run_tool`, :meth:`Client.close`. Needs ``grpcio`` (``pip install
agent-runtime[grpc]``); the six small messages are encoded here, so no generated code or
``protobuf`` package is required.
"""

import json
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

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


class Client:
    """A connection to a PythonService server.

    ``token`` is sent as ``authorization: Bearer <token>``; ``timeout`` (seconds) is the
    deadline of each call (the server cancels the tool when it passes).
    """

    def __init__(self, address: str, token: Optional[str] = None, timeout: Optional[float] = None) -> None:
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
            if math.isnan(timeout) or timeout <= 0:
                raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
            if math.isinf(timeout) or timeout > _FOREVER_SECONDS:
                timeout = None  # no deadline (grpcio treats inf and huge deadlines as expired)
        self._channel = grpc.insecure_channel(address)
        self._timeout = timeout
        self._metadata: List[Tuple[str, str]] = [("authorization", f"Bearer {token}")] if token else []
        self._calls = {
            name: self._channel.unary_unary(_SERVICE + name, request_serializer=_identity, response_deserializer=_identity)
            for name in ("RunScript", "RunFunction", "RunTool")
        }

    def _call(self, method: str, request: bytes) -> Dict[int, str]:
        reply = self._calls[method](request, timeout=self._timeout, metadata=self._metadata)
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
        self._channel.close()

    def __enter__(self) -> "Client":  # noqa: PYI034 - Self needs typing_extensions on 3.8
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
