//! `warden token`: mint capability tokens with the organisation's issuer key,
//! delegate them with a holder's key, verify and revoke them.
//!
//! Issuing and delegating are recorded as events (`token.issued`,
//! `token.attenuated`) with the rights and revocation ids, never the token
//! itself; `agent decommission` reads those events to revoke what an agent
//! holds.

use crate::keys;
use crate::registry::{Registry, check_reason, parse_did};
use crate::state::DataDir;
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use warden_identity::{
    Agent, Attenuation, Did, Grant, MAX_TOKEN_BYTES, Rights, Ring, TokenError, TokenVerifier,
    ToolPattern, TrustConfig, VerifiedToken, format_rfc3339, issue, revocation_ids,
};
use warden_store::{DB_FILE, StateChange};

#[derive(Subcommand)]
pub enum Command {
    /// Print the organisation's issuer DID (the gate trusts tokens it signs).
    /// The key, <data-dir>/issuer.key (mode 0600), is created on first use.
    Issuer {
        #[command(flatten)]
        data: DataDir,
    },
    /// Mint a token for an active agent and print it. The sponsor comes from
    /// the agent's record.
    Issue {
        /// The agent's did:key.
        #[arg(long)]
        agent: String,
        /// Tool patterns the agent may call (`*` any sequence, `?` one character).
        #[arg(long, required = true, num_args = 1.., value_name = "GLOB", value_parser = parse_tool)]
        tools: Vec<ToolPattern>,
        /// Lifetime, e.g. 90s, 10m, 1h, 7d, 1h30m.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Duration,
        /// The most privileged ring calls may run at (default: the agent's ring now).
        #[arg(long, value_name = "N", value_parser = parse_ring)]
        ring: Option<Ring>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Delegate a token to another agent with narrower rights, signed with
    /// the holder's key, and print the new token.
    Attenuate {
        /// The token, or '-' to read it from stdin.
        token: String,
        /// The delegate's did:key (an active agent).
        #[arg(long)]
        to: String,
        /// Tool patterns, each within the token's.
        #[arg(long, required = true, num_args = 1.., value_name = "GLOB", value_parser = parse_tool)]
        tools: Vec<ToolPattern>,
        /// Lifetime from now (default: the token's expiry); may not outlive the token.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
        /// Ring ceiling (default: the token's); may not be more privileged.
        #[arg(long, value_name = "N", value_parser = parse_ring)]
        ring: Option<Ring>,
        /// The holder's key file (default: <data-dir>/keys/ of the token's holder).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Also trust tokens from this issuer DID.
        #[arg(long, value_name = "DID")]
        issuer: Vec<String>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Verify a token now and print its chain: issuer → agent → delegates,
    /// with the rights at each link.
    ///
    /// Exit code: 0 valid, 1 invalid (the reason's code and message are printed).
    Verify {
        /// The token, or '-' to read it from stdin.
        token: String,
        /// Also trust this issuer DID (the data directory's issuer is always trusted).
        #[arg(long, value_name = "DID")]
        issuer: Vec<String>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Revoke a token: every link's revocation id is stored, so the token and
    /// every token sharing a link with it (its parent, and everything delegated
    /// from it) fail verification. Works on expired and foreign tokens.
    Revoke {
        /// The token, or '-' to read it from stdin.
        token: String,
        /// Revoke only the last link (the holder's delegation and what is
        /// delegated from it), leaving the parent tokens valid.
        #[arg(long)]
        last_link: bool,
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        data: DataDir,
    },
}

pub fn run(cmd: Command) -> Result<u8> {
    match cmd {
        Command::Issuer { data } => {
            let (key, created) = keys::issuer_key(&data.data_dir)?;
            println!("{}", key.did());
            if created {
                eprintln!(
                    "warden: created the issuer key {}",
                    keys::issuer_key_path(&data.data_dir).display()
                );
            }
            Ok(0)
        }
        Command::Issue {
            agent,
            tools,
            ttl,
            ring,
            data,
        } => issue_token(&agent, tools, ttl, ring, &data),
        Command::Attenuate {
            token,
            to,
            tools,
            ttl,
            ring,
            key,
            issuer,
            data,
        } => {
            let request = AttenuateRequest {
                to,
                tools,
                ttl,
                ring,
                key,
            };
            attenuate(&read_token(&token)?, request, &issuer, &data)
        }
        Command::Verify {
            token,
            issuer,
            json,
            data,
        } => verify(&read_token(&token)?, &issuer, json, &data),
        Command::Revoke {
            token,
            last_link,
            reason,
            data,
        } => revoke(&read_token(&token)?, last_link, reason.as_deref(), &data),
    }
}

fn parse_tool(text: &str) -> Result<ToolPattern, String> {
    ToolPattern::parse(text).map_err(|e| e.to_string())
}

fn parse_ring(text: &str) -> Result<Ring, String> {
    let n: u8 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a ring (hint: 0, 1, 2 or 3)"))?;
    Ring::new(n).map_err(|e| e.to_string())
}

/// Longest `--ttl` text accepted.
const MAX_TTL_TEXT: usize = 32;

/// A duration as numbers with units, largest first: `90s`, `10m`, `1h30m`, `7d`.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (hint: e.g. 90s, 10m, 1h, 1h30m, 7d)");
    if text.is_empty() || text.len() > MAX_TTL_TEXT {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    let mut last_unit = u64::MAX;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(d.into()))
                    .ok_or_else(bad)?,
            );
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        if unit >= last_unit {
            return Err(bad());
        }
        last_unit = unit;
        let n = number.take().ok_or_else(bad)?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
    }
    if number.is_some() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Reads a token argument; `-` reads it from stdin.
fn read_token(arg: &str) -> Result<String> {
    if arg != "-" {
        return Ok(arg.trim().to_string());
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_TOKEN_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .context("cannot read the token from stdin")?;
    if bytes.len() > MAX_TOKEN_BYTES {
        bail!("the token on stdin is larger than {MAX_TOKEN_BYTES} bytes");
    }
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("the token on stdin is not text"))?;
    Ok(text.trim().to_string())
}

/// An agent that may be given or delegated a token.
fn active(registry: &Registry, did: &Did) -> Result<Agent> {
    let agent = registry.agent(did)?;
    if !agent.may_act() {
        bail!(
            "agent {did} is {}; only active agents hold tokens (hint: {})",
            agent.status(),
            match agent.status() {
                warden_identity::Status::Provisioned => "'warden agent activate DID'",
                warden_identity::Status::Suspended => "'warden agent resume DID'",
                _ => "create a new agent",
            }
        );
    }
    Ok(agent)
}

fn rights_json(rights: &Rights) -> Value {
    json!({
        "tools": rights.tools,
        "ring_ceiling": rights.ring_ceiling.get(),
        "expires": format_rfc3339(rights.expires_unix),
        "expires_unix": rights.expires_unix,
    })
}

fn issue_token(
    agent: &str,
    tools: Vec<ToolPattern>,
    ttl: Duration,
    ring: Option<Ring>,
    data: &DataDir,
) -> Result<u8> {
    let did = parse_did(agent)?;
    let registry = Registry::open(data)?;
    let mut agent = active(&registry, &did)?;
    let now = SystemTime::now();
    agent.trust_at(now, &TrustConfig::default());
    let ring_ceiling = ring.unwrap_or(agent.ring());
    if !agent.ring().at_least_as_privileged_as(ring_ceiling) {
        bail!(
            "--ring {} is more privileged than agent {did}'s {} (trust {}); a token cannot grant more than the agent has earned",
            ring_ceiling.get(),
            agent.ring(),
            agent.trust_score()
        );
    }
    let (issuer, created) = keys::issuer_key(&data.data_dir)?;
    if created {
        eprintln!(
            "warden: created the issuer key {} ({}); configure the gate to trust it",
            keys::issuer_key_path(&data.data_dir).display(),
            issuer.did()
        );
    }
    let grant = Grant {
        agent: did.clone(),
        sponsor: agent.sponsor().clone(),
        tools,
        ring_ceiling,
        ttl,
    };
    let token = issue(&issuer, &grant, now, &mut keys::os_rng()?)?;
    // Read the token back as a verifier would: the record describes what was minted.
    let verified =
        TokenVerifier::new([issuer.did().clone()])?.verify_uncached(token.as_str(), now)?;
    let link = &verified.links()[0];
    let mut details = rights_json(&link.rights);
    details["issuer"] = json!(issuer.did());
    details["sponsor"] = json!(verified.sponsor());
    details["token_hash"] = json!(token.hash());
    details["revocation_ids"] = json!([link.revocation_id]);
    registry.append("token.issued", did.as_str(), &details, None)?;
    registry.close();
    println!("{}", token.as_str());
    Ok(0)
}

/// The trusted issuers: the data directory's issuer key and any `--issuer`.
fn verifier(
    issuers: &[String],
    registry: Option<&Registry>,
    data: &DataDir,
) -> Result<TokenVerifier> {
    let mut trusted: Vec<Did> = issuers
        .iter()
        .map(|d| parse_did(d))
        .collect::<Result<_>>()?;
    if let Some(own) = keys::existing_issuer(&data.data_dir)? {
        trusted.push(own);
    }
    if trusted.is_empty() {
        bail!(
            "no trusted issuer: '{}' does not exist (hint: pass --issuer DID, or check --data-dir)",
            keys::issuer_key_path(&data.data_dir).display()
        );
    }
    let revoked = match registry {
        Some(r) => r.revoked()?,
        None => Vec::new(),
    };
    Ok(TokenVerifier::new(trusted)?.with_revoked(revoked))
}

/// Describes a token error as `code: message`.
fn reason(e: &TokenError) -> String {
    format!("{}: {e}", e.code())
}

struct AttenuateRequest {
    to: String,
    tools: Vec<ToolPattern>,
    ttl: Option<Duration>,
    ring: Option<Ring>,
    key: Option<PathBuf>,
}

fn attenuate(
    token: &str,
    request: AttenuateRequest,
    issuers: &[String],
    data: &DataDir,
) -> Result<u8> {
    let delegate = parse_did(&request.to)?;
    let registry = Registry::open(data)?;
    let now = SystemTime::now();
    let verified = verifier(issuers, Some(&registry), data)?
        .verify_uncached(token, now)
        .map_err(|e| anyhow!("the token is not valid: {}", reason(&e)))?;
    let holder = verified.holder().clone();
    if registry.find(&holder)?.is_some() {
        active(&registry, &holder)?;
    }
    active(&registry, &delegate)?;
    let explicit_key = request.key.is_some();
    let key_path = request
        .key
        .unwrap_or_else(|| keys::agent_key_path(&data.data_dir, &holder));
    if !explicit_key && !key_path.exists() {
        bail!(
            "no key for the token's holder {holder} in '{}' (hint: pass the holder's key with --key FILE)",
            key_path.display()
        );
    }
    let holder_key = keys::read_key(&key_path)?;
    if holder_key.did() != &holder {
        bail!(
            "key '{}' is {}, but the token is held by {holder}; only the holder can delegate it",
            key_path.display(),
            holder_key.did()
        );
    }
    let attenuation = Attenuation {
        delegate: delegate.clone(),
        tools: request.tools,
        ring_ceiling: request.ring,
        ttl: request.ttl,
    };
    let token = verified
        .attenuate(&holder_key, &attenuation, now, &mut keys::os_rng()?)
        .map_err(|e| anyhow!("cannot delegate: {}", reason(&e)))?;
    let issued = verifier(issuers, Some(&registry), data)?.verify_uncached(token.as_str(), now)?;
    let link = issued
        .links()
        .last()
        .ok_or_else(|| anyhow!("the delegated token has no links"))?;
    let mut details = rights_json(&link.rights);
    details["from"] = json!(holder);
    details["issuer"] = json!(issued.issuer());
    details["sponsor"] = json!(issued.sponsor());
    details["depth"] = json!(issued.depth());
    details["token_hash"] = json!(token.hash());
    details["revocation_id"] = json!(link.revocation_id);
    registry.append("token.attenuated", delegate.as_str(), &details, None)?;
    registry.close();
    println!("{}", token.as_str());
    Ok(0)
}

fn verify(token: &str, issuers: &[String], json: bool, data: &DataDir) -> Result<u8> {
    let registry = if data.data_dir.join(DB_FILE).is_file() {
        Some(Registry::open_existing(data)?)
    } else {
        None
    };
    let verifier = verifier(issuers, registry.as_ref(), data)?;
    let now = SystemTime::now();
    match verifier.verify_uncached(token, now) {
        Ok(verified) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&verified_json(&verified))?
                );
            } else {
                print!("{}", verified.describe());
                let e = verified.effective_rights();
                let tools: Vec<&str> = e.tools.iter().map(ToolPattern::as_str).collect();
                println!(
                    "valid: {} may call [{}] at rings {} to 3 until {}",
                    verified.holder(),
                    tools.join(", "),
                    e.ring_ceiling.get(),
                    format_rfc3339(e.expires_unix)
                );
            }
            Ok(0)
        }
        Err(e) => {
            if json {
                let out = json!({"valid": false, "code": e.code(), "message": e.to_string()});
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("invalid: {}", warden_policy::printable(&reason(&e)));
            }
            Ok(1)
        }
    }
}

fn verified_json(v: &VerifiedToken) -> Value {
    let links: Vec<Value> = v
        .links()
        .iter()
        .map(|l| {
            let mut link = rights_json(&l.rights);
            link["role"] = json!(l.role);
            link["did"] = json!(l.did);
            link["revocation_id"] = json!(l.revocation_id);
            link
        })
        .collect();
    json!({
        "valid": true,
        "issuer": v.issuer(),
        "sponsor": v.sponsor(),
        "holder": v.holder(),
        "links": links,
        "effective": rights_json(v.effective_rights()),
        "token_hash": v.token_hash(),
    })
}

fn revoke(token: &str, last_link: bool, reason_text: Option<&str>, data: &DataDir) -> Result<u8> {
    let why = check_reason(reason_text)?;
    let mut ids =
        revocation_ids(token).map_err(|e| anyhow!("cannot read the token: {}", reason(&e)))?;
    if ids.is_empty() {
        bail!("the token has no blocks to revoke");
    }
    let links = ids.len();
    if last_link {
        ids.drain(..links - 1);
    }
    let registry = Registry::open(data)?;
    let already = registry.revoked()?;
    // The hash a verifier names the token by (`Token::hash`), to match the issue event.
    let token_hash = format!("sha256:{}", hex::encode(Sha256::digest(token.as_bytes())));
    let mut revoked = 0;
    for (i, id) in ids.iter().enumerate() {
        let link = if last_link { links - 1 } else { i };
        if already.contains(id) {
            println!("link {link}: {id} was revoked already");
            continue;
        }
        registry.append(
            "token.revoked",
            id.as_str(),
            &json!({"link": link, "links": links, "reason": why, "token_hash": token_hash}),
            Some(StateChange::Revoke {
                id: id.to_string(),
                reason: why.clone(),
            }),
        )?;
        println!("link {link}: {id} revoked");
        revoked += 1;
    }
    registry.close();
    println!(
        "revoked {revoked} of {} id(s); tokens containing them now fail verification",
        ids.len()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_takes_units_largest_first() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in [
            "",
            "10",
            "m",
            "0s",
            "1m1h",
            "1h1h",
            "1.5h",
            "-1s",
            "1 h",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rings_are_zero_to_three() {
        assert_eq!(parse_ring("2"), Ok(Ring::R2));
        assert!(parse_ring("4").is_err());
        assert!(parse_ring("-1").is_err());
    }
}
