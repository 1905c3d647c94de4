//! Property tests: every proof the tree produces verifies, and flipping any
//! single bit of the proof, the leaf or the root makes it fail.

use proptest::prelude::*;
use warden_audit::{Hash, Tree, leaf_hash, root, verify_consistency, verify_inclusion};

fn tree_of(size: u64, salt: u8) -> Tree {
    Tree::from_leaves((0..size).map(|i| leaf_hash(&[&i.to_be_bytes()[..], &[salt]].concat())))
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut out = *hash;
    out[bit / 8 % 32] ^= 1 << (bit % 8);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tree_root_equals_compact_range_root(size in 0u64..150, salt: u8) {
        let tree = tree_of(size, salt);
        let leaves: Vec<Hash> = (0..size).map(|i| *tree.leaf(i).unwrap()).collect();
        prop_assert_eq!(tree.root(), root(&leaves));
        for s in 0..=size {
            prop_assert_eq!(tree.root_at(s).unwrap(), root(&leaves[..s as usize]));
        }
    }

    #[test]
    fn every_inclusion_proof_verifies_and_any_bit_flip_fails(
        size in 1u64..300, index_seed: u64, salt: u8, bit in 0usize..256, which: usize,
    ) {
        let tree = tree_of(size, salt);
        let index = index_seed % size;
        let proof = tree.inclusion_proof(index, size).unwrap();
        let leaf = *tree.leaf(index).unwrap();
        let root = tree.root();
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_ok());

        prop_assert!(verify_inclusion(&flip(&leaf, bit), index, size, &proof, &root).is_err());
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &flip(&root, bit)).is_err());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let i = which % bad.len();
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
        }
        if size > 1 {
            let other = (index + 1 + which as u64 % (size - 1)) % size;
            prop_assert!(verify_inclusion(&leaf, other, size, &proof, &root).is_err());
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_any_bit_flip_fails(
        size2 in 1u64..300, size1_seed: u64, salt: u8, bit in 0usize..256, which: usize,
    ) {
        let tree = tree_of(size2, salt);
        let size1 = size1_seed % (size2 + 1);
        let proof = tree.consistency_proof(size1, size2).unwrap();
        let (r1, r2) = (tree.root_at(size1).unwrap(), tree.root_at(size2).unwrap());
        prop_assert!(verify_consistency(size1, size2, &proof, &r1, &r2).is_ok());

        if size1 > 0 {
            // A changed old root is caught, except that a size-0 tree has none.
            prop_assert!(verify_consistency(size1, size2, &proof, &flip(&r1, bit), &r2).is_err());
            prop_assert!(verify_consistency(size1, size2, &proof, &r1, &flip(&r2, bit)).is_err());
        }
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let i = which % bad.len();
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_consistency(size1, size2, &bad, &r1, &r2).is_err());
        }
    }

    #[test]
    fn a_tree_that_rewrote_history_is_inconsistent(size2 in 2u64..200, size1_seed: u64, changed_seed: u64) {
        let size1 = 1 + size1_seed % (size2 - 1);
        let honest = tree_of(size2, 0);
        let changed = changed_seed % size1;
        let forked = Tree::from_leaves((0..size2).map(|i| {
            if i == changed { leaf_hash(b"rewritten") } else { *honest.leaf(i).unwrap() }
        }));
        let proof = forked.consistency_proof(size1, size2).unwrap();
        let old_root = honest.root_at(size1).unwrap();
        prop_assert!(verify_consistency(size1, size2, &proof, &old_root, &forked.root()).is_err());
    }
}
