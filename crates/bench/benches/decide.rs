//! `cargo bench -p warden-bench --bench decide`
//!
//! Decision latency of warden's gate with a generated 1,000-rule policy,
//! against cedar-policy answering the same question in the same run.
//! Prints p50 / p99 per call and single-thread throughput; medians over
//! several rounds, because these machines are shared and noisy.

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};
use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;
use std::time::{Duration, SystemTime};
use warden_bench::*;
use warden_gate::{Action, Gate, IdentityContext};

const CALLS: usize = 200_000;
const ROUNDS: usize = 5;

/// Runs `f` over `CALLS` calls per round; returns the median round's stats.
fn measure(mut f: impl FnMut(usize)) -> Stats {
    for i in 0..CALLS / 10 {
        f(i);
    }
    let mut rounds: Vec<Stats> = (0..ROUNDS)
        .map(|_| {
            let mut samples = Vec::with_capacity(CALLS);
            let start = Instant::now();
            for i in 0..CALLS {
                let t = Instant::now();
                f(i);
                samples.push(t.elapsed().as_nanos() as u64);
            }
            stats(samples, start.elapsed().as_nanos() as u64)
        })
        .collect();
    rounds.sort_by_key(|s| s.p50);
    rounds.swap_remove(ROUNDS / 2)
}

fn show(name: &str, s: &Stats) {
    println!(
        "{name:<44} p50 {:>9.2} µs   p99 {:>9.2} µs   {:>10.0} calls/s",
        s.p50 as f64 / 1e3,
        s.p99 as f64 / 1e3,
        s.per_sec
    );
}

fn cedar(policies: &str, acts: &[Action], calls: usize) -> Stats {
    let set = PolicySet::from_str(policies).expect("cedar policies parse");
    let authorizer = Authorizer::new();
    let entities = Entities::empty();
    let principal = EntityUid::from_str(r#"Agent::"a""#).expect("uid");
    let resource = EntityUid::from_str(r#"Tool::"t""#).expect("uid");
    let mut samples = Vec::with_capacity(calls);
    let run = |i: usize| {
        let a = &acts[i % acts.len()];
        let tool = a.tool.as_deref().unwrap_or_default();
        // Request and context are built per call, as a caller would.
        let action = EntityUid::from_str(&format!("Action::\"{tool}\"")).expect("uid");
        let ctx = serde_json::json!({
            "tool": tool,
            "agent": a.agent.clone().unwrap_or_default(),
            "labels": a.context.get("labels").cloned().unwrap_or_default(),
            "intents": a.context.get("intents").cloned().unwrap_or(serde_json::json!([])),
            "ring": a.context.get("ring").cloned().unwrap_or(serde_json::json!(3)),
            "args": a.args.clone().unwrap_or_default(),
        });
        let context = Context::from_json_value(ctx, None).expect("cedar context");
        let req = Request::new(principal.clone(), action, resource.clone(), context, None)
            .expect("request");
        black_box(authorizer.is_authorized(&req, &set, &entities));
    };
    for i in 0..calls / 10 {
        run(i);
    }
    let mut rounds: Vec<Stats> = (0..ROUNDS)
        .map(|_| {
            samples.clear();
            let start = Instant::now();
            for i in 0..calls {
                let t = Instant::now();
                run(i);
                samples.push(t.elapsed().as_nanos() as u64);
            }
            stats(samples.clone(), start.elapsed().as_nanos() as u64)
        })
        .collect();
    rounds.sort_by_key(|s| s.p50);
    rounds.swap_remove(ROUNDS / 2)
}

/// The catalog policy with `identity: required`, a SQLite store holding one
/// active ring-2 agent, and the bench actions carrying that agent's token
/// (granting every bench tool) in place of their `agent`. The token is
/// verified once; every decision after that is a cache hit plus the store
/// read of the agent record.
fn identity_gate(acts: &[Action]) -> (Gate, Vec<Action>, tempfile::TempDir) {
    use rand::SeedableRng;
    use warden_identity::{Agent, Grant, IdentityKey, Ring, Sponsor, Status, ToolPattern};
    use warden_store::Store as _;

    let text =
        warden_policy_with_catalog().replacen("default: ", "identity: required\ndefault: ", 1);
    let policy = warden_policy::parse("bench.yaml", &text)
        .and_then(warden_policy::compile)
        .expect("the identity variant compiles");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        warden_store::SqliteStore::open(dir.path(), warden_store::StoreConfig::new("bench/warden"))
            .expect("store opens"),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let org = IdentityKey::generate(&mut rng);
    let key = IdentityKey::generate(&mut rng);
    let now = SystemTime::now();
    let sponsor = Sponsor::parse("bench@example.com").expect("sponsor");
    let agent = Agent::restore(
        key.did().clone(),
        "bench",
        sponsor.clone(),
        0,
        Status::Active,
        // Decayed until now: the bench measures a cached token, not a
        // decay demotion (which the gate would store on the first call).
        warden_identity::trust::TrustState::restore(
            700,
            Ring::R2,
            false,
            now.duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs(),
        ),
    )
    .expect("agent");
    store
        .append_with(
            warden_audit::Record::Event(warden_audit::EventRecord {
                time_unix_nanos: 0,
                actor: "bench".into(),
                action: "agent.status".into(),
                subject: key.did().to_string(),
                details: "{}".into(),
            }),
            warden_store::StateChange::PutAgent {
                did: key.did().to_string(),
                record: serde_json::to_string(&agent).expect("agent JSON"),
            },
        )
        .expect("agent stored");
    let token = warden_identity::issue(
        &org,
        &Grant {
            agent: key.did().clone(),
            sponsor,
            tools: vec![ToolPattern::parse("svc*").expect("pattern")],
            ring_ceiling: Ring::R0,
            ttl: Duration::from_secs(3600),
        },
        now,
        &mut rng,
    )
    .expect("token");
    let context = IdentityContext::new(&policy, store, [org.did().clone()]).expect("identity");
    let gate = Gate::new(policy).with_identity(Arc::new(context));
    let with_token = acts
        .iter()
        .map(|a| {
            let mut a = a.clone();
            a.agent = None;
            a.context
                .insert("token".into(), token.as_str().to_string().into());
            a
        })
        .collect();
    (gate, with_token, dir)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("decide: bench");
        return;
    }
    let text = warden_policy();
    let mut compile_ms: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            let p = warden_policy::parse("bench.yaml", &text).and_then(warden_policy::compile);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(p.expect("bench policy compiles").rules().len(), 1000);
            ms
        })
        .collect();
    compile_ms.sort_by(f64::total_cmp);
    let policy = warden_policy::parse("bench.yaml", &text)
        .and_then(warden_policy::compile)
        .expect("compiles");
    let (native, conds) = policy.native_conditions();
    let gate = Gate::new(policy);
    let catalog_gate = Gate::new(
        warden_policy::parse("bench.yaml", &warden_policy_with_catalog())
            .and_then(warden_policy::compile)
            .expect("the catalog variant compiles"),
    );

    println!("warden decide benchmark — {CALLS} calls x {ROUNDS} rounds, median round shown");
    println!(
        "policy: 1,000 rules, {conds} with CEL conditions ({native} compiled natively); 10 rules can match each tool"
    );
    println!(
        "compile 1,000-rule policy (load + compile):   median {:.1} ms",
        compile_ms[ROUNDS / 2]
    );

    let acts = bench_actions(None);
    let mut verdicts = std::collections::BTreeMap::new();
    for a in &acts {
        let d = catalog_gate.decide(a);
        let plain = gate.decide(a);
        assert_eq!(
            (d.verdict, &d.rule),
            (plain.verdict, &plain.rule),
            "the catalog changes only what is read"
        );
        *verdicts.entry(d.verdict.to_string()).or_insert(0) += 1;
    }
    println!("verdict mix over the 1,000 bench actions: {verdicts:?}");
    // The target row: the catalog declares the string arguments `text`, so
    // the classifier has nothing to read (as for an action without strings).
    let w = measure(|i| {
        black_box(catalog_gate.decide(&acts[i % acts.len()]));
    });
    show("warden decide, 1,000 rules, no string to read", &w);
    let w_auto = measure(|i| {
        black_box(gate.decide(&acts[i % acts.len()]));
    });
    show("  same, 2 short strings read as `auto`", &w_auto);

    if std::env::var_os("WARDEN_BENCH_PARTS").is_some() {
        let h = measure(|i| {
            black_box(acts[i % acts.len()].hash());
        });
        show("  part: action hash", &h);
        let p = gate.policy().expect("policy");
        let ctxs: Vec<_> = acts
            .iter()
            .map(|a| {
                let labels: Vec<String> = a
                    .context
                    .get("labels")
                    .and_then(|l| l.as_array())
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                labels
            })
            .collect();
        let empty = serde_json::Value::Null;
        let e = measure(|i| {
            let a = &acts[i % acts.len()];
            let input = warden_policy::Input {
                point: a.point,
                tool: a.tool.as_deref(),
                agent: a.agent.as_deref(),
                session: a.session.as_deref(),
                args: a.args.as_ref().unwrap_or(&empty),
                context: &a.context,
                labels: &ctxs[i % acts.len()],
                intents: &[],
                ring: 2,
            };
            black_box(p.evaluate(&input));
        });
        show("  part: policy evaluate", &e);
    }

    let batch = sql_batch_1kb();
    let acts_1k = bench_actions(Some(&batch));
    let w1k = measure(|i| {
        black_box(catalog_gate.decide(&acts_1k[i % acts_1k.len()]));
    });
    show(
        &format!("warden decide, + {} B SQL argument (`sql`)", batch.len()),
        &w1k,
    );
    let w1k_auto = measure(|i| {
        black_box(gate.decide(&acts_1k[i % acts_1k.len()]));
    });
    show("  same, every string read as `auto`", &w1k_auto);

    let (id_gate, id_acts, _store_dir) = identity_gate(&acts);
    for a in id_acts.iter().take(50) {
        let (with, without) = (id_gate.decide(a), catalog_gate.decide(a));
        assert!(with.sponsor.is_some(), "the bench token verifies: {with:?}");
        assert_eq!(
            (with.verdict, &with.rule),
            (without.verdict, &without.rule),
            "the token grants every bench tool: {with:?}"
        );
    }
    let wid = measure(|i| {
        black_box(id_gate.decide(&id_acts[i % id_acts.len()]));
    });
    show("identity: cached token (+ agent record read)", &wid);

    let c_eq = cedar(&cedar_equivalent(), &acts, CALLS / 10);
    show("cedar, equivalent 1,000 policies", &c_eq);
    let c1000 = cedar(&cedar_one_tool_each(1000), &acts, CALLS / 10);
    show("cedar, 1,000 permits one tool each", &c1000);
    let c10 = cedar(&cedar_one_tool_each(10), &acts, CALLS);
    show("cedar, 10 permits", &c10);

    println!(
        "ratios (p50): warden@1000 / cedar-equivalent@1000 = {:.4}",
        w.p50 as f64 / c_eq.p50 as f64
    );
    println!(
        "              warden@1000 / cedar@1000 one-tool      = {:.4}",
        w.p50 as f64 / c1000.p50 as f64
    );
    println!(
        "              warden@1000 / cedar@10                 = {:.4}",
        w.p50 as f64 / c10.p50 as f64
    );
}
