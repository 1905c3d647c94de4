//! `warden approvals`: the approval queue of a running decision server
//! (`warden serve`) or MCP proxy (`warden mcp proxy`), over its HTTP API.
//! The server holds the data directory, so approvers go through it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args as ClapArgs, Subcommand};
use comfy_table::Table;
use serde_json::{Value, json};
use warden_identity::approval;

/// How long a call to the server may take.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    /// The server's base URL (warden serve, or warden mcp proxy's --listen).
    #[arg(
        long,
        global = true,
        env = "WARDEN_SERVER",
        default_value = "http://127.0.0.1:7878"
    )]
    server: String,
    /// Bearer token with the approver (or admin) role, when the server has --auth.
    #[arg(long, global = true, env = "WARDEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// List approvals (default: the pending ones).
    List {
        /// pending, approved, denied, used, expired or all.
        #[arg(long, default_value = "pending")]
        state: String,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve the action an approval is for: the agent's next identical call goes through, once.
    Approve(AnswerArgs),
    /// Deny it: the agent's next identical call is told so.
    Deny(AnswerArgs),
}

#[derive(ClapArgs)]
struct AnswerArgs {
    /// The approval id (apr_…).
    id: String,
    /// A note kept with the answer in the audit log.
    #[arg(long)]
    comment: Option<String>,
    /// Sign the answer with this private key (hex seed or PKCS#8 PEM,
    /// mode 0600; `-` reads stdin). Required when the approver's entry in
    /// the server's tokens file has a `key`, or the approver is a did:key.
    #[arg(long, value_name = "FILE")]
    key: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> Result<u8> {
    let base = args.server.trim_end_matches('/').to_string();
    if !base.starts_with("http://") {
        bail!(
            "--server '{}' must be an http:// URL, e.g. http://127.0.0.1:7878",
            args.server
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let api = Api {
        base,
        token: args.token,
        client: reqwest::Client::builder()
            .timeout(TIMEOUT)
            .no_proxy()
            .build()
            .context("cannot build the HTTP client")?,
    };
    rt.block_on(async {
        match args.command {
            Command::List { state, json } => {
                let v = api
                    .call(
                        reqwest::Method::GET,
                        &format!("/v1/approvals?state={state}"),
                        None,
                    )
                    .await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    print_table(&v);
                }
                Ok(0)
            }
            Command::Approve(a) => answer(&api, a, true).await,
            Command::Deny(a) => answer(&api, a, false).await,
        }
    })
}

async fn answer(api: &Api, args: AnswerArgs, approve: bool) -> Result<u8> {
    let id = args.id.as_str();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        bail!("'{id}' is not an approval id (apr_ and 32 hex digits; see 'warden approvals list')");
    }
    let verb = approval::verb(approve);
    let mut body = json!({});
    if let Some(c) = args.comment {
        body["comment"] = json!(c);
    }
    if let Some(path) = &args.key {
        let key = crate::keys::read_key(path)?;
        // The signature covers the action the approval is bound to, as
        // the server holds it.
        let pending = api
            .call(reqwest::Method::GET, &format!("/v1/approvals/{id}"), None)
            .await?;
        let field = |k: &str| pending.get(k).and_then(Value::as_str);
        if field("id") != Some(id) || field("state") != Some("pending") {
            bail!(
                "not signing: the server answered for approval '{id}' with id {:?} and state {:?}, not a pending approval of that id",
                field("id"),
                field("state")
            );
        }
        let Some(hash) = field("action_hash") else {
            bail!("the server's approval '{id}' has no action_hash: {pending}");
        };
        // Say what the signature is for before making it.
        eprintln!(
            "signing as {}: {verb} {id}: tool {}, agent {}, asked by token {}, arguments {}, action {hash} (the signature covers the id, the verb and the action hash)",
            key.did(),
            warden_policy::printable(field("tool").unwrap_or("-")),
            warden_policy::printable(field("agent").unwrap_or("-")),
            warden_policy::printable(field("caller").unwrap_or("-")),
            warden_policy::printable(field("arguments").unwrap_or("(recorded by hash only)")),
        );
        body["signature"] = json!(approval::sign_answer(&key, id, approve, hash));
    }
    let v = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/approvals/{id}/{verb}"),
            Some(body),
        )
        .await?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
    println!(
        "{} {}: {} (tool {}, agent {}, by {})",
        field("id"),
        field("state"),
        field("reason"),
        field("tool"),
        field("agent"),
        field("decided_by"),
    );
    if let Some(did) = v.get("signed_by").and_then(Value::as_str) {
        println!("signed by {did}");
    }
    Ok(0)
}

fn print_table(v: &Value) {
    let approvals = v
        .get("approvals")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if approvals.is_empty() {
        println!("no approvals");
        return;
    }
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header([
        "ID", "STATE", "TOOL", "AGENT", "CALLER", "SESSION", "RULE", "REASON",
    ]);
    for a in &approvals {
        let f = |k: &str| {
            warden_policy::printable(a.get(k).and_then(Value::as_str).unwrap_or("-")).to_string()
        };
        table.add_row([
            f("id"),
            f("state"),
            f("tool"),
            f("agent"),
            f("caller"),
            f("session"),
            f("rule"),
            f("reason"),
        ]);
    }
    println!("{table}");
}

struct Api {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Api {
    /// Calls `path`; a response that is not 2xx is an error with the
    /// server's message.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.client.request(method, &url);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.with_context(|| {
            format!(
                "cannot reach the warden server at {} (is 'warden serve' or 'warden mcp proxy' running there? pass --server URL)",
                self.base
            )
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .with_context(|| format!("reading the answer of {url}"))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message = v
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map_or_else(|| v.to_string(), str::to_string);
            let hint = match (
                status.as_u16(),
                v.pointer("/error/code").and_then(Value::as_str),
            ) {
                (401, _) => " (pass --token or set WARDEN_TOKEN)",
                (403, Some("forbidden")) => " (the token needs the approver or admin role)",
                (403, Some("signature_required")) => " (pass --key FILE)",
                _ => "",
            };
            bail!("{} {}{hint}", status.as_u16(), message);
        }
        Ok(v)
    }
}
