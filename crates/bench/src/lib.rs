//! Benchmark support for warden: the generator of the large policy used by
//! `benches/decide.rs`, its actions, and latency statistics. Not published.

use warden_gate::Action;

/// Latency samples in nanoseconds, summarised.
pub struct Stats {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Calls per second over the whole run (single thread).
    pub per_sec: f64,
}

/// Summarises per-call latencies (ns) measured over `total_ns` of wall time.
pub fn stats(mut samples: Vec<u64>, total_ns: u64) -> Stats {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        per_sec: samples.len() as f64 / (total_ns as f64 / 1e9),
    }
}

/// The 1,000 bench actions (every tool of every family, labels, rings,
/// two agents, 50 sessions); `sql` adds that string as an `sql` argument.
pub fn bench_actions(sql: Option<&str>) -> Vec<Action> {
    let modes = ["bulk", "single", "stream"];
    (0..1000)
        .map(|i| {
            let f = (i * 37) % FAMILIES;
            let k = (i * 7) % TOOLS_PER_FAMILY;
            let labels: Vec<&str> = match i % 4 {
                0 => vec!["pii"],
                1 => vec!["internal"],
                _ => vec![],
            };
            let mut args = serde_json::json!({
                "limit": (i * 13) % 1500,
                "mode": modes[i % 3],
                "dest": if i % 5 == 0 { "acme.external" } else { "acme.internal" },
            });
            if let Some(sql) = sql {
                args["sql"] = serde_json::Value::String(sql.to_string());
            }
            let v = serde_json::json!({
                "agent": if i % 10 == 0 { "did:key:zAdminAgent" } else { "did:key:z6MkAgent" },
                "session": format!("s-{}", i % 50),
                "point": "pre_tool_call",
                "tool": format!("svc{f}.op{k}"),
                "args": args,
                "context": {"labels": labels, "ring": 2},
            });
            Action::from_json(v.to_string().as_bytes()).expect("bench action is valid")
        })
        .collect()
}

/// Families of tools in the generated policy; each has [`TOOLS_PER_FAMILY`] tools.
pub const FAMILIES: usize = 100;
/// Tools per family.
pub const TOOLS_PER_FAMILY: usize = 10;
/// Rules per family: every one of them can match every tool of its family.
pub const RULES_PER_FAMILY: usize = 10;

/// The tool names of family `f`.
pub fn family_tools(f: usize) -> Vec<String> {
    (0..TOOLS_PER_FAMILY)
        .map(|k| format!("svc{f}.op{k}"))
        .collect()
}

/// A `warden/v1` policy of `FAMILIES * RULES_PER_FAMILY` (1,000) rules: exact
/// tool lists and globs, with structural matchers and CEL conditions. Any
/// tool can be matched by exactly the 10 rules of its family; 3 of those 10
/// carry a `when:` condition.
pub fn warden_policy() -> String {
    warden_policy_with(false)
}

/// [`warden_policy`] plus a tool catalog that declares every tool's `mode`
/// and `dest` arguments `text` (data, never read by the intent classifier)
/// and its `sql` argument `sql`, as a deployment would for its own tools.
pub fn warden_policy_with_catalog() -> String {
    warden_policy_with(true)
}

fn warden_policy_with(catalog: bool) -> String {
    let mut s = String::from("version: warden/v1\nname: bench-1000\ndefault: deny\n");
    if catalog {
        s.push_str("tools:\n");
        for f in 0..FAMILIES {
            for t in family_tools(f) {
                s.push_str(&format!(
                    "  {t}: {{args: {{mode: text, dest: text, sql: sql}}}}\n"
                ));
            }
        }
    }
    s.push_str("rules:\n");
    for f in 0..FAMILIES {
        let list = family_tools(f).join(", ");
        let rules = [
            format!("{{id: f{f}-read, match: {{tool: [{list}]}}, verdict: allow}}"),
            format!(
                "{{id: f{f}-secret, match: {{tool: [{list}], labels: [secret]}}, verdict: deny}}"
            ),
            format!(
                "{{id: f{f}-destroy, match: {{tool: [{list}], intents: [destructive]}}, verdict: deny}}"
            ),
            format!(
                "{{id: f{f}-ring, match: {{tool: [{list}], ring: {{max: 1}}}}, verdict: allow}}"
            ),
            format!(
                "{{id: f{f}-admin, match: {{tool: 'svc{f}.*', agent: 'did:key:zAdmin*'}}, verdict: allow}}"
            ),
            format!(
                "{{id: f{f}-pii, match: {{tool: 'svc{f}.op?', labels: [pii]}}, verdict: require_approval}}"
            ),
            format!("{{id: f{f}-glob, match: {{tool: 'svc{f}.op[0-9]'}}, verdict: warn}}"),
            format!(
                "{{id: f{f}-limit, match: {{tool: [{list}]}}, when: 'args.limit > 1000', verdict: deny}}"
            ),
            format!(
                "{{id: f{f}-bulk, match: {{tool: 'svc{f}.*'}}, when: \"args.mode == 'bulk' && args.limit >= 500\", verdict: require_approval}}"
            ),
            format!(
                "{{id: f{f}-egress, match: {{tool: [{list}]}}, when: \"'pii' in labels && args.dest.endsWith('.external')\", verdict: deny}}"
            ),
        ];
        for r in rules {
            s.push_str("  - ");
            s.push_str(&r);
            s.push('\n');
        }
    }
    s
}

/// A SQL batch of about 1 KB: selects, an update and a delete with `WHERE`
/// and an insert (the classifier's own benchmark input).
pub fn sql_batch_1kb() -> String {
    let units = [
        "SELECT u.id, u.name, count(o.id) AS orders FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.created_at > '2024-01-01' GROUP BY u.id, u.name ORDER BY orders DESC LIMIT 50",
        "UPDATE orders SET status = 'shipped', shipped_at = now() WHERE id IN (SELECT order_id FROM shipments WHERE carrier = 'ups')",
        "INSERT INTO audit_log (actor, action, at) VALUES ('agent-7', 'report', now())",
        "DELETE FROM sessions WHERE expires_at < now() - interval '1 day'",
    ];
    let mut s = String::new();
    let mut i = 0;
    while s.len() < 1000 {
        if !s.is_empty() {
            s.push_str(";\n");
        }
        s.push_str(units[i % units.len()]);
        i += 1;
    }
    s
}

/// The same authorization question in Cedar: one policy per warden rule,
/// with `like` for globs and `context` for labels, ring and arguments.
pub fn cedar_equivalent() -> String {
    let mut s = String::new();
    for f in 0..FAMILIES {
        let list: Vec<String> = family_tools(f)
            .iter()
            .map(|t| format!("Action::\"{t}\""))
            .collect();
        let list = list.join(", ");
        let rules = [
            format!("permit(principal, action in [{list}], resource);"),
            format!(
                "forbid(principal, action in [{list}], resource) when {{ context.labels.contains(\"secret\") }};"
            ),
            format!(
                "forbid(principal, action in [{list}], resource) when {{ context.intents.contains(\"destructive\") }};"
            ),
            format!(
                "permit(principal, action in [{list}], resource) when {{ context.ring <= 1 }};"
            ),
            format!(
                "permit(principal, action, resource) when {{ context.tool like \"svc{f}.*\" && context.agent like \"did:key:zAdmin*\" }};"
            ),
            format!(
                "forbid(principal, action, resource) when {{ context.tool like \"svc{f}.op*\" && context.labels.contains(\"pii\") }};"
            ),
            format!(
                "permit(principal, action, resource) when {{ context.tool like \"svc{f}.op*\" }};"
            ),
            format!(
                "forbid(principal, action in [{list}], resource) when {{ context.args.limit > 1000 }};"
            ),
            format!(
                "forbid(principal, action, resource) when {{ context.tool like \"svc{f}.*\" && context.args.mode == \"bulk\" && context.args.limit >= 500 }};"
            ),
            format!(
                "forbid(principal, action in [{list}], resource) when {{ context.labels.contains(\"pii\") && context.args.dest like \"*.external\" }};"
            ),
        ];
        for r in rules {
            s.push_str(&r);
            s.push('\n');
        }
    }
    s
}

/// `n` Cedar permit policies, each on one tool (the peer figure in DESIGN.md).
pub fn cedar_one_tool_each(n: usize) -> String {
    (0..n)
        .map(|i| {
            let (f, k) = (i / TOOLS_PER_FAMILY, i % TOOLS_PER_FAMILY);
            format!("permit(principal, action == Action::\"svc{f}.op{k}\", resource);\n")
        })
        .collect()
}
