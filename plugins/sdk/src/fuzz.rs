//! A small, repeatable fuzz run for a parser's unit tests: feeds it random
//! bytes, damaged copies of a valid record and every truncation of it, and
//! fails the test if any of them panics:
//!
//! ```text
//! fuzz::never_panics(&mut plugin, VALID_RECORD.as_bytes(), b"{}[]\":,.0123456789\xff", 11);
//! ```
//!
//! It is plain code, not behind `cfg(test)`, so that plugins can call it from
//! their own unit tests. With the SDK's `fuzz` feature (plugins turn it on in
//! their dev-dependencies) the same property is also searched by proptest.

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
    #[cfg(feature = "fuzz")]
    search_never_panics(plugin, valid);
}

#[cfg(feature = "fuzz")]
pub use property::never_panics as search_never_panics;

/// The same property, searched by proptest: arbitrary bytes, and the valid
/// record with arbitrary bytes spliced in or cut out. A panic fails the test
/// with the (shrunk) input that caused it.
#[cfg(feature = "fuzz")]
mod property {
    use crate::Parser;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::RefCell;

    pub const CASES: u32 = 1_000;

    pub fn never_panics<P: Parser>(plugin: &mut P, valid: &[u8]) {
        let valid = valid.to_vec();
        let len = valid.len();
        let spliced = (0..=len, 0..=len, vec(any::<u8>(), 0..24)).prop_map(move |(a, b, insert)| {
            let (from, to) = (a.min(b), a.max(b));
            let mut bytes = valid.clone();
            bytes.splice(from..to, insert);
            bytes
        });
        let strategy = prop_oneof![vec(any::<u8>(), 0..256), spliced];
        let plugin = RefCell::new(plugin);
        let config = Config { cases: CASES, failure_persistence: None, ..Config::default() };
        let result = TestRunner::new(config).run(&strategy, |bytes| {
            let _ = plugin.borrow_mut().parse(&bytes);
            Ok(())
        });
        if let Err(e) = result {
            panic!("parser panicked: {e}");
        }
    }
}

#[cfg(all(test, feature = "fuzz"))]
mod tests {
    use crate::{Outcome, Parser};

    /// Panics on any record of 200 bytes or more: the search must find one.
    struct Fragile;

    impl Parser for Fragile {
        fn init(_: serde_json::Value) -> Result<Self, String> {
            Ok(Fragile)
        }
        fn parse(&mut self, record: &[u8]) -> Outcome {
            assert!(record.len() < 200, "too long");
            Outcome::Drop("ok".into())
        }
    }

    #[test]
    #[should_panic(expected = "parser panicked")]
    fn the_search_finds_a_panic() {
        super::search_never_panics(&mut Fragile, b"short");
    }
}
