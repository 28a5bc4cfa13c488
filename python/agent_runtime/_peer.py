"""What ``Context.sample`` / ``Context.elicit`` send to the MCP client and make of its answer.

The native ``Context`` builds request parameters with these helpers (in JSON form, as MCP has
them), sends them through the call's MCP session, and turns the client's answer back into
Python objects.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Union

from .content import Audio, Content, Image, Message, content_from_json

__all__ = ["SamplingResult", "elicit_params", "elicit_result", "sample_params", "sample_result"]

_ACTIONS = ("accept", "decline", "cancel")
_MAX_TOKENS = 2**31 - 1


class SamplingResult:
    """The client's answer to ``ctx.sample``: the generated content, the model and why it stopped."""

    __slots__ = ("content", "model", "role", "stop_reason")

    def __init__(
        self,
        content: Content,
        model: Optional[str] = None,
        stop_reason: Optional[str] = None,
        role: str = "assistant",
    ) -> None:
        self.content = content
        self.model = model
        self.stop_reason = stop_reason
        self.role = role

    @property
    def text(self) -> Optional[str]:
        """The content when it is text, else None."""
        return self.content if isinstance(self.content, str) else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SamplingResult) and (
            self.content,
            self.model,
            self.stop_reason,
            self.role,
        ) == (other.content, other.model, other.stop_reason, other.role)

    def __repr__(self) -> str:
        return (
            f"SamplingResult({self.content!r}, model={self.model!r}, "
            f"stop_reason={self.stop_reason!r}, role={self.role!r})"
        )


def _messages(messages: Union[str, Message, Sequence[Union[str, Message]]]) -> List[Dict[str, Any]]:
    if isinstance(messages, (str, Message)):
        messages = [messages]
    if not isinstance(messages, Sequence) or not messages:
        raise TypeError("messages must be a str, a Message or a non-empty list of them")
    out = []
    for i, m in enumerate(messages):
        if isinstance(m, str):
            m = Message(m)
        if not isinstance(m, Message):
            raise TypeError(
                f"messages[{i}] must be a str or an agent_runtime.Message, not {type(m).__name__}"
            )
        if isinstance(m.content, (Image, Audio, str)):
            out.append(m.to_json())
        else:
            raise TypeError(
                f"messages[{i}]: sampling messages carry text, Image or Audio, not {type(m.content).__name__}"
            )
    return out


def sample_params(
    messages: Any,
    max_tokens: Any,
    system_prompt: Any = None,
    temperature: Any = None,
) -> Dict[str, Any]:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= _MAX_TOKENS:
        raise ValueError(f"max_tokens must be an int from 1 to {_MAX_TOKENS}, not {max_tokens!r}")
    params: Dict[str, Any] = {"messages": _messages(messages), "maxTokens": max_tokens}
    if system_prompt is not None:
        if not isinstance(system_prompt, str):
            raise TypeError(f"system_prompt must be a str, not {type(system_prompt).__name__}")
        params["systemPrompt"] = system_prompt
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise TypeError(f"temperature must be a number, not {type(temperature).__name__}")
        if not math.isfinite(temperature):
            raise ValueError(f"temperature must be a finite number, not {temperature!r}")
        params["temperature"] = float(temperature)
    return params


def sample_result(value: Any) -> SamplingResult:
    if not isinstance(value, dict):
        raise TypeError(f"the MCP client's sampling answer is not an object: {value!r}")
    content = value.get("content")
    if isinstance(content, list):  # protocol 2025-11-25 allows a list of blocks
        if len(content) != 1:
            raise ValueError(
                f"the MCP client's sampling answer has {len(content)} content blocks, expected 1"
            )
        content = content[0]
    return SamplingResult(
        content_from_json(content),
        model=value.get("model"),
        stop_reason=value.get("stopReason"),
        role=value.get("role", "assistant"),
    )


def _schema_of(schema: Any) -> Dict[str, Any]:
    if isinstance(schema, dict):
        return schema
    if isinstance(schema, type):
        from .schema._json_schema import _SchemaBuilder

        out = _SchemaBuilder(True, "validation", {}, {}).schema(schema)
        if out.get("type") != "object":
            raise TypeError(f"an elicitation schema must describe an object; {schema.__name__} does not")
        out = dict(out)
        out.pop("title", None)
        return out
    raise TypeError(
        f"schema must be a JSON Schema dict or a TypedDict/dataclass type, not {type(schema).__name__}"
    )


def elicit_params(message: Any, schema: Any) -> Dict[str, Any]:
    if not isinstance(message, str):
        raise TypeError(f"message must be a str, not {type(message).__name__}")
    return {"mode": "form", "message": message, "requestedSchema": _schema_of(schema)}


def elicit_result(value: Any) -> Dict[str, Any]:
    if not isinstance(value, dict) or value.get("action") not in _ACTIONS:
        raise ValueError(f"the MCP client's elicitation answer has no valid action: {value!r}")
    return {"action": value["action"], "content": value.get("content")}
