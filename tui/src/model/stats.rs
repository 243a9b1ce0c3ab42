//! Counters, rates, histograms and throughput series.

#[allow(unused_imports)]
use super::*;

use std::collections::{BTreeMap, VecDeque};

/// Events per second over the last second of event time (10 buckets of 100 ms).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rate {
    buckets: [u64; 10],
    last: u64,
}

impl Rate {
    const BUCKET_NS: u64 = 100_000_000;

    pub(crate) fn add(&mut self, t_ns: u64, n: u64) {
        let b = t_ns / Self::BUCKET_NS;
        self.advance(b);
        self.buckets[(b % 10) as usize] += n;
    }

    fn advance(&mut self, b: u64) {
        if b > self.last {
            let gap = (b - self.last).min(10);
            for i in 1..=gap {
                self.buckets[((self.last + i) % 10) as usize] = 0;
            }
            self.last = b;
        }
    }

    /// Per second, as of event time `now_ns`.
    pub fn per_sec(&self, now_ns: u64) -> u64 {
        let b = now_ns / Self::BUCKET_NS;
        if b >= self.last + 10 {
            return 0;
        }
        let stale = b.saturating_sub(self.last) as usize;
        let mut sum = 0;
        for i in 0..(10 - stale) {
            sum += self.buckets[((self.last + 10 - i as u64) % 10) as usize];
        }
        sum
    }
}

/// Log2 histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Bucket i counts values in [2^i, 2^(i+1)) (bucket 0 also counts 0).
    pub buckets: [u64; 40],
    /// Values added.
    pub count: u64,
    /// Sum.
    pub sum: u128,
    /// Largest.
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: [0; 40],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    /// Add a value.
    pub fn add(&mut self, v: u64) {
        let b = (63 - v.max(1).leading_zeros()) as usize;
        self.buckets[b.min(39)] += 1;
        self.count += 1;
        self.sum += v as u128;
        self.max = self.max.max(v);
    }

    /// Mean.
    pub fn mean(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            (self.sum / self.count as u128) as u64
        }
    }

    /// Value below which `q` of the values fall (bucket upper bound).
    pub fn quantile(&self, q: f64) -> u64 {
        let want = (self.count as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= want && *c > 0 {
                return (1u64 << (i + 1)).min(self.max.max(1));
            }
        }
        self.max
    }

    /// The non-empty bucket range.
    pub fn span(&self) -> std::ops::Range<usize> {
        let lo = self.buckets.iter().position(|&c| c > 0).unwrap_or(0);
        let hi = self
            .buckets
            .iter()
            .rposition(|&c| c > 0)
            .map_or(0, |i| i + 1);
        lo..hi.max(lo)
    }
}

/// One latency histogram per opcode (indexed by `IORING_OP_*`, so the
/// fold's per-completion cost is an index, not a lookup).
#[derive(Clone, Debug, PartialEq)]
pub struct ByOpcode(Box<[Histogram]>);

impl Default for ByOpcode {
    fn default() -> Self {
        ByOpcode(vec![Histogram::default(); 256].into_boxed_slice())
    }
}

impl ByOpcode {
    pub(crate) fn add(&mut self, opcode: u8, v: u64) {
        self.0[opcode as usize].add(v);
    }

    /// The opcodes seen, with their histograms, in opcode order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &Histogram)> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, h)| h.count > 0)
            .map(|(i, h)| (i as u8, h))
    }
}

/// What a program's decisions cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProgramCost {
    /// Wall time per decision, ns.
    pub ns: Histogram,
    /// Instructions per decision (when the event says).
    pub insns: Histogram,
}

/// Counters over the whole session.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Items folded.
    pub items: u64,
    /// Engine events.
    pub engine_events: u64,
    /// Probe events.
    pub probe_events: u64,
    /// Chains created.
    pub chains: u64,
    /// Chains finished, by outcome name.
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Requests submitted (engine).
    pub submitted: u64,
    /// Completions (engine).
    pub completed: u64,
    /// Decisions.
    pub decisions: u64,
    /// Cancellations and drops.
    pub cancelled: u64,
    /// Application completions.
    pub app_completions: u64,
    /// Items lost, by queue.
    pub lost: BTreeMap<String, u64>,
    /// Engine instances seen.
    pub epochs: u32,
    /// Inputs-only decisions that could not be run again here (shown as
    /// they came, without helper calls, map writes or counts).
    pub incomplete: u64,
}

/// Throughput over event time, in fixed buckets.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Bucket width.
    pub bucket_ns: u64,
    /// Index of the first bucket kept.
    pub first: u64,
    /// Counts.
    pub counts: VecDeque<u64>,
}

impl Series {
    pub(crate) fn new(bucket_ns: u64) -> Series {
        Series {
            bucket_ns,
            first: 0,
            counts: VecDeque::new(),
        }
    }

    pub(crate) fn add(&mut self, t_ns: u64) {
        let b = t_ns / self.bucket_ns;
        if self.counts.is_empty() {
            self.first = b;
        }
        if b < self.first {
            return;
        }
        while self.first + (self.counts.len() as u64) <= b {
            self.counts.push_back(0);
        }
        let i = (b - self.first) as usize;
        self.counts[i] += 1;
        while self.counts.len() > 600 {
            self.counts.pop_front();
            self.first += 1;
        }
    }
}
