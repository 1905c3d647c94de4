//! The audit step of a decision: the record that goes into the log, and the
//! fail-closed rule when it cannot.

use std::time::{SystemTime, UNIX_EPOCH};

use warden_audit::{Arguments, DecisionRecord, Record};
use warden_policy::{AuditArguments, CompiledPolicy};
use warden_store::{Appended, StateChange, Store, StoreError};

use crate::{Action, Decision, MAX_NAME_BYTES, reason};

/// Arguments whose canonical JSON is longer than this are recorded by hash
/// only, whatever the policy says, so that a record always fits the log's
/// entry limit (`warden_audit::record::MAX_ENTRY_BYTES`, 1 MiB).
pub const MAX_INLINE_ARGUMENTS_BYTES: usize = 256 * 1024;

/// Longest reason or message kept in a record (they can quote input).
const MAX_TEXT_BYTES: usize = 16 * 1024;

/// Appends `decision` to the log and returns it with its sequence number,
/// or, if the log cannot take it, a `deny` that says so.
pub(crate) fn record(
    store: &dyn Store,
    policy: Option<&CompiledPolicy>,
    action: &Action,
    decision: Decision,
    changes: Vec<StateChange>,
) -> Decision {
    let record = Record::Decision(decision_record(policy, action, &decision));
    let appended = if changes.is_empty() {
        store.append(record)
    } else {
        store.append_with_all(record, changes)
    };
    settle(decision, appended)
}

/// `decision` once its append is done: with its sequence number, or, if the
/// log could not take it, a `deny` that says so.
pub(crate) fn settle(mut decision: Decision, appended: Result<Appended, StoreError>) -> Decision {
    match appended {
        Ok(appended) => {
            decision.seq = Some(appended.seq);
            decision
        }
        Err(e) => Decision {
            intents: decision.intents,
            findings: decision.findings,
            matched: decision.matched,
            policy: decision.policy,
            agent: decision.agent,
            sponsor: decision.sponsor,
            identity: decision.identity,
            ..Decision::error(
                reason::AUDIT_UNAVAILABLE,
                format!(
                    "the decision could not be recorded in the audit log, so the action is denied: {e}"
                ),
                decision.action_hash,
            )
        },
    }
}

/// The arguments as the audit log records them for `decision` about
/// `action`: a transform's rewritten arguments, not the originals, so what
/// the policy redacts never lands in the log (the action hash still commits
/// to the original action); only their hash when the policy says so or
/// they are over [`MAX_INLINE_ARGUMENTS_BYTES`].
pub(crate) fn recorded_arguments(
    policy: Option<&CompiledPolicy>,
    action: &Action,
    decision: &Decision,
) -> Arguments {
    let json = decision
        .args
        .as_ref()
        .or(action.args.as_ref())
        .map_or_else(|| "{}".to_string(), crate::canonical::to_string);
    let by_hash = policy.is_some_and(|p| p.audit().arguments == AuditArguments::Hash)
        || json.len() > MAX_INLINE_ARGUMENTS_BYTES;
    if by_hash {
        Arguments::hashed(&json)
    } else {
        Arguments::Json(json)
    }
}

/// The record of `decision` about `action`: every field of the decision.
pub(crate) fn decision_record(
    policy: Option<&CompiledPolicy>,
    action: &Action,
    decision: &Decision,
) -> DecisionRecord {
    let arguments = recorded_arguments(policy, action, decision);
    DecisionRecord {
        time_unix_nanos: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        // The proven agent when a token filled in an action that named none.
        agent: clip(
            decision
                .agent
                .as_deref()
                .or(action.agent.as_deref())
                .unwrap_or_default(),
            MAX_NAME_BYTES,
        ),
        session: clip(
            action.session.as_deref().unwrap_or_default(),
            MAX_NAME_BYTES,
        ),
        point: action.point.as_str().to_string(),
        tool: clip(action.tool.as_deref().unwrap_or_default(), MAX_NAME_BYTES),
        arguments,
        intents: decision
            .intents
            .iter()
            .map(|i| i.as_str().to_string())
            .collect(),
        verdict: decision.verdict.as_str().to_string(),
        rule: decision.rule.as_deref().map(String::from),
        reason: clip(&decision.reason, MAX_TEXT_BYTES),
        message: clip(&decision.message, MAX_TEXT_BYTES),
        action_hash: decision.action_hash.clone(),
        policy_name: decision
            .policy
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default(),
        policy_hash: decision
            .policy
            .as_ref()
            .map(|p| p.hash.clone())
            .unwrap_or_default(),
        sponsor: decision.sponsor.clone(),
        caller: action.caller.as_deref().map(|c| clip(c, MAX_NAME_BYTES)),
    }
}

/// `s` cut to at most `max` bytes at a character boundary. Names in a valid
/// action are already within the limit; an invalid action is recorded too,
/// and its oversized fields must not make the record too large to log.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clip_cuts_at_a_character_boundary() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        // 'é' is two bytes: cutting at 2 would split it.
        assert_eq!(clip("aéb", 2), "a…");
    }
}
