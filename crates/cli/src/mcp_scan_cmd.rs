//! `warden mcp scan` and `warden mcp approve-tool`.

use clap::Args;

#[derive(Args)]
pub struct ScanArgs {
    /// MCP client configuration files; the default locations when none is given.
    pub configs: Vec<std::path::PathBuf>,
}

#[derive(Args)]
pub struct ApproveToolArgs {
    /// The upstream server's name.
    pub server: String,
    /// The tool's name on that server.
    pub tool: String,
}

pub fn scan(_args: ScanArgs) -> anyhow::Result<u8> {
    anyhow::bail!("warden mcp scan is not built yet")
}

pub fn approve_tool(_args: ApproveToolArgs) -> anyhow::Result<u8> {
    anyhow::bail!("warden mcp approve-tool is not built yet")
}
