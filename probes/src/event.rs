//! Typed probe events: what the kernel tracepoints report, as stored in
//! recordings and rendered by the UI.
//!
//! The JSON form is one object per event with a `"kind"` field named after
//! the io_uring tracepoint (`"submit_req"`, `"complete"`, `"fail_link"`, ...).
//! Kernel pointers (`ring`, `req`, `target`, ...) are serialized as hex
//! strings (`"0xffff8881..."`) because they do not fit in the 53 bits that
//! JSON readers such as jq or JavaScript keep exact; `user_data` stays a
//! number because it is the application's own value. Adding fields or kinds
//! is a compatible change; renaming or removing them is not.

mod ring;
pub use ring::{RegisteredBuffer, RegisteredFile, RingSetup, RingWhen};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A kernel pointer (ring ctx, request, io-wq work, ...), opaque to us.
///
/// Serialized as a `"0x..."` hex string; deserialized from such a string or
/// from a plain number.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ptr(pub u64);

impl Ptr {
    /// The null pointer (field absent on this kernel, or no request).
    pub const NULL: Ptr = Ptr(0);

    /// True for the null pointer.
    pub fn is_null(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for Ptr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Ptr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl Serialize for Ptr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:#x}", self.0))
    }
}

impl<'de> Deserialize<'de> for Ptr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Ptr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a pointer as a \"0x...\" hex string or a number")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Ptr, E> {
                Ok(Ptr(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Ptr, E> {
                let hex = v
                    .strip_prefix("0x")
                    .or_else(|| v.strip_prefix("0X"))
                    .ok_or_else(|| E::custom(format!("pointer {v:?} does not start with 0x")))?;
                u64::from_str_radix(hex, 16)
                    .map(Ptr)
                    .map_err(|e| E::custom(format!("pointer {v:?}: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Kernel pointers replaced by small stable ids, one per distinct pointer
/// in order of first sight (`0x1`, `0x2`, ...; null stays null), so a
/// recording or an export shows which events are about the same ring or
/// request without showing where the kernel keeps them. What shareable
/// files hold unless the user asks to keep the pointers.
#[derive(Clone, Debug, Default)]
pub struct PtrIds {
    ids: std::collections::HashMap<u64, u64>,
}

impl PtrIds {
    /// No pointer seen yet.
    pub fn new() -> PtrIds {
        PtrIds::default()
    }

    /// The id of `p` (allocating the next one for a pointer not seen yet).
    pub fn id(&mut self, p: Ptr) -> Ptr {
        if p.is_null() {
            return p;
        }
        let next = self.ids.len() as u64 + 1;
        Ptr(*self.ids.entry(p.0).or_insert(next))
    }

    /// Replace every kernel pointer of `ev` by its id.
    pub fn apply(&mut self, ev: &mut ProbeEvent) {
        ev.for_each_ptr(|p| *p = self.id(*p));
    }
}

/// `IOSQE_*` submission flags (the low byte of the kernel's request flags).
pub mod sqe_flags {
    /// IOSQE_FIXED_FILE: `fd` is a registered-file index.
    pub const FIXED_FILE: u8 = 1 << 0;
    /// IOSQE_IO_DRAIN: wait for all earlier requests.
    pub const IO_DRAIN: u8 = 1 << 1;
    /// IOSQE_IO_LINK: the next request runs after this one; a failure cancels it.
    pub const IO_LINK: u8 = 1 << 2;
    /// IOSQE_IO_HARDLINK: like IO_LINK, but failure does not cancel the next.
    pub const IO_HARDLINK: u8 = 1 << 3;
    /// IOSQE_ASYNC: always issue from io-wq.
    pub const ASYNC: u8 = 1 << 4;
    /// IOSQE_BUFFER_SELECT: pick a provided buffer.
    pub const BUFFER_SELECT: u8 = 1 << 5;
    /// IOSQE_CQE_SKIP_SUCCESS: no CQE (and no `complete` event) on success.
    pub const CQE_SKIP_SUCCESS: u8 = 1 << 6;

    /// Names of the flags set in `flags`, for display (`"IO_LINK|ASYNC"`).
    pub fn names(flags: u8) -> String {
        const N: [(u8, &str); 7] = [
            (FIXED_FILE, "FIXED_FILE"),
            (IO_DRAIN, "IO_DRAIN"),
            (IO_LINK, "IO_LINK"),
            (IO_HARDLINK, "IO_HARDLINK"),
            (ASYNC, "ASYNC"),
            (BUFFER_SELECT, "BUFFER_SELECT"),
            (CQE_SKIP_SUCCESS, "CQE_SKIP_SUCCESS"),
        ];
        let v: Vec<&str> = N
            .iter()
            .filter(|(b, _)| flags & b != 0)
            .map(|(_, n)| *n)
            .collect();
        v.join("|")
    }
}

/// `IORING_CQE_F_*` completion flags.
pub mod cqe_flags {
    /// IORING_CQE_F_BUFFER: the upper 16 bits hold a provided-buffer id.
    pub const BUFFER: u32 = 1 << 0;
    /// IORING_CQE_F_MORE: a multishot request will post more completions.
    pub const MORE: u32 = 1 << 1;
    /// IORING_CQE_F_SOCK_NONEMPTY.
    pub const SOCK_NONEMPTY: u32 = 1 << 2;
    /// IORING_CQE_F_NOTIF: a zero-copy send notification.
    pub const NOTIF: u32 = 1 << 3;
}

/// `IORING_SETUP_*` flags (include/uapi/linux/io_uring.h).
pub mod setup_flags {
    /// IORING_SETUP_IOPOLL.
    pub const IOPOLL: u32 = 1 << 0;
    /// IORING_SETUP_SQPOLL: a kernel thread (a thread of the owner) submits.
    pub const SQPOLL: u32 = 1 << 1;
    /// IORING_SETUP_SQ_AFF: the SQPOLL thread is bound to a CPU.
    pub const SQ_AFF: u32 = 1 << 2;
    /// IORING_SETUP_CQSIZE: the CQ size was given.
    pub const CQSIZE: u32 = 1 << 3;
    /// IORING_SETUP_CLAMP.
    pub const CLAMP: u32 = 1 << 4;
    /// IORING_SETUP_ATTACH_WQ: shares another ring's io-wq.
    pub const ATTACH_WQ: u32 = 1 << 5;
    /// IORING_SETUP_R_DISABLED: starts disabled.
    pub const R_DISABLED: u32 = 1 << 6;
    /// IORING_SETUP_SUBMIT_ALL.
    pub const SUBMIT_ALL: u32 = 1 << 7;
    /// IORING_SETUP_COOP_TASKRUN.
    pub const COOP_TASKRUN: u32 = 1 << 8;
    /// IORING_SETUP_TASKRUN_FLAG.
    pub const TASKRUN_FLAG: u32 = 1 << 9;
    /// IORING_SETUP_SQE128.
    pub const SQE128: u32 = 1 << 10;
    /// IORING_SETUP_CQE32.
    pub const CQE32: u32 = 1 << 11;
    /// IORING_SETUP_SINGLE_ISSUER.
    pub const SINGLE_ISSUER: u32 = 1 << 12;
    /// IORING_SETUP_DEFER_TASKRUN.
    pub const DEFER_TASKRUN: u32 = 1 << 13;
    /// IORING_SETUP_NO_MMAP (6.5).
    pub const NO_MMAP: u32 = 1 << 14;
    /// IORING_SETUP_REGISTERED_FD_ONLY (6.5).
    pub const REGISTERED_FD_ONLY: u32 = 1 << 15;
    /// IORING_SETUP_NO_SQARRAY (6.6).
    pub const NO_SQARRAY: u32 = 1 << 16;
    /// IORING_SETUP_HYBRID_IOPOLL (6.13).
    pub const HYBRID_IOPOLL: u32 = 1 << 17;

    const N: [(u32, &str); 18] = [
        (IOPOLL, "IOPOLL"),
        (SQPOLL, "SQPOLL"),
        (SQ_AFF, "SQ_AFF"),
        (CQSIZE, "CQSIZE"),
        (CLAMP, "CLAMP"),
        (ATTACH_WQ, "ATTACH_WQ"),
        (R_DISABLED, "R_DISABLED"),
        (SUBMIT_ALL, "SUBMIT_ALL"),
        (COOP_TASKRUN, "COOP_TASKRUN"),
        (TASKRUN_FLAG, "TASKRUN_FLAG"),
        (SQE128, "SQE128"),
        (CQE32, "CQE32"),
        (SINGLE_ISSUER, "SINGLE_ISSUER"),
        (DEFER_TASKRUN, "DEFER_TASKRUN"),
        (NO_MMAP, "NO_MMAP"),
        (REGISTERED_FD_ONLY, "REGISTERED_FD_ONLY"),
        (NO_SQARRAY, "NO_SQARRAY"),
        (HYBRID_IOPOLL, "HYBRID_IOPOLL"),
    ];

    /// Names of the flags set in `flags`, space-separated
    /// (`"SQPOLL DEFER_TASKRUN"`); bits this list does not name (newer
    /// kernels) follow as one hex number.
    pub fn names(flags: u32) -> String {
        let mut v: Vec<String> = N
            .iter()
            .filter(|(b, _)| flags & b != 0)
            .map(|(_, n)| n.to_string())
            .collect();
        let known = N.iter().fold(0, |a, (b, _)| a | b);
        if flags & !known != 0 {
            v.push(format!("{:#x}", flags & !known));
        }
        v.join(" ")
    }
}

/// `-ECANCELED`, the result of a request cancelled by a broken link,
/// an async cancel, a timeout or ring teardown.
pub const ECANCELED: i32 = -libc::ECANCELED;

/// `IORING_OP_*` name for an opcode (as in the kernel's `op_str`), or `"?"`:
/// the one table of opcode names, [`ringside_schema::abi::op::NAMES`].
pub fn opcode_name(op: u8) -> &'static str {
    ringside_schema::abi::op::kernel_name(op)
}

/// Fields every event carries: when, where and who.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// CPU the tracepoint fired on.
    pub cpu: u16,
    /// Process id (thread group) of the task that fired it.
    pub tgid: u32,
    /// Thread id of that task (an io-wq or SQPOLL worker shows its own tid).
    pub tid: u32,
}

/// One io_uring tracepoint hit, decoded.
///
/// Variants are named after the tracepoints (`io_uring_<kind>`); the JSON
/// `"kind"` is the snake_case variant name. Every variant flattens a
/// [`Header`] (`ts_ns`, `cpu`, `tgid`, `tid`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeEvent {
    /// `io_uring_create`: a ring was set up. The only event that ties a ring
    /// ctx pointer to a file descriptor.
    Create {
        /// When, where, who.
        #[serde(flatten)]
        hdr: Header,
        /// Ring ctx pointer.
        ring: Ptr,
        /// File descriptor of the new ring in `tgid` (-1 before 6.x kernels
        /// installed it, or for a registered-only ring).
        fd: i32,
        /// SQ entries.
        sq_entries: u32,
        /// CQ entries.
        cq_entries: u32,
        /// `IORING_SETUP_*` flags.
        flags: u32,
        /// Which ring this is of those created at this address since the
        /// probes attached (1 for the first): the kernel reuses a freed
        /// ring's address, and counts are kept per generation
        /// ([`crate::counters::RingCounts::generation`]). 0 in files from before
        /// ringside counted generations.
        #[serde(default, skip_serializing_if = "is_zero")]
        generation: u32,
    },
    /// `io_uring_submit_req`: a request was taken from the SQ (or issued
    /// by the SQPOLL thread, `sq_thread`).
    SubmitReq {
        /// When, where, who.
        #[serde(flatten)]
        hdr: Header,
        /// Ring ctx pointer.
        ring: Ptr,
        /// Request pointer (reused by the kernel after completion).
        req: Ptr,
        /// The SQE's user_data.
        user_data: u64,
        /// `IORING_OP_*`.
        opcode: u8,
        /// The kernel's request flags (`REQ_F_*`); the low byte is the SQE's
        /// `IOSQE_*` flags, see [`ProbeEvent::sqe_flags`].
        flags: u64,
        /// Submitted by the SQPOLL thread.
        sq_thread: bool,
    },
    /// `io_uring_complete`: a CQE was posted.
    Complete {
        /// When, where, who.
        #[serde(flatten)]
        hdr: Header,
        /// Ring ctx pointer.
        ring: Ptr,
        /// Request pointer (null for CQEs without a request, e.g. MSG_RING).
        req: Ptr,
        /// CQE user_data.
        user_data: u64,
        /// CQE res: bytes, or -errno.
        res: i32,
        /// `IORING_CQE_F_*`.
        cflags: u32,
        /// Big-CQE extra words (0 on normal rings).
        extra1: u64,
        /// Big-CQE extra words (0 on normal rings).
        extra2: u64,
    },
    /// `io_uring_link`: `req` was linked after `target` (the previous last
    /// request of its chain).
    Link {
        /// When, where, who.
        #[serde(flatten)]
        hdr: Header,
        /// Ring ctx pointer.
        ring: Ptr,
        /// The request being added to the chain.
        req: Ptr,
        /// The request it runs after.
        target: Ptr,
    },
    /// `io_uring_fail_link`: `req` failed (or completed short) and this
    /// cancels `link`, a request later in its chain.
    FailLink {
        /// When, where, who.
        #[serde(flatten)]
        hdr: Header,
        /// Ring ctx pointer.
        ring: Ptr,
        /// The failed request: the cause.
        req: Ptr,
        /// user_data of the failed request.
        user_data: u64,
        /// Opcode of the failed request.
        opcode: u8,
        /// The request being cancelled.
        link: Ptr,
    },
    /// `io_uring_req_failed`: the kernel rejected a request while preparing it.
    ReqFailed {
        /// When, where, who.
        #[serde(flatten)]
        hdr: Header,
        /// Ring ctx pointer.
        ring: Ptr,
        /// Request pointer.
        req: Ptr,
        /// The SQE's user_data.
        user_data: u64,
        /// `IORING_OP_*`.
        opcode: u8,
        /// The SQE's `IOSQE_*` flags.
        sqe_flags: u8,
        /// SQE off.
        off: u64,
        /// SQE addr.
        addr: u64,
        /// SQE len.
        len: u32,
        /// SQE buf_index.
        buf_index: u16,
        /// The error, -errno.
        error: i32,
    },
    /// `io_uring_cqe_overflow`: the CQ ring was full, the CQE went to the
    /// overflow list.
    CqeOverflow {
        /// When, where, who.
        #[serde(flatten)]
        hdr: Header,
        /// Ring ctx pointer.
        ring: Ptr,
        /// CQE user_data.
        user_data: u64,
        /// CQE res.
        res: i32,
        /// CQE flags.
        cflags: u32,
        /// The overflow entry.
        ocqe: Ptr,
    },
    /// `io_uring_short_write`: a write transferred less than asked.
    ShortWrite {
        /// When, where, who.
        #[serde(flatten)]
        hdr: Header,
        /// Ring ctx pointer.
        ring: Ptr,
        /// File position.
        fpos: u64,
        /// Bytes asked.
        wanted: u64,
        /// Bytes written.
        got: u64,
    },
    /// `io_uring_poll_arm`: the request waits for readiness (no data yet).
    PollArm {
        /// When, where, who.
        #[serde(flatten)]
        hdr: Header,
        /// Ring ctx pointer.
        ring: Ptr,
        /// Request pointer.
        req: Ptr,
        /// The SQE's user_data.
        user_data: u64,
        /// `IORING_OP_*`.
        opcode: u8,
        /// Poll mask.
        mask: u32,
        /// Poll events.
        events: u32,
    },
    /// `io_uring_queue_async_work`: the request was punted to an io-wq worker.
    QueueAsyncWork {
        /// When, where, who.
        #[serde(flatten)]
        hdr: Header,
        /// Ring ctx pointer.
        ring: Ptr,
        /// Request pointer.
        req: Ptr,
        /// The SQE's user_data.
        user_data: u64,
        /// `IORING_OP_*`.
        opcode: u8,
        /// The kernel's request flags (`REQ_F_*`).
        flags: u64,
        /// The io-wq work item.
        work: Ptr,
        /// The kernel's `int rw` field as it is (kernels before 7.x; absent
        /// where the field is `hashed`): non-zero means the hashed queue.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rw: Option<u32>,
        /// Queued on io-wq's hashed (serialized per file) list rather than
        /// the normal one: the kernel's `bool hashed` (7.x), or `rw != 0`
        /// where the field is still `rw`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hashed: Option<bool>,
    },
    /// `io_uring_task_work_run`: the task ran its io_uring task work.
    TaskWorkRun {
        /// When, where, who.
        #[serde(flatten)]
        hdr: Header,
        /// The task's io_uring context (not a ring ctx).
        tctx: Ptr,
        /// Work items run.
        count: u32,
    },
    /// Not a tracepoint: a ring's identity and setup (owner, fd, setup
    /// flags, registered files and buffers, fill), which the probe session
    /// emits for every ring it finds at attach, after each `create`, and
    /// when a re-read of fdinfo finds it changed. See [`RingSetup`].
    Ring(Box<RingSetup>),
    /// `task_newtask`: a traced process forked `child`, which is now traced
    /// too (only with `follow_forks`).
    NewTask {
        /// When, where, who.
        #[serde(flatten)]
        hdr: Header,
        /// The new process id.
        child: u32,
        /// `clone()` flags.
        clone_flags: u64,
    },
}

impl ProbeEvent {
    /// The common header.
    pub fn header(&self) -> &Header {
        match self {
            ProbeEvent::Create { hdr, .. }
            | ProbeEvent::SubmitReq { hdr, .. }
            | ProbeEvent::Complete { hdr, .. }
            | ProbeEvent::Link { hdr, .. }
            | ProbeEvent::FailLink { hdr, .. }
            | ProbeEvent::ReqFailed { hdr, .. }
            | ProbeEvent::CqeOverflow { hdr, .. }
            | ProbeEvent::ShortWrite { hdr, .. }
            | ProbeEvent::PollArm { hdr, .. }
            | ProbeEvent::QueueAsyncWork { hdr, .. }
            | ProbeEvent::TaskWorkRun { hdr, .. }
            | ProbeEvent::NewTask { hdr, .. } => hdr,
            ProbeEvent::Ring(r) => &r.hdr,
        }
    }

    /// The common header, to change (e.g. to shift time).
    pub fn header_mut(&mut self) -> &mut Header {
        match self {
            ProbeEvent::Create { hdr, .. }
            | ProbeEvent::SubmitReq { hdr, .. }
            | ProbeEvent::Complete { hdr, .. }
            | ProbeEvent::Link { hdr, .. }
            | ProbeEvent::FailLink { hdr, .. }
            | ProbeEvent::ReqFailed { hdr, .. }
            | ProbeEvent::CqeOverflow { hdr, .. }
            | ProbeEvent::ShortWrite { hdr, .. }
            | ProbeEvent::PollArm { hdr, .. }
            | ProbeEvent::QueueAsyncWork { hdr, .. }
            | ProbeEvent::TaskWorkRun { hdr, .. }
            | ProbeEvent::NewTask { hdr, .. } => hdr,
            ProbeEvent::Ring(r) => &mut r.hdr,
        }
    }

    /// The `"kind"` string of this event (the tracepoint's short name).
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeEvent::Create { .. } => "create",
            ProbeEvent::SubmitReq { .. } => "submit_req",
            ProbeEvent::Complete { .. } => "complete",
            ProbeEvent::Link { .. } => "link",
            ProbeEvent::FailLink { .. } => "fail_link",
            ProbeEvent::ReqFailed { .. } => "req_failed",
            ProbeEvent::CqeOverflow { .. } => "cqe_overflow",
            ProbeEvent::ShortWrite { .. } => "short_write",
            ProbeEvent::PollArm { .. } => "poll_arm",
            ProbeEvent::QueueAsyncWork { .. } => "queue_async_work",
            ProbeEvent::TaskWorkRun { .. } => "task_work_run",
            ProbeEvent::NewTask { .. } => "new_task",
            ProbeEvent::Ring(_) => "ring",
        }
    }

    /// The ring ctx pointer, for events about a ring.
    pub fn ring(&self) -> Option<Ptr> {
        match self {
            ProbeEvent::Create { ring, .. }
            | ProbeEvent::SubmitReq { ring, .. }
            | ProbeEvent::Complete { ring, .. }
            | ProbeEvent::Link { ring, .. }
            | ProbeEvent::FailLink { ring, .. }
            | ProbeEvent::ReqFailed { ring, .. }
            | ProbeEvent::CqeOverflow { ring, .. }
            | ProbeEvent::ShortWrite { ring, .. }
            | ProbeEvent::PollArm { ring, .. }
            | ProbeEvent::QueueAsyncWork { ring, .. } => Some(*ring),
            // Null for a ring created before attach: not tied to a ctx yet.
            ProbeEvent::Ring(r) => Some(r.ring),
            ProbeEvent::TaskWorkRun { .. } | ProbeEvent::NewTask { .. } => None,
        }
    }

    /// The request pointer, for events about one request.
    pub fn req(&self) -> Option<Ptr> {
        match self {
            ProbeEvent::SubmitReq { req, .. }
            | ProbeEvent::Complete { req, .. }
            | ProbeEvent::Link { req, .. }
            | ProbeEvent::FailLink { req, .. }
            | ProbeEvent::ReqFailed { req, .. }
            | ProbeEvent::PollArm { req, .. }
            | ProbeEvent::QueueAsyncWork { req, .. } => Some(*req),
            _ => None,
        }
    }

    /// Every kernel pointer the event carries, to change (see [`PtrIds`]).
    pub fn for_each_ptr(&mut self, mut f: impl FnMut(&mut Ptr)) {
        match self {
            ProbeEvent::Create { ring, .. } | ProbeEvent::ShortWrite { ring, .. } => f(ring),
            ProbeEvent::CqeOverflow { ring, ocqe, .. } => {
                f(ring);
                f(ocqe);
            }
            ProbeEvent::SubmitReq { ring, req, .. }
            | ProbeEvent::Complete { ring, req, .. }
            | ProbeEvent::ReqFailed { ring, req, .. }
            | ProbeEvent::PollArm { ring, req, .. } => {
                f(ring);
                f(req);
            }
            ProbeEvent::Link {
                ring, req, target, ..
            } => {
                f(ring);
                f(req);
                f(target);
            }
            ProbeEvent::FailLink {
                ring, req, link, ..
            } => {
                f(ring);
                f(req);
                f(link);
            }
            ProbeEvent::QueueAsyncWork {
                ring, req, work, ..
            } => {
                f(ring);
                f(req);
                f(work);
            }
            ProbeEvent::TaskWorkRun { tctx, .. } => f(tctx),
            ProbeEvent::Ring(r) => f(&mut r.ring),
            ProbeEvent::NewTask { .. } => {}
        }
    }

    /// The SQE `IOSQE_*` flags of a `submit_req` (low byte of the request
    /// flags) or `req_failed` event.
    pub fn sqe_flags(&self) -> Option<u8> {
        match self {
            ProbeEvent::SubmitReq { flags, .. } => Some(*flags as u8),
            ProbeEvent::ReqFailed { sqe_flags, .. } => Some(*sqe_flags),
            _ => None,
        }
    }
}

/// The kernel-to-user wire format of `struct rs_event` (bpf/probes.bpf.c).
pub mod wire {
    use super::*;

    /// Size of one wire event in bytes.
    pub const EVENT_SIZE: usize = 80;

    /// Bits of the wire event's `absent` mask (offset 72): optional event
    /// fields the kernel's tracepoint record did not have, so the decoded
    /// field is `None`. The meaning of a bit depends on the kind. 0 means
    /// every field was there (and is what recordings made before the mask
    /// existed decode as).
    pub mod absent {
        /// queue_async_work: no `rw` field (7.x has `hashed` instead).
        pub const QUEUE_ASYNC_WORK_RW: u32 = 1 << 0;
        /// queue_async_work: neither `hashed` nor `rw`.
        pub const QUEUE_ASYNC_WORK_HASHED: u32 = 1 << 1;
    }

    /// `io_uring_create`.
    pub const KIND_CREATE: u8 = 1;
    /// `io_uring_submit_req`.
    pub const KIND_SUBMIT_REQ: u8 = 2;
    /// `io_uring_complete`.
    pub const KIND_COMPLETE: u8 = 3;
    /// `io_uring_link`.
    pub const KIND_LINK: u8 = 4;
    /// `io_uring_fail_link`.
    pub const KIND_FAIL_LINK: u8 = 5;
    /// `io_uring_req_failed`.
    pub const KIND_REQ_FAILED: u8 = 6;
    /// `io_uring_cqe_overflow`.
    pub const KIND_CQE_OVERFLOW: u8 = 7;
    /// `io_uring_short_write`.
    pub const KIND_SHORT_WRITE: u8 = 8;
    /// `io_uring_poll_arm`.
    pub const KIND_POLL_ARM: u8 = 9;
    /// `io_uring_queue_async_work`.
    pub const KIND_QUEUE_ASYNC_WORK: u8 = 10;
    /// `io_uring_task_work_run`.
    pub const KIND_TASK_WORK_RUN: u8 = 11;
    /// `task_newtask` (fork of a traced process).
    pub const KIND_NEWTASK: u8 = 12;
    /// Number of kind slots in the config (kinds are 1..KINDS).
    pub const KINDS: usize = 13;

    /// Why a wire record could not be decoded.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum DecodeError {
        /// The record is not `EVENT_SIZE` bytes: object and loader disagree.
        #[error("probe event of {0} bytes, expected {EVENT_SIZE}")]
        Size(usize),
        /// Unknown kind byte.
        #[error("probe event of unknown kind {0}")]
        Kind(u8),
    }

    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
    }
    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
    }

    /// Decodes one ring buffer record.
    pub fn decode(b: &[u8]) -> Result<ProbeEvent, DecodeError> {
        if b.len() != EVENT_SIZE {
            return Err(DecodeError::Size(b.len()));
        }
        let hdr = Header {
            ts_ns: u64_at(b, 0),
            tgid: u32_at(b, 48),
            tid: u32_at(b, 52),
            cpu: u16::from_le_bytes([b[68], b[69]]),
        };
        let ring = Ptr(u64_at(b, 8));
        let req = Ptr(u64_at(b, 16));
        let user_data = u64_at(b, 24);
        let a = u64_at(b, 32);
        let bb = u64_at(b, 40);
        let res = u32_at(b, 56) as i32;
        let c = u32_at(b, 60);
        let d = u32_at(b, 64);
        let kind = b[70];
        let opcode = b[71];
        let absent = u32_at(b, 72);
        let has = |bit: u32| absent & bit == 0;
        Ok(match kind {
            KIND_CREATE => ProbeEvent::Create {
                hdr,
                ring,
                fd: res,
                sq_entries: c,
                cq_entries: d,
                flags: a as u32,
                generation: bb as u32,
            },
            KIND_SUBMIT_REQ => ProbeEvent::SubmitReq {
                hdr,
                ring,
                req,
                user_data,
                opcode,
                flags: a,
                sq_thread: c != 0,
            },
            KIND_COMPLETE => ProbeEvent::Complete {
                hdr,
                ring,
                req,
                user_data,
                res,
                cflags: c,
                extra1: a,
                extra2: bb,
            },
            KIND_LINK => ProbeEvent::Link {
                hdr,
                ring,
                req,
                target: Ptr(a),
            },
            KIND_FAIL_LINK => ProbeEvent::FailLink {
                hdr,
                ring,
                req,
                user_data,
                opcode,
                link: Ptr(a),
            },
            KIND_REQ_FAILED => ProbeEvent::ReqFailed {
                hdr,
                ring,
                req,
                user_data,
                opcode,
                sqe_flags: c as u8,
                buf_index: (c >> 16) as u16,
                off: a,
                addr: bb,
                len: d,
                error: res,
            },
            KIND_CQE_OVERFLOW => ProbeEvent::CqeOverflow {
                hdr,
                ring,
                user_data,
                res,
                cflags: c,
                ocqe: Ptr(a),
            },
            KIND_SHORT_WRITE => ProbeEvent::ShortWrite {
                hdr,
                ring,
                fpos: a,
                wanted: bb,
                got: user_data,
            },
            KIND_POLL_ARM => ProbeEvent::PollArm {
                hdr,
                ring,
                req,
                user_data,
                opcode,
                mask: c,
                events: d,
            },
            KIND_QUEUE_ASYNC_WORK => ProbeEvent::QueueAsyncWork {
                hdr,
                ring,
                req,
                user_data,
                opcode,
                flags: a,
                work: Ptr(bb),
                rw: has(absent::QUEUE_ASYNC_WORK_RW).then_some(c),
                hashed: has(absent::QUEUE_ASYNC_WORK_HASHED).then_some(c != 0),
            },
            KIND_TASK_WORK_RUN => ProbeEvent::TaskWorkRun {
                hdr,
                tctx: ring,
                count: c,
            },
            KIND_NEWTASK => ProbeEvent::NewTask {
                hdr,
                child: c,
                clone_flags: a,
            },
            k => return Err(DecodeError::Kind(k)),
        })
    }

    /// Encodes an event in the wire format (the inverse of [`decode`]); used
    /// by tests and tools that synthesize kernel records. `None` for
    /// [`ProbeEvent::Ring`], which userspace makes and the kernel never
    /// sends.
    pub fn encode(ev: &ProbeEvent) -> Option<[u8; EVENT_SIZE]> {
        let mut b = [0u8; EVENT_SIZE];
        let h = ev.header();
        let (mut ring, mut req, mut ud, mut a, mut bb) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let (mut res, mut c, mut d, mut op) = (0i32, 0u32, 0u32, 0u8);
        let mut absent_mask = 0u32;
        let kind = match *ev {
            ProbeEvent::Create {
                ring: r,
                fd,
                sq_entries,
                cq_entries,
                flags,
                generation,
                ..
            } => {
                ring = r.0;
                res = fd;
                c = sq_entries;
                d = cq_entries;
                a = flags as u64;
                bb = generation as u64;
                KIND_CREATE
            }
            ProbeEvent::SubmitReq {
                ring: r,
                req: q,
                user_data,
                opcode,
                flags,
                sq_thread,
                ..
            } => {
                (ring, req, ud, op, a, c) = (r.0, q.0, user_data, opcode, flags, sq_thread as u32);
                KIND_SUBMIT_REQ
            }
            ProbeEvent::Complete {
                ring: r,
                req: q,
                user_data,
                res: rs,
                cflags,
                extra1,
                extra2,
                ..
            } => {
                (ring, req, ud, res, c, a, bb) = (r.0, q.0, user_data, rs, cflags, extra1, extra2);
                KIND_COMPLETE
            }
            ProbeEvent::Link {
                ring: r,
                req: q,
                target,
                ..
            } => {
                (ring, req, a) = (r.0, q.0, target.0);
                KIND_LINK
            }
            ProbeEvent::FailLink {
                ring: r,
                req: q,
                user_data,
                opcode,
                link,
                ..
            } => {
                (ring, req, ud, op, a) = (r.0, q.0, user_data, opcode, link.0);
                KIND_FAIL_LINK
            }
            ProbeEvent::ReqFailed {
                ring: r,
                req: q,
                user_data,
                opcode,
                sqe_flags,
                off,
                addr,
                len,
                buf_index,
                error,
                ..
            } => {
                (ring, req, ud, op, a, bb, d, res) =
                    (r.0, q.0, user_data, opcode, off, addr, len, error);
                c = sqe_flags as u32 | (buf_index as u32) << 16;
                KIND_REQ_FAILED
            }
            ProbeEvent::CqeOverflow {
                ring: r,
                user_data,
                res: rs,
                cflags,
                ocqe,
                ..
            } => {
                (ring, ud, res, c, a) = (r.0, user_data, rs, cflags, ocqe.0);
                KIND_CQE_OVERFLOW
            }
            ProbeEvent::ShortWrite {
                ring: r,
                fpos,
                wanted,
                got,
                ..
            } => {
                (ring, a, bb, ud) = (r.0, fpos, wanted, got);
                KIND_SHORT_WRITE
            }
            ProbeEvent::PollArm {
                ring: r,
                req: q,
                user_data,
                opcode,
                mask,
                events,
                ..
            } => {
                (ring, req, ud, op, c, d) = (r.0, q.0, user_data, opcode, mask, events);
                KIND_POLL_ARM
            }
            ProbeEvent::QueueAsyncWork {
                ring: r,
                req: q,
                user_data,
                opcode,
                flags,
                work,
                rw,
                hashed,
                ..
            } => {
                (ring, req, ud, op, a, bb) = (r.0, q.0, user_data, opcode, flags, work.0);
                // One wire slot holds whichever field the kernel had: the
                // raw `rw` when there is one, else `hashed`.
                c = match (rw, hashed) {
                    (Some(v), _) => v,
                    (None, Some(h)) => h as u32,
                    (None, None) => 0,
                };
                if rw.is_none() {
                    absent_mask |= absent::QUEUE_ASYNC_WORK_RW;
                }
                if hashed.is_none() {
                    absent_mask |= absent::QUEUE_ASYNC_WORK_HASHED;
                }
                KIND_QUEUE_ASYNC_WORK
            }
            ProbeEvent::TaskWorkRun { tctx, count, .. } => {
                (ring, c) = (tctx.0, count);
                KIND_TASK_WORK_RUN
            }
            ProbeEvent::NewTask {
                child, clone_flags, ..
            } => {
                (c, a) = (child, clone_flags);
                KIND_NEWTASK
            }
            ProbeEvent::Ring(_) => return None,
        };
        b[0..8].copy_from_slice(&h.ts_ns.to_le_bytes());
        b[8..16].copy_from_slice(&ring.to_le_bytes());
        b[16..24].copy_from_slice(&req.to_le_bytes());
        b[24..32].copy_from_slice(&ud.to_le_bytes());
        b[32..40].copy_from_slice(&a.to_le_bytes());
        b[40..48].copy_from_slice(&bb.to_le_bytes());
        b[48..52].copy_from_slice(&h.tgid.to_le_bytes());
        b[52..56].copy_from_slice(&h.tid.to_le_bytes());
        b[56..60].copy_from_slice(&res.to_le_bytes());
        b[60..64].copy_from_slice(&c.to_le_bytes());
        b[64..68].copy_from_slice(&d.to_le_bytes());
        b[68..70].copy_from_slice(&h.cpu.to_le_bytes());
        b[70] = kind;
        b[71] = op;
        b[72..76].copy_from_slice(&absent_mask.to_le_bytes());
        Some(b)
    }
}

#[cfg(test)]
mod tests;
