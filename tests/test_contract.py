"""proto/python_service.proto is the design note's contract, unchanged."""

import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEED = os.path.join(os.path.dirname(ROOT), "shared", "seed", "python-ffi-integration.md")

# The note's messages: (message, field, type, number, repeated) — kept here too so the check
# runs where the note is not checked out beside the repository.
EXPECTED = {
    ("RunScriptRequest", "script", "string", 1, False),
    ("RunScriptRequest", "args", "string", 2, True),
    ("RunScriptResponse", "result", "string", 1, False),
    ("RunScriptResponse", "error", "string", 2, False),
    ("RunFunctionRequest", "module", "string", 1, False),
    ("RunFunctionRequest", "function", "string", 2, False),
    ("RunFunctionRequest", "args_json", "string", 3, False),
    ("RunFunctionResponse", "result_json", "string", 1, False),
    ("RunFunctionResponse", "error", "string", 2, False),
    ("RunToolRequest", "tool_name", "string", 1, False),
    ("RunToolRequest", "args_json", "string", 2, False),
    ("RunToolResponse", "result_json", "string", 1, False),
    ("RunToolResponse", "error", "string", 2, False),
}


def fields(text):
    out = set()
    for name, body in re.findall(r"message\s+(\w+)\s*\{(.*?)\}", text, re.DOTALL):
        for rep, typ, field, num in re.findall(r"(repeated\s+)?(\w+)\s+(\w+)\s*=\s*(\d+);", body):
            out.add((name, field, typ, int(num), bool(rep)))
    return out


def test_proto_matches_the_note():
    with open(os.path.join(ROOT, "proto", "python_service.proto")) as f:
        proto = f.read()
    assert 'package python;' in proto
    assert 'option go_package = "github.com/spectrumwebco/agent_runtime/proto/python";' in proto
    for rpc in ("RunScript(RunScriptRequest) returns (RunScriptResponse)",
                "RunFunction(RunFunctionRequest) returns (RunFunctionResponse)",
                "RunTool(RunToolRequest) returns (RunToolResponse)"):  # fmt: skip
        assert rpc in proto
    assert fields(proto) == EXPECTED
    if os.path.exists(SEED):
        with open(SEED) as f:
            note = f.read()
        block = note[note.index("```protobuf") + len("```protobuf") :]
        block = block[: block.index("```")]
        assert block.strip() == proto.strip()
