//! `warden mcp wrap` between real peers: the official Python SDK client
//! (PyPI `mcp`) and the reference `server-filesystem` (npm), plus small
//! stdio servers written here for a rug pull and a crash.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/policy.yaml");
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py");
/// Longest a test waits for a peer.
const PEER_TIMEOUT: Duration = Duration::from_secs(120);

/// The directory of the npm peers: `WARDEN_PEERS` (scripts/test sets it),
/// else `peers/node_modules/.bin` in the repository. Missing peers fail the
/// test: they are part of what it checks.
fn peers() -> PathBuf {
    let dir = std::env::var_os("WARDEN_PEERS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../peers/node_modules/.bin"),
        PathBuf::from,
    );
    let server = dir.join("mcp-server-filesystem");
    assert!(
        server.exists(),
        "the MCP test peers are missing: no {} (run scripts/test, which installs them with npm, or set WARDEN_PEERS)",
        server.display()
    );
    dir
}

/// PATH with the peers first (their scripts run `node` from there).
fn path_with_peers() -> String {
    let mut path = peers().display().to_string();
    if let Some(p) = std::env::var_os("PATH") {
        path.push(':');
        path.push_str(&p.to_string_lossy());
    }
    path
}

fn python() -> &'static str {
    let ok = Command::new("python3")
        .args(["-c", "import mcp.client.stdio"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with the MCP SDK is missing (pip install 'mcp>=2'; scripts/test installs it)"
    );
    "python3"
}

/// Waits for `cmd` at most [`PEER_TIMEOUT`].
fn output(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > PEER_TIMEOUT {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not finish within {PEER_TIMEOUT:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wrap_args(data: &Path, server: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["mcp", "wrap", "--policy", POLICY, "--data-dir"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(data.display().to_string());
    args.push("--".into());
    args.extend(server.iter().cloned());
    args
}

/// Runs the Python client's `steps` against `warden mcp wrap … -- server`.
fn client(dir: &Path, data: &Path, server: &[String], steps: Value) -> Value {
    let mut command = vec![env!("CARGO_BIN_EXE_warden").to_string()];
    command.extend(wrap_args(data, server));
    run_client(dir, &command, steps)
}

/// Runs the Python client's `steps` against the stdio server `command`.
fn run_client(dir: &Path, command: &[String], steps: Value) -> Value {
    let plan = json!({
        "command": command[0],
        "args": command[1..],
        "steps": steps,
    });
    let plan_file = dir.join("plan.json");
    std::fs::write(&plan_file, plan.to_string()).unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(CLIENT)
        .arg(&plan_file)
        .env("PATH", path_with_peers());
    let out = output(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the client failed:\n{stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the client printed no JSON ({e}); stderr:\n{stderr}"))
}

fn audit(data: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "export", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn verify(data: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tools(result: &Value) -> Vec<&str> {
    result["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("not a listing: {result}"))
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

/// The decision at `point` for `tool` in the log.
fn decision<'a>(log: &'a [Value], point: &str, tool: &str) -> &'a Value {
    log.iter()
        .find(|e| e["kind"] == "decision" && e["point"] == point && e["tool"] == tool)
        .unwrap_or_else(|| panic!("no {point} decision for {tool} in {log:#?}"))
}

fn outcome_of<'a>(log: &'a [Value], decision: &Value) -> Option<&'a Value> {
    log.iter()
        .find(|e| e["kind"] == "outcome" && e["decision_seq"] == decision["seq"])
}

#[test]
fn filesystem_reads_pass_writes_are_refused_and_hidden_tools_are_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("a.txt"), "hello\n").unwrap();
    let data = tmp.path().join("data");
    let server = vec![
        peers().join("mcp-server-filesystem").display().to_string(),
        files.display().to_string(),
    ];
    let dir = files.display().to_string();
    let written = files.join("b.txt");
    let out = client(
        tmp.path(),
        &data,
        &server,
        json!([
            {"op": "list"},
            {"op": "call", "name": "list_directory", "arguments": {"path": dir}},
            {"op": "call", "name": "write_file", "arguments": {"path": written, "content": "x"}},
            {"op": "call", "name": "directory_tree", "arguments": {"path": dir}},
        ]),
    );
    let direct = run_client(
        tmp.path(),
        &server,
        json!([{"op": "call", "name": "no_such_tool", "arguments": {}}]),
    );
    assert_eq!(out["server_info"]["name"], "secure-filesystem-server");
    let r = out["results"].as_array().unwrap();

    let listed = tools(&r[0]);
    assert!(listed.contains(&"list_directory"), "{listed:?}");
    assert!(listed.contains(&"write_file"), "{listed:?}");
    assert!(
        !listed.contains(&"directory_tree"),
        "hidden but listed: {listed:?}"
    );

    assert_eq!(r[1]["is_error"], false, "{}", r[1]);
    assert!(r[1]["text"].as_str().unwrap().contains("a.txt"), "{}", r[1]);

    assert_eq!(r[2]["is_error"], true, "{}", r[2]);
    let refusal = r[2]["text"].as_str().unwrap();
    assert!(
        refusal.contains("this agent may read files but never change them"),
        "{refusal}"
    );
    assert!(!written.exists(), "a denied write_file wrote the file");

    // A hidden tool is unknown exactly as the server itself answers, with
    // no warden in between, for a tool it does not have.
    let unknown = &direct["results"][0];
    assert_eq!(unknown["is_error"], true, "{unknown}");
    assert_eq!(r[3]["is_error"], true, "{}", r[3]);
    assert_eq!(
        r[3]["text"].as_str().unwrap(),
        unknown["text"]
            .as_str()
            .unwrap()
            .replace("no_such_tool", "directory_tree")
    );

    let log = audit(&data);
    let list = decision(&log, "pre_tool_call", "list_directory");
    assert_eq!(list["verdict"], "allow");
    let outcome = outcome_of(&log, list).expect("the allowed call has an outcome");
    assert_eq!(outcome["outcome"], "succeeded");
    assert!(outcome["result_hash"].is_string(), "{outcome}");
    assert_eq!(
        decision(&log, "post_tool_call", "list_directory")["verdict"],
        "allow"
    );
    let write = decision(&log, "pre_tool_call", "write_file");
    assert_eq!(write["verdict"], "deny");
    assert_eq!(write["rule"], "no-writes");
    assert!(outcome_of(&log, write).is_none(), "a refused call ran?");
    assert!(
        log.iter()
            .any(|e| e["kind"] == "event" && e["action"] == "mcp.tool.pinned"),
        "tools are pinned on first sight"
    );
    verify(&data);
}

/// A stdio MCP server in Python: `echo` (its description changes after the
/// first listing), `crash` (exits without answering) and `slow` (answers
/// after `seconds`). Notifications it gets are appended to `notes.log`
/// beside it.
const TEST_SERVER: &str = r#"
import json, os, sys, time

listings = 0

def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()

for line in sys.stdin:
    if not line.strip():
        continue
    msg = json.loads(line)
    mid = msg.get("id")
    method = msg.get("method")
    if method is not None and mid is None:
        with open(os.path.join(os.path.dirname(__file__), "notes.log"), "a") as notes:
            notes.write(json.dumps(msg) + "\n")
    if method is None or mid is None:
        continue
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {"listChanged": True}},
            "serverInfo": {"name": "test-server", "version": "1.0.0"}}})
    elif method == "tools/list":
        listings += 1
        desc = "Echoes its input." if listings == 1 else "Echoes its input, in capitals."
        schema = {"type": "object", "properties": {"text": {"type": "string"}}}
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [
            {"name": "echo", "description": desc, "inputSchema": schema},
            {"name": "crash", "description": "Exits without answering.", "inputSchema": {"type": "object"}},
            {"name": "slow", "description": "Answers after a while.", "inputSchema": {"type": "object"}}]}})
    elif method == "tools/call":
        name = msg["params"]["name"]
        if name == "crash":
            os._exit(3)
        if name == "slow":
            time.sleep(msg["params"]["arguments"]["seconds"])
        text = msg["params"].get("arguments", {}).get("text", "")
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "Method not found"}})
"#;

fn test_server(dir: &Path) -> Vec<String> {
    let script = dir.join("server.py");
    std::fs::write(&script, TEST_SERVER).unwrap();
    vec!["python3".into(), script.display().to_string()]
}

#[test]
fn a_changed_tool_definition_blocks_the_tool_until_approved() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = test_server(tmp.path());
    let out = client(
        tmp.path(),
        &data,
        &server,
        json!([
            {"op": "list"},
            {"op": "call", "name": "echo", "arguments": {"text": "hi"}},
            {"op": "list"},
            {"op": "call", "name": "echo", "arguments": {"text": "hi"}},
        ]),
    );
    let r = out["results"].as_array().unwrap();
    assert!(tools(&r[0]).contains(&"echo"), "{}", r[0]);
    assert_eq!(r[1], json!({"is_error": false, "text": "hi"}));
    assert!(
        !tools(&r[2]).contains(&"echo"),
        "a changed tool is listed: {}",
        r[2]
    );
    assert!(tools(&r[2]).contains(&"crash"), "{}", r[2]);
    assert_eq!(r[3]["is_error"], true, "{}", r[3]);
    let text = r[3]["text"].as_str().unwrap();
    assert!(text.contains("changed"), "{text}");
    // The launcher is python3, so the server is named after its script.
    assert!(
        text.contains("warden mcp approve-tool server.py echo"),
        "{text}"
    );
    let log = audit(&data);
    let changed: Vec<&Value> = log
        .iter()
        .filter(|e| e["kind"] == "event" && e["action"] == "mcp.tool.changed")
        .collect();
    assert_eq!(changed.len(), 1, "{log:#?}");
    // The refused call never reached the gate or the server.
    let calls = log
        .iter()
        .filter(|e| e["kind"] == "decision" && e["point"] == "pre_tool_call" && e["tool"] == "echo")
        .count();
    assert_eq!(calls, 1);
    verify(&data);
}

/// Reads lines from warden's stdout until the response with `id`.
fn response(lines: &mut impl Iterator<Item = std::io::Result<String>>, id: u64) -> Value {
    for line in lines {
        let msg: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if msg["id"] == id {
            return msg;
        }
    }
    panic!("warden closed its output before answering request {id}");
}

/// `warden mcp wrap` with `args`, driven line by line, past the
/// handshake (`initialize`, `notifications/initialized`, `tools/list`).
struct Wrapped {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Wrapped {
    fn start(args: &[String]) -> Wrapped {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut w = Wrapped {
            child,
            stdin,
            lines,
        };
        w.send(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
        );
        assert_eq!(w.response(1)["result"]["serverInfo"]["name"], "test-server");
        w.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        w.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
        assert!(w.response(2)["result"]["tools"].is_array());
        w
    }

    fn send(&mut self, msg: Value) {
        writeln!(self.stdin, "{msg}").unwrap();
    }

    fn next(&mut self) -> Value {
        let line = self
            .lines
            .next()
            .expect("warden closed its output")
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }

    fn response(&mut self, id: u64) -> Value {
        response(&mut self.lines, id)
    }

    /// Waits for warden to exit (after closing its input, if `close`).
    fn exit(mut self, close: bool) -> std::process::ExitStatus {
        if close {
            drop(self.stdin);
        }
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(started.elapsed() < PEER_TIMEOUT, "warden did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn an_upstream_crash_answers_the_pending_call_and_records_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = test_server(tmp.path());
    let mut w = Wrapped::start(&wrap_args(&data, &server));
    w.send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "crash", "arguments": {}}}));
    let answer = w.response(3);
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(message.contains("exited"), "{message}");
    let status = w.exit(false);
    assert!(
        !status.success(),
        "warden exited 0 after its server crashed"
    );
    let log = audit(&data);
    let crash = decision(&log, "pre_tool_call", "crash");
    assert_eq!(crash["verdict"], "allow");
    let outcome = outcome_of(&log, crash).expect("the crashed call has an outcome");
    assert_eq!(outcome["outcome"], "unknown");
    verify(&data);
}

#[test]
fn a_call_that_times_out_or_is_cancelled_is_answered_cancelled_and_unknown_and_its_late_answer_dropped()
 {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = test_server(tmp.path());
    let mut args = wrap_args(&data, &server);
    let at = args.iter().position(|a| a == "--").unwrap();
    args.splice(at..at, ["--call-timeout".to_string(), "1".to_string()]);
    let mut w = Wrapped::start(&args);

    // Timed out: the client hears it after the limit, not the answer.
    let started = Instant::now();
    w.send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "slow", "arguments": {"seconds": 1.5}}}));
    let answer = w.response(3);
    let waited = started.elapsed();
    assert_eq!(answer["error"]["code"], -32001, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("did not answer within 1 s"), "{message}");
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_millis(1450),
        "answered after {waited:?}"
    );
    // Cancelled by the client once forwarded: passed on, and no answer is
    // expected. (Cancelled while still being decided, it is not forwarded.)
    w.send(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "slow", "arguments": {"seconds": 0.2}}}));
    std::thread::sleep(Duration::from_millis(300));
    w.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 4, "reason": "the user pressed stop"}}),
    );
    // The server answers 3 and 4 late (3 at 1.5 s, 4 at 1.7 s), then this,
    // well within its limit; only this gets through.
    w.send(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "after"}}}));
    let mut seen = Vec::new();
    let echoed = loop {
        let msg = w.next();
        if msg["id"] == 5 {
            break msg;
        }
        seen.push(msg);
    };
    assert_eq!(echoed["result"]["content"][0]["text"], "after", "{echoed}");
    assert!(seen.is_empty(), "late answers reached the client: {seen:?}");
    w.exit(true);

    // The server was told that warden gave up on 3; the client's own
    // cancellation of 4 reached it unchanged.
    let notes = std::fs::read_to_string(tmp.path().join("notes.log")).unwrap();
    let cancelled: Vec<Value> = notes
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|n| n["method"] == "notifications/cancelled")
        .map(|n| n["params"]["requestId"].clone())
        .collect();
    assert_eq!(cancelled, [json!(3), json!(4)], "{notes}");
    let log = audit(&data);
    let slow: Vec<&Value> = log
        .iter()
        .filter(|e| e["kind"] == "decision" && e["tool"] == "slow")
        .collect();
    assert_eq!(
        slow.len(),
        2,
        "only the two pre_tool_call decisions: {slow:#?}"
    );
    let outcomes: Vec<(&Value, &Value)> = slow
        .iter()
        .map(|d| {
            let o = outcome_of(&log, d).expect("a call given up on has an outcome");
            (&o["outcome"], &o["error"])
        })
        .collect();
    assert_eq!(outcomes[0].0, "unknown");
    assert!(outcomes[0].1.as_str().unwrap().contains("did not answer"));
    assert_eq!(outcomes[1].0, "unknown");
    assert_eq!(outcomes[1].1, "the client cancelled the call");
    verify(&data);
}

#[test]
fn a_call_timeout_that_is_not_a_number_of_seconds_is_a_usage_error() {
    for bad in ["-1", "soon", "NaN", "1e12"] {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args([
                "mcp",
                "wrap",
                &format!("--call-timeout={bad}"),
                "--",
                "true",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--call-timeout {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--call-timeout"), "{err}");
    }
}
