//! MCP governance: a transparent proxy that puts every `tools/call` through
//! the gate, and an offline scanner for MCP tool definitions.
//!
//! - [`scan`]: findings over tool definitions (hidden instructions,
//!   typosquatting between servers, shadowing). Pure: nothing is sent
//!   anywhere, nothing is read.
//! - [`config`]: the MCP client configuration files (Claude Desktop,
//!   Cursor, VS Code, Claude Code) and where they are.
//! - [`connect`]: a minimal stdio MCP client that starts a configured
//!   server and reads its tools, for `warden mcp scan --connect`.
//! - [`pin`]: the hash of each tool definition, stored on first sight; a
//!   changed definition blocks the tool until an admin re-approves it.
//! - [`proxy`]: raw JSON-RPC forwarding between an MCP client and one or
//!   more upstream servers (stdio or streamable HTTP).

pub mod config;
pub mod connect;
pub mod pin;
pub mod proxy;
pub mod scan;
