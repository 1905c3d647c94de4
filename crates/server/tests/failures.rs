//! Fail closed, nothing lost: when the store cannot take a record, every
//! decision denies with `error:audit_unavailable` and `/readyz` says 503;
//! what was acknowledged stays, and the log resumes once there is room.

mod support;

use std::path::PathBuf;

use serde_json::json;
use support::{POLICY, TestServer};
use warden_store::{SqliteStore, Store};

fn select(i: usize) -> serde_json::Value {
    // Long arguments fill the small quota quickly.
    json!({"point": "pre_tool_call", "tool": "db.query", "args": {"sql": format!("SELECT {i} /* {} */", "x".repeat(1500))}})
}

/// Every acknowledged decision (seq, action hash) is in the stopped
/// server's log, and the log verifies.
fn assert_logged(dir: &tempfile::TempDir, acknowledged: &[(u64, String)]) {
    let store = SqliteStore::open_read_only(dir.path().join("data")).unwrap();
    for (seq, hash) in acknowledged {
        let e = store.entries(*seq, 1).unwrap().remove(0).entry().unwrap();
        let warden_audit::Record::Decision(r) = e.record else {
            panic!("entry {seq} is not a decision")
        };
        assert_eq!(&r.action_hash, hash);
    }
    let report = warden_store::verify(&store, &store.verifier(), None).unwrap();
    assert_eq!(report.problem, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_denies_everything_and_the_log_resumes_with_room() {
    let server = TestServer::start_with(POLICY, |c| c.store.max_page_count = Some(80)).await;
    let mut acknowledged = Vec::new();
    let mut i = 0;
    let refused = loop {
        assert!(i < 5000, "the quota never filled");
        let d = server.decide(select(i)).await;
        i += 1;
        match d["verdict"].as_str() {
            Some("allow") => acknowledged.push((
                d["seq"].as_u64().unwrap(),
                d["action_hash"].as_str().unwrap().to_string(),
            )),
            _ => break d,
        }
    };
    assert_eq!(refused["reason"], "error:audit_unavailable", "{refused}");
    assert!(refused.get("seq").is_none());
    assert!(acknowledged.len() > 5);
    // Every decision now denies, whatever the policy says, and readiness fails.
    let d = server
        .decide(json!({"point": "pre_tool_call", "tool": "db.query", "args": {"sql": "SELECT 1"}}))
        .await;
    assert_eq!(
        (d["verdict"].as_str(), d["reason"].as_str()),
        (Some("deny"), Some("error:audit_unavailable"))
    );
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["store"]["writable"], false);

    // Room again (a restart without the quota): the log continues.
    let server = server.restart_unclean().await;
    let d = server.decide(select(0)).await;
    assert_eq!(d["verdict"], "allow");
    assert_eq!(
        d["seq"].as_u64().unwrap(),
        acknowledged.last().unwrap().0 + 1,
        "no gap, nothing lost"
    );
    assert_eq!(server.get("/readyz").await.0, 200);
    let dir = server.stop().await;

    assert_logged(&dir, &acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_data_directory_denies_everything() {
    let server = TestServer::start(POLICY).await;
    assert_eq!(server.decide(select(0)).await["verdict"], "allow");
    std::fs::remove_dir_all(server.data_dir()).unwrap();
    for i in 1..4 {
        let d = server.decide(select(i)).await;
        assert_eq!(
            (d["verdict"].as_str(), d["reason"].as_str()),
            (Some("deny"), Some("error:audit_unavailable")),
            "{d}"
        );
    }
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["store"]["error"]
            .as_str()
            .unwrap()
            .contains("removed or replaced"),
        "{ready}"
    );
    assert_eq!(
        server.get("/healthz").await.0,
        200,
        "the process itself is up"
    );
}

/// Sets or clears the immutable attribute (`chattr +i`) of files: unlike a
/// `chmod`, which an open file descriptor ignores (and root ignores
/// altogether), it makes writes through the server's open descriptors fail,
/// as a volume remounted read-only does.
fn immutable(files: &[PathBuf], on: bool) {
    for f in files {
        let out = std::process::Command::new("chattr")
            .arg(if on { "+i" } else { "-i" })
            .arg(f)
            .output()
            .expect("chattr (e2fsprogs) runs: this test needs it, as root, on a filesystem with attributes");
        assert!(
            out.status.success(),
            "chattr {} {}: {}",
            if on { "+i" } else { "-i" },
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Clears the attribute again even when an assertion fails, so the
/// temporary directory can be removed.
struct Immutable(Vec<PathBuf>);

impl Drop for Immutable {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(f)
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_made_read_only_denies_everything_and_the_log_resumes_once_writable() {
    let server = TestServer::start(POLICY).await;
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        let d = server.decide(select(i)).await;
        assert_eq!(d["verdict"], "allow", "{d}");
        acknowledged.push((
            d["seq"].as_u64().unwrap(),
            d["action_hash"].as_str().unwrap().to_string(),
        ));
    }
    // The database and its write-ahead log, where every commit goes.
    let files: Vec<PathBuf> = std::fs::read_dir(server.data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".db") || name.ends_with(".db-wal")
        })
        .collect();
    assert_eq!(files.len(), 2, "a database and its WAL: {files:?}");
    immutable(&files, true);
    let guard = Immutable(files.clone());

    for i in 3..6 {
        let d = server.decide(select(i)).await;
        assert_eq!(
            (d["verdict"].as_str(), d["reason"].as_str()),
            (Some("deny"), Some("error:audit_unavailable")),
            "{d}"
        );
        assert!(d.get("seq").is_none(), "{d}");
    }
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["store"]["writable"], false, "{ready}");

    // Writable again: ready again without a decision to show it (a
    // balancer that saw 503 sends none), and the log continues where it was.
    immutable(&files, false);
    drop(guard);
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    let d = server.decide(select(6)).await;
    assert_eq!(d["verdict"], "allow", "{d}");
    assert_eq!(
        d["seq"].as_u64().unwrap(),
        acknowledged.last().unwrap().0 + 1,
        "no gap: nothing acknowledged was lost, nothing denied was logged"
    );
    acknowledged.push((
        d["seq"].as_u64().unwrap(),
        d["action_hash"].as_str().unwrap().to_string(),
    ));
    // And after a restart too.
    let server = server.restart_unclean().await;
    let d = server.decide(select(7)).await;
    assert_eq!(d["verdict"], "allow", "{d}");
    assert_eq!(
        d["seq"].as_u64().unwrap(),
        acknowledged.last().unwrap().0 + 1,
        "no gap"
    );
    let dir = server.stop().await;
    assert_logged(&dir, &acknowledged);
}
