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

/// The RFC 9162 root of leaves appended one at a time, in O(log n) memory:
/// a stack of the roots of perfect subtrees, sizes strictly decreasing. The
/// tree hash splits at the largest power of two below n, which is exactly
/// these subtrees folded from the right. Equal to [`root`] over the same leaves.
#[derive(Debug, Default, Clone)]
pub struct RootBuilder {
    stack: Vec<(u64, Hash)>,
    len: u64,
}

impl RootBuilder {
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (1u64, leaf);
        while let Some(&(size, left)) = self.stack.last()
            && size == node.0
        {
            self.stack.pop();
            node = (size * 2, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.len += 1;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The roots of the perfect subtrees, largest first, with their sizes in
    /// leaves: all that appending and the root need.
    pub fn frontier(&self) -> &[(u64, Hash)] {
        &self.stack
    }

    /// The builder of a tree of `len` leaves whose perfect subtrees are
    /// `frontier` ([`RootBuilder::frontier`]); `None` when they cannot be
    /// (their sizes are the powers of two that make up `len`, largest first).
    pub fn from_frontier(len: u64, frontier: Vec<(u64, Hash)>) -> Option<Self> {
        let mut rest = len;
        for &(size, _) in &frontier {
            // each the highest bit left of `len`
            if rest == 0 || size != 1u64 << rest.ilog2() {
                return None;
            }
            rest -= size;
        }
        (rest == 0).then_some(RootBuilder { stack: frontier, len })
    }

    pub fn root(&self) -> Hash {
        let mut nodes = self.stack.iter().rev();
        let Some(&(_, mut acc)) = nodes.next() else { return empty_root() };
        for (_, left) in nodes {
            acc = node_hash(left, &acc);
        }
        acc
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

    #[test]
    fn a_builder_rebuilt_from_its_frontier_goes_on_as_the_tree() {
        let all = leaves(23);
        for cut in 0..all.len() {
            let mut b = RootBuilder::default();
            all[..cut].iter().for_each(|l| b.push(*l));
            let mut again = RootBuilder::from_frontier(cut as u64, b.frontier().to_vec()).unwrap();
            all[cut..].iter().for_each(|l| again.push(*l));
            assert_eq!(again.root(), root(&all), "cut at {cut}");
        }
        let mut b = RootBuilder::default();
        all[..6].iter().for_each(|l| b.push(*l)); // subtrees of 4 and 2
        let f = b.frontier().to_vec();
        assert!(RootBuilder::from_frontier(6, f.clone()).is_some());
        assert!(RootBuilder::from_frontier(7, f.clone()).is_none());
        assert!(RootBuilder::from_frontier(5, f.clone()).is_none());
        assert!(RootBuilder::from_frontier(6, f.into_iter().rev().collect()).is_none());
        assert!(RootBuilder::from_frontier(0, Vec::new()).is_some());
    }

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

    /// The Certificate Transparency reference tree (RFC 6962 test data, the
    /// same hashing as RFC 9162): eight leaves, the root at every size, and two
    /// published inclusion proofs.
    #[test]
    fn rfc6962_reference_vectors() {
        let data = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let l: Vec<Hash> = data.iter().map(|d| leaf_hash(&hex::decode(d).unwrap())).collect();
        for (n, expected) in roots.iter().enumerate() {
            assert_eq!(hex::encode(root(&l[..n + 1])), *expected, "size {}", n + 1);
        }
        let proofs: [(usize, [&str; 3]); 2] = [
            (
                0,
                [
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                [
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (index, proof) in proofs {
            let got: Vec<String> = inclusion_proof(index, &l).iter().map(hex::encode).collect();
            assert_eq!(got, proof, "inclusion proof of leaf {index} in 8");
        }
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

    #[test]
    fn streaming_root_equals_the_tree_hash() {
        for n in 0..70u32 {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            let mut b = RootBuilder::default();
            for l in &leaves {
                b.push(*l);
            }
            assert_eq!((b.root(), b.len()), (root(&leaves), n as u64), "n = {n}");
        }
    }
}
