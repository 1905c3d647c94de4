//! The governed MCP proxy: raw JSON-RPC between client and upstream servers.
