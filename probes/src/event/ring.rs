//! The `ring` record's types: a ring's identity and setup as the probes
//! know it. Made by the session from fdinfo and create events
//! ([`crate::discover`] builds them); here because the event stream
//! carries them ([`super::ProbeEvent::Ring`]).

use super::{Header, Ptr};
use serde::{Deserialize, Serialize};

/// A registered file (`UserFiles` section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredFile {
    /// Index in the registered-file table.
    pub index: u32,
    /// What it points to.
    pub path: String,
}

/// A registered buffer (`UserBufs` section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredBuffer {
    /// Index in the registered-buffer table.
    pub index: u32,
    /// User address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Why a [`RingSetup`] record was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingWhen {
    /// The ring existed when the probes attached (found in /proc).
    Attach,
    /// The ring was just created (after an `io_uring_create` event).
    Create,
    /// A re-read of its fdinfo found something new: registered files or
    /// buffers, the SQPOLL thread, or the SQ/CQ fill.
    Changed,
}

/// A ring's identity and setup as the probes know it: the `ring` probe
/// event (docs/events.md). What the create event said (ctx, setup flags,
/// the creating thread) joined with what `/proc/PID/fdinfo/FD` says
/// (sizes, SQPOLL thread, registered files and buffers, fill).
///
/// Fields are `None` when not known: `ring`, `setup_flags` and
/// `owner_tid` come only from a create event, so a ring created before
/// the probes attached has none of them (its SQPOLL flag is still known,
/// from fdinfo's `SqThread`); the fdinfo fields are `None` when the kernel
/// printed only the generic lines (the ring lock was busy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingSetup {
    /// `ts_ns`: when it was read (CLOCK_MONOTONIC, the probes' clock);
    /// `tgid`: the owner process; `tid`, `cpu`: 0 (no task fired it).
    #[serde(flatten)]
    pub hdr: Header,
    /// Why this record now.
    pub when: RingWhen,
    /// Kernel ctx pointer (as in the other events); null when not known.
    pub ring: Ptr,
    /// The ring's fd in the owner process, when known.
    pub fd: Option<i32>,
    /// The thread that created the ring (create event).
    pub owner_tid: Option<u32>,
    /// `IORING_SETUP_*` flags (create event).
    pub setup_flags: Option<u32>,
    /// SQ entries.
    pub sq_entries: Option<u32>,
    /// CQ entries.
    pub cq_entries: Option<u32>,
    /// The SQPOLL thread's tid (fdinfo `SqThread`): the ring uses SQPOLL.
    pub sq_thread: Option<u32>,
    /// CPU the SQPOLL thread is bound to.
    pub sq_thread_cpu: Option<i32>,
    /// Size of the registered-file table, empty slots included.
    pub file_slots: Option<u32>,
    /// The registered files (slots that hold one).
    pub files: Vec<RegisteredFile>,
    /// Size of the registered-buffer table, empty slots included.
    pub buffer_slots: Option<u32>,
    /// The registered buffers (slots that hold one).
    pub buffers: Vec<RegisteredBuffer>,
    /// SQEs written and not consumed yet.
    pub sq_pending: Option<u32>,
    /// CQEs posted and not reaped yet.
    pub cq_pending: Option<u32>,
    /// CQEs waiting in the overflow list.
    pub cq_overflow: Option<u32>,
}

impl RingSetup {
    /// The same ring in the same state (everything but the header and
    /// `when`): no need to emit it again.
    pub fn same_state(&self, other: &RingSetup) -> bool {
        let strip = |r: &RingSetup| RingSetup {
            hdr: Header::default(),
            when: RingWhen::Changed,
            ..r.clone()
        };
        strip(self) == strip(other)
    }

    /// The ring uses SQPOLL: from the setup flags when known, else from
    /// fdinfo's SQPOLL thread.
    pub fn sqpoll(&self) -> bool {
        self.setup_flags.map_or(self.sq_thread.is_some(), |f| {
            f & super::setup_flags::SQPOLL != 0
        })
    }
}
