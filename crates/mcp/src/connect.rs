//! A minimal MCP client over stdio, for reading a server's tools: start the
//! server, `initialize`, `notifications/initialized`, `tools/list` (every
//! page), stop it.
//!
//! Messages are newline-delimited JSON-RPC on the child's stdin/stdout; its
//! stderr is kept (the last [`STDERR_TAIL_BYTES`]) for error messages. The
//! server is untrusted: every line is at most [`MAX_MESSAGE_BYTES`], at most
//! [`MAX_PAGES`] pages and [`MAX_TOOLS`] tools are read, and the whole
//! exchange has a deadline, after which the server's process group is
//! killed. Requests the server sends (`ping`, `roots/list`, …) are answered
//! so it does not wait on us.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config::ServerConfig;

/// The protocol revision offered in `initialize`.
pub const PROTOCOL_VERSION: &str = "2025-06-18";
/// Longest message line read from a server (16 MiB).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Most `tools/list` pages followed.
pub const MAX_PAGES: usize = 100;
/// Most tools read from one server.
pub const MAX_TOOLS: usize = 10_000;
/// How much of the server's stderr is kept for error messages.
pub const STDERR_TAIL_BYTES: usize = 2048;
/// How long a server gets to exit after its stdin is closed before it is killed.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// How long the rest of a failed server's stderr is waited for.
const STDERR_DRAIN: Duration = Duration::from_millis(500);

/// Why a server's tools could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The entry has no command (an HTTP server; not started by the scanner).
    #[error("server '{server}' is not a stdio server (it has no command)")]
    NotStdio {
        /// The server's name.
        server: String,
    },
    /// The program could not be started.
    #[error("server '{server}': cannot start '{command}': {source}")]
    Spawn {
        /// The server's name.
        server: String,
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// No complete answer before the deadline; the server was killed.
    #[error(
        "server '{server}': no answer to {during} within {timeout:?}; stopped it{}",
        stderr_hint(stderr)
    )]
    Timeout {
        /// The server's name.
        server: String,
        /// What was being waited for.
        during: &'static str,
        /// The deadline.
        timeout: Duration,
        /// The end of its stderr.
        stderr: String,
    },
    /// The server closed its stdout (or exited) before answering.
    #[error(
        "server '{server}' exited or closed stdout during {during}{}",
        stderr_hint(stderr)
    )]
    Closed {
        /// The server's name.
        server: String,
        /// What was being waited for.
        during: &'static str,
        /// The end of its stderr.
        stderr: String,
    },
    /// The server broke the protocol (bad JSON, over a limit, a bad result).
    #[error("server '{server}': {message}")]
    Protocol {
        /// The server's name.
        server: String,
        /// What was wrong.
        message: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("server '{server}': {method} failed: {error}")]
    Rpc {
        /// The server's name.
        server: String,
        /// The request.
        method: &'static str,
        /// The `error` object, as JSON.
        error: String,
    },
    /// Writing to the server failed.
    #[error("server '{server}': cannot write to its stdin: {source}")]
    Write {
        /// The server's name.
        server: String,
        /// Why.
        source: std::io::Error,
    },
}

fn stderr_hint(stderr: &str) -> String {
    let tail = stderr.trim();
    if tail.is_empty() {
        String::new()
    } else {
        format!(" (its stderr ends: {})", crate::scan::printable(tail))
    }
}

/// What a server said about itself and its tools.
#[derive(Debug, Clone)]
pub struct ServerReport {
    /// `serverInfo` from the `initialize` result (`Null` if absent).
    pub server_info: Value,
    /// The protocol revision the server chose.
    pub protocol_version: Option<String>,
    /// Every tool from `tools/list`, raw.
    pub tools: Vec<Value>,
}

/// Starts `server` (command, args and env from its configuration, on top of
/// this process's environment), reads its tools and stops it, all within
/// `timeout`.
pub fn list_tools(server: &ServerConfig, timeout: Duration) -> Result<ServerReport, ConnectError> {
    let name = server.name.clone();
    let Some(command) = &server.command else {
        return Err(ConnectError::NotStdio { server: name });
    };
    let mut cmd = Command::new(command);
    cmd.args(&server.args)
        .envs(&server.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group, so a launcher (npx, uvx) and the server
        // it starts are stopped together.
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().map_err(|source| ConnectError::Spawn {
        server: name.clone(),
        command: command.clone(),
        source,
    })?;
    let mut session = Session::new(&mut child, name, Instant::now() + timeout, timeout);
    let result = session.run();
    drop(session.stdin.take());
    stop(&mut child);
    if result.is_err() {
        // The group is dead, so its stderr reaches end of file soon; a
        // process that left the group could hold it open, hence the bound.
        let until = Instant::now() + STDERR_DRAIN;
        while session
            .stderr_reader
            .as_ref()
            .is_some_and(|r| !r.is_finished())
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    result.map_err(|e| e.with_stderr(&session.stderr))
}

/// Gives the child [`EXIT_GRACE`] to exit (its stdin is closed by now),
/// then kills its process group, and reaps it.
fn stop(child: &mut Child) {
    let deadline = Instant::now() + EXIT_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            kill_group(child);
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    kill_group(child);
    let _ = child.kill();
    let _ = child.wait();
}

fn kill_group(child: &Child) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory preconditions; the group is the one
        // this child leads (process_group(0) at spawn).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    #[cfg(not(unix))]
    let _ = child;
}

enum Line {
    Message(Value),
    Bad(String),
}

struct Session {
    server: String,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    deadline: Instant,
    timeout: Duration,
    next_id: u64,
}

impl ConnectError {
    fn with_stderr(self, tail: &Arc<Mutex<VecDeque<u8>>>) -> ConnectError {
        let text = || {
            let bytes: Vec<u8> = tail
                .lock()
                .map(|t| t.iter().copied().collect())
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        match self {
            Self::Timeout {
                server,
                during,
                timeout,
                ..
            } => Self::Timeout {
                server,
                during,
                timeout,
                stderr: text(),
            },
            Self::Closed { server, during, .. } => Self::Closed {
                server,
                during,
                stderr: text(),
            },
            other => other,
        }
    }
}

impl Session {
    fn new(child: &mut Child, server: String, deadline: Instant, timeout: Duration) -> Session {
        let (tx, lines) = channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                loop {
                    let mut buf = Vec::new();
                    let read = (&mut reader)
                        .take(MAX_MESSAGE_BYTES as u64 + 1)
                        .read_until(b'\n', &mut buf);
                    match read {
                        Ok(0) | Err(_) => return,
                        Ok(_) if buf.len() > MAX_MESSAGE_BYTES => {
                            let _ = tx.send(Line::Bad(format!(
                                "sent a message longer than {MAX_MESSAGE_BYTES} bytes"
                            )));
                            return;
                        }
                        Ok(_) => {}
                    }
                    if buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let line = match serde_json::from_slice(&buf) {
                        Ok(v) => Line::Message(v),
                        Err(e) => Line::Bad(format!("sent a line that is not JSON ({e})")),
                    };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_reader = child.stderr.take().map(|mut pipe| {
            let tail = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    if let Ok(mut tail) = tail.lock() {
                        tail.extend(&buf[..n]);
                        let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
                        tail.drain(..excess);
                    }
                }
            })
        });
        Session {
            server,
            stdin: child.stdin.take(),
            lines,
            stderr,
            stderr_reader,
            deadline,
            timeout,
            next_id: 1,
        }
    }

    fn run(&mut self) -> Result<ServerReport, ConnectError> {
        let init = self.request(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "warden-mcp-scan", "version": env!("CARGO_PKG_VERSION")},
            }),
        )?;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        let mut report = ServerReport {
            server_info: init.get("serverInfo").cloned().unwrap_or(Value::Null),
            protocol_version: init
                .get("protocolVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            tools: Vec::new(),
        };
        if init.pointer("/capabilities/tools").is_none() {
            return Ok(report);
        }
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = self.request("tools/list", params)?;
            let Some(tools) = page.get("tools").and_then(Value::as_array) else {
                return Err(self.protocol("tools/list result has no \"tools\" array"));
            };
            if report.tools.len() + tools.len() > MAX_TOOLS {
                return Err(self.protocol(&format!("lists more than {MAX_TOOLS} tools")));
            }
            report.tools.extend(tools.iter().cloned());
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_string()),
                _ => return Ok(report),
            }
        }
        Err(self.protocol(&format!("tools/list has more than {MAX_PAGES} pages")))
    }

    /// Sends a request and waits for its response, answering whatever the
    /// server asks meanwhile.
    fn request(&mut self, method: &'static str, params: Value) -> Result<Value, ConnectError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        loop {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(remaining) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(ConnectError::Timeout {
                        server: self.server.clone(),
                        during: method,
                        timeout: self.timeout,
                        stderr: String::new(),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ConnectError::Closed {
                        server: self.server.clone(),
                        during: method,
                        stderr: String::new(),
                    });
                }
            };
            let message = match line {
                Line::Message(m) => m,
                Line::Bad(why) => return Err(self.protocol(&why)),
            };
            if message.get("method").is_some() {
                self.answer(&message)?;
                continue;
            }
            if message.get("id") != Some(&json!(id)) {
                continue;
            }
            if let Some(error) = message.get("error") {
                return Err(ConnectError::Rpc {
                    server: self.server.clone(),
                    method,
                    error: error.to_string(),
                });
            }
            return match message.get("result") {
                Some(result) if result.is_object() => Ok(result.clone()),
                _ => Err(self.protocol(&format!("{method} response has no result object"))),
            };
        }
    }

    /// Answers a request from the server (notifications need no answer):
    /// `ping` with an empty result, `roots/list` with no roots, anything
    /// else "method not found".
    fn answer(&mut self, message: &Value) -> Result<(), ConnectError> {
        let Some(id) = message.get("id") else {
            return Ok(());
        };
        let reply = match message.get("method").and_then(Value::as_str) {
            Some("ping") => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            Some("roots/list") => json!({"jsonrpc": "2.0", "id": id, "result": {"roots": []}}),
            _ => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}})
            }
        };
        self.send(&reply)
    }

    fn send(&mut self, message: &Value) -> Result<(), ConnectError> {
        let mut line = message.to_string();
        line.push('\n');
        let stdin = self.stdin.as_mut().ok_or_else(|| ConnectError::Write {
            server: self.server.clone(),
            source: std::io::Error::from(std::io::ErrorKind::BrokenPipe),
        })?;
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::BrokenPipe => ConnectError::Closed {
                    server: self.server.clone(),
                    during: "a write to it",
                    stderr: String::new(),
                },
                _ => ConnectError::Write {
                    server: self.server.clone(),
                    source,
                },
            })
    }

    fn protocol(&self, message: &str) -> ConnectError {
        ConnectError::Protocol {
            server: self.server.clone(),
            message: message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A Python stdio server: answers `initialize` with `capabilities`,
    /// then runs `on_list` (Python statements, with `mid` and `send`) for
    /// every `tools/list`.
    fn server(capabilities: &str, on_list: &str) -> (tempfile::TempDir, ServerConfig) {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("server.py");
        let source = format!(
            r#"
import json, sys
def send(m):
    sys.stdout.write(json.dumps(m) + "\n")
    sys.stdout.flush()
for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if method == "initialize":
        send({{"jsonrpc": "2.0", "id": mid, "result": {{"protocolVersion": "2025-06-18", "capabilities": {capabilities}, "serverInfo": {{"name": "t", "version": "1"}}}}}})
    elif method == "tools/list":
{on_list}
"#
        );
        std::fs::write(&script, source).unwrap();
        let config = ServerConfig {
            name: "t".into(),
            command: Some("python3".into()),
            args: vec![script.display().to_string()],
            env: Default::default(),
            url: None,
            source: PathBuf::from("test.json"),
        };
        (dir, config)
    }

    const TIMEOUT: Duration = Duration::from_secs(20);

    #[test]
    fn reads_every_page_and_the_server_info() {
        let (_dir, config) = server(
            r#"{"tools": {}}"#,
            r#"        c = int((msg.get("params") or {}).get("cursor") or 0)
        page = {"tools": [{"name": "t%d" % c}]}
        if c < 2: page["nextCursor"] = str(c + 1)
        send({"jsonrpc": "2.0", "id": mid, "result": page})"#,
        );
        let report = list_tools(&config, TIMEOUT).unwrap();
        let names: Vec<&str> = report
            .tools
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(names, ["t0", "t1", "t2"]);
        assert_eq!(report.server_info["name"], "t");
        assert_eq!(report.protocol_version.as_deref(), Some(PROTOCOL_VERSION));
    }

    #[test]
    fn a_server_without_tools_is_not_asked_for_them() {
        let (_dir, config) = server("{}", "        sys.exit(3)");
        assert!(list_tools(&config, TIMEOUT).unwrap().tools.is_empty());
    }

    #[test]
    fn endless_pages_stop_at_the_limit() {
        let (_dir, config) = server(
            r#"{"tools": {}}"#,
            r#"        c = int((msg.get("params") or {}).get("cursor") or 0)
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [], "nextCursor": str(c + 1)}})"#,
        );
        let err = list_tools(&config, TIMEOUT).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("more than {MAX_PAGES} pages")),
            "{err}"
        );
    }

    #[test]
    fn a_message_over_the_size_limit_is_refused() {
        let (_dir, config) = server(
            r#"{"tools": {}}"#,
            &format!(
                r#"        send({{"jsonrpc": "2.0", "id": mid, "result": {{"tools": [], "pad": "x" * {}}}}})"#,
                MAX_MESSAGE_BYTES
            ),
        );
        let err = list_tools(&config, TIMEOUT).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("longer than {MAX_MESSAGE_BYTES} bytes")),
            "{err}"
        );
    }

    #[test]
    fn a_line_that_is_not_json_is_a_protocol_error() {
        let (_dir, config) = server(
            r#"{"tools": {}}"#,
            r#"        sys.stdout.write("hello from the server\n"); sys.stdout.flush()"#,
        );
        let err = list_tools(&config, TIMEOUT).unwrap_err();
        assert!(matches!(err, ConnectError::Protocol { .. }), "{err}");
        assert!(err.to_string().contains("not JSON"), "{err}");
    }

    #[test]
    fn an_error_answer_and_an_early_exit_are_reported_with_stderr() {
        let (_dir, config) = server(
            r#"{"tools": {}}"#,
            r#"        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32603, "message": "boom"}})"#,
        );
        let err = list_tools(&config, TIMEOUT).unwrap_err();
        assert!(
            err.to_string().contains("tools/list failed") && err.to_string().contains("boom"),
            "{err}"
        );

        let (_dir, config) = server(
            r#"{"tools": {}}"#,
            r#"        sys.stderr.write("fatal: no config\n"); sys.exit(1)"#,
        );
        let err = list_tools(&config, TIMEOUT).unwrap_err();
        assert!(matches!(err, ConnectError::Closed { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("its stderr ends: fatal: no config"),
            "{err}"
        );
    }

    #[test]
    fn an_http_entry_is_not_started() {
        let config = ServerConfig {
            name: "web".into(),
            command: None,
            args: Vec::new(),
            env: Default::default(),
            url: Some("http://127.0.0.1:9/mcp".into()),
            source: PathBuf::from("x.json"),
        };
        assert!(matches!(
            list_tools(&config, TIMEOUT),
            Err(ConnectError::NotStdio { .. })
        ));
    }
}
