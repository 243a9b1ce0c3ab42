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

/// The ring.
pub struct Ring {
    uring: IoUring,
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
        let mut b = IoUring::builder();
        b.setup_cqsize(entries.saturating_mul(4).max(entries));
        if kernel_loop {
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_no_sqarray();
        }
        let uring = b.build(entries)?;
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
            uring,
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
        if self.queued == 0 && want == 0 {
            return Ok(0);
        }
        self.enter_calls += 1;
        loop {
            let r = match timeout {
                Some(t) if want > 0 => {
                    let ts = types::Timespec::from(t);
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.uring.submitter().submit_with_args(want, &args)
                }
                _ => self.uring.submit_and_wait(want),
            };
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
