"""A stateless streamable-HTTP MCP server (the official Python SDK's
MCPServer with stateless_http): it issues no Mcp-Session-Id. For
crates/cli/tests/mcp_http.rs.

    python3 stateless_server.py PORT
"""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("stateless-test")


@server.tool()
def echo(message: str) -> str:
    """Echoes the message."""
    return f"Echo: {message}"


@server.tool()
async def slow(seconds: float) -> str:
    """Answers after a while."""
    import anyio

    await anyio.sleep(seconds)
    return "late"


@server.tool()
def write_file(path: str, content: str) -> str:
    """Pretends to write a file (the test's policy denies it)."""
    return f"wrote {len(content)} bytes to {path}"


if __name__ == "__main__":
    import anyio

    anyio.run(
        lambda: server.run_streamable_http_async(
            port=int(sys.argv[1]), stateless_http=True, json_response=True
        )
    )
