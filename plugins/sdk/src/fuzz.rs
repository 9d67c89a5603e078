//! A small, repeatable fuzz run for a parser's unit tests: feeds it random
//! bytes, damaged copies of a valid record and every truncation of it, and
//! fails the test if any of them panics:
//!
//! ```text
//! fuzz::never_panics(&mut plugin, VALID_RECORD.as_bytes(), b"{}[]\":,.0123456789\xff", 11);
//! ```
//!
//! It is plain code, not behind `cfg(test)`, so that plugins can call it from
//! their own unit tests.

use crate::Parser;

/// How many random records [`never_panics`] parses.
pub const RANDOM_RECORDS: usize = 2_000;
/// How many damaged copies of the valid record [`never_panics`] parses.
pub const MUTATIONS: usize = 500;
/// Random records are shorter than this many bytes in [`never_panics`].
pub const MAX_RANDOM_LEN: u64 = 160;

/// A tiny linear congruential generator, so the fuzz cases are the same every run.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number (31 bits).
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// The `i`-th random record, shorter than `max_len` bytes: any bytes when
    /// `i` is even, bytes of `alphabet` when it is odd.
    pub fn record(&mut self, i: usize, alphabet: &[u8], max_len: u64) -> Vec<u8> {
        let len = (self.next() % max_len) as usize;
        (0..len).map(|_| if i.is_multiple_of(2) { self.next() as u8 } else { self.pick(alphabet) }).collect()
    }

    /// A copy of `valid` (not empty) with three bytes replaced by bytes of `alphabet`.
    pub fn mutate(&mut self, valid: &[u8], alphabet: &[u8]) -> Vec<u8> {
        let mut bytes = valid.to_vec();
        for _ in 0..3 {
            let at = (self.next() as usize) % bytes.len();
            bytes[at] = self.pick(alphabet);
        }
        bytes
    }

    fn pick(&mut self, alphabet: &[u8]) -> u8 {
        alphabet[(self.next() as usize) % alphabet.len()]
    }
}

/// Parses, with a generator started at `seed`: [`RANDOM_RECORDS`] random
/// records (see [`Lcg::record`]) shorter than [`MAX_RANDOM_LEN`] bytes, then
/// [`MUTATIONS`] copies of `valid` with three bytes replaced by bytes of
/// `alphabet`, then every truncation of `valid`. The outcomes are not looked
/// at: the test fails only if the parser panics.
///
/// `alphabet` should hold the characters and words the format is made of, so
/// that the cases get past the first checks; `valid` must not be empty.
pub fn never_panics<P: Parser>(plugin: &mut P, valid: &[u8], alphabet: &[u8], seed: u64) {
    never_panics_up_to(plugin, valid, alphabet, seed, MAX_RANDOM_LEN);
}

/// [`never_panics`] with random records shorter than `max_len` bytes.
pub fn never_panics_up_to<P: Parser>(plugin: &mut P, valid: &[u8], alphabet: &[u8], seed: u64, max_len: u64) {
    let mut rng = Lcg(seed);
    for i in 0..RANDOM_RECORDS {
        let _ = plugin.parse(&rng.record(i, alphabet, max_len));
    }
    for _ in 0..MUTATIONS {
        let _ = plugin.parse(&rng.mutate(valid, alphabet));
    }
    for cut in 0..=valid.len() {
        let _ = plugin.parse(&valid[..cut]);
    }
}
