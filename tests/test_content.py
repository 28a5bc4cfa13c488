"""The rich content types: construction checks and the JSON form (MCP content blocks)."""
from __future__ import annotations

import agent_runtime as ar
import pytest
from agent_runtime.content import content_from_json


def test_json_form_round_trips() -> None:
    items = [
        ar.Image(b"\x89PNG\r\n", "image/png"),
        ar.Audio(bytearray(b"RIFF"), "audio/wav"),
        ar.EmbeddedResource("file:///a.txt", text="hello", mime_type="text/plain"),
        ar.EmbeddedResource("file:///b.bin", blob=b"\x00\x01"),
        "plain text",
    ]
    for item in items:
        assert content_from_json(ar.Message(item).to_json()["content"]) == item
    assert ar.Image(b"ab", "image/png").to_json() == {"type": "image", "data": "YWI=", "mimeType": "image/png"}
    assert ar.EmbeddedResource("u://x", blob=b"ab").to_json() == {
        "type": "resource",
        "resource": {"uri": "u://x", "blob": "YWI="},
    }
    m = ar.Message(ar.Audio(b"x", "audio/mpeg"), role="assistant")
    assert ar.Message.from_json(m.to_json()) == m


def test_bad_construction_names_the_field() -> None:
    with pytest.raises(TypeError, match=r"Image\.data must be bytes"):
        ar.Image("not bytes", "image/png")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Audio\.mime_type must be str"):
        ar.Audio(b"", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one of text= or blob="):
        ar.EmbeddedResource("u://x")
    with pytest.raises(ValueError, match="exactly one of text= or blob="):
        ar.EmbeddedResource("u://x", text="a", blob=b"b")
    with pytest.raises(ValueError, match="role must be 'user' or 'assistant'"):
        ar.Message("hi", role="system")
    with pytest.raises(TypeError, match="message content must be"):
        ar.Message(42)  # type: ignore[arg-type]


def test_bad_json_names_the_problem() -> None:
    with pytest.raises(ValueError, match="not valid base64"):
        content_from_json({"type": "image", "data": "***", "mimeType": "image/png"})
    with pytest.raises(ValueError, match="unknown content block type 'video'"):
        content_from_json({"type": "video"})
    with pytest.raises(TypeError, match="must be an object"):
        content_from_json([1])
