//! The io_uring instance: registrations, SQE building, in-flight slots.
//!
//! Every request the engine issues takes a slot; the SQE's user_data is the
//! slot index and a generation, so a completion maps back to its step even
//! after the slot was reused. Buffers are allocated here, page aligned, and
//! live as long as the ring: the kernel may write into them until every
//! request is reaped, which [`crate::engine::Engine`]'s shutdown guarantees.

use crate::abi::{RsSqe, op};
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// user_data of the engine's own cancel requests.
pub const CANCEL_USER_DATA: u64 = u64::MAX;

/// A registered buffer: page-aligned memory the kernel reads and writes.
pub struct Buffer {
    ptr: *mut u8,
    len: usize,
}

impl Buffer {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(1), 4096).expect("buffer layout")
    }

    fn new(len: usize) -> Buffer {
        // SAFETY: non-zero size, valid alignment.
        let ptr = unsafe { alloc_zeroed(Buffer::layout(len)) };
        assert!(
            !ptr.is_null(),
            "out of memory allocating a {len}-byte buffer"
        );
        Buffer { ptr, len }
    }

    /// Start address.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated with the same layout in `new`.
        unsafe { dealloc(self.ptr, Buffer::layout(self.len)) };
    }
}

/// What an in-flight request belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The chain.
    pub chain: crate::chain::ChainKey,
    /// Stable id of the step inside its chain.
    pub uid: u32,
}

struct Slot {
    generation: u32,
    owner: Option<Owner>,
    timespec: types::Timespec,
}

/// One reaped completion.
#[derive(Clone, Copy, Debug)]
pub struct Cqe {
    /// user_data.
    pub user_data: u64,
    /// Result.
    pub res: i32,
    /// Flags.
    pub flags: u32,
}

// io_uring ABI numbers the io-uring crate keeps private (include/uapi/linux/io_uring.h).
const ENTER_GETEVENTS: u32 = 1 << 0;
const ENTER_EXT_ARG: u32 = 1 << 3;
const ENTER_REGISTERED_RING: u32 = 1 << 4;
const REGISTER_RING_FDS: u32 = 20;
const UNREGISTER_RING_FDS: u32 = 21;

/// What a ring got of the kernel's features for fewer, cheaper enters. A
/// feature the kernel refuses is left out and said why in `missing`: the
/// ring works the same without it, only dearer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tuning {
    /// `IORING_SETUP_DEFER_TASKRUN` (Linux 6.1+): completions that need task
    /// work (a pipe read woken by a write) are finished in one batch when
    /// the ring's thread enters to wait, not by interrupting it each time.
    pub defer_taskrun: bool,
    /// `IORING_SETUP_SINGLE_ISSUER` (6.0+): only the creating thread submits,
    /// so the kernel skips locking for other submitters. The engine is not
    /// `Send`: it never leaves the thread that created it.
    pub single_issuer: bool,
    /// `IORING_SETUP_COOP_TASKRUN` with `TASKRUN_FLAG` (5.19+): no
    /// interrupt to deliver task work; the SQ flag says when to enter for it.
    pub coop_taskrun: bool,
    /// The ring fd registered with itself (5.18+): enters skip the fd
    /// table lookup.
    pub registered_fd: bool,
    /// Why a feature above is off.
    pub missing: Vec<String>,
}

impl Tuning {
    /// One line: the features on, and why the others are off.
    pub fn describe(&self) -> String {
        let on: Vec<&str> = [
            (self.single_issuer, "SINGLE_ISSUER"),
            (self.defer_taskrun, "DEFER_TASKRUN"),
            (self.coop_taskrun, "COOP_TASKRUN"),
            (self.registered_fd, "registered ring fd"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        let mut s = if on.is_empty() {
            "no setup features".to_string()
        } else {
            on.join(", ")
        };
        for m in &self.missing {
            s.push_str("; ");
            s.push_str(m);
        }
        s
    }
}

/// An io_uring set up with [`Tuning`]'s features, falling back feature by
/// feature where the kernel refuses one (EINVAL: older than it).
pub fn build_tuned(entries: u32, cq_entries: u32) -> io::Result<(IoUring, Tuning)> {
    let mut missing = Vec::new();
    // DEFER_TASKRUN needs SINGLE_ISSUER; each step drops the newest.
    let attempts = [
        (true, true, true),
        (false, true, true),
        (false, false, true),
        (false, false, false),
    ];
    let mut last = None;
    for (defer, single, coop) in attempts {
        let mut b = IoUring::builder();
        b.setup_cqsize(cq_entries.max(entries));
        if single {
            b.setup_single_issuer();
        }
        if defer {
            b.setup_defer_taskrun();
        }
        if coop {
            b.setup_coop_taskrun().setup_taskrun_flag();
        }
        match b.build(entries) {
            Ok(uring) => {
                return Ok((
                    uring,
                    Tuning {
                        defer_taskrun: defer,
                        single_issuer: single,
                        coop_taskrun: coop,
                        registered_fd: false,
                        missing,
                    },
                ));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let what = if defer {
                    "DEFER_TASKRUN (Linux 6.1+)"
                } else if single {
                    "SINGLE_ISSUER (6.0+)"
                } else {
                    "COOP_TASKRUN (5.19+)"
                };
                missing.push(format!("no {what}: the kernel refused it ({e})"));
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)))
}

/// Why [`Enter::new`] enters through the plain fd: registering the ring's
/// fd failed.
#[derive(Debug, thiserror::Error)]
#[error("no registered ring fd (Linux 5.18+): {error}")]
pub struct NoRegisteredFd {
    /// What `IORING_REGISTER_RING_FDS` returned.
    pub error: io::Error,
}

/// io_uring_enter on one ring, through its registered fd when the kernel
/// took it. Unregisters on drop: a registered fd holds the ring open.
#[derive(Debug)]
pub struct Enter {
    fd: RawFd,
    registered: Option<u32>,
}

#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

#[repr(C)]
struct GeteventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

impl Enter {
    /// Register `uring`'s fd with it (for the calling thread: registered
    /// ring fds are per thread, as the engine is); without the feature, or
    /// when the thread's 16 slots are taken, enters use the plain fd and
    /// `Err` says why.
    pub fn new(uring: &IoUring) -> (Enter, Result<(), NoRegisteredFd>) {
        let fd = uring.as_raw_fd();
        let mut up = RsrcUpdate {
            offset: u32::MAX,
            resv: 0,
            data: fd as u64,
        };
        // SAFETY: a valid update array of one entry, as the call expects.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                fd,
                REGISTER_RING_FDS,
                &mut up as *mut RsrcUpdate,
                1,
            )
        };
        if r == 1 {
            (
                Enter {
                    fd,
                    registered: Some(up.offset),
                },
                Ok(()),
            )
        } else {
            let e = io::Error::last_os_error();
            (
                Enter {
                    fd,
                    registered: None,
                },
                Err(NoRegisteredFd { error: e }),
            )
        }
    }

    /// Whether enters go through the registered fd.
    pub fn registered(&self) -> bool {
        self.registered.is_some()
    }

    /// Submit `to_submit` SQEs and, with `getevents`, reap (running deferred
    /// task work) and wait for `want` completions, at most `timeout`.
    pub fn enter(
        &self,
        to_submit: u32,
        want: u32,
        getevents: bool,
        timeout: Option<std::time::Duration>,
    ) -> io::Result<usize> {
        let (fd, mut flags) = match self.registered {
            Some(i) => (i as i32, ENTER_REGISTERED_RING),
            None => (self.fd, 0),
        };
        if getevents || want > 0 {
            flags |= ENTER_GETEVENTS;
        }
        let ts;
        let arg;
        let (argp, argsz) = match timeout {
            Some(t) if want > 0 => {
                ts = libc::timespec {
                    tv_sec: t.as_secs() as libc::time_t,
                    tv_nsec: t.subsec_nanos() as libc::c_long,
                };
                arg = GeteventsArg {
                    sigmask: 0,
                    sigmask_sz: 0,
                    min_wait_usec: 0,
                    ts: &ts as *const libc::timespec as u64,
                };
                flags |= ENTER_EXT_ARG;
                (
                    &arg as *const GeteventsArg as *const libc::c_void,
                    std::mem::size_of::<GeteventsArg>(),
                )
            }
            _ => (std::ptr::null(), 0),
        };
        // SAFETY: argp is null or points at a live getevents arg (and its
        // timespec) of the size given.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                fd,
                to_submit,
                want,
                flags,
                argp,
                argsz,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        if let Some(offset) = self.registered {
            let mut up = RsrcUpdate {
                offset,
                resv: 0,
                data: 0,
            };
            // SAFETY: as in `new`.
            unsafe {
                libc::syscall(
                    libc::SYS_io_uring_register,
                    self.fd,
                    UNREGISTER_RING_FDS,
                    &mut up as *mut RsrcUpdate,
                    1,
                )
            };
        }
    }
}

/// The ring.
pub struct Ring {
    // Declared first: unregistered before the ring closes.
    enter: Enter,
    uring: IoUring,
    tuning: Tuning,
    buffers: Vec<Buffer>,
    nfiles: u32,
    slots: Vec<Slot>,
    free: Vec<u32>,
    inflight: u32,
    queued: u32,
    /// io_uring_enter calls made.
    pub enter_calls: u64,
    /// SQEs submitted.
    pub sqes_submitted: u64,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("fd", &self.uring.as_raw_fd())
            .field("inflight", &self.inflight)
            .finish()
    }
}

impl Ring {
    /// Set up a ring with `entries` SQ entries, the given files registered
    /// (by index) and buffers of the given sizes registered.
    pub fn new(entries: u32, files: &[RawFd], buffer_sizes: &[usize]) -> io::Result<Ring> {
        Ring::with_setup(entries, files, buffer_sizes, false)
    }

    /// [`Ring::new`]; with `kernel_loop`, set up as the kernel backend's
    /// loop needs it (`crate::run::kernel::SETUP_FLAGS`, no SQ array).
    pub fn with_setup(
        entries: u32,
        files: &[RawFd],
        buffer_sizes: &[usize],
        kernel_loop: bool,
    ) -> io::Result<Ring> {
        let cq = entries.saturating_mul(4).max(entries);
        let (uring, mut tuning) = if kernel_loop {
            let mut b = IoUring::builder();
            b.setup_cqsize(cq);
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_no_sqarray();
            let t = Tuning {
                defer_taskrun: true,
                single_issuer: true,
                ..Tuning::default()
            };
            (b.build(entries)?, t)
        } else {
            build_tuned(entries, cq)?
        };
        let (enter, registered) = Enter::new(&uring);
        match registered {
            Ok(()) => tuning.registered_fd = true,
            Err(why) => tuning.missing.push(why.to_string()),
        }
        if !files.is_empty() {
            uring.submitter().register_files(files)?;
        }
        let buffers: Vec<Buffer> = buffer_sizes.iter().map(|&s| Buffer::new(s)).collect();
        if !buffers.is_empty() {
            let iov: Vec<libc::iovec> = buffers
                .iter()
                .map(|b| libc::iovec {
                    iov_base: b.ptr as *mut libc::c_void,
                    iov_len: b.len,
                })
                .collect();
            // SAFETY: the buffers live as long as the ring (dropped after it:
            // fields drop in order, and `uring` is declared first).
            unsafe { uring.submitter().register_buffers(&iov)? };
        }
        Ok(Ring {
            enter,
            uring,
            tuning,
            buffers,
            nfiles: files.len() as u32,
            slots: Vec::new(),
            free: Vec::new(),
            inflight: 0,
            queued: 0,
            enter_calls: 0,
            sqes_submitted: 0,
        })
    }

    /// The ring's fd.
    pub fn fd(&self) -> RawFd {
        self.uring.as_raw_fd()
    }

    /// What the ring got of the kernel's cheaper-enter features.
    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// SQ entries.
    pub fn sq_entries(&self) -> u32 {
        self.uring.params().sq_entries()
    }

    /// CQ entries.
    pub fn cq_entries(&self) -> u32 {
        self.uring.params().cq_entries()
    }

    /// Registered files.
    pub fn nfiles(&self) -> u32 {
        self.nfiles
    }

    /// Registered buffers.
    pub fn buffers(&self) -> &[Buffer] {
        &self.buffers
    }

    /// Requests in the kernel (submitted or queued for submission).
    pub fn inflight(&self) -> u32 {
        self.inflight
    }

    /// SQEs queued but not yet submitted.
    pub fn queued(&self) -> u32 {
        self.queued
    }

    /// Reserve a slot; returns the user_data to put in the SQE.
    pub fn alloc_slot(&mut self, owner: Owner) -> u64 {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    owner: None,
                    timespec: types::Timespec::new(),
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[idx as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.owner = Some(owner);
        ((slot.generation as u64) << 32) | idx as u64
    }

    /// Release the slot of a completion; returns its owner, or None for a
    /// user_data that is not (or no longer) ours.
    pub fn release(&mut self, user_data: u64) -> Option<Owner> {
        let idx = (user_data & 0xffff_ffff) as usize;
        let generation = (user_data >> 32) as u32;
        let slot = self.slots.get_mut(idx)?;
        if slot.generation != generation {
            return None;
        }
        let owner = slot.owner.take()?;
        self.free.push(idx as u32);
        self.inflight -= 1;
        Some(owner)
    }

    /// Build the SQE for a request template. `user_data` comes from
    /// [`Ring::alloc_slot`]. The template was validated against the
    /// registrations (see `decision.rs` and `engine.rs`).
    pub fn build(&mut self, sqe: &RsSqe, user_data: u64, flags: squeue::Flags) -> squeue::Entry {
        let file = types::Fixed(sqe.fd.max(0) as u32);
        let addr = |bufs: &[Buffer]| -> *mut u8 {
            bufs.get(sqe.buf_index as usize)
                // SAFETY: buf_off + len was checked to be inside the buffer.
                .map(|b| unsafe { b.ptr.add(sqe.buf_off as usize) })
                .unwrap_or(std::ptr::null_mut())
        };
        let mut flags = flags;
        if op::needs_file(sqe.opcode) {
            flags |= squeue::Flags::FIXED_FILE;
        }
        let e = match sqe.opcode {
            op::NOP => opcode::Nop::new().build(),
            op::READ => opcode::Read::new(file, addr(&self.buffers), sqe.len)
                .offset(sqe.off)
                .rw_flags(sqe.op_flags as i32)
                .build(),
            op::WRITE => opcode::Write::new(file, addr(&self.buffers), sqe.len)
                .offset(sqe.off)
                .rw_flags(sqe.op_flags as i32)
                .build(),
            op::READ_FIXED => {
                opcode::ReadFixed::new(file, addr(&self.buffers), sqe.len, sqe.buf_index)
                    .offset(sqe.off)
                    .rw_flags(sqe.op_flags as i32)
                    .build()
            }
            op::WRITE_FIXED => {
                opcode::WriteFixed::new(file, addr(&self.buffers), sqe.len, sqe.buf_index)
                    .offset(sqe.off)
                    .rw_flags(sqe.op_flags as i32)
                    .build()
            }
            op::RECV => opcode::Recv::new(file, addr(&self.buffers), sqe.len)
                .flags(sqe.op_flags as i32)
                .build(),
            op::SEND => opcode::Send::new(file, addr(&self.buffers), sqe.len)
                .flags(sqe.op_flags as i32)
                .build(),
            op::FSYNC => opcode::Fsync::new(file)
                .flags(types::FsyncFlags::from_bits_truncate(sqe.op_flags))
                .build(),
            op::TIMEOUT => {
                let idx = (user_data & 0xffff_ffff) as usize;
                let ts = &mut self.slots[idx].timespec;
                *ts = types::Timespec::new()
                    .sec(sqe.off / 1_000_000_000)
                    .nsec((sqe.off % 1_000_000_000) as u32);
                // The kernel copies the timespec when the SQE is prepared; the
                // slot keeps it alive until then anyway.
                opcode::Timeout::new(ts as *const types::Timespec)
                    .flags(types::TimeoutFlags::from_bits_truncate(sqe.op_flags))
                    .build()
            }
            other => unreachable!(
                "opcode {other} is not on the allow-list; templates are validated first"
            ),
        };
        e.user_data(user_data).flags(flags)
    }

    /// Queue an SQE, submitting first when the SQ is full.
    pub fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every pointer in the entry (buffers, timespec) lives in
            // this Ring until the request completes.
            let pushed = unsafe { self.uring.submission().push(&entry) };
            if pushed.is_ok() {
                break;
            }
            self.submit(0)?;
        }
        self.queued += 1;
        if entry_user_data(&entry) != CANCEL_USER_DATA {
            self.inflight += 1;
        }
        Ok(())
    }

    /// Free SQ entries.
    pub fn sq_space(&mut self) -> usize {
        let sq = self.uring.submission();
        sq.capacity() - sq.len()
    }

    /// Submit what is queued and wait for `want` completions, or at most
    /// `timeout` when given (so callers can check for Ctrl-C and deadlines).
    pub fn submit(&mut self, want: usize) -> io::Result<usize> {
        self.submit_timeout(want, None)
    }

    /// [`Ring::submit`] with a bounded wait.
    pub fn submit_timeout(
        &mut self,
        want: usize,
        timeout: Option<std::time::Duration>,
    ) -> io::Result<usize> {
        // Completions waiting on task work (the SQ's TASKRUN flag) arrive
        // only through an enter asking for events.
        let (taskrun, overflow) = {
            let sq = self.uring.submission();
            (sq.taskrun(), sq.cq_overflow())
        };
        if self.queued == 0 && want == 0 && !taskrun && !overflow {
            return Ok(0);
        }
        self.enter_calls += 1;
        loop {
            let to_submit = self.uring.submission().len() as u32;
            let r = self.enter.enter(
                to_submit,
                want as u32,
                taskrun || overflow,
                timeout.filter(|_| want > 0),
            );
            match r {
                Ok(n) => {
                    self.sqes_submitted += n as u64;
                    self.queued = self.queued.saturating_sub(n as u32);
                    return Ok(n);
                }
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {
                    // Timed out waiting; the SQEs went in (the kernel consumed them).
                    let left = self.uring.submission().len() as u32;
                    self.sqes_submitted += (self.queued - left.min(self.queued)) as u64;
                    self.queued = left;
                    return Ok(0);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                    let left = self.uring.submission().len() as u32;
                    self.queued = left;
                    if timeout.is_some() {
                        return Ok(0);
                    }
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && want > 0 => {
                    // The CQ is full: the caller must reap before waiting.
                    return Ok(0);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Move every available completion into `out`.
    pub fn reap(&mut self, out: &mut Vec<Cqe>) {
        let cq = self.uring.completion();
        for cqe in cq {
            out.push(Cqe {
                user_data: cqe.user_data(),
                res: cqe.result(),
                flags: cqueue::Entry::flags(&cqe),
            });
        }
    }

    /// Queue one request that cancels everything in flight.
    pub fn cancel_all(&mut self) -> io::Result<()> {
        let e = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(CANCEL_USER_DATA);
        self.push(e)
    }
}

fn entry_user_data(e: &squeue::Entry) -> u64 {
    e.get_user_data()
}
