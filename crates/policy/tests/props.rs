//! Properties of evaluation that must hold for any policy and any action.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use warden_policy::{CompiledPolicy, Input, Outcome, Point, Verdict, compile, parse};

const TOOLS: &[&str] = &["db.query", "db.drop", "email.send", "fs.read", "x"];
const PATTERNS: &[&str] = &[
    "db.query",
    "db.*",
    "*",
    "email.send",
    "fs.?ead",
    "{db,fs}.*",
    "nomatch",
];
const CONDITIONS: &[&str] = &[
    "args.n > 3",
    "args.s == 'a'",
    "has(args.n) && args.n < 10",
    "'pii' in labels",
    "tool.startsWith('db.')",
    "size(args) >= 1 || intents.exists(i, i == 'destructive')",
];

#[derive(Debug, Clone)]
struct RuleSpec {
    verdict: Verdict,
    pattern: Option<usize>,
    condition: Option<usize>,
    label: bool,
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        prop::sample::select(vec![
            Verdict::Allow,
            Verdict::Warn,
            Verdict::RequireApproval,
            Verdict::Deny,
        ]),
        prop::option::of(0..PATTERNS.len()),
        prop::option::of(0..CONDITIONS.len()),
        any::<bool>(),
    )
        .prop_map(|(verdict, pattern, condition, label)| RuleSpec {
            verdict,
            pattern,
            condition,
            label,
        })
}

fn policy_text(rules: &[(usize, RuleSpec)], default: &str) -> String {
    let mut s = format!("version: warden/v1\nname: prop\ndefault: {default}\nrules:\n");
    for (id, r) in rules {
        s.push_str(&format!("  - id: r{id}\n    verdict: {}\n", r.verdict));
        if r.pattern.is_some() || r.label {
            s.push_str("    match:\n");
        }
        if let Some(p) = r.pattern {
            s.push_str(&format!("      tool: \"{}\"\n", PATTERNS[p]));
        }
        if r.label {
            s.push_str("      labels: [pii]\n");
        }
        if let Some(c) = r.condition {
            s.push_str(&format!("    when: \"{}\"\n", CONDITIONS[c]));
        }
    }
    s
}

fn compiled(text: &str) -> CompiledPolicy {
    compile(parse("prop.yaml", text).expect("generated policy loads"))
        .expect("generated policy compiles")
}

fn args() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        (0i64..20).prop_map(|n| json!({"n": n})),
        prop::sample::select(vec!["a", "b"]).prop_map(|s| json!({"s": s, "n": 5})),
        Just(json!({"n": "not a number"})),
    ]
}

fn input<'a>(
    tool: &'a str,
    args: &'a Value,
    ctx: &'a Map<String, Value>,
    labels: &'a [String],
) -> Input<'a> {
    Input {
        point: Point::PreToolCall,
        tool: Some(tool),
        agent: None,
        session: None,
        args,
        context: ctx,
        labels,
        intents: &[],
        ring: 3,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The verdict does not depend on rule order; it is the strongest matched verdict.
    #[test]
    fn deny_overrides_for_any_rule_order(
        specs in prop::collection::vec(rule_spec(), 1..12),
        seed in any::<u64>(),
        tool in 0..TOOLS.len(),
        args in args(),
        pii in any::<bool>(),
    ) {
        let numbered: Vec<(usize, RuleSpec)> = specs.into_iter().enumerate().collect();
        let mut shuffled = numbered.clone();
        // A deterministic shuffle from the seed.
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let a = compiled(&policy_text(&numbered, "allow"));
        let b = compiled(&policy_text(&shuffled, "allow"));
        let labels = if pii { vec!["pii".to_string()] } else { vec![] };
        let ctx = Map::new();
        let inp = input(TOOLS[tool], &args, &ctx, &labels);
        let (ea, eb) = (a.evaluate(&inp), b.evaluate(&inp));
        prop_assert_eq!(ea.verdict, eb.verdict);
        prop_assert_eq!(ea.error.is_some(), eb.error.is_some());
        if ea.error.is_none() {
            let strongest = ea.matched.iter().map(|r| r.verdict).max();
            prop_assert_eq!(ea.verdict, strongest.unwrap_or(Verdict::Allow));
            // The rule named is the first (in rule order) with the winning verdict.
            if let Some(rule) = ea.rule {
                let first = ea.matched.iter().find(|r| r.verdict == ea.verdict).unwrap();
                prop_assert_eq!(&rule.id, &first.id);
            }
            let mut ma: Vec<&str> = ea.matched.iter().map(|r| r.id.as_ref()).collect();
            let mut mb: Vec<&str> = eb.matched.iter().map(|r| r.id.as_ref()).collect();
            ma.sort();
            mb.sort();
            prop_assert_eq!(ma, mb);
        } else {
            prop_assert_eq!(ea.verdict, Verdict::Deny);
        }
    }

    /// The default applies exactly when no rule matched, and explain agrees with evaluate.
    #[test]
    fn default_is_used_exactly_when_no_rule_matches(
        specs in prop::collection::vec(rule_spec(), 0..10),
        default_deny in any::<bool>(),
        tool in 0..TOOLS.len(),
        args in args(),
        pii in any::<bool>(),
    ) {
        let numbered: Vec<(usize, RuleSpec)> = specs.into_iter().enumerate().collect();
        let default = if default_deny { "deny" } else { "allow" };
        let p = compiled(&policy_text(&numbered, default));
        let labels = if pii { vec!["pii".to_string()] } else { vec![] };
        let ctx = Map::new();
        let inp = input(TOOLS[tool], &args, &ctx, &labels);
        let e = p.evaluate(&inp);
        if e.error.is_none() {
            prop_assert_eq!(e.rule.is_none(), e.matched.is_empty());
            if e.matched.is_empty() {
                prop_assert_eq!(e.verdict, if default_deny { Verdict::Deny } else { Verdict::Allow });
            }
            // explain walks every rule without the index: the same rules match.
            let x = p.explain(&inp);
            let traced: Vec<&str> = x.traces.iter()
                .filter(|t| matches!(t.outcome, Outcome::Matched))
                .map(|t| t.rule.id.as_ref())
                .collect();
            let matched: Vec<&str> = e.matched.iter().map(|r| r.id.as_ref()).collect();
            prop_assert_eq!(traced, matched);
            // A rule the index did not offer never matches.
            prop_assert!(x.traces.iter().all(|t| t.candidate || !matches!(t.outcome, Outcome::Matched)));
        }
    }
}
