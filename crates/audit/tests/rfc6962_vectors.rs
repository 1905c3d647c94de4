//! Known-answer tests from the Certificate Transparency / transparency-dev
//! test suites (Go `github.com/transparency-dev/merkle`, files
//! `rfc6962/rfc6962_test.go` and `proof/verify_test.go`).

use warden_audit::{
    Hash, ProofError, Tree, empty_root, leaf_hash, node_hash, root, root_from_inclusion_proof,
    verify_consistency, verify_inclusion,
};

fn h(hex_text: &str) -> Hash {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).expect("test vector is 64 hex digits");
    out
}

/// The leaf data of the 8-leaf reference tree.
fn leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|x| hex::decode(x).expect("hex"))
    .collect()
}

/// Roots of the trees made of the first 1..=8 reference leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf number, 1-based as in the Go suite; tree size; proof).
fn inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            3,
            3,
            vec![h(
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            )],
        ),
        (
            2,
            5,
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

/// (size1, size2, proof).
fn consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (
            6,
            7,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
    ]
}

fn reference_tree() -> Tree {
    Tree::from_leaves(leaves().iter().map(|d| leaf_hash(d)))
}

#[test]
fn hasher_matches_rfc6962_known_answers() {
    assert_eq!(
        empty_root(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(
        leaf_hash(b""),
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    );
    assert_eq!(
        leaf_hash(b"L123456"),
        h("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    );
    // The Go suite hashes two 4-byte strings as children; node_hash takes
    // 32-byte children, so rebuild that preimage by hand.
    use sha2::{Digest, Sha256};
    let got: Hash = Sha256::digest([&[0x01u8][..], b"N123", b"N456"].concat()).into();
    assert_eq!(
        got,
        h("aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb")
    );
}

#[test]
fn roots_of_one_to_eight_leaves_match_known_roots() {
    let hashes: Vec<Hash> = leaves().iter().map(|d| leaf_hash(d)).collect();
    let tree = reference_tree();
    for size in 1..=8u64 {
        let want = h(ROOTS[size as usize - 1]);
        assert_eq!(
            root(&hashes[..size as usize]),
            want,
            "compact range root, size {size}"
        );
        assert_eq!(
            tree.root_at(size).expect("size within tree"),
            want,
            "tree root_at, size {size}"
        );
        assert_eq!(
            Tree::from_leaves(hashes[..size as usize].iter().copied()).root(),
            want
        );
    }
    assert_eq!(root(&[]), empty_root());
}

#[test]
fn inclusion_proofs_match_known_vectors_and_verify() {
    let tree = reference_tree();
    for (leaf, size, proof) in inclusion_vectors() {
        let index = leaf - 1;
        let got = tree
            .inclusion_proof(index, size)
            .expect("proof within tree");
        assert_eq!(got, proof, "inclusion proof of leaf {index} in size {size}");
        let leaf_h = *tree.leaf(index).expect("leaf exists");
        let root_h = h(ROOTS[size as usize - 1]);
        verify_inclusion(&leaf_h, index, size, &proof, &root_h).expect("known good proof verifies");
        assert_eq!(
            root_from_inclusion_proof(&leaf_h, index, size, &proof),
            Ok(root_h)
        );
    }
}

#[test]
fn corrupted_inclusion_proofs_are_refused() {
    let some_hash = h("abacaba000000000000000000000000000000000000000000060061e00123456");
    for (leaf, size, proof) in inclusion_vectors() {
        let index = leaf - 1;
        let leaf_h = leaf_hash(&leaves()[index as usize]);
        let root_h = h(ROOTS[size as usize - 1]);
        let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>, String)> = vec![
            (
                index.wrapping_sub(1),
                size,
                leaf_h,
                root_h,
                proof.clone(),
                "index - 1".into(),
            ),
            (
                index + 1,
                size,
                leaf_h,
                root_h,
                proof.clone(),
                "index + 1".into(),
            ),
            (
                index ^ 2,
                size,
                leaf_h,
                root_h,
                proof.clone(),
                "index ^ 2".into(),
            ),
            (
                index,
                size * 2,
                leaf_h,
                root_h,
                proof.clone(),
                "size * 2".into(),
            ),
            (
                index,
                size / 2,
                leaf_h,
                root_h,
                proof.clone(),
                "size / 2".into(),
            ),
            (
                index,
                size,
                some_hash,
                root_h,
                proof.clone(),
                "wrong leaf".into(),
            ),
            (
                index,
                size,
                leaf_h,
                empty_root(),
                proof.clone(),
                "empty root".into(),
            ),
            (
                index,
                size,
                leaf_h,
                some_hash,
                proof.clone(),
                "random root".into(),
            ),
            (
                index,
                size,
                leaf_h,
                root_h,
                [proof.clone(), vec![root_h]].concat(),
                "trailing root".into(),
            ),
            (
                index,
                size,
                leaf_h,
                root_h,
                [vec![root_h], proof.clone()].concat(),
                "preceding root".into(),
            ),
        ];
        for i in 0..proof.len() {
            let mut wrong = proof.clone();
            wrong[i][0] ^= 8;
            probes.push((
                index,
                size,
                leaf_h,
                root_h,
                wrong,
                format!("proof[{i}] bit 3"),
            ));
        }
        if !proof.is_empty() {
            probes.push((
                index,
                size,
                leaf_h,
                root_h,
                proof[..proof.len() - 1].to_vec(),
                "removed".into(),
            ));
        }
        for (i, s, l, r, p, desc) in probes {
            assert!(
                verify_inclusion(&l, i, s, &p, &r).is_err(),
                "probe {desc:?} on leaf {index} size {size} verified"
            );
        }
    }
}

#[test]
fn consistency_proofs_match_known_vectors_and_verify() {
    let tree = reference_tree();
    for (size1, size2, proof) in consistency_vectors() {
        let got = tree
            .consistency_proof(size1, size2)
            .expect("sizes within tree");
        assert_eq!(got, proof, "consistency proof {size1} -> {size2}");
        let (r1, r2) = (h(ROOTS[size1 as usize - 1]), h(ROOTS[size2 as usize - 1]));
        verify_consistency(size1, size2, &proof, &r1, &r2).expect("known good proof verifies");
    }
}

#[test]
fn corrupted_consistency_proofs_are_refused() {
    for (size1, size2, proof) in consistency_vectors() {
        if proof.is_empty() {
            continue;
        }
        let (r1, r2) = (h(ROOTS[size1 as usize - 1]), h(ROOTS[size2 as usize - 1]));
        let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>, String)> = vec![
            (size1 - 1, size2, r1, r2, proof.clone(), "size1 - 1".into()),
            (size1 + 1, size2, r1, r2, proof.clone(), "size1 + 1".into()),
            (size1 ^ 2, size2, r1, r2, proof.clone(), "size1 ^ 2".into()),
            (size1, size2 * 2, r1, r2, proof.clone(), "size2 * 2".into()),
            (size1, size2 / 2, r1, r2, proof.clone(), "size2 / 2".into()),
            (size1, size2, r2, r1, proof.clone(), "swapped roots".into()),
            (
                size1,
                size2,
                empty_root(),
                r2,
                proof.clone(),
                "wrong root1".into(),
            ),
            (
                size1,
                size2,
                r1,
                empty_root(),
                proof.clone(),
                "wrong root2".into(),
            ),
            (size1, size2, r1, r2, vec![], "empty proof".into()),
            (
                size1,
                size2,
                r1,
                r2,
                [proof.clone(), vec![r1]].concat(),
                "trailing root1".into(),
            ),
            (
                size1,
                size2,
                r1,
                r2,
                [vec![r2], proof.clone()].concat(),
                "preceding root2".into(),
            ),
            (
                size1,
                size2,
                r1,
                r2,
                [vec![proof[0]], proof.clone()].concat(),
                "preceding proof[0]".into(),
            ),
            (
                size1,
                size2,
                r1,
                r2,
                proof[..proof.len() - 1].to_vec(),
                "truncated".into(),
            ),
        ];
        for i in 0..proof.len() {
            let mut wrong = proof.clone();
            wrong[i][0] ^= 16;
            probes.push((size1, size2, r1, r2, wrong, format!("proof[{i}] bit 4")));
        }
        for (s1, s2, a, b, p, desc) in probes {
            assert!(
                verify_consistency(s1, s2, &p, &a, &b).is_err(),
                "probe {desc:?} on {size1} -> {size2} verified"
            );
        }
    }
}

#[test]
fn trivial_consistency_cases_follow_the_reference_suite() {
    let (a, b) = (h(ROOTS[0]), h(ROOTS[1]));
    let e = empty_root();
    // Always consistent.
    assert!(verify_consistency(0, 0, &[], &a, &a).is_ok());
    assert!(verify_consistency(0, 1, &[], &a, &b).is_ok());
    assert!(verify_consistency(1, 1, &[], &b, &b).is_ok());
    // Refused.
    assert!(verify_consistency(0, 0, &[], &a, &b).is_err());
    assert!(verify_consistency(1, 1, &[], &a, &b).is_err());
    assert!(matches!(
        verify_consistency(1, 0, &[], &a, &b),
        Err(ProofError::SizesReversed { .. })
    ));
    assert!(verify_consistency(2, 1, &[], &a, &b).is_err());
    assert!(verify_consistency(1, 2, &[], &a, &b).is_err());
    assert!(verify_consistency(0, 0, &[e], &e, &e).is_err());
    assert!(verify_consistency(0, 1, &[e], &e, &e).is_err());
    assert!(verify_consistency(1, 1, &[e], &e, &e).is_err());
}

#[test]
fn out_of_range_requests_are_errors_not_panics() {
    let tree = reference_tree();
    assert_eq!(
        tree.inclusion_proof(8, 8),
        Err(ProofError::IndexOutOfRange { index: 8, size: 8 })
    );
    assert_eq!(
        tree.inclusion_proof(0, 9),
        Err(ProofError::SizeTooLarge {
            size: 9,
            available: 8
        })
    );
    assert_eq!(
        tree.consistency_proof(5, 4),
        Err(ProofError::SizesReversed { size1: 5, size2: 4 })
    );
    assert!(tree.root_at(9).is_err());
    let leaf = leaf_hash(b"x");
    assert!(verify_inclusion(&leaf, 0, 0, &[], &leaf).is_err());
    assert!(verify_inclusion(&leaf, 2, 1, &[], &leaf).is_err());
    assert!(verify_inclusion(&leaf, u64::MAX, u64::MAX, &[], &leaf).is_err());
    // Single-entry tree: root equals the leaf hash and the proof is empty.
    assert!(verify_inclusion(&leaf, 0, 1, &[], &leaf).is_ok());
    assert!(verify_inclusion(&leaf, 0, 1, &[], &node_hash(&leaf, &leaf)).is_err());
}
