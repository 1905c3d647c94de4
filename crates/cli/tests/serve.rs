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

struct Served {
    child: Child,
    addr: String,
}

/// Starts `warden serve` on a free loopback port in `cwd`; waits for it to
/// say where it listens.
fn serve(cwd: &Path, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(cwd)
        .env_remove("WARDEN_POLICY")
        .env_remove("WARDEN_DATA_DIR")
        .args(["serve", "--listen", "127.0.0.1:0", "--no-watch"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let addr = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("warden serve exited before listening: {seen}");
        }
        seen.push_str(&line);
        if let Some(rest) = line.trim().strip_prefix("warden: serving on http://") {
            break rest.to_string();
        }
    };
    // Keep draining the logs so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = stderr.read_to_string(&mut sink);
    });
    Served { child, addr }
}

/// One HTTP/1.1 request; the status and the JSON body.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
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

fn terminate(served: &mut Served) -> std::process::ExitStatus {
    unsafe {
        libc::kill(served.child.id() as i32, libc::SIGTERM);
    }
    served.child.wait().unwrap()
}

fn warden(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(cwd)
        .env_remove("WARDEN_DATA_DIR")
        .args(args)
        .output()
        .unwrap()
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
    let out = warden(&["audit", "export", "--format", "jsonl"], cwd.path());
    assert!(out.status.success());
    let logged: std::collections::HashMap<u64, String> = String::from_utf8(out.stdout)
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
        .collect();
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
