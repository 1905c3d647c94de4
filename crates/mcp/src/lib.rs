//! MCP governance: a transparent proxy that puts every `tools/call` through
//! the gate, and an offline scanner for MCP tool definitions.
//!
//! - [`scan`]: findings over tool definitions (hidden instructions,
//!   typosquatting between servers, shadowing) and MCP client configuration
//!   files. Pure: nothing is sent anywhere.
//! - [`pin`]: the hash of each tool definition, stored on first sight; a
//!   changed definition blocks the tool until an admin re-approves it.
//! - [`proxy`]: raw JSON-RPC forwarding between an MCP client and one or
//!   more upstream servers (stdio or streamable HTTP).

pub mod pin;
pub mod proxy;
pub mod scan;
