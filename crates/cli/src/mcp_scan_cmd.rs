//! `warden mcp scan` and `warden mcp approve-tool`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};
use warden_mcp::config::{self, ServerConfig};
use warden_mcp::connect;
use warden_mcp::pin::Pins;
use warden_mcp::scan::{self, Finding, ServerTools, Severity, printable};
use warden_store::{DB_FILE, Store};

use crate::state::DataDir;

const EXIT_HIGH: u8 = 1;
const EXIT_INCOMPLETE: u8 = 2;
const EXIT_NOTHING_TO_APPROVE: u8 = 1;

#[derive(Args)]
pub struct ScanArgs {
    /// MCP client configuration files; the default locations when none is given.
    pub configs: Vec<PathBuf>,
    /// Start each stdio server to read its tools (stopped right after;
    /// nothing is sent anywhere else).
    #[arg(long)]
    pub connect: bool,
    /// Print one JSON document: servers and findings.
    #[arg(long)]
    pub json: bool,
    /// Seconds each server gets to start, answer and list its tools with --connect.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

#[derive(Args)]
pub struct ApproveToolArgs {
    /// The upstream server's name.
    pub server: String,
    /// The tool's name on that server.
    pub tool: String,
    #[command(flatten)]
    pub data: DataDir,
}

/// One configured server and what connecting to it gave.
struct Scanned {
    config: ServerConfig,
    /// Other files that configure the same server.
    also_in: Vec<PathBuf>,
    tools: Option<Vec<Value>>,
    error: Option<String>,
}

/// Exit code: 1 with any high-severity finding; else 2 when a server could
/// not be read with --connect; else 0. Unreadable configuration files are
/// errors (2).
pub fn scan(args: ScanArgs) -> Result<u8> {
    let explicit = !args.configs.is_empty();
    let paths: Vec<PathBuf> = if explicit {
        args.configs.clone()
    } else {
        config::default_config_paths()
            .into_iter()
            .filter(|p| p.is_file())
            .collect()
    };
    let mut scanned: Vec<Scanned> = Vec::new();
    for path in &paths {
        for server in config::read_client_config(path)? {
            match scanned.iter_mut().find(|s| same_server(&s.config, &server)) {
                Some(known) => known.also_in.push(server.source),
                None => scanned.push(Scanned {
                    config: server,
                    also_in: Vec::new(),
                    tools: None,
                    error: None,
                }),
            }
        }
    }
    if args.connect {
        let timeout = Duration::from_secs(args.timeout);
        for s in &mut scanned {
            if s.config.command.is_none() {
                s.error = Some(
                    "not started: an HTTP server (the scanner starts stdio servers only)".into(),
                );
                continue;
            }
            if !args.json {
                eprintln!(
                    "warden: reading the tools of '{}'…",
                    printable(&s.config.name)
                );
            }
            match connect::list_tools(&s.config, timeout) {
                Ok(report) => s.tools = Some(report.tools),
                Err(e) => s.error = Some(e.to_string()),
            }
        }
    }
    let servers: Vec<ServerTools> = scanned
        .iter()
        .filter_map(|s| {
            Some(ServerTools {
                server: s.config.name.clone(),
                tools: s.tools.clone()?,
            })
        })
        .collect();
    let findings = scan::scan_tools(&servers);
    let high = findings.iter().any(|f| f.severity == Severity::High);
    let incomplete = args.connect
        && scanned
            .iter()
            .any(|s| s.error.is_some() && s.config.command.is_some());
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_report(&paths, &scanned, &findings))?
        );
    } else {
        print_report(&paths, explicit, &scanned, &findings, args.connect);
    }
    Ok(if high {
        EXIT_HIGH
    } else if incomplete {
        EXIT_INCOMPLETE
    } else {
        0
    })
}

/// The same server configured in two files (e.g. globally and in a project).
fn same_server(a: &ServerConfig, b: &ServerConfig) -> bool {
    a.name == b.name
        && a.command == b.command
        && a.args == b.args
        && a.env == b.env
        && a.url == b.url
}

fn json_report(paths: &[PathBuf], scanned: &[Scanned], findings: &[Finding]) -> Value {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let servers: Vec<Value> = scanned
        .iter()
        .map(|s| {
            let mut sources = vec![s.config.source.display().to_string()];
            sources.extend(s.also_in.iter().map(|p| p.display().to_string()));
            json!({
                "name": s.config.name,
                "transport": s.config.transport(),
                "command": s.config.command,
                "args": s.config.args,
                // Values may be secrets: only the names.
                "env": s.config.env.keys().collect::<Vec<_>>(),
                "url": s.config.url,
                "sources": sources,
                "tools": s.tools.as_ref().map(|t| t.iter().map(|t| scan::tool_name(t).unwrap_or_default()).collect::<Vec<_>>()),
                "error": s.error,
            })
        })
        .collect();
    json!({
        "configs": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "servers": servers,
        "findings": findings,
        "summary": {"high": count(Severity::High), "medium": count(Severity::Medium), "low": count(Severity::Low)},
    })
}

fn print_report(
    paths: &[PathBuf],
    explicit: bool,
    scanned: &[Scanned],
    findings: &[Finding],
    connected: bool,
) {
    if paths.is_empty() {
        let looked: Vec<String> = config::default_config_paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        println!(
            "no MCP client configuration found (looked for {}); name one: warden mcp scan FILE",
            looked.join(", ")
        );
        return;
    }
    if scanned.is_empty() {
        let which = if explicit {
            "the given files"
        } else {
            "the configurations found"
        };
        println!(
            "no MCP servers in {which} ({})",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return;
    }
    let rows: Vec<[String; 4]> = scanned
        .iter()
        .map(|s| {
            let c = &s.config;
            let target = match (&c.command, &c.url) {
                (Some(cmd), _) => std::iter::once(cmd.as_str())
                    .chain(c.args.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" "),
                (None, Some(url)) => url.clone(),
                (None, None) => String::new(),
            };
            let state = match (&s.tools, &s.error) {
                (Some(tools), _) => format!(
                    "{} tool{}",
                    tools.len(),
                    if tools.len() == 1 { "" } else { "s" }
                ),
                (None, Some(e)) => e.clone(),
                (None, None) => String::new(),
            };
            [
                printable(&c.name),
                format!("{} {}", c.transport(), printable(&target)),
                printable(&c.source.display().to_string()),
                printable(&state),
            ]
        })
        .collect();
    println!("servers ({}):", rows.len());
    print_columns(&rows);
    if !connected {
        println!(
            "tools not read: run with --connect to start the stdio servers and scan their tools"
        );
        return;
    }
    if findings.is_empty() {
        println!("no findings");
        return;
    }
    let rows: Vec<[String; 4]> = findings
        .iter()
        .map(|f| {
            [
                f.severity.as_str().to_string(),
                format!("{}/{}", printable(&f.server), printable(&f.tool)),
                f.kind.as_str().to_string(),
                printable(&f.evidence),
            ]
        })
        .collect();
    println!("findings ({}):", rows.len());
    print_columns(&rows);
}

/// Rows indented by two spaces, every column but the last padded to its widest cell.
fn print_columns(rows: &[[String; 4]]) {
    let mut widths = [0usize; 3];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::from(" ");
        for (i, cell) in row.iter().enumerate() {
            line.push(' ');
            line.push_str(cell);
            if let Some(&w) = widths.get(i) {
                line.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 1));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// Exit code: 0 re-approved, 1 nothing to approve.
pub fn approve_tool(args: ApproveToolArgs) -> Result<u8> {
    if !args.data.data_dir.join(DB_FILE).is_file() {
        eprintln!(
            "warden: nothing to approve: '{}' has no warden.db (tools are pinned by 'warden mcp wrap'/'proxy'; pass --data-dir / set WARDEN_DATA_DIR)",
            printable(&args.data.data_dir.display().to_string())
        );
        return Ok(EXIT_NOTHING_TO_APPROVE);
    }
    let store: Arc<dyn Store> = Arc::new(args.data.open()?);
    let pins = Pins::new(store.clone());
    let (server, tool) = (printable(&args.server), printable(&args.tool));
    let code = match pins.get(&args.server, &args.tool)? {
        None => {
            eprintln!("warden: nothing to approve: no pinned tool '{tool}' on server '{server}'");
            EXIT_NOTHING_TO_APPROVE
        }
        Some(pin) if pin.changed.is_empty() => {
            eprintln!(
                "warden: nothing to approve: '{server}/{tool}' is unchanged since it was pinned ({})",
                pin.hash
            );
            EXIT_NOTHING_TO_APPROVE
        }
        Some(_) => match pins.approve(&args.server, &args.tool, &crate::registry::actor())? {
            Some(hash) => {
                println!("approved {server}/{tool}: pinned to {hash}");
                0
            }
            None => {
                eprintln!("warden: nothing to approve for '{server}/{tool}'");
                EXIT_NOTHING_TO_APPROVE
            }
        },
    };
    if let Err(e) = store.close() {
        eprintln!(
            "warden: warning: the approval is recorded, but no checkpoint was signed: {}",
            printable(&e.to_string())
        );
    }
    Ok(code)
}
