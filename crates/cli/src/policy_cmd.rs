//! `warden policy lint | test | explain`.

use crate::input;
use anyhow::{Context, Result, anyhow};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Deserialize;
use warden_gate::{Action, Gate, files};
use warden_policy::{Outcome, Verdict};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check policy files and print every problem, compiler-style. Exit 1 on any.
    Lint {
        /// Policy files.
        #[arg(required = true)]
        policies: Vec<String>,
    },
    /// Run fixtures (`[{name, action, expect, rule?}]`) against a policy. Exit 1 on any failure.
    Test {
        /// Policy file.
        policy: String,
        /// Fixtures file (YAML list).
        fixtures: String,
    },
    /// Show every rule, whether it matched the action, and why not.
    Explain {
        /// Policy file.
        policy: String,
        /// Action JSON file, or '-' for stdin.
        #[arg(long, short)]
        action: String,
    },
}

pub fn run(cmd: Command) -> Result<u8> {
    match cmd {
        Command::Lint { policies } => lint(&policies),
        Command::Test { policy, fixtures } => test(&policy, &fixtures),
        Command::Explain { policy, action } => explain(&policy, &action),
    }
}

fn lint(paths: &[String]) -> Result<u8> {
    let mut problems = 0;
    for path in paths {
        match files::load_policy(path) {
            Ok(p) => {
                let (native, conds) = p.native_conditions();
                eprintln!(
                    "{path}: ok ({} rules, {conds} conditions, {native} run natively)",
                    p.rules().len()
                );
            }
            Err(e) => {
                for d in &e.diagnostics {
                    println!("{d}");
                }
                problems += e.diagnostics.len();
            }
        }
    }
    if problems > 0 {
        eprintln!("{problems} problem(s)");
        Ok(1)
    } else {
        Ok(0)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    name: String,
    action: serde_json::Value,
    expect: Verdict,
    #[serde(default)]
    rule: Option<String>,
}

fn test(policy_path: &str, fixtures_path: &str) -> Result<u8> {
    let policy = input::policy(Some(policy_path))?;
    let text = std::fs::read_to_string(fixtures_path)
        .with_context(|| format!("cannot read fixtures '{fixtures_path}'"))?;
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    let fixtures: Vec<Fixture> = serde_saphyr::from_str_with_options(&text, options)
        .map_err(|e| anyhow!("{fixtures_path}: {}", e.without_snippet()))?;
    let gate = Gate::new(policy);
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["fixture", "expected", "got", "rule", "result"]);
    let mut failed = 0;
    for f in &fixtures {
        let action: Action = serde_json::from_value(f.action.clone())
            .map_err(|e| anyhow!("{fixtures_path}: fixture '{}': invalid action: {e}", f.name))?;
        action
            .check()
            .map_err(|e| anyhow!("{fixtures_path}: fixture '{}': {e}", f.name))?;
        let d = gate.decide(&action);
        let rule_ok = f.rule.is_none() || f.rule.as_deref() == d.rule.as_deref();
        let ok = d.verdict == f.expect && rule_ok;
        if !ok {
            failed += 1;
        }
        let expected = match &f.rule {
            Some(r) => format!("{} ({r})", f.expect),
            None => f.expect.to_string(),
        };
        table.add_row([
            f.name.clone(),
            expected,
            d.verdict.to_string(),
            d.rule.as_deref().unwrap_or(&d.reason).to_string(),
            if ok { "pass" } else { "FAIL" }.to_string(),
        ]);
    }
    println!("{table}");
    println!("{} passed, {failed} failed", fixtures.len() - failed);
    Ok(u8::from(failed > 0))
}

fn explain(policy_path: &str, action_path: &str) -> Result<u8> {
    let policy = input::policy(Some(policy_path))?;
    let action = input::action(action_path)?;
    let gate = Gate::new(policy);
    let (decision, trace) = gate.explain(&action);
    if let (Some(policy), Some(trace)) = (gate.policy(), trace) {
        println!(
            "policy '{}' ({} rules), action at {}{}",
            policy.name(),
            policy.rules().len(),
            action.point,
            action
                .tool
                .as_deref()
                .map(|t| format!(" on tool '{t}'"))
                .unwrap_or_default()
        );
        // What the classifier read from the arguments, and the evidence for it.
        let intents: Vec<&str> = decision.intents.iter().map(|i| i.as_str()).collect();
        println!("intents: {}", intents.join(", "));
        for f in &decision.findings {
            println!(
                "  {:<20} {} (argument {}, {} parser, bytes {}..{})",
                f.intent.as_str(),
                warden_policy::printable(&f.evidence),
                f.argument.as_deref().unwrap_or("-"),
                f.kind,
                f.span.start,
                f.span.end
            );
        }
        for t in &trace.traces {
            let r = t.rule;
            let at = format!("{}:{}", r.origin.file, r.origin.line);
            let how = match t.native {
                Some(true) => " [condition ran natively]",
                Some(false) => " [condition ran in CEL]",
                None => "",
            };
            match &t.outcome {
                Outcome::Matched => println!("  MATCH  {} ({at}) -> {}{how}", r.id, r.verdict),
                Outcome::Missed(m) => println!("  no     {} ({at}): {m}{how}", r.id),
                Outcome::Error(e) => println!(
                    "  ERROR  {} ({at}): {}: {}",
                    r.id,
                    e.kind.reason(),
                    e.detail
                ),
            }
        }
    }
    println!(
        "decision: {} (rule: {}, reason: {})",
        decision.verdict,
        decision.rule.as_deref().unwrap_or("-"),
        decision.reason
    );
    Ok(crate::check::exit_code(&decision))
}
