//! Offline verification of a stored log, and proofs, over any [`Store`].

use warden_audit::{Entry, Hash, LogVerifier, Tree, leaf_hash, verify_consistency};

use crate::{Store, StoreError, StoredCheckpoint};

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
    /// the previous good checkpoint).
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

/// Re-derive the whole log from the stored bytes: every entry decodes and
/// sits at its own sequence number, every leaf hash matches its record, the
/// root at every checkpoint matches the signed one, every signature verifies
/// with `verifier`, and consecutive checkpoints are consistent. Stops at the
/// first problem.
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
        if page.is_empty() {
            break;
        }
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
            next += 1;
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

/// Load the stored leaf hashes of `[0, size)` into a tree.
fn tree_of(store: &dyn Store, size: u64) -> Result<Tree, StoreError> {
    let mut tree = Tree::new();
    while tree.size() < size {
        let want = usize::try_from(size - tree.size())
            .unwrap_or(usize::MAX)
            .min(PAGE * 8);
        let page = store.leaf_hashes(tree.size(), want)?;
        if page.is_empty() {
            break;
        }
        for (seq, hash) in page {
            if seq != tree.size() {
                return Err(StoreError::Malformed {
                    what: "audit log",
                    seq: tree.size(),
                    detail: format!(
                        "entry {} is missing (next stored entry is {seq})",
                        tree.size()
                    ),
                });
            }
            tree.push(hash);
            if tree.size() == size {
                break;
            }
        }
    }
    Ok(tree)
}

/// The inclusion proof of entry `seq` in the tree of `size` entries (e.g.
/// the latest checkpoint's size). Reads the stored leaf hashes of
/// `[0, size)`: `O(size)` I/O, then `O(log² size)` hashing.
pub fn inclusion_proof(
    store: &dyn Store,
    seq: u64,
    size: u64,
) -> Result<InclusionProof, StoreError> {
    let tree = tree_of(store, size)?;
    let hashes = tree.inclusion_proof(seq, size)?;
    let leaf_hash = *tree
        .leaf(seq)
        .ok_or(warden_audit::ProofError::IndexOutOfRange { index: seq, size })?;
    Ok(InclusionProof {
        seq,
        size,
        leaf_hash,
        root: tree.root_at(size)?,
        hashes,
    })
}

/// The consistency proof between the trees of `size1` and `size2` entries.
pub fn consistency_proof(
    store: &dyn Store,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, StoreError> {
    Ok(tree_of(store, size2)?.consistency_proof(size1, size2)?)
}
