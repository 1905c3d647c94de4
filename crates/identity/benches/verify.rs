//! Identity costs on the decision path: token verification on first sight
//! (every signature, canonical-block and rights check), authorize on a cached
//! token (the per-call cost), and signed-request verification.
//!
//! Besides criterion's report, prints p50 / p99 from a separate timed loop:
//! `cargo bench -p warden-identity --bench verify`.
//! Targets: cached authorize ≤ 5 µs p99, cold ≤ 1 ms p99, signed request ≤ 100 µs p99.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use warden_identity::{
    Attenuation, Grant, IdentityKey, RequestVerifier, Ring, SignedRequest, Sponsor, Token,
    TokenVerifier, ToolPattern, issue,
};

const RUNS: usize = 20_000;
const COLD_RUNS: usize = 2_000;
const HASH: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn pats(list: &[&str]) -> Vec<ToolPattern> {
    list.iter()
        .map(|p| ToolPattern::parse(p).expect("valid pattern"))
        .collect()
}

struct Setup {
    verifier: TokenVerifier,
    agent_token: Token,
    delegated: Token,
    agent: IdentityKey,
}

/// An agent token with 8 tool patterns, and a chain two delegations deep.
fn setup() -> Setup {
    let mut rng = StdRng::seed_from_u64(42);
    let org = IdentityKey::generate(&mut rng);
    let agent = IdentityKey::generate(&mut rng);
    let child = IdentityKey::generate(&mut rng);
    let grandchild = IdentityKey::generate(&mut rng);
    let grant = Grant {
        agent: agent.did().clone(),
        sponsor: Sponsor::parse("alice@example.com").expect("valid sponsor"),
        tools: pats(&[
            "read_*",
            "list_*",
            "db.query",
            "db.explain",
            "search.*",
            "fs.stat",
            "http.get",
            "mail.draft",
        ]),
        ring_ceiling: Ring::R2,
        ttl: Duration::from_secs(3600),
    };
    let agent_token = issue(&org, &grant, now(), &mut rng).expect("issue");
    let verifier = TokenVerifier::new([org.did().clone()]).expect("verifier");
    let step = |token: &Token,
                holder: &IdentityKey,
                to: &IdentityKey,
                tools: &[&str],
                rng: &mut StdRng| {
        verifier
            .verify_uncached(token.as_str(), now())
            .expect("verifies")
            .attenuate(
                holder,
                &Attenuation {
                    delegate: to.did().clone(),
                    tools: pats(tools),
                    ring_ceiling: Some(Ring::R3),
                    ttl: Some(Duration::from_secs(1800)),
                },
                now(),
                rng,
            )
            .expect("attenuate")
    };
    let child_token = step(
        &agent_token,
        &agent,
        &child,
        &["read_*", "db.query"],
        &mut rng,
    );
    let delegated = step(
        &child_token,
        &child,
        &grandchild,
        &["read_file", "db.query"],
        &mut rng,
    );
    Setup {
        verifier,
        agent_token,
        delegated,
        agent,
    }
}

fn requests(key: &IdentityKey, n: usize) -> Vec<SignedRequest> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..n)
        .map(|_| SignedRequest::sign_with_rng(key, HASH, now(), &mut rng).expect("sign"))
        .collect()
}

fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

/// Calls `f` with distinct indices: `runs / 10` warm-up calls, then `runs` timed ones.
fn timed(runs: usize, mut f: impl FnMut(usize)) -> (Duration, Duration) {
    for i in 0..runs / 10 {
        f(i);
    }
    let mut times = Vec::with_capacity(runs);
    for i in runs / 10..runs / 10 + runs {
        let t = Instant::now();
        f(i);
        times.push(t.elapsed());
    }
    percentiles(times)
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("identity");
    group.bench_function("verify_cold_depth0", |b| {
        b.iter(|| {
            s.verifier
                .verify_uncached(black_box(s.agent_token.as_str()), now())
                .expect("ok")
        })
    });
    group.bench_function("verify_cold_depth2", |b| {
        b.iter(|| {
            s.verifier
                .verify_uncached(black_box(s.delegated.as_str()), now())
                .expect("ok")
        })
    });
    s.verifier.verify(s.delegated.as_str(), now()).expect("ok");
    group.bench_function("authorize_cached_depth2", |b| {
        b.iter(|| {
            s.verifier
                .authorize(black_box(s.delegated.as_str()), "db.query", Ring::R3, now())
                .expect("ok")
        })
    });
    group.bench_function("signed_request_verify", |b| {
        b.iter_custom(|iters| {
            let reqs = requests(&s.agent, iters as usize);
            let v = RequestVerifier::new(Duration::from_secs(60), reqs.len() + 1);
            let t = Instant::now();
            for r in &reqs {
                v.verify(black_box(r), HASH, now()).expect("ok");
            }
            t.elapsed()
        })
    });
    group.finish();

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let report = |name: &str, (p50, p99): (Duration, Duration), target_us: f64| {
        println!(
            "{name}: p50 {:.2} µs, p99 {:.2} µs (target p99 ≤ {target_us} µs: {})",
            us(p50),
            us(p99),
            if us(p99) <= target_us {
                "met"
            } else {
                "MISSED"
            }
        );
    };
    println!(
        "token sizes: agent {} bytes, depth-2 chain {} bytes",
        s.agent_token.as_str().len(),
        s.delegated.as_str().len()
    );
    report(
        "verify cold, agent token",
        timed(COLD_RUNS, |_| {
            black_box(
                s.verifier
                    .verify_uncached(s.agent_token.as_str(), now())
                    .expect("ok"),
            );
        }),
        1000.0,
    );
    report(
        "verify cold, depth-2 chain",
        timed(COLD_RUNS, |_| {
            black_box(
                s.verifier
                    .verify_uncached(s.delegated.as_str(), now())
                    .expect("ok"),
            );
        }),
        1000.0,
    );
    report(
        "authorize cached, depth-2 chain",
        timed(RUNS, |_| {
            black_box(
                s.verifier
                    .authorize(s.delegated.as_str(), "db.query", Ring::R3, now())
                    .expect("ok"),
            );
        }),
        5.0,
    );
    let reqs = requests(&s.agent, RUNS + RUNS / 10);
    let v = RequestVerifier::new(Duration::from_secs(60), reqs.len() + 1);
    report(
        "signed request verify",
        timed(RUNS, |i| {
            v.verify(&reqs[i], HASH, now()).expect("ok");
        }),
        100.0,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
