//! The Merkle tree of RFC 9162 (Certificate Transparency v2), section 2.1:
//! tree hashes, inclusion proofs and consistency proofs, and their checks.
//! Leaves and interior nodes are domain-separated (0x00 / 0x01 prefixes), so a
//! leaf can never be passed off as a node.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The hash of the empty tree: `SHA-256()`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH over leaf hashes (RFC 9162 §2.1.1).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof of leaf `index` in the tree of `leaves` (§2.1.3.1).
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    assert!(index < leaves.len(), "leaf {index} is not in a tree of {}", leaves.len());
    if leaves.len() == 1 {
        return Vec::new();
    }
    let k = split(leaves.len());
    if index < k {
        let mut p = inclusion_proof(index, &leaves[..k]);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = inclusion_proof(index - k, &leaves[k..]);
        p.push(root(&leaves[..k]));
        p
    }
}

/// Checks an inclusion proof (§2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// The consistency proof between the first `old` leaves and all `leaves` (§2.1.4.1).
pub fn consistency_proof(old: usize, leaves: &[Hash]) -> Vec<Hash> {
    assert!(old <= leaves.len());
    if old == 0 || old == leaves.len() {
        return Vec::new();
    }
    subproof(old, leaves, true)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete { Vec::new() } else { vec![root(leaves)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], complete);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(root(&leaves[..k]));
        p
    }
}

/// Checks a consistency proof (§2.1.4.2).
pub fn verify_consistency(old: u64, new: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if old.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == *old_root && sr == *new_root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("leaf {i}").as_bytes())).collect()
    }

    #[test]
    fn known_roots() {
        // RFC 6962/9162 reference values: the empty tree, and leaf_hash("")
        assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex::encode(leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
        // a three-leaf tree is node(node(l0, l1), l2)
        let l = leaves(3);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
    }

    #[test]
    fn every_inclusion_proof_checks_and_a_wrong_one_does_not() {
        for n in 1..=33 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let p = inclusion_proof(i, &l);
                assert!(verify_inclusion(i as u64, n as u64, &l[i], &p, &r), "n={n} i={i}");
                assert!(!verify_inclusion(i as u64, n as u64, &leaf_hash(b"other"), &p, &r));
                for j in 0..p.len() {
                    let mut bad = p.clone();
                    bad[j][0] ^= 1;
                    assert!(!verify_inclusion(i as u64, n as u64, &l[i], &bad, &r));
                }
                let mut longer = p.clone();
                longer.push(r);
                assert!(!verify_inclusion(i as u64, n as u64, &l[i], &longer, &r));
            }
        }
    }

    #[test]
    fn every_consistency_proof_checks_and_a_fork_does_not() {
        for n in 1..=33 {
            let l = leaves(n);
            let r = root(&l);
            for m in 1..=n {
                let p = consistency_proof(m, &l);
                let old = root(&l[..m]);
                assert!(verify_consistency(m as u64, n as u64, &old, &r, &p), "m={m} n={n}");
                let forked = leaf_hash(b"forked");
                assert!(!verify_consistency(m as u64, n as u64, &forked, &r, &p) || m == n && forked == r);
                for j in 0..p.len() {
                    let mut bad = p.clone();
                    bad[j][31] ^= 0x80;
                    assert!(!verify_consistency(m as u64, n as u64, &old, &r, &bad));
                }
            }
        }
    }
}
