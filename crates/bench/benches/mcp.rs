//! Added latency of the MCP proxy: `tools/call` on a trivial echo tool
//! server over stdio, directly and through `warden mcp wrap`, in one run.
//!
//! `cargo bench -p warden-bench --bench mcp` (options after `--`:
//! `--calls N` per round, `--rounds N`). The two paths alternate round by
//! round, so a slow moment of the machine hits both. Calls are sequential
//! (one in flight), each timed from writing the request line to reading
//! the response line.
//!
//! The echo server is this binary re-executed with `WARDEN_BENCH_MCP=echo`
//! (a few microseconds per call). The proxy is this binary re-executed with
//! `WARDEN_BENCH_MCP=wrap`, running what `warden mcp wrap` runs: the
//! SQLite store (fsync before every verdict), the runtime, the gate from
//! a policy file, `Governor`, `Session` and the stdio transport, with the
//! echo server as its child. Each call through it is decided at
//! `pre_tool_call` and at `post_tool_call`, each durable before it takes
//! effect, and gets an outcome record (committed with the second decision).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use warden_store::Store;

const MODE_ENV: &str = "WARDEN_BENCH_MCP";
const DATA_ENV: &str = "WARDEN_BENCH_MCP_DATA";

const POLICY: &str = "version: warden/v1
name: mcp-bench
default: deny
rules:
  - id: echo
    match: {tool: echo}
    verdict: allow
  - id: results
    on: [post_tool_call]
    verdict: allow
";

fn main() {
    match std::env::var(MODE_ENV).as_deref() {
        Ok("echo") => return echo_server(),
        Ok("wrap") => return wrap(),
        _ => {}
    }
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("mcp: bench");
        return;
    }
    let opt = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let calls = opt("--calls", 5_000);
    let rounds = opt("--rounds", 5);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
    // The same proxy with its data directory in memory (tmpfs): what the
    // proxy itself adds, without the disk's sync.
    let shm = tempfile::tempdir_in("/dev/shm").ok();
    if let Some(shm) = &shm {
        std::fs::write(shm.path().join("policy.yaml"), POLICY).unwrap();
    }
    let data = dir.path().to_str().unwrap().to_string();
    let mut peers = vec![
        ("direct", Peer::start(&[(MODE_ENV, "echo")]), Vec::new()),
        (
            "through warden mcp wrap",
            Peer::start(&[(MODE_ENV, "wrap"), (DATA_ENV, data.as_str())]),
            Vec::new(),
        ),
    ];
    if let Some(shm) = &shm {
        let data = shm.path().to_str().unwrap().to_string();
        peers.push((
            "  same, data directory on tmpfs",
            Peer::start(&[(MODE_ENV, "wrap"), (DATA_ENV, data.as_str())]),
            Vec::new(),
        ));
    }
    for (_, peer, _) in &mut peers {
        peer.handshake();
        peer.measure(calls / 10); // warm-up
    }
    // The floor of the proxy's durability on this disk: two sequential
    // durable appends (a decision before and one after each call) to a
    // store beside the proxy's, measured in the same rounds.
    let floor = warden_store::SqliteStore::open(
        dir.path().join("floor"),
        warden_store::StoreConfig::new("bench.example/floor"),
    )
    .expect("open the floor store");
    let mut floor_samples = Vec::new();
    for _ in 0..rounds {
        for (_, peer, samples) in &mut peers {
            samples.extend(peer.measure(calls));
        }
        floor_samples.extend(two_appends(&floor, calls));
    }
    floor.close().expect("close the floor store");
    let summaries: Vec<(&str, Summary)> = peers
        .into_iter()
        .map(|(name, peer, samples)| {
            peer.stop();
            (name, Summary::of(samples))
        })
        .collect();

    println!(
        "MCP tools/call on an echo tool over stdio: {rounds} rounds x {calls} calls per path, alternating"
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9}   added: {:>7} {:>7}",
        "path", "p50", "p90", "p99", "max", "p50", "p99"
    );
    let direct = &summaries[0].1;
    for (name, s) in &summaries {
        println!(
            "{name:<34} {:>7.1}µs {:>7.1}µs {:>7.1}µs {:>7.1}µs   {:>5.1}µs {:>5.1}µs",
            s.p50,
            s.p90,
            s.p99,
            s.max,
            s.p50 - direct.p50,
            s.p99 - direct.p99
        );
    }
    let f = Summary::of(floor_samples);
    println!(
        "{:<34} {:>7.1}µs {:>7.1}µs {:>7.1}µs {:>7.1}µs   (the proxy's disk floor, not a path)",
        "two durable appends, same disk", f.p50, f.p90, f.p99, f.max
    );
    let log = warden_store::SqliteStore::open_read_only(dir.path().join("data"))
        .and_then(|s| s.log_size())
        .unwrap_or(0);
    println!(
        "audit log after the run: {log} entries (a decision before and after each call, and its outcome)"
    );
}

/// `calls` times two sequential durable appends; their latencies in µs.
fn two_appends(store: &warden_store::SqliteStore, calls: usize) -> Vec<f64> {
    let event = |i: usize| {
        warden_audit::Record::Event(warden_audit::EventRecord {
            time_unix_nanos: 1,
            actor: "bench".into(),
            action: "bench.floor".into(),
            subject: format!("call {i}"),
            details: "{}".into(),
        })
    };
    (0..calls)
        .map(|i| {
            let started = Instant::now();
            store.append(event(i)).expect("append");
            store.append(event(i)).expect("append");
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// Latencies in microseconds.
struct Summary {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Summary {
    fn of(mut samples: Vec<f64>) -> Summary {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Summary {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// An MCP server over stdio, as a client drives it.
struct Peer {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    next_id: u64,
    line: String,
}

impl Peer {
    fn start(env: &[(&str, &str)]) -> Peer {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the bench peer");
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Peer {
            child,
            input,
            output,
            next_id: 0,
            line: String::new(),
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let msg = json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        self.send(&msg);
        self.line.clear();
        self.output
            .read_line(&mut self.line)
            .expect("read a response");
        let v: Value = serde_json::from_str(&self.line).unwrap_or_else(|e| {
            panic!(
                "the peer answered {method} with a line that is not JSON ({e}): {:?}",
                self.line
            )
        });
        assert_eq!(v["id"], json!(self.next_id), "answer to {method}: {v}");
        v
    }

    fn send(&mut self, msg: &Value) {
        let mut line = msg.to_string();
        line.push('\n');
        self.input.write_all(line.as_bytes()).unwrap();
        self.input.flush().unwrap();
    }

    fn handshake(&mut self) {
        let init = self.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}),
        );
        assert!(init["result"]["serverInfo"].is_object(), "{init}");
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        let tools = self.request("tools/list", json!({}));
        assert_eq!(tools["result"]["tools"][0]["name"], "echo", "{tools}");
    }

    /// `calls` sequential calls; their latencies in µs.
    fn measure(&mut self, calls: usize) -> Vec<f64> {
        (0..calls)
            .map(|i| {
                let text = format!("hello {i}");
                let started = Instant::now();
                let v = self.request(
                    "tools/call",
                    json!({"name": "echo", "arguments": {"text": text}}),
                );
                let took = started.elapsed().as_secs_f64() * 1e6;
                assert_eq!(v["result"]["content"][0]["text"], json!(text), "{v}");
                took
            })
            .collect()
    }

    fn stop(mut self) {
        drop(self.input);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the bench peer exited with {status}");
    }
}

/// A trivial MCP server: one tool, `echo`, that returns its `text`.
fn echo_server() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let Some(id) = msg.get("id").cloned() else {
            continue; // a notification
        };
        let result = match msg["method"].as_str() {
            Some("initialize") => json!({
                "protocolVersion": msg["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "echo", "version": "1"}
            }),
            Some("tools/list") => json!({"tools": [{
                "name": "echo",
                "description": "Returns its text.",
                "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
            }]}),
            Some("tools/call") => json!({
                "content": [{"type": "text", "text": msg["params"]["arguments"]["text"]}]
            }),
            _ => {
                let e = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}});
                writeln!(out, "{e}").unwrap();
                out.flush().unwrap();
                continue;
            }
        };
        writeln!(
            out,
            "{}",
            json!({"jsonrpc": "2.0", "id": id, "result": result})
        )
        .unwrap();
        out.flush().unwrap();
    }
}

/// What `warden mcp wrap --policy P --data-dir D -- <echo server>` runs.
fn wrap() {
    let dir = std::env::var(DATA_ENV).expect("the data directory");
    let dir = Path::new(&dir);
    let store = Arc::new(
        warden_store::SqliteStore::open(
            dir.join("data"),
            warden_store::StoreConfig::new("bench.example/mcp"),
        )
        .expect("open the store"),
    );
    let audit: Arc<dyn warden_store::Store> = store.clone();
    let runtime = Arc::new(
        warden_gate::Runtime::open(audit.clone(), warden_gate::RuntimeConfig::default()).unwrap(),
    );
    let source = warden_server::reload::PolicySource::new(Some(dir.join("policy.yaml")), vec![]);
    let gate = Arc::new(
        source
            .build(runtime, audit.clone(), None)
            .expect("the bench policy"),
    );
    let governor = Arc::new(warden_mcp::proxy::Governor::new(gate, "echo", None, audit));
    let session = Arc::new(warden_mcp::proxy::Session::new(governor, "bench"));
    let command = vec![
        std::env::current_exe()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
    ];
    // SAFETY: set before the runtime starts, while this is the only thread.
    unsafe { std::env::set_var(MODE_ENV, "echo") };
    // As `warden mcp wrap` runs it: one thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (input, output) = warden_mcp::proxy::stdio::process_stdio();
        warden_mcp::proxy::stdio::run(session, &command, input, output).await
    })
    .expect("the proxy runs");
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    store.close().expect("close the store");
}
