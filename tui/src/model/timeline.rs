//! Session time: one monotonic line for engine and probe times.

#[allow(unused_imports)]
use super::*;

use ringside_engine::event::Event;
use ringside_recordings::Item;

/// Session time: engine event times (which restart with each engine
/// instance) and probe times folded onto one monotonic line. Replay seeks
/// by it, so the recording source and the model use the same rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Engine instances seen (a `RingSetup` starts one).
    pub epoch: u32,
    offset: u64,
    /// Newest time.
    pub now: u64,
    engine_seen: bool,
    /// Kernel time of the first probe event (probe times count from it).
    pub probe_base: Option<u64>,
}

impl Timeline {
    /// The time of `item`, advancing the line.
    pub fn stamp(&mut self, item: &Item) -> u64 {
        match item {
            Item::Engine(rec) => {
                if let Event::RingSetup(_) = rec.event {
                    self.epoch += 1;
                    self.offset = if self.epoch == 1 {
                        0
                    } else {
                        self.now + 1_000_000
                    };
                }
                self.engine_seen = true;
                let t = self.offset + rec.t_ns;
                self.now = self.now.max(t);
                t
            }
            Item::Probe(ev) => {
                let ts = ev.header().ts_ns;
                let base = *self.probe_base.get_or_insert(ts);
                let t = ts.saturating_sub(base);
                if !self.engine_seen {
                    self.now = self.now.max(t);
                }
                t
            }
            Item::Lost { .. } => self.now,
        }
    }
}
