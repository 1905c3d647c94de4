//! `warden mcp wrap` and `warden mcp proxy`.

use clap::Args;

#[derive(Args)]
pub struct WrapArgs {
    /// The MCP server command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct ProxyArgs {
    /// Address to serve streamable HTTP on.
    #[arg(long, default_value = "127.0.0.1:7879")]
    pub listen: String,
}

pub fn wrap(_args: WrapArgs) -> anyhow::Result<u8> {
    anyhow::bail!("warden mcp wrap is not built yet")
}

pub fn proxy(_args: ProxyArgs) -> anyhow::Result<u8> {
    anyhow::bail!("warden mcp proxy is not built yet")
}
