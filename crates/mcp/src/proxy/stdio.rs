//! The stdio transport (`warden mcp wrap`): the upstream is a child process
//! speaking newline-delimited JSON-RPC on its stdin and stdout, as MCP's
//! stdio transport does; its stderr is ours.
//!
//! Each direction reads messages in order, governs them concurrently (a
//! call's decision waits for the audit log's sync, and concurrent calls
//! share one) and writes them out in the order they came. A message warden
//! does not change is written as the bytes it arrived as.
//!
//! It ends when the client closes its input (the child's stdin is closed,
//! and the child gets [`SHUTDOWN_GRACE`] to exit before it is killed) or
//! when the child closes its output (every request still waiting is
//! answered with an error first). Either way every call still running gets
//! the outcome `unknown`.
//!
//! With [`Session::with_call_timeout`], a forwarded `tools/call` that has no
//! answer in time is given up on ([`Session::expire`]): the client gets a
//! "Request timed out" error, the server `notifications/cancelled`.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Routed, Session};

/// Longest message accepted on either side, in bytes (32 MiB).
pub const MAX_MESSAGE_BYTES: usize = 32 << 20;
/// How long the child may take to exit once its stdin is closed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Messages governed at once per direction (later ones wait to be read).
const IN_FLIGHT: usize = 256;

/// Why the wrapped server could not be run.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// No command was given.
    #[error("no MCP server command given (warden mcp wrap -- CMD ARGS…)")]
    NoCommand,
    /// The command could not be started.
    #[error("cannot start the MCP server '{command}': {source}")]
    Spawn {
        /// The program.
        command: String,
        /// Why.
        source: io::Error,
    },
    /// Waiting for the child failed.
    #[error("cannot wait for the MCP server: {0}")]
    Wait(io::Error),
}

/// How a wrapped session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client closed its input and the server then exited (or was
    /// killed after [`SHUTDOWN_GRACE`]) with this status.
    ClientClosed(ExitStatus),
    /// The server went away while the client was still connected.
    ServerExited(ExitStatus),
    /// warden was asked to stop (SIGINT or SIGTERM); the server was stopped.
    Stopped(ExitStatus),
}

/// Starts `command` and proxies between the client (`client_in`,
/// `client_out`) and it until either side is done.
pub async fn run<R, W>(
    session: Arc<Session>,
    command: &[String],
    client_in: R,
    client_out: W,
) -> Result<Ended, WrapError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (program, args) = command.split_first().ok_or(WrapError::NoCommand)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| WrapError::Spawn {
            command: program.clone(),
            source,
        })?;
    let (Some(child_in), Some(child_out)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.start_kill();
        return Err(WrapError::Spawn {
            command: program.clone(),
            source: io::Error::other("the child's stdin or stdout is not a pipe"),
        });
    };

    let (to_client, client_rx) = mpsc::channel::<Out>(IN_FLIGHT);
    let writer = tokio::spawn(write_client(client_out, client_rx));
    let mut client_side = tokio::spawn(client_pump(
        session.clone(),
        client_in,
        child_in,
        to_client.clone(),
    ));
    let mut upstream_side =
        tokio::spawn(upstream_pump(session.clone(), child_out, to_client.clone()));

    enum First {
        Client,
        Upstream,
        Signal,
    }
    let first = tokio::select! {
        _ = &mut upstream_side => First::Upstream,
        _ = &mut client_side => First::Client,
        _ = stop_signal() => First::Signal,
    };
    if !matches!(first, First::Upstream) {
        if matches!(first, First::Signal) {
            let _ = child.start_kill();
        }
        // The child's stdin is closed: give it time to answer and exit.
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut upstream_side)
            .await
            .is_err()
        {
            tracing::warn!("the MCP server did not exit after its input was closed; killing it");
            let _ = child.start_kill();
            let _ = upstream_side.await;
        }
    }
    if !matches!(first, First::Client) {
        client_side.abort();
    }
    let status = wait(&mut child).await?;
    let why = match first {
        First::Upstream => format!("the MCP server exited ({status}) before it answered"),
        First::Client => "the client closed the connection before the MCP server answered".into(),
        First::Signal => "warden was stopped before the MCP server answered".into(),
    };
    for answer in session.close(&why).await {
        let _ = to_client.send(Out::Value(answer)).await;
    }
    drop(to_client);
    // The client may have stopped reading: do not wait for it forever.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, writer).await;
    Ok(match first {
        First::Client => Ended::ClientClosed(status),
        First::Upstream => Ended::ServerExited(status),
        First::Signal => Ended::Stopped(status),
    })
}

/// The child's status once it exits, killing it after [`SHUTDOWN_GRACE`].
async fn wait(child: &mut Child) -> Result<ExitStatus, WrapError> {
    match tokio::time::timeout(SHUTDOWN_GRACE, child.wait()).await {
        Ok(status) => status.map_err(WrapError::Wait),
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await.map_err(WrapError::Wait)
        }
    }
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await
}

/// A message to write: as it came, or as warden wrote it.
enum Out {
    Raw(Vec<u8>),
    Value(Value),
}

impl Out {
    fn of(routed: Option<Value>, rewritten: bool, raw: &mut Option<Vec<u8>>) -> Option<Out> {
        let v = routed?;
        Some(match (rewritten, raw.take()) {
            (false, Some(bytes)) => Out::Raw(bytes),
            _ => Out::Value(v),
        })
    }
}

async fn write_line<W: AsyncWrite + Unpin>(w: &mut W, out: Out) -> io::Result<()> {
    let mut bytes = match out {
        Out::Raw(b) => b,
        Out::Value(v) => serde_json::to_vec(&v).map_err(io::Error::other)?,
    };
    bytes.push(b'\n');
    w.write_all(&bytes).await?;
    w.flush().await
}

async fn write_client<W: AsyncWrite + Unpin>(mut out: W, mut rx: mpsc::Receiver<Out>) {
    while let Some(msg) = rx.recv().await {
        if let Err(e) = write_line(&mut out, msg).await {
            tracing::info!(error = %e, "the client stopped reading");
            // Keep draining so the senders never block on a dead client.
            while rx.recv().await.is_some() {}
            return;
        }
    }
}

/// One line: its bytes without the newline, or why it is refused.
enum Line {
    Bytes(Vec<u8>),
    TooLong,
}

/// The next line of `r`, at most `max` bytes (the rest of a longer line is
/// skipped); `None` at the end of input.
async fn next_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(any.then_some(if too_long {
                Line::TooLong
            } else {
                Line::Bytes(buf)
            }));
        }
        any = true;
        let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let body = if done { &chunk[..used - 1] } else { chunk };
        if !too_long {
            if buf.len() + body.len() > max {
                too_long = true;
                buf = Vec::new();
            } else {
                buf.extend_from_slice(body);
            }
        }
        r.consume(used);
        if done {
            return Ok(Some(if too_long {
                Line::TooLong
            } else {
                Line::Bytes(buf)
            }));
        }
    }
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// A governed message on its way out, with the bytes it came as.
type Work = JoinHandle<(Routed, Option<Vec<u8>>)>;

async fn client_pump<R, W>(
    session: Arc<Session>,
    client_in: R,
    mut child_in: W,
    to_client: mpsc::Sender<Out>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (queue, mut work) = mpsc::channel::<Work>(IN_FLIGHT);
    let timer_session = session.clone();
    let out = tokio::spawn(async move {
        let session = timer_session;
        // Cancellations of calls that timed out, for the server.
        let (cancel, mut cancels) = mpsc::channel::<Value>(IN_FLIGHT);
        // One timer for the session's forwarded calls; it ends with this task.
        let timer = session.call_timeout().map(|limit| {
            let (forwarded, ids) = mpsc::unbounded_channel();
            tokio::spawn(expire_calls(
                session.clone(),
                limit,
                ids,
                to_client.downgrade(),
                cancel.downgrade(),
            ));
            (forwarded, limit)
        });
        let mut upstream_open = true;
        loop {
            let out = tokio::select! {
                job = work.recv() => {
                    let Some(job) = job else { break };
                    let Ok((routed, mut raw)) = job.await else {
                        tracing::error!("governing a client message panicked; it was dropped");
                        continue;
                    };
                    if let Some(answer) = routed.answer {
                        let _ = to_client.send(Out::Value(answer)).await;
                    }
                    if let Some((timer, limit)) = &timer {
                        let due = Instant::now() + *limit;
                        for id in routed.forward.iter().flat_map(tools_call_ids) {
                            let _ = timer.send((due, id));
                        }
                    }
                    Out::of(routed.forward, routed.rewritten, &mut raw)
                }
                Some(note) = cancels.recv() => Some(Out::Value(note)),
            };
            if let Some(out) = out
                && upstream_open
                && let Err(e) = write_line(&mut child_in, out).await
            {
                // The upstream's side notices it is gone and answers
                // whatever waits.
                tracing::warn!(error = %e, "cannot write to the MCP server");
                upstream_open = false;
            }
        }
        // Closing the child's stdin asks it to exit.
        let _ = child_in.shutdown().await;
    });
    let mut reader = BufReader::with_capacity(64 * 1024, client_in);
    loop {
        let line = match next_line(&mut reader, MAX_MESSAGE_BYTES).await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                tracing::info!(error = %e, "cannot read from the client");
                break;
            }
        };
        let session = session.clone();
        let job: Work = match line {
            Line::TooLong => tokio::spawn(async move {
                let e = format!("the message is longer than {MAX_MESSAGE_BYTES} bytes");
                (Routed::answer(session.unreadable(&e)), None)
            }),
            Line::Bytes(b) if is_blank(&b) => continue,
            Line::Bytes(bytes) => tokio::spawn(async move {
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(msg) => (session.from_client(msg).await, Some(bytes)),
                    Err(e) => (Routed::answer(session.unreadable(&e.to_string())), None),
                }
            }),
        };
        if queue.send(job).await.is_err() {
            break;
        }
    }
    drop(queue);
    let _ = out.await;
}

/// The ids of the `tools/call` requests in a message forwarded to the
/// server (one request, or a batch).
fn tools_call_ids(msg: &Value) -> Vec<Value> {
    let one = |m: &Value| {
        (m.get("method").and_then(Value::as_str) == Some("tools/call"))
            .then(|| m.get("id").cloned())
            .flatten()
    };
    match msg {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        m => one(m).into_iter().collect(),
    }
}

/// Forwarded calls by deadline, oldest first. Every call of a session has
/// the same limit, so deadlines arrive in order and a queue holds them. The
/// ids of calls answered since are dropped once they outnumber the calls
/// still waiting, so the queue stays about as long as what is pending, not
/// as long as everything forwarded within the limit.
#[derive(Default)]
struct Deadlines {
    queue: std::collections::VecDeque<(Instant, Value)>,
}

impl Deadlines {
    /// Headroom before answered ids are swept out.
    const SLACK: usize = 64;

    /// Adds `id`, due at `at`; `waiting` says whether a call still waits and
    /// `pending` how many do.
    fn push(&mut self, at: Instant, id: Value, pending: usize, waiting: impl Fn(&Value) -> bool) {
        self.queue.push_back((at, id));
        if self.queue.len() > 2 * pending + Self::SLACK {
            self.queue.retain(|(_, id)| waiting(id));
        }
    }

    /// When the oldest is due.
    fn next(&self) -> Option<Instant> {
        self.queue.front().map(|(at, _)| *at)
    }

    /// The oldest, if it is due at `now`.
    fn pop_due(&mut self, now: Instant) -> Option<Value> {
        if self.next()? > now {
            return None;
        }
        self.queue.pop_front().map(|(_, id)| id)
    }
}

/// The session's call timer: each id from `forwarded` (a `tools/call` sent
/// to the server, with when its `limit` runs out) is given up on then, if
/// it still waits ([`give_up`]). One task per session, not one per call,
/// so calls answered long before their limit leave nothing behind. Ends
/// when `forwarded` closes.
async fn expire_calls(
    session: Arc<Session>,
    limit: Duration,
    mut forwarded: mpsc::UnboundedReceiver<(Instant, Value)>,
    to_client: mpsc::WeakSender<Out>,
    to_server: mpsc::WeakSender<Value>,
) {
    let mut deadlines = Deadlines::default();
    loop {
        let next = deadlines.next();
        let due = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            call = forwarded.recv() => {
                let Some((at, id)) = call else { break };
                deadlines.push(at, id, session.pending(), |id| session.waits_for(id));
            }
            () = due => {
                while let Some(id) = deadlines.pop_due(Instant::now()) {
                    give_up(&session, id, limit, &to_client, &to_server).await;
                }
            }
        }
    }
}

/// Gives up on the call `id` after `limit`, if it still waits: the client
/// gets a "Request timed out" error, the server a cancellation, and the
/// outcome is `unknown`. The senders are weak so that the timer never keeps
/// the session's writers open.
async fn give_up(
    session: &Arc<Session>,
    id: Value,
    limit: Duration,
    to_client: &mpsc::WeakSender<Out>,
    to_server: &mpsc::WeakSender<Value>,
) {
    let why = format!(
        "warden gave up on the tool call: the MCP server did not answer within {} s",
        limit.as_secs_f64()
    );
    let Some(answer) = session.expire(&id, &why) else {
        return;
    };
    tracing::warn!(id = %id, "{why}");
    if let Some(to_server) = to_server.upgrade() {
        let note = serde_json::json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": id, "reason": why},
        });
        let _ = to_server.send(note).await;
    }
    if let Some(to_client) = to_client.upgrade() {
        let _ = to_client.send(Out::Value(answer)).await;
    }
}

async fn upstream_pump<R>(session: Arc<Session>, child_out: R, to_client: mpsc::Sender<Out>)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (queue, mut work) = mpsc::channel::<Work>(IN_FLIGHT);
    let out = tokio::spawn(async move {
        while let Some(job) = work.recv().await {
            let Ok((routed, mut raw)) = job.await else {
                tracing::error!("governing a server message panicked; it was dropped");
                continue;
            };
            if let Some(out) = Out::of(routed.forward, routed.rewritten, &mut raw) {
                let _ = to_client.send(out).await;
            }
        }
    });
    let mut reader = BufReader::with_capacity(64 * 1024, child_out);
    loop {
        let bytes = match next_line(&mut reader, MAX_MESSAGE_BYTES).await {
            Ok(Some(Line::Bytes(b))) if is_blank(&b) => continue,
            Ok(Some(Line::Bytes(b))) => b,
            Ok(Some(Line::TooLong)) => {
                tracing::warn!(
                    "the MCP server sent a message longer than {MAX_MESSAGE_BYTES} bytes; dropped"
                );
                continue;
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read from the MCP server");
                break;
            }
        };
        let msg = match serde_json::from_slice::<Value>(&bytes) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(error = %e, "the MCP server wrote a line that is not JSON; dropped");
                continue;
            }
        };
        let session = session.clone();
        let job: Work =
            tokio::spawn(async move { (session.from_upstream(msg).await, Some(bytes)) });
        if queue.send(job).await.is_err() {
            break;
        }
    }
    drop(queue);
    let _ = out.await;
}

/// The client side of `warden mcp wrap`: this process's stdin and stdout.
pub type ClientIo = (
    Box<dyn AsyncRead + Unpin + Send>,
    Box<dyn AsyncWrite + Unpin + Send>,
);

/// This process's stdin and stdout as async streams. A pipe or a socket
/// (what MCP clients launch servers with) is read and written directly, in
/// non-blocking mode, so no thread hands each line over; anything else (a
/// terminal, a file) goes through tokio's stdio, which uses a blocking
/// thread.
pub fn process_stdio() -> ClientIo {
    let input = direct_stdin().unwrap_or_else(|| Box::new(tokio::io::stdin()));
    let output = direct_stdout().unwrap_or_else(|| Box::new(tokio::io::stdout()));
    (input, output)
}

#[cfg(unix)]
fn dup_kind(fd: std::os::fd::BorrowedFd<'_>) -> Option<(std::os::fd::OwnedFd, bool)> {
    use std::os::unix::fs::FileTypeExt;
    let owned = fd.try_clone_to_owned().ok()?;
    let file = std::fs::File::from(owned);
    let kind = file.metadata().ok()?.file_type();
    let fifo = kind.is_fifo();
    (fifo || kind.is_socket()).then(|| (file.into(), fifo))
}

#[cfg(unix)]
fn direct_stdin() -> Option<Box<dyn AsyncRead + Unpin + Send>> {
    use std::os::fd::AsFd;
    let (fd, fifo) = dup_kind(io::stdin().as_fd())?;
    if fifo {
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok()?;
        return Some(Box::new(pipe));
    }
    let socket = std::os::unix::net::UnixStream::from(fd);
    socket.set_nonblocking(true).ok()?;
    Some(Box::new(tokio::net::UnixStream::from_std(socket).ok()?))
}

#[cfg(unix)]
fn direct_stdout() -> Option<Box<dyn AsyncWrite + Unpin + Send>> {
    use std::os::fd::AsFd;
    let (fd, fifo) = dup_kind(io::stdout().as_fd())?;
    if fifo {
        let pipe = tokio::net::unix::pipe::Sender::from_owned_fd(fd).ok()?;
        return Some(Box::new(pipe));
    }
    let socket = std::os::unix::net::UnixStream::from(fd);
    socket.set_nonblocking(true).ok()?;
    Some(Box::new(tokio::net::UnixStream::from_std(socket).ok()?))
}

#[cfg(not(unix))]
fn direct_stdin() -> Option<Box<dyn AsyncRead + Unpin + Send>> {
    None
}

#[cfg(not(unix))]
fn direct_stdout() -> Option<Box<dyn AsyncWrite + Unpin + Send>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
        let mut r = BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        while let Some(line) = next_line(&mut r, max).await.unwrap() {
            out.push(match line {
                Line::Bytes(b) => Some(b),
                Line::TooLong => None,
            });
        }
        out
    }

    #[test]
    fn deadlines_come_due_in_order_and_answered_calls_are_swept_out() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut d = Deadlines::default();
        // 10,000 calls forwarded, of which only the multiples of 1,000 still
        // wait: the queue holds about what is pending, not all 10,000.
        let waiting = |id: &Value| id.as_u64().is_some_and(|n| n % 1000 == 0);
        for n in 0..10_000u64 {
            d.push(at(n), Value::from(n), 10, waiting);
            assert!(d.queue.len() <= 2 * 10 + Deadlines::SLACK + 1, "{n}");
        }
        // Nothing is due before its time; then the oldest first.
        assert_eq!(d.pop_due(at(0) - Duration::from_millis(1)), None);
        let mut due = Vec::new();
        while let Some(id) = d.pop_due(at(20_000)) {
            due.push(id.as_u64().unwrap());
        }
        assert!(due.is_sorted(), "{due:?}");
        for n in (0..10_000).step_by(1000) {
            assert!(due.contains(&n), "call {n} still waits and must come due");
        }
        assert_eq!(d.next(), None);
    }

    #[tokio::test]
    async fn lines_longer_than_the_limit_are_refused_and_skipped() {
        let got = lines(b"{\"a\":1}\n0123456789abc\nok\nlast", 8).await;
        assert_eq!(
            got,
            [
                Some(b"{\"a\":1}".to_vec()),
                None,
                Some(b"ok".to_vec()),
                Some(b"last".to_vec())
            ]
        );
    }
}
