//! Load generator for `warden serve`: decisions per second over HTTP with
//! the durable audit log, p50 / p99 latency at 64 keep-alive connections,
//! and the server's resident memory with a 1,000-rule policy.
//!
//! Two loads per policy: as fast as the connections go (each sends its next
//! request when the answer arrives: the server's capacity, and the latency
//! at saturation), and a fixed offered rate (`--rate`, default 20,000/s
//! over all connections: the latency at the target load, counted from when
//! each request was due, so a stall is not hidden by the requests it held up).
//! After the offered rate, the same rate of bare durable appends to a store
//! on the same disk (no HTTP, no policy): the floor under the server's
//! latency, which every answer waits on, measured in the same run. First it
//! prints how often this machine stops running a thread when both cores are
//! busy (the stalls a virtual machine's host adds), and how this disk's
//! bare syncs go, with no database (the stalls under any durable store).
//!
//! `cargo bench -p warden-bench --bench serve` (options after `--`:
//! `--seconds N`, `--connections N`, `--rate N`, `--peer ADDR`, `--trace DIR`,
//! `--floor-only`;
//! `--help` lists them, and a bad one stops it with exit code 2). The server runs in a child process
//! (this binary, re-executed with `WARDEN_BENCH_SERVE=<dir>`) exactly as
//! `warden serve` runs it: the same `warden_server::Server`, a multi-thread
//! runtime, SQLite with `synchronous=FULL` in a temporary directory. The
//! client is one thread of raw HTTP/1.1 over keep-alive connections, so the
//! figure is the server's, not a client library's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden_audit::{Arguments, DecisionRecord, Record};
use warden_store::{SqliteStore, Store, StoreConfig};

/// The server child stands in for `warden serve`, so it has the `warden`
/// binary's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERVE_ENV: &str = "WARDEN_BENCH_SERVE";

const USAGE: &str = "usage: cargo bench -p warden-bench --bench serve -- [--seconds N] [--connections N] [--rate N] [--peer ADDR] [--trace DIR] [--floor-only]
  --seconds N      measured seconds per load, after 2 s of warm-up (10)
  --connections N  keep-alive connections (64)
  --rate N         the offered rate, requests per second over all connections (20000)
  --peer ADDR      first run the same loads against another HTTP/1.1 server at ADDR
  --trace DIR      write every offered-rate request's timing to DIR
  --floor-only     run only the durable appends alone (the disk's floor), 3 times";

/// The command line.
#[derive(Debug)]
struct Options {
    seconds: u64,
    connections: usize,
    rate: u64,
    trace_dir: Option<PathBuf>,
    peer: Option<String>,
    floor_only: bool,
}

impl Options {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            seconds: 10,
            connections: 64,
            rate: 20_000,
            trace_dir: None,
            peer: None,
            floor_only: false,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            let number = |name: &str, v: String| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name} takes a whole number above 0, not {v:?}"))
            };
            match arg.as_str() {
                // cargo bench passes this to every bench target.
                "--bench" => {}
                "--seconds" => options.seconds = number("--seconds", value("--seconds")?)?,
                "--connections" => {
                    let n = number("--connections", value("--connections")?)?;
                    options.connections = usize::try_from(n).map_err(|e| e.to_string())?;
                }
                "--rate" => options.rate = number("--rate", value("--rate")?)?,
                "--trace" => options.trace_dir = Some(PathBuf::from(value("--trace")?)),
                "--peer" => options.peer = Some(value("--peer")?),
                "--floor-only" => options.floor_only = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if options.floor_only && options.peer.is_some() {
            return Err("--floor-only runs no HTTP load, so it takes no --peer".into());
        }
        Ok(options)
    }
}

/// Whether a TCP connection to `addr` opens within 2 s.
fn reachable(addr: &str) -> std::io::Result<()> {
    use std::net::ToSocketAddrs;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in addr.to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn main() {
    if let Ok(dir) = std::env::var(SERVE_ENV) {
        serve(Path::new(&dir));
        return;
    }
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    let Options {
        seconds,
        connections,
        rate,
        trace_dir,
        peer,
        floor_only,
    } = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("serve bench: {message}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Some(peer) = &peer
        && let Err(e) = reachable(peer)
    {
        eprintln!(
            "serve bench: cannot reach the peer at {peer}: {e} (start it first, e.g. nginx -c \"$PWD/crates/bench/peer/nginx.conf\" -g 'daemon off;')"
        );
        std::process::exit(2);
    }

    println!(
        "warden serve load test: {connections} connections, {seconds} s measured after 2 s warm-up"
    );
    println!("{}", host_stalls(Duration::from_secs(2)));
    let probe_dir = tempfile::tempdir().unwrap();
    println!(
        "{}",
        disk_syncs(probe_dir.path(), Duration::from_secs(seconds))
    );
    println!(
        "{:<44} {:>10} {:>9} {:>9}  CPU: both cores busy (of 2), server per decision",
        "policy / actions", "decisions/s", "p50", "p99"
    );
    if floor_only {
        for run in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            let trace = trace_dir
                .as_ref()
                .map(|d| d.join(format!("floor-{run}.txt")));
            durable_appends_alone(
                &format!("durable appends alone, {rate}/s"),
                dir.path(),
                connections,
                rate,
                seconds,
                trace,
            );
        }
        return;
    }
    // `--peer ADDR`: first the same two loads against another HTTP/1.1
    // server at ADDR (say nginx answering every POST with a fixed decision,
    // no audit): what HTTP alone costs on this machine with this client.
    if let Some(peer) = &peer {
        let actions = Arc::new(mixed_actions());
        let cpu = CpuMeter::start(None);
        let closed = load(peer, &actions, connections, Duration::from_secs(seconds));
        row(
            &format!("peer at {peer}"),
            &closed,
            cpu.stop(closed.per_sec),
        );
        let cpu = CpuMeter::start(None);
        let paced = load_http_at_rate(
            peer,
            &actions,
            connections,
            rate,
            seconds,
            trace_dir.as_ref().map(|d| d.join("0-peer.txt")),
        );
        row(
            &format!("  same, offered at {rate}/s"),
            &paced,
            cpu.stop(paced.per_sec),
        );
    }
    for (row_index, (label, policy, actions)) in [
        (
            "bundled example policy, mixed actions",
            Policy::Bundled,
            mixed_actions(),
        ),
        (
            "1,000 rules (catalog), one rule family",
            Policy::Thousand,
            thousand_actions(),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let trace = |what: &str| {
            trace_dir
                .as_ref()
                .map(|d| d.join(format!("{}-{what}.txt", row_index + 1)))
        };
        let actions = Arc::new(actions);
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start(dir.path(), policy);
        let rss_idle = rss_kib(server.child.id());
        let pid = server.child.id();
        let cpu = CpuMeter::start(Some(pid));
        let result = load(
            &server.addr,
            &actions,
            connections,
            Duration::from_secs(seconds),
        );
        row(label, &result, cpu.stop(result.per_sec));
        let rss_loaded = rss_kib(pid);
        let appends_before = append_buckets(&server.addr);
        let cpu = CpuMeter::start(Some(pid));
        let paced = load_http_at_rate(
            &server.addr,
            &actions,
            connections,
            rate,
            seconds,
            trace("server"),
        );
        row(
            &format!("  same, offered at {rate}/s"),
            &paced,
            cpu.stop(paced.per_sec),
        );
        println!(
            "{:<44} {}",
            "",
            append_waits(&appends_before, &append_buckets(&server.addr))
        );
        let floor = durable_appends_alone(
            &format!("  durable appends alone, same disk, {rate}/s"),
            dir.path(),
            connections,
            rate,
            seconds,
            trace("floor"),
        );
        println!(
            "{:<44} idle after start {:.1} MB, after the run {:.1} MB resident; {} errors, {} answered rate_limited",
            "",
            rss_idle as f64 / 1024.0,
            rss_loaded as f64 / 1024.0,
            result.errors.failed + paced.errors.failed + floor.errors.failed,
            result.errors.rate_limited + paced.errors.rate_limited,
        );
        server.stop();
    }
}

/// [`load_at_rate`] over `connections` keep-alive HTTP connections to `addr`.
fn load_http_at_rate(
    addr: &str,
    actions: &Arc<Actions>,
    connections: usize,
    rate: u64,
    seconds: u64,
    trace: Option<PathBuf>,
) -> LoadResult {
    load_at_rate(
        async || {
            let mut callers = Vec::with_capacity(connections);
            for _ in 0..connections {
                callers.push(HttpCaller::connect(addr, actions).await);
            }
            callers
        },
        rate,
        Duration::from_secs(seconds),
        trace,
    )
}

fn row(label: &str, r: &LoadResult, cpu: CpuUse) {
    println!(
        "{label:<44} {:>10.0} {:>7.2}ms {:>7.2}ms  {cpu}",
        r.per_sec,
        r.p50_us as f64 / 1000.0,
        r.p99_us as f64 / 1000.0
    );
}

/// The CPU a load used, warm-up included (it runs at the same load): how
/// many of the machine's cores were busy on average (from `/proc/stat`:
/// everything, the client and the kernel's work included), and the time
/// one process (the server) spent per decision, user and system (from
/// `/proc/PID/stat`). This is what a stall of the host has to be made up
/// from: the busier the cores, the longer the backlog after a stall takes
/// to drain.
struct CpuMeter {
    machine: Option<(u64, u64, usize)>,
    process: Option<(u32, u64)>,
    start: Instant,
}

struct CpuUse {
    busy_cores: Option<f64>,
    process_us_per_call: Option<f64>,
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.busy_cores {
            Some(c) => write!(f, "{c:.2}")?,
            None => write!(f, "?")?,
        }
        if let Some(us) = self.process_us_per_call {
            write!(f, ", {us:.1} µs")?;
        }
        Ok(())
    }
}

/// Clock ticks per second in `/proc/stat` and `/proc/PID/stat` (USER_HZ,
/// 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

impl CpuMeter {
    fn start(process: Option<u32>) -> CpuMeter {
        CpuMeter {
            machine: machine_ticks(),
            process: process.and_then(|pid| Some((pid, process_ticks(pid)?))),
            start: Instant::now(),
        }
    }

    /// `calls_per_sec`: the load's rate, to turn the process's CPU time
    /// into time per call.
    fn stop(self, calls_per_sec: f64) -> CpuUse {
        let elapsed = self.start.elapsed().as_secs_f64();
        let busy_cores = match (self.machine, machine_ticks()) {
            (Some((busy0, all0, _)), Some((busy1, all1, cores))) if all1 > all0 => {
                Some(cores as f64 * (busy1 - busy0) as f64 / (all1 - all0) as f64)
            }
            _ => None,
        };
        let process_us_per_call = self.process.and_then(|(pid, before)| {
            let used = (process_ticks(pid)?.checked_sub(before)?) as f64 / TICKS_PER_SEC;
            (calls_per_sec > 0.0).then(|| used * 1e6 / (calls_per_sec * elapsed))
        });
        CpuUse {
            busy_cores,
            process_us_per_call,
        }
    }
}

/// (busy, all) clock ticks of every CPU together, and how many CPUs that
/// is, from `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64, usize)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpus = stat
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: idle and iowait
    // are the cores doing nothing.
    let all: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((all.checked_sub(idle)?, all, cpus))
}

/// User and system clock ticks of process `pid`, all its threads.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may contain spaces: count after it.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[derive(Clone, Copy)]
enum Policy {
    Bundled,
    Thousand,
}

struct Server {
    child: Child,
    addr: String,
    /// The child's stdin: open while this process lives (see [`serve`]).
    alive: Option<std::process::ChildStdin>,
}

impl Server {
    fn start(dir: &Path, policy: Policy) -> Server {
        let policy_path: Option<PathBuf> = match policy {
            Policy::Bundled => None,
            Policy::Thousand => {
                let p = dir.join("policy.yaml");
                std::fs::write(&p, warden_bench::warden_policy_with_catalog()).unwrap();
                Some(p)
            }
        };
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env(SERVE_ENV, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(p) = &policy_path {
            cmd.env("WARDEN_BENCH_POLICY", p);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let addr = line.trim().to_string();
        assert!(!addr.is_empty(), "the server did not start");
        // Idle after start, as a deployment would be before traffic.
        std::thread::sleep(Duration::from_millis(1000));
        // Held until the child has exited: `Child::wait` would close it
        // first, and the child takes a closed stdin for its parent's death.
        let alive = child.stdin.take();
        Server { child, addr, alive }
    }

    /// SIGTERM: the graceful shutdown.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.alive = None;
    }
}

/// The child: `warden serve` on a loopback port, printing its address.
fn serve(dir: &Path) {
    // The parent holds this child's stdin open for as long as it lives. If
    // it dies first (killed, or its output piped into `head`), the read
    // ends and so does the child, rather than serving on as an orphan that
    // takes CPU from every later measurement on the machine.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(256)
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = warden_server::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.join("data"),
            policy: std::env::var_os("WARDEN_BENCH_POLICY").map(PathBuf::from),
            watch: false,
            ..warden_server::Config::default()
        };
        let server = warden_server::Server::bind(config).await.unwrap();
        println!("{}", server.local_addr());
        server.run(warden_server::shutdown_signal()).await.unwrap();
    });
}

/// The paced load's floor on this disk, in the same run: the same offered
/// rate of decision records appended straight to a store (opened as the
/// server opens its own) in `dir`, with nothing else: no HTTP, no policy.
/// Every answer the server gives waits for such an append; when this row's
/// p99 is high, the disk's syncs are, and the server's cannot be lower.
/// Prints its row as `label`, with this process's CPU: the append's writer
/// and its callers together.
fn durable_appends_alone(
    label: &str,
    dir: &Path,
    connections: usize,
    rate: u64,
    seconds: u64,
    trace: Option<PathBuf>,
) -> LoadResult {
    let store = Arc::new(
        SqliteStore::open(
            dir.join("floor"),
            StoreConfig {
                origin: Some("bench.example/floor".into()),
                // The server's commit gathering too.
                ..warden_server::Config::default().store
            },
        )
        .expect("open the floor store"),
    );
    let cpu = CpuMeter::start(Some(std::process::id()));
    let result = load_at_rate(
        async || {
            (0..connections)
                .map(|_| StoreCaller(store.clone()))
                .collect()
        },
        rate,
        Duration::from_secs(seconds),
        trace,
    );
    row(label, &result, cpu.stop(result.per_sec));
    store.close().expect("close the floor store");
    result
}

/// How much this machine stops running us when both cores are busy, as the
/// loads keep them: two threads read the clock in a loop for `length`, and
/// every gap between two readings longer than half a millisecond is time
/// the thread did not run (an interrupt, the hypervisor, another process).
/// A server answer that falls in such a gap waits it out.
fn host_stalls(length: Duration) -> String {
    const GAP: Duration = Duration::from_micros(500);
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut gaps = Vec::new();
                let mut last = start;
                while last - start < length {
                    let now = Instant::now();
                    if now - last > GAP {
                        gaps.push(now - last);
                    }
                    last = now;
                }
                gaps
            })
        })
        .collect();
    let gaps: Vec<Duration> = spinners
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let over = |ms: u64| {
        gaps.iter()
            .filter(|g| **g > Duration::from_millis(ms))
            .count()
    };
    let lost: Duration = gaps.iter().sum();
    format!(
        "this host with both cores busy ({} s, 2 threads): {} stalls over 1 ms, {} over 2 ms, {} over 5 ms, longest {:.1} ms; {:.1} % of the time lost",
        length.as_secs(),
        over(1),
        over(2),
        over(5),
        gaps.iter().max().copied().unwrap_or_default().as_secs_f64() * 1e3,
        lost.as_secs_f64() * 100.0 / (2.0 * length.as_secs_f64()),
    )
}

/// How this disk syncs with nothing else on it: 8 KiB overwritten in a
/// file already written and synced (so no metadata changes), then
/// `fdatasync`, 1,000 times a second for `length` (`--seconds`). No SQLite, no warden:
/// the time spent in syncs over 5 ms is time every durable answer waits
/// out, whatever stores it.
fn disk_syncs(dir: &Path, length: Duration) -> String {
    use std::os::unix::fs::FileExt;
    const BLOCK: usize = 8 * 1024;
    const FILE: u64 = 16 * 1024 * 1024;
    let path = dir.join("disk-probe");
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create the disk probe's file");
    file.write_all_at(&vec![0u8; FILE as usize], 0)
        .and_then(|()| file.sync_all())
        .expect("write the disk probe's file");
    let block = [0x5au8; BLOCK];
    let period = Duration::from_millis(1);
    let start = Instant::now();
    // Each sync's time, µs.
    let mut syncs: Vec<u64> = Vec::with_capacity(length.as_millis() as usize);
    for k in 0u32.. {
        let due = start + period * k;
        if due - start >= length {
            break;
        }
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let began = Instant::now();
        let at = (u64::from(k) * BLOCK as u64) % FILE;
        file.write_all_at(&block, at)
            .and_then(|()| file.sync_data())
            .expect("the disk probe's sync");
        syncs.push(began.elapsed().as_micros() as u64);
    }
    // Over the time it took: syncs that fall behind the pace stretch it.
    let took = start.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    let slow_us: u64 = syncs.iter().filter(|us| **us > 5_000).sum();
    let longest_us = syncs.iter().max().copied().unwrap_or_default();
    let r = summarize(syncs, took, Errors::default());
    format!(
        "this disk alone ({} s, 8 KiB + fdatasync 1,000/s): p50 {:.2} ms, p99 {:.2} ms, longest {:.1} ms; {:.2} % of the time in syncs over 5 ms",
        length.as_secs(),
        r.p50_us as f64 / 1e3,
        r.p99_us as f64 / 1e3,
        longest_us as f64 / 1e3,
        // µs over s: 1e-6 × 100 %.
        slow_us as f64 / 1e4 / took.as_secs_f64(),
    )
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// What the connections send: request `i` of the run is `body(i)`.
/// Connection `c` of `n` sends requests `c`, `c + n`, `c + 2n`...: every
/// request number once, so an agent in the pool gets one call per tool for
/// each pass over it.
struct Actions {
    templates: Vec<String>,
    /// Distinct agents filled in for `{agent}`; 0 for none.
    agents: usize,
    /// Agents per session (`{session}` is the agent's number divided by it).
    agents_per_session: usize,
}

impl Actions {
    fn body(&self, i: usize) -> std::borrow::Cow<'_, str> {
        let t = &self.templates[i % self.templates.len()];
        if self.agents == 0 {
            return t.as_str().into();
        }
        let agent = (i / self.templates.len()) % self.agents;
        let session = agent / self.agents_per_session.max(1);
        t.replace("{agent}", &agent.to_string())
            .replace("{session}", &session.to_string())
            .into()
    }
}

/// The bundled policy limits each agent (600 calls a minute; mail 20 an
/// hour and 50 a session), so the four actions come from a pool of 200,000
/// agents, 25 to a session: a pass over the pool is 800,000 requests, with
/// one mail per agent and 100 calls (25 mails) per session. With one agent
/// the limits would answer nearly every request `rate_limited` before the
/// policy is evaluated; with a session per agent each session would be new
/// to the server (a store read) after four calls.
fn mixed_actions() -> Actions {
    let templates = [
        r#"{"point":"pre_tool_call","tool":"db.query","agent":"bench-{agent}","session":"s-{session}","args":{"sql":"SELECT name, email FROM customers WHERE id = 42"}}"#,
        r#"{"point":"pre_tool_call","tool":"db.execute","agent":"bench-{agent}","session":"s-{session}","args":{"sql":"DROP TABLE customers"}}"#,
        r#"{"point":"pre_tool_call","tool":"ticket.create","agent":"bench-{agent}","session":"s-{session}","args":{"title":"refund","body":"customer asks for a refund"}}"#,
        r#"{"point":"pre_tool_call","tool":"email.send","agent":"bench-{agent}","session":"s-{session}","args":{"to":"ops@example.com","subject":"daily","body":"all good"}}"#,
    ];
    Actions {
        templates: templates.iter().map(|s| s.to_string()).collect(),
        agents: 200_000,
        agents_per_session: 25,
    }
}

fn thousand_actions() -> Actions {
    Actions {
        templates: (0..10)
            .map(|k| {
                format!(
                    r#"{{"point":"pre_tool_call","tool":"svc7.op{k}","args":{{"mode":"read","dest":"internal","sql":"SELECT 1"}}}}"#
                )
            })
            .collect(),
        agents: 0,
        agents_per_session: 1,
    }
}

struct LoadResult {
    per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    errors: Errors,
}

fn load(addr: &str, actions: &Arc<Actions>, connections: usize, measure: Duration) -> LoadResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let warmup = Duration::from_secs(2);
        let start = Instant::now();
        let measure_from = start + warmup;
        let end = measure_from + measure;
        let mut tasks = Vec::new();
        for c in 0..connections {
            let addr = addr.to_string();
            let actions = actions.clone();
            tasks.push(tokio::spawn(async move {
                connection(&addr, &actions, c, connections, measure_from, end).await
            }));
        }
        let mut samples: Vec<u64> = Vec::new();
        let mut errors = Errors::default();
        for t in tasks {
            let (s, e) = t.await.unwrap();
            samples.extend(s);
            errors.add(e);
        }
        summarize(samples, measure, errors)
    })
}

/// One connection of a paced load: sends request number `i` and waits for
/// its answer (`None` when the connection is gone).
trait Caller {
    async fn call(&mut self, i: usize) -> Option<Answer>;
}

/// A keep-alive HTTP/1.1 connection to the server, posting decisions.
struct HttpCaller {
    stream: TcpStream,
    buf: Vec<u8>,
    actions: Arc<Actions>,
}

impl HttpCaller {
    async fn connect(addr: &str, actions: &Arc<Actions>) -> HttpCaller {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        HttpCaller {
            stream,
            buf: vec![0u8; 64 * 1024],
            actions: actions.clone(),
        }
    }
}

impl Caller for HttpCaller {
    async fn call(&mut self, i: usize) -> Option<Answer> {
        let body = self.actions.body(i);
        let request = format!(
            "POST /v1/decide HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await.ok()?;
        read_response(&mut self.stream, &mut self.buf).await
    }
}

/// The floor under the server's latency: each call is only the durable
/// append of a decision record (like the server's, as the server's store
/// is opened) to a store on the same disk, awaited as the server awaits it.
struct StoreCaller(Arc<SqliteStore>);

impl Caller for StoreCaller {
    async fn call(&mut self, i: usize) -> Option<Answer> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.0.append_then(
            floor_record(i),
            Vec::new(),
            Box::new(move |appended| {
                let _ = sender.send(appended.is_ok());
            }),
        );
        let stored = receiver.await.ok()?;
        Some(Answer {
            status: if stored { 200 } else { 500 },
            rate_limited: false,
        })
    }
}

/// A decision record of the size the bundled policy's mixed actions write.
fn floor_record(i: usize) -> Record {
    Record::Decision(DecisionRecord {
        time_unix_nanos: 1_800_000_000_000_000_000 + i as u64,
        agent: format!("bench-{}", i % 200_000),
        session: format!("s-{}", i % 8_000),
        point: "pre_tool_call".into(),
        tool: "db.query".into(),
        arguments: Arguments::Json(
            r#"{"sql":"SELECT name, email FROM customers WHERE id = 42"}"#.into(),
        ),
        intents: vec!["read_only".into()],
        verdict: "allow".into(),
        rule: Some("allow-reads".into()),
        reason: "rule:allow-reads".into(),
        message: "Read-only queries are the agent's job.".into(),
        action_hash: format!("{i:064x}"),
        policy_name: "database-agent".into(),
        policy_hash: "ab".repeat(32),
        sponsor: None,
        caller: None,
    })
}

/// The server's own `warden_audit_append_duration_seconds` histogram now,
/// as (upper bound in seconds, cumulative count) per bucket: how long each
/// decision waited for its durable append, inside the server.
fn append_buckets(addr: &str) -> Vec<(f64, u64)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect for /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        .expect("ask for /metrics");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read /metrics");
    const BUCKET: &str = "warden_audit_append_duration_seconds_bucket{le=\"";
    let buckets: Vec<(f64, u64)> = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(BUCKET)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    assert!(!buckets.is_empty(), "no append histogram in /metrics");
    buckets
}

/// What the appends between two scrapes of [`append_buckets`] waited: the
/// bucket holding the 99th percentile, and the share over each bucket bound
/// from 2 to 50 ms.
fn append_waits(before: &[(f64, u64)], after: &[(f64, u64)]) -> String {
    let diff: Vec<(f64, u64)> = after
        .iter()
        .zip(before)
        .map(|(&(le, a), &(_, b))| (le, a.saturating_sub(b)))
        .collect();
    let total = diff.last().map_or(0, |&(_, n)| n).max(1);
    let p99 = diff
        .iter()
        .find(|&&(_, n)| n as f64 >= 0.99 * total as f64)
        .map_or(f64::INFINITY, |&(le, _)| le * 1e3);
    let over: Vec<String> = diff
        .iter()
        .filter(|&&(le, _)| (0.002..0.05).contains(&le))
        .map(|&(le, within)| {
            format!(
                "{:.1} ms {:.2} %",
                le * 1e3,
                100.0 * (total - within) as f64 / total as f64
            )
        })
        .collect();
    format!(
        "of which waiting for the durable append (the server's histogram, warm-up included): p99 <= {p99:.1} ms; over {}",
        over.join(", ")
    )
}

/// The load offered at a fixed `rate` (calls/s over all `callers`), each
/// caller (connection) on its own schedule. A request that could not be
/// sent on time because the previous answer came late counts from when it
/// was due (no coordinated omission); one the client's timer sent a little
/// late counts from when it was sent.
fn load_at_rate<C: Caller + 'static>(
    callers: impl AsyncFnOnce() -> Vec<C>,
    rate: u64,
    measure: Duration,
    trace: Option<PathBuf>,
) -> LoadResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let callers = callers().await;
        let connections = callers.len();
        let warmup = Duration::from_secs(2);
        let start = Instant::now();
        let measure_from = start + warmup;
        let end = measure_from + measure;
        let period = Duration::from_secs_f64(connections as f64 / rate.max(1) as f64);
        let mut tasks = Vec::new();
        let tracing = trace.is_some();
        for (c, mut caller) in callers.into_iter().enumerate() {
            // Spread the connections' schedules over one period.
            let first = start + period.mul_f64(c as f64 / connections as f64);
            tasks.push(tokio::task::spawn_local(async move {
                let (mut samples, mut errors) = (Vec::with_capacity(16 * 1024), Errors::default());
                // (due, latency) per sample, µs, when tracing.
                let mut dues = Vec::new();
                let mut last_answer = start;
                let mut answered_in_window = 0u64;
                for k in 0u32.. {
                    let due = first + period * k;
                    if due >= end {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    let sent = Instant::now();
                    let answer = caller.call(c + k as usize * connections).await;
                    let answered = Instant::now();
                    if (measure_from..end).contains(&answered) {
                        answered_in_window += 1;
                    }
                    if !errors.count(answer) {
                        break;
                    }
                    let from = if last_answer > due { due } else { sent };
                    last_answer = answered;
                    if due >= measure_from {
                        samples.push((answered - from).as_micros() as u64);
                        if tracing {
                            dues.push((due - start).as_micros() as u64);
                        }
                    }
                }
                (samples, errors, answered_in_window, dues)
            }));
        }
        let mut samples: Vec<u64> = Vec::new();
        let (mut errors, mut answered) = (Errors::default(), 0);
        let mut traced: Vec<(u64, u64, usize)> = Vec::new();
        for (c, t) in tasks.into_iter().enumerate() {
            let (s, e, a, dues) = t.await.unwrap();
            traced.extend(
                dues.into_iter()
                    .zip(s.iter().copied())
                    .map(|(d, l)| (d, l, c)),
            );
            samples.extend(s);
            errors.add(e);
            answered += a;
        }
        if let Some(path) = trace {
            traced.sort_unstable();
            // The wall-clock start, to line the trace up with other
            // timelines (the kernel's steal time, the server's logs).
            let started_unix_us = (std::time::SystemTime::now() - start.elapsed())
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            let mut text = format!(
                "# started_unix_us {started_unix_us}; then: due_us latency_us connection\n"
            );
            text.extend(
                traced
                    .iter()
                    .map(|(due, latency, c)| format!("{due} {latency} {c}\n")),
            );
            std::fs::write(&path, text)
                .unwrap_or_else(|e| panic!("cannot write the trace {}: {e}", path.display()));
        }
        // Throughput is what was answered inside the window, not what was due.
        LoadResult {
            per_sec: answered as f64 / measure.as_secs_f64(),
            ..summarize(samples, measure, errors)
        }
    })
}

/// Throughput and percentiles of latency `samples` (µs) over `measure`.
/// Answers that were not a decision (errors, and the connections lost), and
/// decisions the policy's limits answered (`rate_limited`), which skip the
/// rest of the policy and so must not make up the figures.
#[derive(Default, Clone, Copy)]
struct Errors {
    failed: u64,
    rate_limited: u64,
}

impl Errors {
    /// Counts an answer; false when the connection is gone.
    fn count(&mut self, answer: Option<Answer>) -> bool {
        match answer {
            None => {
                self.failed += 1;
                false
            }
            Some(a) => {
                self.failed += u64::from(a.status != 200);
                self.rate_limited += u64::from(a.rate_limited);
                true
            }
        }
    }

    fn add(&mut self, other: Errors) {
        self.failed += other.failed;
        self.rate_limited += other.rate_limited;
    }
}

fn summarize(mut samples: Vec<u64>, measure: Duration, errors: Errors) -> LoadResult {
    samples.sort_unstable();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    LoadResult {
        per_sec: samples.len() as f64 / measure.as_secs_f64(),
        p50_us: at(0.50),
        p99_us: at(0.99),
        errors,
    }
}

/// One keep-alive connection sending decisions back to back; latencies
/// (µs) of the requests that started inside the measured window.
async fn connection(
    addr: &str,
    actions: &Arc<Actions>,
    c: usize,
    connections: usize,
    measure_from: Instant,
    end: Instant,
) -> (Vec<u64>, Errors) {
    let mut caller = HttpCaller::connect(addr, actions).await;
    let mut samples = Vec::with_capacity(64 * 1024);
    let mut errors = Errors::default();
    let mut i = c;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let answer = caller.call(i).await;
        i += connections;
        if !errors.count(answer) {
            break;
        }
        if now >= measure_from {
            samples.push(now.elapsed().as_micros() as u64);
        }
    }
    (samples, errors)
}

/// One answer of the server.
#[derive(Clone, Copy)]
struct Answer {
    status: u16,
    /// The decision's reason is `rate_limited`.
    rate_limited: bool,
}

/// Reads one HTTP/1.1 response with a content-length.
async fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> Option<Answer> {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await.ok()?;
        if n == 0 {
            return None;
        }
        filled += n;
        let head = &buf[..filled];
        let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let headers = std::str::from_utf8(&head[..end]).ok()?;
        let status: u16 = headers.get(9..12)?.parse().ok()?;
        let length: usize = headers
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let total = end + 4 + length;
        while filled < total {
            let n = stream.read(&mut buf[filled..]).await.ok()?;
            if n == 0 {
                return None;
            }
            filled += n;
        }
        let body = &buf[end + 4..total];
        let needle = br#""reason":"rate_limited""#;
        let rate_limited = body.windows(needle.len()).any(|w| w == needle);
        return Some(Answer {
            status,
            rate_limited,
        });
    }
}
