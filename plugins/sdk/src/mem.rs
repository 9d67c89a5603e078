//! `memcmp` for the plugins' Wasm builds.
//!
//! On wasm32 the C library's `memcmp` (musl's) compares one byte per loop
//! turn, and compiled Rust calls it for every comparison of two strings or
//! byte slices: key lookups in hash maps, binary searches, tree inserts,
//! `==` on `&str`. A profile of the benchmark pipeline with the plugins'
//! symbols (docs/performance.md) put 6 % of all CPU time in it. This one
//! compares eight bytes at a time. The linker takes a function from the C
//! library's archive only for a symbol nothing else defines, so every
//! plugin built with this crate uses this one.

use std::cmp::Ordering;

/// The C library's `memcmp`: negative, zero or positive as the `n` bytes at
/// `a` sort before, the same as, or after the `n` bytes at `b` (bytes
/// compared as unsigned).
///
/// # Safety
/// As for C's `memcmp`: both regions are readable for `n` bytes.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // the C ABI takes raw pointers
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n == 0 {
        // the pointers may be anything, even null
        return 0;
    }
    // SAFETY: the caller passes two regions readable for `n` bytes (C's contract)
    let (a, b) = unsafe { (std::slice::from_raw_parts(a, n), std::slice::from_raw_parts(b, n)) };
    compare(a, b) as i32
}

/// `a.cmp(b)` for two slices of one length, as -1, 0 or 1, eight bytes at a
/// time. Written with integer comparisons only: a slice comparison here
/// would call `memcmp`, that is, itself.
pub fn compare(a: &[u8], b: &[u8]) -> i8 {
    debug_assert_eq!(a.len(), b.len());
    let (words_a, words_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let (rest_a, rest_b) = (words_a.remainder(), words_b.remainder());
    for (x, y) in words_a.zip(words_b) {
        // big-endian: the first byte is the most significant, so integer order is byte order
        let x = u64::from_be_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
        let y = u64::from_be_bytes([y[0], y[1], y[2], y[3], y[4], y[5], y[6], y[7]]);
        if x != y {
            return if x < y { -1 } else { 1 };
        }
    }
    for (x, y) in rest_a.iter().zip(rest_b) {
        match x.cmp(y) {
            Ordering::Less => return -1,
            Ordering::Greater => return 1,
            Ordering::Equal => {}
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::compare;

    /// Every length up to 40 and a difference at every position, both
    /// ways, with bytes on both sides of 0x80 (unsigned order).
    #[test]
    fn compares_as_slices_do() {
        for n in 0..40 {
            let base: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            assert_eq!(compare(&base, &base), 0);
            for at in 0..n {
                for byte in [0u8, 1, 0x7f, 0x80, 0xfe, 0xff] {
                    let mut other = base.clone();
                    other[at] = byte;
                    let want = base.cmp(&other) as i8;
                    assert_eq!(compare(&base, &other), want, "{base:?} {other:?}");
                    assert_eq!(compare(&other, &base), -want, "{other:?} {base:?}");
                }
            }
        }
    }
}
