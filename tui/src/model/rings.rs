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
    /// Which ring at `ctx` (the kernel reuses a freed ring's address): 0
    /// for one older than the session, else its create event's
    /// generation. Picks its counters.
    pub generation: u32,
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
    /// Registered files: the engine's names for engine rings, the paths
    /// fdinfo shows for probed rings.
    pub files: Vec<String>,
    /// Probed rings: the thread that created the ring (create event), or
    /// else the first thread seen submitting on it (not the SQPOLL thread).
    pub owner_tid: Option<u32>,
    /// Probed rings: `IORING_SETUP_*` flags, known from a create event.
    pub setup_flags: Option<u32>,
    /// Probed rings: the SQPOLL thread (fdinfo), known also for rings
    /// created before attach.
    pub sq_thread: Option<u32>,
    /// Probed rings: size of the registered-file table (empty slots too).
    pub file_slots: Option<u32>,
    /// Probed rings: size of the registered-buffer table (empty slots too).
    pub buffer_slots: Option<u32>,
    /// Probed rings: lengths of the registered buffers (slots holding one).
    pub buffer_lens: Vec<u64>,
    /// Probed rings: SQ/CQ fill and overflowed CQEs, as the newest `ring`
    /// record read them from fdinfo.
    pub fill: Option<Fill>,
    /// The engine shut this ring down.
    pub closed: bool,
    /// What the probes counted in the kernel for this ring (every event,
    /// whatever the UI's queue dropped); `None` without live probes.
    pub counted: Option<Counted>,
}

/// A ring's fill as fdinfo showed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fill {
    /// SQEs written, not consumed yet.
    pub sq_pending: Option<u32>,
    /// CQEs posted, not reaped yet.
    pub cq_pending: Option<u32>,
    /// CQEs in the overflow list.
    pub cq_overflow: Option<u32>,
}

/// A probed ring's counts as the kernel-side counters saw them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counted {
    /// Snapshot time (CLOCK_MONOTONIC ns).
    pub ts_ns: u64,
    /// Requests submitted.
    pub submitted: u64,
    /// Completions.
    pub completed: u64,
    /// Submitted and not finished.
    pub in_flight: u64,
    /// Submissions per second between the last two snapshots.
    pub submit_rate: u64,
    /// Completions per second between the last two snapshots.
    pub complete_rate: u64,
}

impl RingRow {
    pub(crate) fn new(source: &'static str, pid: u32) -> RingRow {
        RingRow {
            source,
            epoch: None,
            ctx: None,
            generation: 0,
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
            owner_tid: None,
            setup_flags: None,
            sq_thread: None,
            file_slots: None,
            buffer_slots: None,
            buffer_lens: Vec::new(),
            fill: None,
            closed: false,
            counted: None,
        }
    }
}

impl RingRow {
    /// Takes what a `ring` record says (fields it does not know keep
    /// what the row had).
    pub fn apply_setup(&mut self, r: &ringside_probes::event::RingSetup) {
        if r.fd.is_some() {
            self.fd = r.fd;
        }
        if !r.ring.is_null() {
            self.ctx = Some(r.ring.0);
        }
        self.owner_tid = r.owner_tid.or(self.owner_tid);
        self.setup_flags = r.setup_flags.or(self.setup_flags);
        self.sq_entries = r.sq_entries.or(self.sq_entries);
        self.cq_entries = r.cq_entries.or(self.cq_entries);
        // fdinfo read (not busy): what it lists is the truth now.
        if r.sq_entries.is_some() {
            self.sq_thread = r.sq_thread;
            self.file_slots = r.file_slots;
            self.buffer_slots = r.buffer_slots;
            self.files = r.files.iter().map(|f| f.path.clone()).collect();
            self.buffer_lens = r.buffers.iter().map(|b| b.len).collect();
            self.fill = Some(Fill {
                sq_pending: r.sq_pending,
                cq_pending: r.cq_pending,
                cq_overflow: r.cq_overflow,
            });
        }
    }

    /// The setup flags' names (`"SQPOLL DEFER_TASKRUN"`); for a ring
    /// created before attach, whose flags no event gave, what fdinfo shows
    /// (`"SQPOLL"`) and `+?` for the rest.
    pub fn flag_names(&self) -> String {
        match self.setup_flags {
            Some(f) => ringside_probes::event::setup_flags::names(f),
            None if self.sq_thread.is_some() => "SQPOLL +?".into(),
            None => "?".into(),
        }
    }
}

impl Model {
    /// Take the probes' counters: each probed ring's totals, in-flight and
    /// rates come from them (rates stop once the traced processes exited).
    pub fn apply_counters(&mut self, c: &ringside_probes::counters::Counters) {
        for r in self.rings.iter_mut().filter(|r| r.source == "probes") {
            let Some(n) = r
                .ctx
                .and_then(|p| c.ring(ringside_probes::Ptr(p), r.generation))
            else {
                continue;
            };
            let per_sec = |now: u64, then: u64, dt: u64| {
                if dt == 0 || c.exited_ns.is_some() {
                    0
                } else {
                    (now.saturating_sub(then) as u128 * 1_000_000_000 / dt as u128) as u64
                }
            };
            let prev = r.counted.clone().unwrap_or_default();
            let dt = c.ts_ns.saturating_sub(prev.ts_ns);
            let (sub, cmp) = (n.submitted(), n.completed());
            r.counted = Some(Counted {
                ts_ns: c.ts_ns,
                submitted: sub,
                completed: cmp,
                in_flight: n.in_flight(),
                submit_rate: if prev.ts_ns == 0 {
                    0
                } else {
                    per_sec(sub, prev.submitted, dt)
                },
                complete_rate: if prev.ts_ns == 0 {
                    0
                } else {
                    per_sec(cmp, prev.completed, dt)
                },
            });
        }
    }

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
