//! RFC 6962 (Certificate Transparency) Merkle tree hashing, inclusion and
//! consistency proofs, and their verification.
//!
//! * leaf hash: `SHA-256(0x00 ‖ data)`
//! * node hash: `SHA-256(0x01 ‖ left ‖ right)`
//! * a tree of `n > 1` leaves splits at `k`, the largest power of two `< n`:
//!   the left subtree holds leaves `[0, k)`, the right one `[k, n)`
//! * the empty tree's root is `SHA-256("")`
//!
//! Proof generation and verification follow RFC 6962 §2.1.1–2.1.2 and the
//! verification algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: leaf hashes, node hashes and tree roots.
pub type Hash = [u8; 32];

/// Why a proof was refused, or could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error(
        "leaf index {index} is outside a tree of size {size}; hint: valid indexes are 0..{size}"
    )]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size the proof is for.
        size: u64,
    },
    /// The requested tree size is larger than the tree that is known.
    #[error(
        "tree size {size} is larger than the {available} leaves available; hint: ask for a size <= {available}"
    )]
    SizeTooLarge {
        /// The requested size.
        size: u64,
        /// How many leaves are known.
        available: u64,
    },
    /// A consistency proof was asked from a larger to a smaller tree.
    #[error(
        "consistency from size {size1} to the smaller size {size2} is undefined; hint: the first size must be <= the second"
    )]
    SizesReversed {
        /// The first (older) tree size.
        size1: u64,
        /// The second (newer) tree size.
        size2: u64,
    },
    /// The proof does not have the number of hashes the sizes require.
    #[error(
        "the proof has {got} hashes but a tree of this shape needs {want}; hint: the proof was cut, padded or made for other sizes"
    )]
    WrongLength {
        /// Hashes in the proof.
        got: usize,
        /// Hashes the tree shape requires.
        want: usize,
    },
    /// The proof leads to a root other than the expected one.
    #[error(
        "the proof leads to root {computed} but {expected} was expected; hint: the leaf, the proof or the root was altered"
    )]
    RootMismatch {
        /// Hex of the root the proof leads to.
        computed: String,
        /// Hex of the root it was checked against.
        expected: String,
    },
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The RFC 6962 hash of one leaf: `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// The RFC 6962 hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    Sha256::digest(buf).into()
}

/// The largest power of two strictly less than `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// A perfect, aligned subtree of the log: the `2^height` leaves
/// `[index·2^height, (index+1)·2^height)`. Height 0 is a single leaf.
///
/// Every hash in an RFC 6962 proof, and every root, is either such a
/// subtree's hash or folds a few of them (see [`ProofPlan`]), so a store
/// that keeps them can serve proofs without reading every leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subtree {
    /// Log2 of the number of leaves covered.
    pub height: u32,
    /// Position among the subtrees of this height, from the left.
    pub index: u64,
}

impl Subtree {
    /// The subtree of `height` whose last leaf is `last`, if there is one
    /// (`last + 1` must be a multiple of `2^height`).
    pub fn ending_at(last: u64, height: u32) -> Option<Self> {
        let end = last.checked_add(1)?;
        // end >= 1 is a multiple of 2^height, so end >> height >= 1.
        (height < 64 && end.trailing_zeros() >= height).then(|| Self {
            height,
            index: (end >> height) - 1,
        })
    }

    /// The subtrees of height >= 1 that appending leaf `seq` completes,
    /// lowest first: one per trailing one bit of `seq`.
    pub fn completed_by(seq: u64) -> impl Iterator<Item = Self> {
        (1..=seq.trailing_ones()).map(move |height| Self {
            height,
            index: seq >> height,
        })
    }

    /// The first leaf covered.
    pub fn first(&self) -> u64 {
        self.index << self.height
    }

    /// The last leaf covered (the one whose append completed the subtree).
    pub fn last(&self) -> u64 {
        self.first() + ((1u64 << self.height) - 1)
    }
}

/// The perfect subtrees whose hashes fold into `MTH(D[begin:end])`, largest
/// (leftmost) first. `begin` is a multiple of a power of two `>= end -
/// begin`, which holds for every range an RFC 6962 proof or root uses.
fn range_subtrees(begin: u64, end: u64) -> impl Iterator<Item = Subtree> {
    let n = end - begin;
    debug_assert!(n == 0 || begin.trailing_zeros() >= 64 - (n - 1).leading_zeros());
    let mut at = begin;
    (0..64u32)
        .rev()
        .filter(move |h| n >> h & 1 == 1)
        .map(move |height| {
            let s = Subtree {
                height,
                index: at >> height,
            };
            at += 1 << height;
            s
        })
}

/// `MTH` of a range from the hashes of its perfect subtrees, largest first.
fn fold_peaks(peaks: &[Hash]) -> Hash {
    let mut iter = peaks.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, peak| node_hash(peak, &acc))
}

/// Which perfect subtree hashes make up a proof or a root, and how they
/// combine: plan, look up [`ProofPlan::subtrees`], then
/// [`ProofPlan::assemble`]. [`Tree`] answers from memory this way, and a
/// store that keeps every perfect subtree hash answers with `O(log n)`
/// lookups instead of reading `n` leaves.
///
/// Each output hash is the root of one range of leaves; a range that is
/// not itself a perfect subtree (only on the tree's right edge) folds the
/// perfect subtrees of its binary decomposition, as RFC 6962 splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPlan {
    /// Per output hash, in output order: the leaf range `[begin, end)`.
    ranges: Vec<(u64, u64)>,
}

impl ProofPlan {
    /// The inclusion proof (RFC 6962 `PATH`) of leaf `index` in the tree of
    /// `size`, deepest sibling first.
    pub fn inclusion(index: u64, size: u64) -> Result<Self, ProofError> {
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let mut ranges = Vec::with_capacity(64);
        let (mut begin, mut end, mut m) = (0u64, size, index);
        while end - begin > 1 {
            let k = split(end - begin);
            if m < k {
                ranges.push((begin + k, end));
                end = begin + k;
            } else {
                ranges.push((begin, begin + k));
                begin += k;
                m -= k;
            }
        }
        ranges.reverse();
        Ok(Self { ranges })
    }

    /// The consistency proof (RFC 6962 `PROOF`) that the tree of `size1` is
    /// a prefix of the tree of `size2`.
    pub fn consistency(size1: u64, size2: u64) -> Result<Self, ProofError> {
        if size1 > size2 {
            return Err(ProofError::SizesReversed { size1, size2 });
        }
        let mut ranges = Vec::with_capacity(64);
        if size1 == 0 || size1 == size2 {
            return Ok(Self { ranges });
        }
        // SUBPROOF(m, D[begin:end], whole) unrolled: each step adds one
        // hash, collected top-down and reversed at the end.
        let (mut begin, mut end, mut m, mut whole) = (0u64, size2, size1, true);
        loop {
            let n = end - begin;
            if m == n {
                if !whole {
                    ranges.push((begin, end));
                }
                break;
            }
            let k = split(n);
            if m <= k {
                ranges.push((begin + k, end));
                end = begin + k;
            } else {
                ranges.push((begin, begin + k));
                begin += k;
                m -= k;
                whole = false;
            }
        }
        ranges.reverse();
        Ok(Self { ranges })
    }

    /// The single hash `MTH(D[0:size])`, the root of the tree of `size`.
    pub fn root(size: u64) -> Self {
        Self {
            ranges: vec![(0, size)],
        }
    }

    /// Number of hashes [`ProofPlan::assemble`] returns.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the plan yields no hashes (e.g. a proof within one leaf).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many leaves the tree must hold for the plan to be answered.
    pub fn leaves_needed(&self) -> u64 {
        self.ranges.iter().map(|&(_, end)| end).max().unwrap_or(0)
    }

    /// Every perfect subtree whose hash the plan needs, each once, sorted.
    pub fn subtrees(&self) -> Vec<Subtree> {
        let mut all: Vec<Subtree> = self
            .ranges
            .iter()
            .flat_map(|&(begin, end)| range_subtrees(begin, end))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The hashes, given each needed subtree's hash by `hash_of`.
    pub fn assemble<E>(
        &self,
        mut hash_of: impl FnMut(Subtree) -> Result<Hash, E>,
    ) -> Result<Vec<Hash>, E> {
        let mut peaks = Vec::with_capacity(64);
        let mut out = Vec::with_capacity(self.ranges.len());
        for &(begin, end) in &self.ranges {
            peaks.clear();
            for s in range_subtrees(begin, end) {
                peaks.push(hash_of(s)?);
            }
            out.push(fold_peaks(&peaks));
        }
        Ok(out)
    }
}

/// The root of a tree of `leaves` (leaf hashes, not leaf data).
pub fn root(leaves: &[Hash]) -> Hash {
    let mut range = CompactRange::new();
    for leaf in leaves {
        range.push(*leaf);
    }
    range.root()
}

/// The running root of an append-only log in `O(log n)` memory.
///
/// Keeps only the roots of the perfect subtrees ("peaks") that cover
/// `[0, size)`; appending a leaf merges equal-sized peaks, so `n` appends
/// cost `n` node hashes in total, and [`CompactRange::root`] folds the peaks
/// in `O(log n)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    /// Peaks from the largest (leftmost) to the smallest (rightmost).
    peaks: Vec<Hash>,
}

impl CompactRange {
    /// An empty range (tree size 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuild a range from its size and peaks, as returned by
    /// [`CompactRange::peaks`]. `None` when the number of peaks does not
    /// match `size` (one peak per set bit).
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Option<Self> {
        (peaks.len() == size.count_ones() as usize).then_some(Self { size, peaks })
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the perfect subtrees covering `[0, size)`, largest first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Append one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_reporting(leaf, |_, _| {});
    }

    /// Append one leaf hash, and call `completed` with each perfect subtree
    /// of height >= 1 it completes and that subtree's hash, lowest first
    /// (the subtrees of [`Subtree::completed_by`] the leaf's index).
    pub fn push_reporting(&mut self, leaf: Hash, mut completed: impl FnMut(Subtree, &Hash)) {
        let index = self.size;
        let mut hash = leaf;
        let mut height = 0;
        while index >> height & 1 == 1 {
            // A peak of the same height exists: merge it with the new one.
            let Some(left) = self.peaks.pop() else { break };
            hash = node_hash(&left, &hash);
            height += 1;
            completed(
                Subtree {
                    height,
                    index: index >> height,
                },
                &hash,
            );
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// The RFC 6962 root of the `size` leaves pushed so far.
    pub fn root(&self) -> Hash {
        fold_peaks(&self.peaks)
    }
}

/// An in-memory Merkle tree that keeps every perfect subtree hash, so roots
/// of any earlier size and proofs cost `O(log² n)` hashes at most.
///
/// Memory: about two hashes (64 bytes) per leaf.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// `levels[h][i]` is the root of the perfect subtree of height `h`
    /// covering leaves `[i·2^h, (i+1)·2^h)`; `levels[0]` are the leaf hashes.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of the given leaf hashes.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The leaf hash at `index`, if any.
    pub fn leaf(&self, index: u64) -> Option<&Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?)
    }

    /// Append one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut height = 0;
        while self.levels[height].len().is_multiple_of(2) {
            let level = &self.levels[height];
            let n = level.len();
            let parent = node_hash(&level[n - 2], &level[n - 1]);
            if self.levels.len() == height + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[height + 1].push(parent);
            height += 1;
        }
    }

    /// The root of the current tree.
    pub fn root(&self) -> Hash {
        // Size is always available.
        self.root_at(self.size()).unwrap_or_else(|_| empty_root())
    }

    /// The root of the tree as it was when it had `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        Ok(self.answer(&ProofPlan::root(size))[0])
    }

    /// The inclusion proof (RFC 6962 `PATH`) of leaf `index` in the tree of
    /// size `size`, deepest sibling first.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        Ok(self.answer(&ProofPlan::inclusion(index, size)?))
    }

    /// The consistency proof (RFC 6962 `PROOF`) that the tree of size
    /// `size1` is a prefix of the tree of size `size2`.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size2)?;
        Ok(self.answer(&ProofPlan::consistency(size1, size2)?))
    }

    /// The hash of a perfect subtree, if the tree holds all its leaves.
    pub fn subtree_hash(&self, subtree: Subtree) -> Option<Hash> {
        let level = self.levels.get(usize::try_from(subtree.height).ok()?)?;
        level.get(usize::try_from(subtree.index).ok()?).copied()
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        let available = self.size();
        if size > available {
            return Err(ProofError::SizeTooLarge { size, available });
        }
        Ok(())
    }

    /// Answer a plan whose leaves are all in the tree (sizes checked).
    fn answer(&self, plan: &ProofPlan) -> Vec<Hash> {
        let result: Result<_, std::convert::Infallible> = plan.assemble(|s| {
            // In range: every perfect subtree inside the tree is stored.
            Ok(self.levels[s.height as usize][s.index as usize])
        });
        let Ok(hashes) = result;
        hashes
    }
}

fn mismatch(computed: &Hash, expected: &Hash) -> ProofError {
    ProofError::RootMismatch {
        computed: hex::encode(computed),
        expected: hex::encode(expected),
    }
}

/// The number of hashes in the inclusion proof of `index` in a tree of `size`.
fn inclusion_len(index: u64, size: u64) -> usize {
    // Levels where the path has a sibling: bits below the highest differing
    // bit of index and size-1, plus the ones above where index's subtree is
    // complete (RFC 9162 §2.1.3.2 walks the same way).
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// The root an inclusion proof leads to, for `leaf` at `index` in a tree
/// of `size` (RFC 9162 §2.1.3.2).
pub fn root_from_inclusion_proof(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let want = inclusion_len(index, size);
    if proof.len() != want {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // The length check above makes the walk end exactly at the root.
    debug_assert_eq!(snode, 0);
    Ok(r)
}

/// Check that `leaf` is the leaf at `index` of the tree of `size` whose
/// root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(leaf, index, size, proof)?;
    if &computed != root {
        return Err(mismatch(&computed, root));
    }
    Ok(())
}

/// Check that the tree of `size1` leaves with root `root1` is a prefix of
/// the tree of `size2` leaves with root `root2` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesReversed { size1, size2 });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: 0,
            });
        }
        if root1 != root2 {
            return Err(mismatch(root1, root2));
        }
        return Ok(());
    }
    if size1 == 0 {
        // The empty tree is a prefix of every tree.
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: 0,
            });
        }
        return Ok(());
    }

    // 0 < size1 < size2. Skip the levels where the old tree's right edge is
    // a complete subtree: its root is root1 itself (when size1 is a power of
    // two) or a hash already in the proof.
    let shift = size1.trailing_zeros();
    let (mut fnode, mut snode) = ((size1 - 1) >> shift, (size2 - 1) >> shift);
    let seed_from_root1 = size1.is_power_of_two();
    let inner = (64 - (fnode ^ snode).leading_zeros()) as usize;
    let border = (fnode >> inner).count_ones() as usize;
    let want = inner + border + usize::from(!seed_from_root1);
    if proof.len() != want {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    let (seed, rest) = if seed_from_root1 {
        (*root1, proof)
    } else {
        (proof[0], &proof[1..])
    };
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if &fr != root1 {
        return Err(mismatch(&fr, root1));
    }
    if &sr != root2 {
        return Err(mismatch(&sr, root2));
    }
    Ok(())
}
