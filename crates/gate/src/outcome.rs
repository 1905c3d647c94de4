//! Outcomes: what became of an action the gate let through, appended to the
//! audit log as its own entry that names the decision (`decision_seq`).
//!
//! Every entry point records outcomes through here: the HTTP API's
//! `POST /v1/outcomes` with [`record`] (the caller names a sequence number,
//! so the entry is read and checked first), and the MCP proxy with
//! [`record_held`] (it holds the decision it acted on; the outcome is a
//! report nobody waits on, so it takes no sync of its own but is committed
//! with the next append, see [`Store::append_held`]).

use warden_audit::{Hash, Outcome, OutcomeRecord, Record};
use warden_policy::Verdict;
use warden_store::{AppendDone, Appended, Store, StoreError};

use crate::Decision;

/// Longest error text an outcome may carry, in bytes (16 KiB).
pub const MAX_OUTCOME_ERROR_BYTES: usize = 16 * 1024;

/// What became of an action, for [`record`] and [`record_held`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The sequence number of the decision that let the action through.
    pub decision_seq: u64,
    /// What happened.
    pub outcome: Outcome,
    /// SHA-256 of the result, when there was one.
    pub result_hash: Option<Hash>,
    /// The error, when the action failed (at most [`MAX_OUTCOME_ERROR_BYTES`]).
    pub error: Option<String>,
}

/// Why an outcome was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum OutcomeError {
    /// The log has no entry with that sequence number.
    #[error("there is no audit entry {0}")]
    NoEntry(u64),
    /// The entry is not a decision (an outcome or an event).
    #[error("audit entry {0} is not a decision")]
    NotADecision(u64),
    /// The decision was about another agent than the one reporting
    /// ([`record_as`]).
    #[error("decision {seq} was about agent '{decided}', not '{reporting}'")]
    OtherAgent {
        /// The decision's sequence number.
        seq: u64,
        /// The agent of the decision's record.
        decided: String,
        /// The agent the report came from.
        reporting: String,
    },
    /// The decision refused its action, so nothing ran.
    #[error("decision {seq} was '{verdict}': only an action that was let through has an outcome")]
    NotLetThrough {
        /// The decision.
        seq: u64,
        /// Its verdict.
        verdict: String,
    },
    /// The decision named has no sequence number (the gate keeps no log).
    #[error("the decision was not recorded in an audit log, so no outcome can refer to it")]
    Unrecorded,
    /// The error text is over [`MAX_OUTCOME_ERROR_BYTES`].
    #[error("error is longer than 16 KiB")]
    ErrorTooLong(usize),
    /// The stored entry does not decode.
    #[error("entry {seq} does not decode: {detail}")]
    Undecodable {
        /// The entry.
        seq: u64,
        /// The decoder's message.
        detail: String,
    },
    /// The decision could not be read.
    #[error("{0}")]
    Read(StoreError),
    /// The outcome could not be appended.
    #[error("the outcome could not be recorded: {0}")]
    Append(StoreError),
}

fn let_through(verdict: &str) -> bool {
    matches!(verdict, "allow" | "warn" | "transform")
}

impl Report {
    fn check_error(&self) -> Result<(), OutcomeError> {
        match &self.error {
            Some(e) if e.len() > MAX_OUTCOME_ERROR_BYTES => {
                Err(OutcomeError::ErrorTooLong(e.len()))
            }
            _ => Ok(()),
        }
    }

    fn into_record(self, time_unix_nanos: u64) -> Record {
        Record::Outcome(OutcomeRecord {
            time_unix_nanos,
            decision_seq: self.decision_seq,
            outcome: self.outcome,
            result_hash: self.result_hash,
            error: self.error,
        })
    }
}

/// Appends `report` once the entry it names is read back and found to be a
/// decision that let its action through. Returns when the outcome is durable.
pub fn record(
    store: &dyn Store,
    report: Report,
    time_unix_nanos: u64,
) -> Result<Appended, OutcomeError> {
    record_as(store, report, time_unix_nanos, None)
}

/// [`record`], by `agent` when given: a decision about another agent is
/// refused ([`OutcomeError::OtherAgent`]), so a caller held to one agent
/// cannot report for another's actions.
pub fn record_as(
    store: &dyn Store,
    report: Report,
    time_unix_nanos: u64,
    agent: Option<&str>,
) -> Result<Appended, OutcomeError> {
    report.check_error()?;
    let seq = report.decision_seq;
    let entry = store
        .entries(seq, 1)
        .map_err(OutcomeError::Read)?
        .into_iter()
        .next()
        .filter(|e| e.seq == seq)
        .ok_or(OutcomeError::NoEntry(seq))?;
    let decoded = entry.entry().map_err(|e| OutcomeError::Undecodable {
        seq,
        detail: e.to_string(),
    })?;
    let Record::Decision(d) = decoded.record else {
        return Err(OutcomeError::NotADecision(seq));
    };
    if let Some(agent) = agent
        && d.agent != agent
    {
        return Err(OutcomeError::OtherAgent {
            seq,
            decided: d.agent,
            reporting: agent.to_string(),
        });
    }
    if !let_through(&d.verdict) {
        return Err(OutcomeError::NotLetThrough {
            seq,
            verdict: d.verdict,
        });
    }
    store
        .append(report.into_record(time_unix_nanos))
        .map_err(OutcomeError::Append)
}

/// Appends the outcome of the action `decision` let through without waiting,
/// held for the store's next append (see [`Store::append_held`]): `done`
/// receives the result once it is durable. The report's `decision_seq` is the decision's.
/// Refused at once (and `done` not called) when the decision was not
/// recorded, did not let its action through, or the error is too long.
pub fn record_held(
    store: &dyn Store,
    decision: &Decision,
    outcome: Outcome,
    result_hash: Option<Hash>,
    error: Option<String>,
    time_unix_nanos: u64,
    done: AppendDone,
) -> Result<(), OutcomeError> {
    let seq = decision.seq.ok_or(OutcomeError::Unrecorded)?;
    if !matches!(
        decision.verdict,
        Verdict::Allow | Verdict::Warn | Verdict::Transform
    ) {
        return Err(OutcomeError::NotLetThrough {
            seq,
            verdict: decision.verdict.to_string(),
        });
    }
    let report = Report {
        decision_seq: seq,
        outcome,
        result_hash,
        error,
    };
    report.check_error()?;
    store.append_held(report.into_record(time_unix_nanos), Vec::new(), done);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Gate};
    use std::sync::Arc;
    use warden_store::{SqliteStore, StoreConfig};

    fn gate(store: Arc<dyn Store>) -> Gate {
        let policy = warden_policy::compile(
            warden_policy::parse(
                "p.yaml",
                "version: warden/v1\nname: p\ndefault: deny\nrules:\n  - id: reads\n    match: {tool: read}\n    verdict: allow\n",
            )
            .unwrap(),
        )
        .unwrap();
        Gate::new(policy).with_audit(store)
    }

    fn action(tool: &str) -> Action {
        Action::from_json(format!(r#"{{"point":"pre_tool_call","tool":"{tool}"}}"#).as_bytes())
            .unwrap()
    }

    #[test]
    fn outcomes_refer_only_to_decisions_that_let_the_action_through() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path(), StoreConfig::default()).unwrap());
        let gate = gate(store.clone());
        let allowed = gate.decide(&action("read"));
        let denied = gate.decide(&action("write"));
        let report = |seq| Report {
            decision_seq: seq,
            outcome: Outcome::Succeeded,
            result_hash: None,
            error: None,
        };
        let ok = record(store.as_ref(), report(allowed.seq.unwrap()), 1).unwrap();
        assert!(matches!(
            record(store.as_ref(), report(denied.seq.unwrap()), 1),
            Err(OutcomeError::NotLetThrough { .. })
        ));
        assert!(matches!(
            record(store.as_ref(), report(ok.seq), 1),
            Err(OutcomeError::NotADecision(_))
        ));
        assert!(matches!(
            record(store.as_ref(), report(999), 1),
            Err(OutcomeError::NoEntry(999))
        ));
        let (tx, rx) = std::sync::mpsc::channel();
        record_held(
            store.as_ref(),
            &allowed,
            Outcome::Failed,
            None,
            Some("boom".into()),
            2,
            Box::new(move |r| tx.send(r.map(|a| a.seq)).unwrap()),
        )
        .unwrap();
        assert_eq!(rx.recv().unwrap().unwrap(), ok.seq + 1);
        assert!(matches!(
            record_held(
                store.as_ref(),
                &denied,
                Outcome::Failed,
                None,
                None,
                2,
                Box::new(|_| panic!("not appended")),
            ),
            Err(OutcomeError::NotLetThrough { .. })
        ));
        let long = "x".repeat(MAX_OUTCOME_ERROR_BYTES + 1);
        assert!(matches!(
            record(
                store.as_ref(),
                Report {
                    error: Some(long),
                    ..report(allowed.seq.unwrap())
                },
                1
            ),
            Err(OutcomeError::ErrorTooLong(_))
        ));
        store.close().unwrap();
    }
}
