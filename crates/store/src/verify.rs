//! Offline verification of a stored log, and proofs, over any [`Store`].

use std::iter::Peekable;

use warden_audit::{
    CompactRange, Entry, Hash, LogVerifier, ProofError, ProofPlan, Subtree, Tree, leaf_hash,
    verify_consistency,
};

use crate::{Store, StoreError, StoredCheckpoint, StoredSubtree};

/// Entries read per query while verifying or building proofs.
const PAGE: usize = 8192;

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked (the log size when verification started, or the
    /// position of the first problem).
    pub entries: u64,
    /// Checkpoints whose signature, root and consistency held.
    pub checkpoints: u64,
    /// Entries after the last good checkpoint: hashed and checked, but not
    /// yet covered by a signature.
    pub unsigned_tail: u64,
    /// The first problem, if any. Verification stops there.
    pub problem: Option<Problem>,
}

/// The first thing found wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seq {seq}: {kind}")]
pub struct Problem {
    /// The first sequence number whose integrity cannot be established. For
    /// an entry problem it is that entry; for a checkpoint problem it is the
    /// first entry the checkpoint was supposed to newly attest (the size of
    /// the previous good checkpoint); for a stored subtree hash it is the
    /// last entry the subtree covers (whose append stored it).
    pub seq: u64,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    /// The entry is missing (deleted); the next stored one is shown.
    #[error("entry is missing (the next stored entry is {next_stored:?})")]
    Missing {
        /// Next sequence number present, if any.
        next_stored: Option<u64>,
    },
    /// The stored bytes are not a valid record.
    #[error("stored record does not decode: {error}")]
    Undecodable {
        /// The decoder's message.
        error: String,
    },
    /// The record's own sequence number differs from its position (moved
    /// or swapped rows).
    #[error("the record inside says seq {inside}: rows were moved or swapped")]
    MovedRecord {
        /// Sequence number inside the record.
        inside: u64,
    },
    /// The record's hash differs from the leaf hash stored when it was
    /// appended (the record was altered).
    #[error(
        "leaf hash of the stored record is {computed}, but {stored} was stored at append time: the record was altered"
    )]
    LeafHashMismatch {
        /// Hex of the stored leaf hash.
        stored: String,
        /// Hex of the hash of the stored record.
        computed: String,
    },
    /// A checkpoint's signature does not verify with the log key.
    #[error("checkpoint of size {size} is not validly signed: {error}")]
    BadSignature {
        /// The checkpoint's tree size.
        size: u64,
        /// Why.
        error: String,
    },
    /// A checkpoint row disagrees with its own signed note.
    #[error("checkpoint row of size {size} disagrees with its signed note ({detail})")]
    CheckpointRowMismatch {
        /// The row's tree size.
        size: u64,
        /// What differs.
        detail: String,
    },
    /// The root recomputed from the entries is not the signed one.
    #[error(
        "the entries up to size {size} hash to root {computed}, but the checkpoint signed {signed}"
    )]
    RootMismatch {
        /// The checkpoint's tree size.
        size: u64,
        /// Hex of the signed root.
        signed: String,
        /// Hex of the recomputed root.
        computed: String,
    },
    /// Two consecutive checkpoints are not consistent.
    #[error(
        "checkpoint of size {size} is not consistent with the checkpoint of size {previous}: {error}"
    )]
    Inconsistent {
        /// The earlier checkpoint's size.
        previous: u64,
        /// The later checkpoint's size.
        size: u64,
        /// The proof verifier's message.
        error: String,
    },
    /// A stored subtree hash is not the hash of the entries it covers.
    #[error(
        "the stored hash of entries {first}..={last} (a subtree of height {height}) is {stored}, but those entries hash to {computed}: the subtree table was altered, and proofs built from it would not verify"
    )]
    SubtreeMismatch {
        /// First entry covered.
        first: u64,
        /// Last entry covered.
        last: u64,
        /// The subtree covers `2^height` entries.
        height: u32,
        /// Hex of the stored hash.
        stored: String,
        /// Hex of the hash derived from the entries.
        computed: String,
    },
    /// A subtree hash that appending the entries stored is absent.
    #[error(
        "no hash is stored for the subtree of entries {first}..={last} (height {height}): the subtree table was altered, and proofs that need it fail"
    )]
    SubtreeMissing {
        /// First entry covered.
        first: u64,
        /// Last entry covered.
        last: u64,
        /// The subtree covers `2^height` entries.
        height: u32,
    },
    /// A stored subtree hash that no append would have stored.
    #[error(
        "a subtree hash of height {height} is stored for entry {last_seq}, where the log has no such subtree: the subtree table was altered"
    )]
    UnexpectedSubtree {
        /// The entry it is filed under.
        last_seq: u64,
        /// Its height.
        height: u32,
    },
    /// A checkpoint commits to more entries than are stored.
    #[error(
        "a checkpoint of size {size} exists but the log holds only {log_size} entries: entries were deleted"
    )]
    CheckpointBeyondLog {
        /// The checkpoint's tree size.
        size: u64,
        /// Entries found.
        log_size: u64,
    },
}

struct Checker<'a> {
    verifier: &'a LogVerifier,
    tree: Tree,
    /// The last good checkpoint: size and signed root.
    attested: Option<(u64, Hash)>,
    good: u64,
}

impl Checker<'_> {
    fn attested_size(&self) -> u64 {
        self.attested.map_or(0, |(size, _)| size)
    }

    fn fail(&self, kind: ProblemKind) -> Problem {
        Problem {
            seq: self.attested_size(),
            kind,
        }
    }

    /// Check one checkpoint; the tree holds exactly `cp.size` leaves.
    fn checkpoint(&mut self, cp: &StoredCheckpoint) -> Result<(), Problem> {
        let signed = self.verifier.verify_checkpoint(&cp.note).map_err(|e| {
            self.fail(ProblemKind::BadSignature {
                size: cp.size,
                error: e.to_string(),
            })
        })?;
        if signed.size != cp.size || signed.root != cp.root {
            return Err(self.fail(ProblemKind::CheckpointRowMismatch {
                size: cp.size,
                detail: format!(
                    "the note says size {} root {}, the row root {}",
                    signed.size,
                    hex::encode(signed.root),
                    hex::encode(cp.root)
                ),
            }));
        }
        let computed = self.tree.root();
        if computed != signed.root {
            return Err(self.fail(ProblemKind::RootMismatch {
                size: cp.size,
                signed: hex::encode(signed.root),
                computed: hex::encode(computed),
            }));
        }
        if let Some((previous, previous_root)) = self.attested {
            // What an offline auditor holding only the two signed roots
            // would check.
            let result = self
                .tree
                .consistency_proof(previous, cp.size)
                .map_err(|e| e.to_string())
                .and_then(|proof| {
                    verify_consistency(previous, cp.size, &proof, &previous_root, &signed.root)
                        .map_err(|e| e.to_string())
                });
            if let Err(error) = result {
                return Err(self.fail(ProblemKind::Inconsistent {
                    previous,
                    size: cp.size,
                    error,
                }));
            }
        }
        self.attested = Some((cp.size, signed.root));
        self.good += 1;
        Ok(())
    }
}

/// Check the stored subtree hashes filed under entry `seq` (just pushed to
/// `tree`) against the ones `tree` derived.
fn check_subtrees<'a>(
    tree: &Tree,
    seq: u64,
    stored: &mut Peekable<impl Iterator<Item = &'a StoredSubtree>>,
) -> Option<ProblemKind> {
    let unexpected = |r: &StoredSubtree| ProblemKind::UnexpectedSubtree {
        last_seq: r.last_seq,
        height: r.height,
    };
    if let Some(r) = stored.next_if(|r| r.last_seq < seq || (r.last_seq == seq && r.height == 0)) {
        return Some(unexpected(r));
    }
    for expected in Subtree::completed_by(seq) {
        let (first, last, height) = (expected.first(), expected.last(), expected.height);
        let Some(row) = stored.next_if(|r| r.last_seq == seq && r.height == height) else {
            return Some(ProblemKind::SubtreeMissing {
                first,
                last,
                height,
            });
        };
        // The tree holds every leaf up to `seq`, so it has this subtree.
        let computed = tree.subtree_hash(expected)?;
        if computed != row.hash {
            return Some(ProblemKind::SubtreeMismatch {
                first,
                last,
                height,
                stored: hex::encode(row.hash),
                computed: hex::encode(computed),
            });
        }
    }
    stored.next_if(|r| r.last_seq == seq).map(unexpected)
}

/// Re-derive the whole log from the stored bytes: every entry decodes and
/// sits at its own sequence number, every leaf hash matches its record, the
/// root at every checkpoint matches the signed one, every signature verifies
/// with `verifier`, and consecutive checkpoints are consistent. Stops at the
/// first problem.
///
/// The stored subtree hashes that proofs are built from
/// ([`Store::stored_subtrees`]) are not trusted: each is compared with the
/// hash derived from the entries, and a missing, altered or extra one is a
/// problem.
///
/// `progress` is called with `(entries checked, entries in total)` after
/// each page of entries. Errors are storage failures; integrity failures are
/// reported in [`VerifyReport::problem`].
///
/// Memory: about 64 bytes per entry (the tree is kept to check consistency).
pub fn verify(
    store: &dyn Store,
    verifier: &LogVerifier,
    mut progress: Option<&mut dyn FnMut(u64, u64)>,
) -> Result<VerifyReport, StoreError> {
    // Checkpoints first: every stored checkpoint covers entries already
    // committed, so reading the size afterwards covers them all.
    let checkpoints = store.checkpoints()?;
    let total = store.log_size()?;
    let mut checker = Checker {
        verifier,
        tree: Tree::new(),
        attested: None,
        good: 0,
    };
    let mut pending = checkpoints.iter().peekable();
    let report = |checker: &Checker<'_>, entries: u64, problem: Option<Problem>| VerifyReport {
        entries,
        checkpoints: checker.good,
        unsigned_tail: entries.saturating_sub(checker.attested_size()),
        problem,
    };

    let mut next = 0u64;
    loop {
        while let Some(cp) = pending.next_if(|cp| cp.size == next) {
            if let Err(p) = checker.checkpoint(cp) {
                return Ok(report(&checker, next, Some(p)));
            }
        }
        if next >= total {
            break;
        }
        let page = store.entries(next, PAGE)?;
        let Some(page_last) = page.last().map(|row| row.seq.min(total - 1)) else {
            break;
        };
        let stored = store.stored_subtrees(next..page_last + 1)?;
        let mut stored = stored.as_deref().map(|rows| rows.iter().peekable());
        for row in page {
            if row.seq >= total {
                break;
            }
            while let Some(cp) = pending.next_if(|cp| cp.size == next) {
                if let Err(p) = checker.checkpoint(cp) {
                    return Ok(report(&checker, next, Some(p)));
                }
            }
            if row.seq != next {
                let problem = Problem {
                    seq: next,
                    kind: ProblemKind::Missing {
                        next_stored: Some(row.seq),
                    },
                };
                return Ok(report(&checker, next, Some(problem)));
            }
            let entry_problem = match Entry::decode(&row.data) {
                Err(e) => Some(ProblemKind::Undecodable {
                    error: e.to_string(),
                }),
                Ok(entry) if entry.seq != row.seq => {
                    Some(ProblemKind::MovedRecord { inside: entry.seq })
                }
                Ok(_) => None,
            };
            let computed = leaf_hash(&row.data);
            let entry_problem = entry_problem.or_else(|| {
                (computed != row.leaf_hash).then(|| ProblemKind::LeafHashMismatch {
                    stored: hex::encode(row.leaf_hash),
                    computed: hex::encode(computed),
                })
            });
            if let Some(kind) = entry_problem {
                return Ok(report(&checker, next, Some(Problem { seq: next, kind })));
            }
            checker.tree.push(computed);
            if let Some(kind) = stored
                .as_mut()
                .and_then(|rows| check_subtrees(&checker.tree, next, rows))
            {
                return Ok(report(&checker, next, Some(Problem { seq: next, kind })));
            }
            next += 1;
        }
        if let Some(row) = stored.as_mut().and_then(Iterator::next) {
            let kind = ProblemKind::UnexpectedSubtree {
                last_seq: row.last_seq,
                height: row.height,
            };
            let problem = Problem {
                seq: row.last_seq,
                kind,
            };
            return Ok(report(&checker, next, Some(problem)));
        }
        if let Some(progress) = progress.as_mut() {
            progress(next, total);
        }
    }
    while let Some(cp) = pending.next_if(|cp| cp.size == next) {
        if let Err(p) = checker.checkpoint(cp) {
            return Ok(report(&checker, next, Some(p)));
        }
    }
    if let Some(cp) = pending.next() {
        let problem = Problem {
            seq: next,
            kind: ProblemKind::CheckpointBeyondLog {
                size: cp.size,
                log_size: next,
            },
        };
        return Ok(report(&checker, next, Some(problem)));
    }
    // Subtree hashes past the end, read before the size, so that a writer
    // appending meanwhile cannot make its own rows look orphaned.
    let beyond = store.stored_subtrees(next..u64::MAX)?;
    let size_now = store.log_size()?;
    if let Some(row) = beyond.iter().flatten().find(|row| row.last_seq >= size_now) {
        let problem = Problem {
            seq: row.last_seq,
            kind: ProblemKind::UnexpectedSubtree {
                last_seq: row.last_seq,
                height: row.height,
            },
        };
        return Ok(report(&checker, next, Some(problem)));
    }
    if let Some(progress) = progress.as_mut() {
        progress(next, total);
    }
    Ok(report(&checker, next, None))
}

/// An inclusion proof, ready to print as JSON (hex hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The entry's sequence number (leaf index).
    pub seq: u64,
    /// The tree size the proof is for.
    pub size: u64,
    /// The entry's leaf hash.
    pub leaf_hash: Hash,
    /// The root of the tree of `size` leaves.
    pub root: Hash,
    /// The proof, deepest sibling first.
    pub hashes: Vec<Hash>,
}

/// A consistency proof, with the two roots it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The older tree size.
    pub size1: u64,
    /// The newer tree size.
    pub size2: u64,
    /// The root of the tree of `size1` entries.
    pub root1: Hash,
    /// The root of the tree of `size2` entries.
    pub root2: Hash,
    /// The proof (RFC 6962 `PROOF`).
    pub hashes: Vec<Hash>,
}

/// Subtree hashes fetched for a few plans in one [`Store::subtree_hashes`]
/// call.
struct Fetched {
    subtrees: Vec<Subtree>,
    hashes: Vec<Hash>,
}

impl Fetched {
    /// Fetch what `plans` and `extra` need from the tree of `size`, whose
    /// root plan is among `plans`. That plan includes the subtree ending at
    /// entry `size - 1`, so when every hash is found the log holds `size`
    /// entries; the size is read only to explain a failure.
    fn fetch<S: Store + ?Sized>(
        store: &S,
        size: u64,
        plans: &[&ProofPlan],
        extra: &[Subtree],
    ) -> Result<Self, StoreError> {
        let mut subtrees: Vec<Subtree> = plans.iter().flat_map(|p| p.subtrees()).collect();
        subtrees.extend_from_slice(extra);
        subtrees.sort_unstable();
        subtrees.dedup();
        let hashes = match store.subtree_hashes(&subtrees) {
            Ok(hashes) => hashes,
            Err(e) => {
                let available = store.log_size()?;
                if size > available {
                    return Err(ProofError::SizeTooLarge { size, available }.into());
                }
                return Err(e);
            }
        };
        if hashes.len() != subtrees.len() {
            return Err(StoreError::Malformed {
                what: "subtree hashes",
                seq: 0,
                detail: format!(
                    "the store answered {} hashes for {} subtrees",
                    hashes.len(),
                    subtrees.len()
                ),
            });
        }
        Ok(Self { subtrees, hashes })
    }

    fn get(&self, subtree: Subtree) -> Result<Hash, StoreError> {
        // Every subtree a plan asks for was fetched.
        self.subtrees
            .binary_search(&subtree)
            .map(|i| self.hashes[i])
            .map_err(|_| StoreError::Malformed {
                what: "subtree hash",
                seq: subtree.last(),
                detail: "not fetched for this proof".into(),
            })
    }

    fn answer(&self, plan: &ProofPlan) -> Result<Vec<Hash>, StoreError> {
        plan.assemble(|s| self.get(s))
    }
}

pub(crate) fn prove_inclusion<S: Store + ?Sized>(
    store: &S,
    seq: u64,
    size: u64,
) -> Result<InclusionProof, StoreError> {
    let plan = ProofPlan::inclusion(seq, size)?;
    let root = ProofPlan::root(size);
    let leaf = Subtree {
        height: 0,
        index: seq,
    };
    let fetched = Fetched::fetch(store, size, &[&plan, &root], &[leaf])?;
    Ok(InclusionProof {
        seq,
        size,
        leaf_hash: fetched.get(leaf)?,
        root: fetched.answer(&root)?[0],
        hashes: fetched.answer(&plan)?,
    })
}

pub(crate) fn prove_consistency<S: Store + ?Sized>(
    store: &S,
    size1: u64,
    size2: u64,
) -> Result<ConsistencyProof, StoreError> {
    let plan = ProofPlan::consistency(size1, size2)?;
    let (root1, root2) = (ProofPlan::root(size1), ProofPlan::root(size2));
    let fetched = Fetched::fetch(store, size2, &[&plan, &root1, &root2], &[])?;
    Ok(ConsistencyProof {
        size1,
        size2,
        root1: fetched.answer(&root1)?[0],
        root2: fetched.answer(&root2)?[0],
        hashes: fetched.answer(&plan)?,
    })
}

/// Subtree hashes derived from the stored leaf hashes: the fallback for a
/// store that keeps no subtree hashes. Reads every leaf they cover.
pub(crate) fn derive_subtree_hashes<S: Store + ?Sized>(
    store: &S,
    subtrees: &[Subtree],
) -> Result<Vec<Hash>, StoreError> {
    subtrees
        .iter()
        .map(|s| {
            let (first, last) = (s.first(), s.last());
            let mut range = CompactRange::new();
            let mut next = first;
            'pages: while next <= last {
                let want = usize::try_from(last + 1 - next)
                    .unwrap_or(usize::MAX)
                    .min(PAGE * 8);
                let page = store.leaf_hashes(next, want)?;
                if page.is_empty() {
                    break;
                }
                for (seq, hash) in page.into_iter().take(want) {
                    if seq != next {
                        break 'pages;
                    }
                    range.push(hash);
                    next += 1;
                }
            }
            if next != last + 1 {
                return Err(StoreError::Malformed {
                    what: "audit log",
                    seq: next,
                    detail: format!("entry {next} is missing"),
                });
            }
            Ok(range.root())
        })
        .collect()
}

/// The inclusion proof of entry `seq` in the tree of `size` entries (e.g.
/// the latest checkpoint's size): [`Store::inclusion_proof`].
pub fn inclusion_proof(
    store: &dyn Store,
    seq: u64,
    size: u64,
) -> Result<InclusionProof, StoreError> {
    store.inclusion_proof(seq, size)
}

/// The consistency proof between the trees of `size1` and `size2` entries:
/// the hashes of [`Store::consistency_proof`].
pub fn consistency_proof(
    store: &dyn Store,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, StoreError> {
    Ok(store.consistency_proof(size1, size2)?.hashes)
}
