//! Lines from standard input, until it closes. Standard input has no position
//! to resume from: after a crash, what was read but not committed is gone.

use super::{Batcher, Source};
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct StdinSource;

impl Source for StdinSource {
    fn run(self: Box<Self>, mut batcher: Batcher, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        let mut input = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            if input.read_until(b'\n', &mut line)? == 0 || stop.load(Ordering::Relaxed) {
                break;
            }
            if !batcher.push(line, 0) {
                return Ok(());
            }
        }
        batcher.flush();
        Ok(())
    }
}
