//! Session time: ns since the session began, for every item.
//!
//! Items carry two clocks. Engine events carry `t_ns`, ns since their
//! engine's event bus started (each engine instance starts at 0); probe
//! events carry `ts_ns`, CLOCK_MONOTONIC. A recording says when it started
//! on CLOCK_MONOTONIC (its header) and where each engine's time 0 is on it
//! (clock records, written before that engine's first event and again
//! when the estimate improves), so both map onto one line: ns since the
//! recording started. A live session, and a file without those facts
//! (JSON Lines, or engine events before any clock record), falls back to
//! laying the engines end to end, [`EPOCH_GAP_NS`] apart, with probe
//! times counted from the first probe event.

use crate::Item;
use ringside_engine::event::Event;

/// Gap the fallback leaves between one engine's last event and the next
/// engine's time 0, so two engines never share an instant.
pub const EPOCH_GAP_NS: u64 = 1_000_000;

/// Stamps items with their session time, in the order they come. One per
/// stream of items; [`Clock::stamp`] is O(1) and allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// CLOCK_MONOTONIC ns the session started at, when known.
    start: Option<u64>,
    /// CLOCK_MONOTONIC ns of the current engine's time 0 (the last clock
    /// record), when known.
    origin: Option<u64>,
    /// Engine instances seen (a `RingSetup` starts one).
    epoch: u32,
    /// The fallback's place of the current engine's time 0.
    offset: u64,
    now: u64,
    engine_seen: bool,
    probe_base: Option<u64>,
}

impl Clock {
    /// A clock with nothing to anchor it (a live session, JSON Lines):
    /// engines end to end, probe times from the first probe event.
    pub fn unanchored() -> Clock {
        Clock::default()
    }

    /// The clock of a recording that started at `start_mono_ns`
    /// (its header's `mono_start_ns`).
    pub fn anchored(start_mono_ns: u64) -> Clock {
        Clock {
            start: Some(start_mono_ns),
            probe_base: Some(start_mono_ns),
            ..Clock::default()
        }
    }

    /// A clock record: the current engine's time 0 is at
    /// `engine_origin_mono_ns` on CLOCK_MONOTONIC.
    pub fn engine_origin(&mut self, engine_origin_mono_ns: u64) {
        self.origin = Some(engine_origin_mono_ns);
    }

    /// The session time of `item`, which comes after every item stamped
    /// before it.
    pub fn stamp(&mut self, item: &Item) -> u64 {
        let t = match item {
            Item::Engine(rec) => {
                if let Event::RingSetup(_) = rec.event {
                    self.epoch += 1;
                    self.offset = if self.epoch == 1 {
                        0
                    } else {
                        self.now + EPOCH_GAP_NS
                    };
                }
                self.engine_seen = true;
                match (self.start, self.origin) {
                    (Some(s), Some(o)) => (o + rec.t_ns).saturating_sub(s),
                    // A recording whose first engine event comes before its
                    // clock record: the engine started with the recording.
                    (Some(_), None) => rec.t_ns,
                    (None, _) => self.offset + rec.t_ns,
                }
            }
            Item::Probe(ev) => {
                let ts = ev.header().ts_ns;
                let base = *self.probe_base.get_or_insert(ts);
                let t = ts.saturating_sub(base);
                // Unanchored, probe and engine times are on two lines that
                // nothing aligns: once there are engine events, theirs says
                // where the session is.
                if self.start.is_some() || !self.engine_seen {
                    self.now = self.now.max(t);
                }
                return t;
            }
            Item::Lost { .. } => return self.now,
        };
        self.now = self.now.max(t);
        t
    }

    /// An item some other clock stamped `t` (a replay hands the UI its
    /// recording's times): keeps the epoch, the newest time and the probe
    /// base as [`Clock::stamp`] would have.
    pub fn observe(&mut self, item: &Item, t: u64) {
        match item {
            Item::Engine(rec) => {
                if let Event::RingSetup(_) = rec.event {
                    self.epoch += 1;
                }
                self.engine_seen = true;
            }
            Item::Probe(ev) => {
                self.probe_base
                    .get_or_insert(ev.header().ts_ns.saturating_sub(t));
            }
            Item::Lost { .. } => return,
        }
        self.now = self.now.max(t);
    }

    /// The newest time stamped.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Engine instances seen so far.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// What a probe event's `ts_ns` minus is its session time (the
    /// recording's start, or the first probe event's time).
    pub fn probe_base(&self) -> Option<u64> {
        self.probe_base
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringside_engine::event::EventRecord;
    use ringside_probes::event::{Header, ProbeEvent, Ptr};
    use std::sync::Arc;

    fn engine(t_ns: u64, setup: bool) -> Item {
        let event = if setup {
            Event::RingSetup(Box::new(ringside_engine::event::RingInfo {
                fd: 3,
                pid: 1,
                sq_entries: 8,
                cq_entries: 8,
                files: vec![],
                regs: Default::default(),
                budgets: Default::default(),
                backend: Default::default(),
            }))
        } else {
            Event::Shutdown {
                chains: 0,
                inflight: 0,
            }
        };
        Item::Engine(Arc::new(EventRecord {
            seq: 0,
            t_ns,
            event,
        }))
    }

    fn probe(ts_ns: u64) -> Item {
        Item::Probe(ProbeEvent::TaskWorkRun {
            hdr: Header {
                ts_ns,
                ..Header::default()
            },
            tctx: Ptr(1),
            count: 1,
        })
    }

    #[test]
    fn unanchored_lays_engines_end_to_end() {
        let mut c = Clock::unanchored();
        assert_eq!(c.stamp(&engine(0, true)), 0);
        assert_eq!(c.stamp(&engine(500, false)), 500);
        // The second engine starts at 0 on its own clock.
        assert_eq!(c.stamp(&engine(0, true)), 500 + EPOCH_GAP_NS);
        assert_eq!(c.stamp(&engine(10, false)), 510 + EPOCH_GAP_NS);
        assert_eq!(c.epoch(), 2);
        // Probe times count from the first probe event and do not move
        // the engines' line.
        assert_eq!(c.stamp(&probe(7_000_000_000)), 0);
        assert_eq!(c.stamp(&probe(7_000_000_900)), 900);
        assert_eq!(c.now(), 510 + EPOCH_GAP_NS);
        assert_eq!(
            c.stamp(&Item::Lost {
                queue: "x".into(),
                count: 1
            }),
            c.now()
        );
    }

    #[test]
    fn anchored_puts_engines_and_probes_on_the_recording_line() {
        let start = 1_000_000_000;
        let mut c = Clock::anchored(start);
        c.engine_origin(start + 2_000);
        assert_eq!(c.stamp(&engine(0, true)), 2_000);
        assert_eq!(c.stamp(&engine(100, false)), 2_100);
        assert_eq!(c.stamp(&probe(start + 2_050)), 2_050);
        // A second engine, with its own clock record.
        c.engine_origin(start + 9_000);
        assert_eq!(c.stamp(&engine(0, true)), 9_000);
        assert_eq!(c.stamp(&probe(start - 5)), 0, "before the start: 0");
        assert_eq!(c.now(), 9_000);
        assert_eq!(c.probe_base(), Some(start));
    }

    #[test]
    fn observing_keeps_what_stamping_keeps() {
        let (mut a, mut b) = (Clock::anchored(100), Clock::unanchored());
        a.engine_origin(150);
        for it in [
            engine(0, true),
            probe(170),
            engine(30, false),
            engine(0, true),
        ] {
            let t = a.stamp(&it);
            b.observe(&it, t);
        }
        assert_eq!(
            (a.now(), a.epoch(), a.probe_base()),
            (b.now(), b.epoch(), b.probe_base())
        );
    }
}
