//! Rings: the engine's, and those the kernel probes saw, with their
//! counters and rates.

#[allow(unused_imports)]
use super::*;

/// A ring, engine-owned or seen by the probes.
#[derive(Clone, Debug, PartialEq)]
pub struct RingRow {
    /// Source label ("engine", "probes").
    pub source: &'static str,
    /// Engine instance, for engine rings.
    pub epoch: Option<u32>,
    /// Kernel ctx pointer, for probed rings.
    pub ctx: Option<u64>,
    /// Process.
    pub pid: u32,
    /// Ring fd, when known.
    pub fd: Option<i32>,
    /// SQ entries.
    pub sq_entries: Option<u32>,
    /// CQ entries.
    pub cq_entries: Option<u32>,
    /// Requests submitted.
    pub submitted: u64,
    /// Completions seen.
    pub completed: u64,
    /// Requests in flight (submitted, neither completed nor cancelled).
    pub inflight: i64,
    /// CQ overflows (probes only).
    pub overflows: u64,
    /// Submissions per event-time bucket.
    pub submit_rate: Rate,
    /// Completions per event-time bucket.
    pub complete_rate: Rate,
    /// Registered files (engine rings).
    pub files: Vec<String>,
    /// The engine shut this ring down.
    pub closed: bool,
}

impl RingRow {
    pub(crate) fn new(source: &'static str, pid: u32) -> RingRow {
        RingRow {
            source,
            epoch: None,
            ctx: None,
            pid,
            fd: None,
            sq_entries: None,
            cq_entries: None,
            submitted: 0,
            completed: 0,
            inflight: 0,
            overflows: 0,
            submit_rate: Rate::default(),
            complete_rate: Rate::default(),
            files: Vec::new(),
            closed: false,
        }
    }
}

impl Model {
    pub(super) fn ring_mut(&mut self, epoch: u32) -> Option<&mut RingRow> {
        self.rings.iter_mut().rev().find(|r| r.epoch == Some(epoch))
    }

    /// The kernel's view of a closed engine ring (same pid and fd) is closed too.
    pub(super) fn close_probe_twins(&mut self) {
        let closed: Vec<(u32, Option<i32>)> = self
            .rings
            .iter()
            .filter(|r| r.source == "engine" && r.closed)
            .map(|r| (r.pid, r.fd))
            .collect();
        for r in self.rings.iter_mut().filter(|r| r.source == "probes") {
            if closed.contains(&(r.pid, r.fd)) {
                r.closed = true;
            }
        }
    }
}
