"""An MCP client (the official Python SDK, `mcp` 2.x) that runs a plan
against a stdio server and prints what it saw, for crates/cli/tests/mcp_wrap.rs.

    python3 client.py PLAN.json

PLAN: {"command": "...", "args": [...], "steps": [STEP, ...]} where a STEP is
{"op": "list"} or {"op": "call", "name": "...", "arguments": {...}}.
Prints one JSON object: {"server_info": {...}, "results": [RESULT, ...]}, a
RESULT being {"tools": [names]} for a listing, {"is_error": bool, "text": "..."}
for a call, or {"exception": "..."} when the SDK raised (e.g. a JSON-RPC error).
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


def text_of(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def run(plan):
    params = StdioServerParameters(command=plan["command"], args=plan["args"])
    out = {"results": []}
    async with stdio_client(params) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["server_info"] = {"name": init.server_info.name}
            for step in plan["steps"]:
                try:
                    if step["op"] == "list":
                        listed = await session.list_tools()
                        out["results"].append({"tools": [t.name for t in listed.tools]})
                    elif step["op"] == "call":
                        r = await session.call_tool(step["name"], step.get("arguments") or {})
                        out["results"].append({"is_error": bool(r.is_error), "text": text_of(r)})
                    else:
                        raise ValueError(f"unknown op {step['op']}")
                except Exception as e:  # the test asserts on what the client saw
                    out["results"].append({"exception": f"{type(e).__name__}: {e}"})
    return out


def main():
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    print(json.dumps(asyncio.run(run(plan))))


if __name__ == "__main__":
    main()
