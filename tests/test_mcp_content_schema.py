"""Schema derivation for tools returning rich content (issue 14): `-> Image` and friends derive
no output schema (their results are MCP content blocks, not structured data); plain data
annotations next to them keep theirs. Pure Python: runs on every supported version."""

from typing import Dict, List, Optional, Tuple, Union

import pytest
from agent_runtime import Audio, EmbeddedResource, Image
from agent_runtime.schema import derive_tool_schema


def returns(annotation):
    def f() -> None: ...

    f.__annotations__["return"] = annotation
    return f


@pytest.mark.parametrize(
    "annotation",
    [
        Image,
        Audio,
        EmbeddedResource,
        List[Union[str, Image]],
        Optional[Image],
        Tuple[str, Audio],
        Dict[str, EmbeddedResource],
        "Image",
        "List[Union[str, Image, Audio]]",
    ],
)
def test_content_annotations_derive_no_output_schema(annotation):
    f = returns(annotation)
    sig = derive_tool_schema(f)
    assert sig.output_schema is None
    assert sig.input_schema["properties"] == {}


def test_plain_annotations_keep_their_output_schema():
    assert derive_tool_schema(returns(List[str])).output_schema == {"type": "array", "items": {"type": "string"}}
    assert derive_tool_schema(returns(int)).output_schema == {"type": "integer"}


def test_content_parameters_are_still_refused_with_a_clear_error():
    def f(img: Image) -> str: ...

    with pytest.raises(TypeError, match="Image"):
        derive_tool_schema(f)
