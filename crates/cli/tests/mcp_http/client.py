"""An MCP client (the official Python SDK, `mcp` 2.x, streamable HTTP) that
runs a plan against an MCP endpoint and prints what it saw, for
crates/cli/tests/mcp_http.rs.

    python3 client.py PLAN.json

PLAN: {"url": "http://…/mcp", "token": "…"?, "steps": [STEP, ...]} where a
STEP is one of
  {"op": "tools"}                                   -> {"tools": [names]}
  {"op": "call", "name": N, "arguments": {...}}     -> {"is_error": bool, "text": "..."}
  {"op": "resources"}                               -> {"resources": [uris]}
  {"op": "read", "uri": U}                          -> {"contents": [texts]}
  {"op": "prompts"}                                 -> {"prompts": [names]}
  {"op": "prompt", "name": N, "arguments": {...}}   -> {"messages": [texts]}
  {"op": "pause"}                                   -> {"paused": true}, then waits
                                                       for a line on stdin
A step the SDK raised on gives {"exception": "..."}. Prints one JSON line
{"server_info": {"name": ...}} after initialize, then one per step, as each
step finishes (so a test can act while the session is open).
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def text_of(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def step(session, s):
    op = s["op"]
    if op == "tools":
        listed = await session.list_tools()
        return {"tools": [t.name for t in listed.tools]}
    if op == "call":
        r = await session.call_tool(s["name"], s.get("arguments") or {})
        return {"is_error": bool(r.is_error), "text": text_of(r)}
    if op == "resources":
        listed = await session.list_resources()
        return {"resources": [str(r.uri) for r in listed.resources]}
    if op == "read":
        r = await session.read_resource(s["uri"])
        return {"contents": [getattr(c, "text", None) or getattr(c, "blob", "") for c in r.contents]}
    if op == "prompts":
        listed = await session.list_prompts()
        return {"prompts": [p.name for p in listed.prompts]}
    if op == "pause":
        emit({"paused": True})
        await asyncio.to_thread(sys.stdin.readline)
        return None
    if op == "prompt":
        r = await session.get_prompt(s["name"], s.get("arguments") or {})
        return {"messages": [getattr(m.content, "text", "") for m in r.messages]}
    raise ValueError(f"unknown op {op}")


def emit(obj):
    print(json.dumps(obj), flush=True)


async def run(plan):
    headers = {"Authorization": f"Bearer {plan['token']}"} if plan.get("token") else None
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(plan["url"], http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                init = await session.initialize()
                emit({"server_info": {"name": init.server_info.name}})
                for s in plan["steps"]:
                    try:
                        result = await step(session, s)
                    except Exception as e:  # the test asserts on what the client saw
                        result = {"exception": f"{type(e).__name__}: {e}"}
                    if result is not None:
                        emit(result)


def main():
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    asyncio.run(run(plan))


if __name__ == "__main__":
    main()
