"""Rich content that tools, prompts and sampling exchange: images, audio, embedded resources, messages.

A Python caller gets these objects back unchanged. Every JSON caller (MCP, gRPC, the CLI) sees
their documented JSON form, which is the MCP content block: ``{"type": "image", "data": <base64>,
"mimeType": ...}``, ``{"type": "audio", ...}``, ``{"type": "resource", "resource": {"uri", "mimeType",
"text" | "blob"}}``; a :class:`Message` is ``{"role": ..., "content": <block>}`` where a ``str``
content is ``{"type": "text", "text": ...}``.
"""

from __future__ import annotations

import base64
from typing import Any, Dict, List, Optional, Union

__all__ = ["Audio", "Content", "EmbeddedResource", "Image", "Message", "content_from_json"]

_ROLES = ("user", "assistant")


def _check_bytes(kind: str, name: str, value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{kind}.{name} must be bytes, not {type(value).__name__}")


def _check_str(kind: str, name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"{kind}.{name} must be str, not {type(value).__name__}")


class _Binary:
    """Shared shape of Image and Audio: bytes plus a MIME type."""

    __slots__ = ("data", "mime_type")
    _type = ""
    # Rich content, not structured data (schema derivation and the JSON conversion know it).
    __agent_runtime_content__ = True

    def __init__(self, data: bytes, mime_type: str) -> None:
        kind = type(self).__name__
        self.data = _check_bytes(kind, "data", data)
        self.mime_type = _check_str(kind, "mime_type", mime_type)

    def to_json(self) -> Dict[str, Any]:
        return {
            "type": self._type,
            "data": base64.b64encode(self.data).decode("ascii"),
            "mimeType": self.mime_type,
        }

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.data == other.data  # type: ignore[attr-defined]
            and self.mime_type == other.mime_type  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.data, self.mime_type))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<{len(self.data)} bytes>, mime_type={self.mime_type!r})"


class Image(_Binary):
    """An image a tool returns (or a prompt/sampling message carries)."""

    __slots__ = ()
    _type = "image"


class Audio(_Binary):
    """Audio a tool returns (or a prompt/sampling message carries)."""

    __slots__ = ()
    _type = "audio"


class EmbeddedResource:
    """A resource's contents embedded in a result: text or a blob, never both."""

    __slots__ = ("blob", "mime_type", "text", "uri")
    __agent_runtime_content__ = True

    def __init__(
        self,
        uri: str,
        *,
        text: Optional[str] = None,
        blob: Optional[bytes] = None,
        mime_type: Optional[str] = None,
    ) -> None:
        self.uri = _check_str("EmbeddedResource", "uri", uri)
        if (text is None) == (blob is None):
            raise ValueError("EmbeddedResource needs exactly one of text= or blob=")
        self.text = None if text is None else _check_str("EmbeddedResource", "text", text)
        self.blob = None if blob is None else _check_bytes("EmbeddedResource", "blob", blob)
        self.mime_type = None if mime_type is None else _check_str("EmbeddedResource", "mime_type", mime_type)

    def to_json(self) -> Dict[str, Any]:
        resource: Dict[str, Any] = {"uri": self.uri}
        if self.mime_type is not None:
            resource["mimeType"] = self.mime_type
        if self.text is not None:
            resource["text"] = self.text
        else:
            assert self.blob is not None
            resource["blob"] = base64.b64encode(self.blob).decode("ascii")
        return {"type": "resource", "resource": resource}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EmbeddedResource) and (
            self.uri,
            self.text,
            self.blob,
            self.mime_type,
        ) == (other.uri, other.text, other.blob, other.mime_type)

    def __hash__(self) -> int:
        return hash((self.uri, self.text, self.blob, self.mime_type))

    def __repr__(self) -> str:
        body = (
            f"text=<{len(self.text)} chars>"
            if self.text is not None
            else f"blob=<{len(self.blob or b'')} bytes>"
        )
        return f"EmbeddedResource({self.uri!r}, {body}, mime_type={self.mime_type!r})"


Content = Union[str, Image, Audio, EmbeddedResource]


def _content_to_json(content: Content) -> Dict[str, Any]:
    if isinstance(content, str):
        return {"type": "text", "text": content}
    if isinstance(content, (Image, Audio, EmbeddedResource)):
        return content.to_json()
    raise TypeError(
        f"message content must be str, Image, Audio or EmbeddedResource, not {type(content).__name__}"
    )


def _b64(where: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as e:
        raise ValueError(f"{where} is not valid base64: {e}") from None


def content_from_json(block: Any) -> Content:
    """The object for one MCP content block (the inverse of ``to_json``); TypeError/ValueError names what is wrong."""
    if not isinstance(block, dict):
        raise TypeError(f"a content block must be an object, not {type(block).__name__}")
    kind = block.get("type")
    if kind == "text":
        return _check_str("text content", "text", block.get("text"))
    if kind in ("image", "audio"):
        cls = Image if kind == "image" else Audio
        return cls(
            _b64(f"{kind} content data", block.get("data")),
            _check_str(kind, "mimeType", block.get("mimeType")),
        )
    if kind == "resource":
        res = block.get("resource")
        if not isinstance(res, dict):
            raise ValueError("resource content needs a 'resource' object")
        blob = res.get("blob")
        return EmbeddedResource(
            res.get("uri"),  # type: ignore[arg-type]
            text=res.get("text"),
            blob=None if blob is None else _b64("resource blob", blob),
            mime_type=res.get("mimeType"),
        )
    raise ValueError(f"unknown content block type {kind!r}")


def _from_blocks(blocks: List[Dict[str, Any]]) -> Any:
    """A mounted MCP tool's content blocks as a result: one object for one block, else a list.

    Text blocks become ``str``; image/audio/resource blocks the classes above; a block type
    without a class here (``resource_link``, later ones) stays its dict. Called by the native
    module; the error names the block.
    """
    known = ("text", "image", "audio", "resource")
    out: List[Any] = []
    for i, block in enumerate(blocks):
        if isinstance(block, dict) and block.get("type") not in known:
            out.append(block)
            continue
        try:
            out.append(content_from_json(block))
        except (TypeError, ValueError) as e:
            raise ValueError(f"content block {i}: {e}") from None
    return out[0] if len(out) == 1 else out


class Message:
    """One message of a prompt or a sampling request: a role and one piece of content."""

    __slots__ = ("content", "role")

    def __init__(self, content: Content, role: str = "user") -> None:
        if role not in _ROLES:
            raise ValueError(f"Message.role must be 'user' or 'assistant', not {role!r}")
        _content_to_json(content)  # type check up front, with the same error as later
        self.content = content
        self.role = role

    def to_json(self) -> Dict[str, Any]:
        return {"role": self.role, "content": _content_to_json(self.content)}

    @classmethod
    def from_json(cls, value: Any) -> Message:
        if not isinstance(value, dict):
            raise TypeError(f"a message must be an object, not {type(value).__name__}")
        return cls(content_from_json(value.get("content")), value.get("role", "user"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.role, self.content) == (other.role, other.content)

    def __hash__(self) -> int:
        return hash((self.role, self.content))

    def __repr__(self) -> str:
        return f"Message({self.content!r}, role={self.role!r})"
