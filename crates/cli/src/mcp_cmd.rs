//! `warden mcp`: the governed MCP proxy (`wrap`, `proxy`), the offline
//! scanner (`scan`) and tool re-approval after a pinned definition changed
//! (`approve-tool`).

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Run an MCP server over stdio behind the gate: point the MCP client at
    /// `warden mcp wrap -- CMD ARGS…` instead of `CMD ARGS…`.
    Wrap(crate::mcp_proxy_cmd::WrapArgs),
    /// Serve streamable HTTP on --listen and govern one or more upstream MCP servers.
    Proxy(crate::mcp_http_cmd::ProxyArgs),
    /// Read MCP client configurations and report risky tool definitions (offline).
    ///
    /// Exit code: 0 no high-severity finding, 1 high-severity findings, 2 usage or input error.
    Scan(crate::mcp_scan_cmd::ScanArgs),
    /// Re-approve a tool whose pinned definition changed, so it can be called again.
    ApproveTool(crate::mcp_scan_cmd::ApproveToolArgs),
}

pub fn run(cmd: Command) -> anyhow::Result<u8> {
    match cmd {
        Command::Wrap(args) => crate::mcp_proxy_cmd::wrap(args),
        Command::Proxy(args) => crate::mcp_http_cmd::proxy(args),
        Command::Scan(args) => crate::mcp_scan_cmd::scan(args),
        Command::ApproveTool(args) => crate::mcp_scan_cmd::approve_tool(args),
    }
}
