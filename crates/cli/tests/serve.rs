//! `warden serve` as a process: embedded defaults, graceful shutdown, and
//! a SIGKILL that loses no acknowledged decision.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// Every variable `warden serve` reads, cleared so the tests' own
/// environment cannot leak in.
const SERVE_VARS: [&str; 12] = [
    "WARDEN_LISTEN",
    "WARDEN_POLICY",
    "WARDEN_AUTH",
    "WARDEN_MAX_BODY",
    "WARDEN_APPROVAL_TTL",
    "WARDEN_MAX_APPROVALS",
    "WARDEN_APPROVAL_RETENTION",
    "WARDEN_NO_WATCH",
    "WARDEN_LOG_FORMAT",
    "WARDEN_DATA_DIR",
    "WARDEN_AUDIT_KEY",
    "WARDEN_COMMIT_GATHER",
];

struct Served {
    child: Child,
    addr: String,
    /// Every line the server wrote on stderr so far (all of them once it exited).
    logs: Arc<Mutex<Vec<String>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// Sends `signal`, waits for the exit, and returns it with every log line.
    fn stop(&mut self, signal: i32) -> (std::process::ExitStatus, Vec<String>) {
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
        let status = self.child.wait().unwrap();
        if let Some(drain) = self.drain.take() {
            drain.join().unwrap();
        }
        (status, self.logs.lock().unwrap().clone())
    }
}

/// A failing test must not leave its server running.
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `warden` in `cwd`, with none of the `warden serve` variables set.
fn warden_command(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.current_dir(cwd);
    for var in SERVE_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Where a stderr line says the server listens: the text announcement, or
/// the JSON log's "warden is serving" line.
fn listening_at(line: &str) -> Option<String> {
    if let Some(rest) = line.trim().strip_prefix("warden: serving on http://") {
        return Some(rest.to_string());
    }
    let log: Value = serde_json::from_str(line).ok()?;
    (log["fields"]["message"] == "warden is serving")
        .then(|| log["fields"]["listen"].as_str().map(str::to_string))
        .flatten()
}

/// Spawns `cmd` (a `warden serve`) and waits for it to say where it listens.
fn start(mut cmd: Command) -> Served {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let logs: Arc<Mutex<Vec<String>>> = Arc::default();
    let addr = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!(
                "warden serve exited before listening: {:?}",
                logs.lock().unwrap()
            );
        }
        let line = line.trim_end_matches('\n').to_string();
        let addr = listening_at(&line);
        logs.lock().unwrap().push(line);
        if let Some(addr) = addr {
            break addr;
        }
    };
    // Keep draining the logs so the server never blocks on a full pipe.
    let drain = {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { return };
                logs.lock().unwrap().push(line);
            }
        })
    };
    Served {
        child,
        addr,
        logs,
        drain: Some(drain),
    }
}

/// Starts `warden serve` on a free loopback port in `cwd`; waits for it to
/// say where it listens.
fn serve(cwd: &Path, extra: &[&str]) -> Served {
    let mut cmd = warden_command(cwd);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-watch"])
        .args(extra);
    start(cmd)
}

/// One HTTP/1.1 request, with a bearer token if given; the status and the
/// JSON body.
fn http(
    addr: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token.map_or_else(String::new, |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    parse_response(&response)
}

/// The status and JSON body of a whole HTTP/1.1 response.
fn parse_response(response: &str) -> std::io::Result<(u16, Value)> {
    let status: u16 = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let json = response
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    Ok((status, json))
}

/// [`http`] without a token, with an optional JSON body.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    http(addr, None, method, path, body.as_bytes())
}

fn terminate(served: &mut Served) -> std::process::ExitStatus {
    served.stop(libc::SIGTERM).0
}

fn warden(args: &[&str], cwd: &Path) -> std::process::Output {
    warden_command(cwd).args(args).output().unwrap()
}

/// The decisions in the audit log of `cwd/.warden`, as seq → action hash.
fn logged_decisions(cwd: &Path) -> std::collections::HashMap<u64, String> {
    let out = warden(&["audit", "export", "--format", "jsonl"], cwd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "decision")
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["action_hash"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn serve_runs_on_embedded_defaults_and_stops_gracefully() {
    let cwd = tempfile::tempdir().unwrap();
    let mut served = serve(cwd.path(), &[]);
    let drop_table = json!({"point": "pre_tool_call", "tool": "db.execute", "args": {"sql": "DROP TABLE customers"}});
    let (status, d) = request(&served.addr, "POST", "/v1/decide", Some(&drop_table)).unwrap();
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["verdict"], "deny");
    assert_eq!(
        d["policy"]["name"], "database-agent",
        "the bundled policy decides"
    );
    assert_eq!(d["seq"], 0);
    let (status, ready) = request(&served.addr, "GET", "/readyz", None).unwrap();
    assert_eq!(status, 200, "{ready}");
    let status = terminate(&mut served);
    assert!(
        status.success(),
        "SIGTERM ends warden serve cleanly: {status:?}"
    );
    assert!(cwd.path().join(".warden/warden.db").is_file());
    // The final checkpoint covers the decision.
    let out = warden(&["audit", "checkpoint"], cwd.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().nth(1) == Some("1"),
        "checkpoint of size 1: {text}"
    );
}

#[test]
fn a_sigkill_loses_no_acknowledged_decision() {
    let cwd = tempfile::tempdir().unwrap();
    let mut served = serve(cwd.path(), &[]);
    let acknowledged: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let addr = served.addr.clone();
            let acknowledged = acknowledged.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let action = json!({"point": "pre_tool_call", "tool": "db.query", "session": format!("w{w}"), "args": {"sql": format!("SELECT {i} FROM t")}});
                    i += 1;
                    match request(&addr, "POST", "/v1/decide", Some(&action)) {
                        Ok((200, d)) => {
                            let seq = d["seq"].as_u64().expect("an acknowledged decision has a seq");
                            let hash = d["action_hash"].as_str().unwrap().to_string();
                            acknowledged.lock().unwrap().push((seq, hash));
                        }
                        // The server died mid-request: nothing was acknowledged.
                        Ok(_) | Err(_) => return,
                    }
                }
            })
        })
        .collect();
    // Let the writers get going, then kill the server without warning.
    while acknowledged.lock().unwrap().len() < 200 {
        std::thread::sleep(Duration::from_millis(10));
    }
    served.child.kill().unwrap(); // SIGKILL
    served.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 200);

    // The server starts again on the crashed directory, and keeps going.
    let mut served = serve(cwd.path(), &[]);
    let (status, _) = request(
        &served.addr,
        "POST",
        "/v1/decide",
        Some(&json!({"point": "input"})),
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(terminate(&mut served).success());

    let out = warden(&["audit", "verify"], cwd.path());
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let logged = logged_decisions(cwd.path());
    for (seq, hash) in &acknowledged {
        assert_eq!(
            logged.get(seq),
            Some(hash),
            "acknowledged decision {seq} is missing from the log"
        );
    }
}

#[test]
fn serve_refuses_what_it_cannot_do_safely() {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(cwd.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without authentication"), "{err}");
    for (args, needle) in [
        (
            vec!["serve", "--listen", "nowhere"],
            "invalid socket address",
        ),
        (
            vec![
                "serve",
                "--policy",
                "missing.yaml",
                "--listen",
                "127.0.0.1:0",
            ],
            "missing.yaml",
        ),
        (
            vec![
                "serve",
                "--auth",
                "missing-auth.yaml",
                "--listen",
                "127.0.0.1:0",
            ],
            "missing-auth.yaml",
        ),
        (
            vec![
                "serve",
                "--audit-key",
                "no-such-dir/log.key",
                "--listen",
                "127.0.0.1:0",
            ],
            "no-such-dir/log.key",
        ),
        (
            vec!["serve", "--commit-gather", "500", "--listen", "127.0.0.1:0"],
            "--commit-gather must be between 0 and 100",
        ),
        (
            vec!["serve", "--commit-gather=-1", "--listen", "127.0.0.1:0"],
            "--commit-gather must be between 0 and 100",
        ),
        (
            vec!["serve", "--commit-gather", "NaN", "--listen", "127.0.0.1:0"],
            "--commit-gather must be between 0 and 100",
        ),
        (
            vec!["serve", "--max-approvals", "0", "--listen", "127.0.0.1:0"],
            "--max-approvals must be at least 1",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .current_dir(cwd.path())
            .args(&args)
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// A log is signed by the key it was created with: `--audit-key` naming
/// a file that does not hold it stops the start, and makes no new key.
#[test]
fn serve_refuses_an_audit_key_the_log_was_not_created_with() {
    let cwd = tempfile::tempdir().unwrap();
    let mut first = serve(cwd.path(), &[]);
    assert!(terminate(&mut first).success());
    assert!(cwd.path().join(".warden/audit.key").is_file());
    let out = warden_command(cwd.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--audit-key",
            "other.key",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exists but its signing key other.key does not"),
        "{err}"
    );
    assert!(!cwd.path().join("other.key").exists());
}

/// Without `--listen`, `warden serve` listens on 127.0.0.1:7878. Another
/// process may hold that port; then the refusal names the address instead.
#[test]
fn serve_listens_on_127_0_0_1_port_7878_by_default() {
    let cwd = tempfile::tempdir().unwrap();
    let child = warden_command(cwd.path())
        .args(["serve", "--no-watch"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed on the way out if an assertion fails first.
    let mut guard = Served {
        child,
        addr: String::new(),
        logs: Arc::default(),
        drain: None,
    };
    let child = &mut guard.child;
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let listening = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break false;
        }
        seen.push_str(&line);
        if line.starts_with("warden: serving on ") {
            break true;
        }
    };
    if listening {
        assert!(
            seen.ends_with("warden: serving on http://127.0.0.1:7878\n"),
            "{seen}"
        );
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
    }
    stderr.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    if listening {
        assert!(status.success(), "{status:?}: {seen}");
    } else {
        assert_eq!(status.code(), Some(1), "{seen}");
        assert!(seen.contains("cannot listen on 127.0.0.1:7878"), "{seen}");
    }
    assert!(
        !seen.contains('\x1b'),
        "logs to a pipe carry no terminal colours: {seen:?}"
    );
}

const AGENT_TOKEN: &str = "agent-token-0123456789";
const APPROVER_TOKEN: &str = "approver-token-0123456789";

/// A policy, a tokens file and the settings that differ from every default,
/// written into `cwd`; the `(flag, variable, value)` of each setting.
fn settings(cwd: &Path) -> Vec<(&'static str, &'static str, String)> {
    std::fs::write(
        cwd.join("custom.yaml"),
        "version: warden/v1\nname: custom\ndefault: deny\ntools:\n  email.send: {args: {to: text, body: text}}\nrules:\n  - id: reads\n    match: {tool: db.query}\n    verdict: allow\n  - id: mail\n    match: {tool: email.send}\n    verdict: require_approval\n    approvers: [dba@example.com]\n",
    )
    .unwrap();
    std::fs::write(
        cwd.join("auth.yaml"),
        format!("tokens:\n  - {{name: bot, role: agent, token: {AGENT_TOKEN}}}\n  - {{name: dba@example.com, role: approver, token: {APPROVER_TOKEN}}}\n"),
    )
    .unwrap();
    std::fs::create_dir(cwd.join("keys")).unwrap();
    vec![
        ("--listen", "WARDEN_LISTEN", "127.0.0.1:0".into()),
        ("--policy", "WARDEN_POLICY", "custom.yaml".into()),
        ("--auth", "WARDEN_AUTH", "auth.yaml".into()),
        ("--max-body", "WARDEN_MAX_BODY", "2048".into()),
        ("--approval-ttl", "WARDEN_APPROVAL_TTL", "7".into()),
        ("--max-approvals", "WARDEN_MAX_APPROVALS", "1".into()),
        (
            "--approval-retention",
            "WARDEN_APPROVAL_RETENTION",
            "60".into(),
        ),
        ("--commit-gather", "WARDEN_COMMIT_GATHER", "2.5".into()),
        ("--log-format", "WARDEN_LOG_FORMAT", "json".into()),
        ("--data-dir", "WARDEN_DATA_DIR", "state".into()),
        ("--audit-key", "WARDEN_AUDIT_KEY", "keys/log.key".into()),
    ]
}

/// Checks, through the running server and then its logs, that each of
/// [`settings`] (and `--no-watch`) took effect; stops the server.
fn assert_settings_took_effect(cwd: &Path, mut served: Served) {
    let addr = served.addr.clone();
    assert!(
        addr.starts_with("127.0.0.1:") && addr != "127.0.0.1:7878",
        "listen: {addr}"
    );
    let select = json!({"point": "pre_tool_call", "tool": "db.query", "args": {"sql": "SELECT 1"}});
    let decide = |token: Option<&str>, body: &[u8]| http(&addr, token, "POST", "/v1/decide", body);

    // auth: no token, no decision.
    let (status, e) = decide(None, select.to_string().as_bytes()).unwrap();
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (401, Some("unauthenticated")),
        "{e}"
    );
    // policy, data directory.
    let (status, d) = decide(Some(AGENT_TOKEN), select.to_string().as_bytes()).unwrap();
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (d["policy"]["name"].as_str(), d["rule"].as_str()),
        (Some("custom"), Some("reads")),
        "{d}"
    );
    assert!(cwd.join("state/warden.db").is_file());
    assert!(!cwd.join(".warden").exists());
    // audit key: created where it was asked for, owner-only, and not in the data directory.
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(cwd.join("keys/log.key")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
        assert!(!cwd.join("state/audit.key").exists());
    }
    // max body: 2048 bytes are decided, 2049 refused before parsing.
    let padded = |n: usize| {
        let mut body = select.to_string().into_bytes();
        body.resize(n, b' ');
        body
    };
    let (status, d) = decide(Some(AGENT_TOKEN), &padded(2048)).unwrap();
    assert_eq!((status, d["verdict"].as_str()), (200, Some("allow")), "{d}");
    let (status, e) = decide(Some(AGENT_TOKEN), &padded(2049)).unwrap();
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    // approval time-to-live.
    let mail = json!({"point": "pre_tool_call", "tool": "email.send", "args": {"to": "a@example.org", "body": "hi"}});
    let (status, d) = decide(Some(AGENT_TOKEN), mail.to_string().as_bytes()).unwrap();
    assert_eq!(
        (status, d["verdict"].as_str()),
        (200, Some("require_approval")),
        "{d}"
    );
    let id = d["approval"]["id"].as_str().unwrap();
    let (status, a) = http(
        &addr,
        Some(APPROVER_TOKEN),
        "GET",
        &format!("/v1/approvals/{id}"),
        b"",
    )
    .unwrap();
    assert_eq!(status, 200, "{a}");
    let ttl = a["expires_unix_ms"].as_u64().unwrap() - a["created_unix_ms"].as_u64().unwrap();
    assert_eq!(ttl, 7000, "{a}");
    // most approvals: with one pending, another mail gets none.
    let other = json!({"point": "pre_tool_call", "tool": "email.send", "args": {"to": "b@example.org", "body": "hi"}});
    let (status, d) = decide(Some(AGENT_TOKEN), other.to_string().as_bytes()).unwrap();
    assert_eq!(
        (status, d["verdict"].as_str(), d["reason"].as_str()),
        (200, Some("deny"), Some("approval:queue_full")),
        "{d}"
    );

    // log format: every line on stderr is one JSON object, from start to stop.
    let (status, logs) = served.stop(libc::SIGTERM);
    assert!(status.success(), "{status:?}: {logs:?}");
    let logs: Vec<Value> = logs
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    for log in &logs {
        assert!(
            log["timestamp"].is_string() && log["level"].is_string(),
            "{log}"
        );
        assert!(log["fields"]["message"].is_string(), "{log}");
    }
    let messages: Vec<&str> = logs
        .iter()
        .map(|l| l["fields"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.last(), Some(&"stopped"), "{messages:?}");
    let serving = &logs[messages
        .iter()
        .position(|m| *m == "warden is serving")
        .unwrap()];
    assert_eq!(serving["fields"]["listen"], addr.as_str());
    assert_eq!(serving["fields"]["auth"], true, "{serving}");
    assert_eq!(serving["fields"]["policy"], "custom.yaml", "{serving}");
    // approvals: as the runtime holds them (the ttl and limit were seen at
    // work above; retention shows only after hours).
    assert_eq!(
        (
            serving["fields"]["approval_ttl_s"].as_u64(),
            serving["fields"]["max_approvals"].as_u64(),
            serving["fields"]["approval_retention_s"].as_u64()
        ),
        (Some(7), Some(1), Some(60)),
        "{serving}"
    );
    // the store's commit gathering, as the store was opened with it.
    assert_eq!(
        serving["fields"]["commit_gather_ms"].as_f64(),
        Some(2.5),
        "{serving}"
    );
    // no watch: the policy is a file, so only the setting keeps it unwatched.
    assert_eq!(serving["fields"]["watching"], false, "{serving}");
}

#[test]
fn every_serve_setting_takes_effect_from_its_flag() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = warden_command(cwd.path());
    cmd.args(["serve", "--no-watch"]);
    for (flag, _, value) in settings(cwd.path()) {
        cmd.args([flag, &value]);
    }
    assert_settings_took_effect(cwd.path(), start(cmd));
}

#[test]
fn every_serve_setting_takes_effect_from_its_warden_variable() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = warden_command(cwd.path());
    cmd.arg("serve").env("WARDEN_NO_WATCH", "1");
    for (_, var, value) in settings(cwd.path()) {
        // The command starts from an environment without any of them.
        assert!(SERVE_VARS.contains(&var), "{var} is not in SERVE_VARS");
        cmd.env(var, value);
    }
    assert_settings_took_effect(cwd.path(), start(cmd));
}

/// The other side of `--no-watch`: a policy file is watched by default, and
/// the log says so.
#[test]
fn a_policy_file_is_watched_by_default() {
    let cwd = tempfile::tempdir().unwrap();
    settings(cwd.path());
    let mut cmd = warden_command(cwd.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--policy", "custom.yaml"]);
    let mut served = start(cmd);
    // A version that does not compile is refused, counted and logged with
    // the compiler's error; the old one keeps deciding.
    std::fs::write(
        cwd.path().join("custom.yaml"),
        "version: warden/v1\nname: custom\nrules: [\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let policy = loop {
        let (status, policy) = request(&served.addr, "GET", "/v1/policy", None).unwrap();
        assert_eq!(status, 200, "{policy}");
        if policy["reload_errors"].as_u64() >= Some(1) {
            break policy;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the broken policy was not noticed within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(policy["name"], "custom", "{policy}");
    let (status, logs) = served.stop(libc::SIGTERM);
    assert!(status.success(), "{logs:?}");
    let logs: Vec<Value> = logs
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    let serving = logs
        .iter()
        .find(|l| l["fields"]["message"] == "warden is serving")
        .unwrap();
    assert_eq!(serving["fields"]["watching"], true, "{serving}");
    let refused = logs
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("the new policy does not compile"))
        })
        .unwrap_or_else(|| panic!("no reload error logged: {logs:?}"));
    assert_error_names(refused, "custom.yaml");
}

/// `line` (a JSON log line) is at level ERROR, and its error names `file`.
fn assert_error_names(line: &Value, file: &str) {
    assert_eq!(line["level"], "ERROR", "{line}");
    assert!(
        line["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains(file)),
        "{line}"
    );
}

#[test]
fn json_logs_report_a_failed_start_as_json_too() {
    let cwd = tempfile::tempdir().unwrap();
    let out = warden(
        &[
            "serve",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
            "--policy",
            "missing.yaml",
        ],
        cwd.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stderr).unwrap();
    let logs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let last = logs.last().expect("the failure is logged");
    assert_error_names(last, "missing.yaml");
}

/// A decision whose request is still arriving when ctrl-c comes is
/// answered and recorded: the server stops accepting, then finishes it.
#[test]
fn a_request_in_flight_at_ctrl_c_is_answered_and_recorded() {
    let cwd = tempfile::tempdir().unwrap();
    let mut served = serve(cwd.path(), &[]);
    let body = json!({"point": "pre_tool_call", "tool": "db.query", "session": "s", "args": {"sql": "SELECT 1"}}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(&served.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    // "100 Continue" comes when the handler starts reading the body: the
    // request is in flight.
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "{interim:?}");
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );

    unsafe {
        libc::kill(served.child.id() as i32, libc::SIGINT);
    }
    // Shutdown has begun once new connections are refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&served.addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting after ctrl-c"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    stream.write_all(rest.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (status, d) = parse_response(&response).unwrap();
    assert_eq!(
        (status, d["verdict"].as_str()),
        (200, Some("allow")),
        "{response}"
    );
    let seq = d["seq"].as_u64().expect("a recorded decision has a seq");

    let status = served.child.wait().unwrap();
    assert!(
        status.success(),
        "ctrl-c ends warden serve cleanly: {status:?}"
    );
    assert_eq!(
        logged_decisions(cwd.path()).get(&seq).map(String::as_str),
        d["action_hash"].as_str(),
        "the answered decision is in the audit log"
    );
}

/// `warden approvals approve --key` signs the answer for an approver whose
/// token has a key; without the key the server refuses the answer and the
/// command says what to pass.
#[test]
fn warden_approvals_signs_the_answer_with_the_approvers_key() {
    use std::os::unix::fs::PermissionsExt;
    let cwd = tempfile::tempdir().unwrap();
    settings(cwd.path());
    let seed = [17u8; 32];
    let did = warden_identity::IdentityKey::from_seed(&seed)
        .did()
        .to_string();
    let key_file = cwd.path().join("dba.key");
    std::fs::write(&key_file, hex::encode(seed)).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        cwd.path().join("auth.yaml"),
        format!("tokens:\n  - {{name: bot, role: agent, token: {AGENT_TOKEN}}}\n  - {{name: dba@example.com, role: approver, token: {APPROVER_TOKEN}, key: '{did}'}}\n"),
    )
    .unwrap();
    let served = serve(
        cwd.path(),
        &["--policy", "custom.yaml", "--auth", "auth.yaml"],
    );
    let mail = json!({"point": "pre_tool_call", "tool": "email.send", "args": {"to": "a@example.org", "body": "hi"}});
    let decide = || {
        http(
            &served.addr,
            Some(AGENT_TOKEN),
            "POST",
            "/v1/decide",
            mail.to_string().as_bytes(),
        )
        .unwrap()
        .1
    };
    let d = decide();
    assert_eq!(d["verdict"], "require_approval", "{d}");
    let id = d["approval"]["id"].as_str().unwrap();
    let server = format!("http://{}", served.addr);
    let approve = |extra: &[&str]| {
        let mut args = vec![
            "approvals",
            "approve",
            id,
            "--server",
            &server,
            "--token",
            APPROVER_TOKEN,
        ];
        args.extend_from_slice(extra);
        warden(&args, cwd.path())
    };

    let unsigned = approve(&[]);
    let stderr = String::from_utf8_lossy(&unsigned.stderr);
    assert!(!unsigned.status.success(), "{stderr}");
    assert!(
        stderr.contains("403") && stderr.contains(&did) && stderr.contains("--key FILE"),
        "{stderr}"
    );

    let signed = approve(&["--key", "dba.key"]);
    let stdout = String::from_utf8_lossy(&signed.stdout);
    assert!(
        signed.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    assert!(stdout.contains(&format!("signed by {did}")), "{stdout}");
    let said = String::from_utf8_lossy(&signed.stderr);
    assert!(
        said.contains(&format!("signing as {did}: approve {id}: tool email.send,"))
            && said.contains("a@example.org")
            && said.contains("asked by token bot,"),
        "the approver is shown what they sign: {said}"
    );
    // An approval that is no longer pending is not signed for.
    let again = approve(&["--key", "dba.key"]);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{said}");
    assert!(said.contains("not signing"), "{said}");
    assert_eq!(decide()["verdict"], "allow");

    // The log names the token behind each decision, and the key behind the answer.
    let export = |format: &str| {
        let out = warden(&["audit", "export", "--format", format], cwd.path());
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let entries: Vec<Value> = export("jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let callers: Vec<&str> = entries
        .iter()
        .filter(|e| e["kind"] == "decision")
        .map(|e| e["caller"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(callers, ["bot", "bot"], "{entries:?}");
    let answer = entries
        .iter()
        .find(|e| e["action"] == "approval.approved")
        .unwrap();
    assert_eq!(answer["actor"], "dba@example.com");
    let details: Value = serde_json::from_str(answer["details"].as_str().unwrap()).unwrap();
    assert_eq!(details["signed_by"], did.as_str());
    let cef = export("cef");
    let decisions: Vec<&str> = cef.lines().filter(|l| l.contains("|decision:")).collect();
    assert_eq!(decisions.len(), 2, "{cef}");
    assert!(decisions.iter().all(|l| l.contains(" suid=bot")), "{cef}");
}
