//! The audit log's pure core: what a log entry is, how it becomes a Merkle
//! leaf, and how anyone can check the log offline.
//!
//! * [`record`]: decision and outcome records and their canonical byte
//!   encoding (the leaf data; spec in the repository's `ARCHITECTURE.md`).
//! * [`merkle`]: RFC 6962 hashing, roots, inclusion and consistency proofs
//!   and their verification.
//! * [`checkpoint`]: C2SP signed-note checkpoints with Ed25519 keys.
//!
//! No I/O, no clock, no randomness: times and key seeds are passed in.
//! Storage lives in `warden-store`.
//!
//! # Example
//!
//! ```
//! use warden_audit::{Entry, LogSigner, Outcome, OutcomeRecord, Record, Tree, verify_inclusion};
//!
//! // Two entries, as the store would append them.
//! let mut tree = Tree::new();
//! for seq in 0..2 {
//!     let entry = Entry {
//!         seq,
//!         record: Record::Outcome(OutcomeRecord {
//!             time_unix_nanos: 1_700_000_000_000_000_000,
//!             decision_seq: 0,
//!             outcome: Outcome::Succeeded,
//!             result_hash: None,
//!             error: None,
//!         }),
//!     };
//!     let (leaf_hash, _leaf_data) = entry.leaf()?;
//!     tree.push(leaf_hash);
//! }
//!
//! // A signed checkpoint over the tree, checked with the public key only.
//! let signer = LogSigner::from_seed("example.com/warden", [7; 32])?;
//! let note = signer.sign_checkpoint(&tree.checkpoint("example.com/warden"))?;
//! let verifier = warden_audit::LogVerifier::from_key_string(&signer.verifier().to_key_string())?;
//! let checkpoint = verifier.verify_checkpoint(&note)?;
//!
//! // Entry 1 is in the checkpointed tree.
//! let proof = tree.inclusion_proof(1, checkpoint.size)?;
//! verify_inclusion(tree.leaf(1).unwrap(), 1, checkpoint.size, &proof, &checkpoint.root)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod checkpoint;
pub mod merkle;
pub mod record;

pub use checkpoint::{Checkpoint, KeyError, LogSigner, LogVerifier, NoteError};
pub use merkle::{
    CompactRange, Hash, ProofError, ProofPlan, Subtree, Tree, empty_root, leaf_hash, node_hash,
    root, root_from_inclusion_proof, verify_consistency, verify_inclusion,
};
pub use record::{
    Arguments, DecisionRecord, DecodeError, EncodeError, Entry, EventRecord, Outcome,
    OutcomeRecord, Record,
};

impl Tree {
    /// A checkpoint (unsigned) of the current tree for the log `origin`.
    pub fn checkpoint(&self, origin: &str) -> Checkpoint {
        Checkpoint {
            origin: origin.into(),
            size: self.size(),
            root: self.root(),
        }
    }
}
