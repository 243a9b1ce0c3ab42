//! The structs of `engine/kernel/bpf/rs_kernel.h`, with the same layout:
//! the memory region the loop and the engine share, and the records the
//! loop writes to its ring buffer. The tests at the bottom check sizes and
//! offsets against the header's comments.

#![allow(missing_docs)] // each field is the header's, documented there

pub const KMAGIC: u32 = 0x4b53_5352;
pub const KVERSION: u32 = 1;
pub const WIN: usize = 16;
pub const MAX_CHAINS: usize = 256;
pub const MAX_SLOTS: usize = 1024;
pub const SUB_RING: usize = 256;
pub const COMP_RING: usize = 4096;
pub const FIN_RING: usize = 256;
pub const STAGE: usize = 64;
pub const MAX_BUFS: usize = 64;
pub const MAX_PROGS: usize = 64;

pub const CTL_WAIT: u32 = 1;
pub const CTL_PAUSE_EACH: u32 = 2;
pub const CTL_SHUTDOWN: u32 = 4;
/// With [`CTL_WAIT`]: return once the application has a completion or a
/// finished chain to read ([`crate::Engine::run`]; without it the loop
/// waits until every chain finished or the deadline).
pub const CTL_WAIT_ONE: u32 = 8;

pub const KERR_REGION: u32 = 1;
pub const KERR_SUBMIT: u32 = 2;
pub const KERR_STAGE: u32 = 3;
pub const KERR_SLOTS: u32 = 4;
pub const KERR_COMP: u32 = 5;

pub const CH_FREE: u8 = 0;
pub const CH_QUEUED: u8 = 1;

pub const DRV_ENGINE: u8 = 0;
pub const DRV_KERNEL: u8 = 1;
pub const DRV_KERNEL_HARD: u8 = 2;

pub const NOTIFY_ALL: u8 = 0;
pub const NOTIFY_FINAL: u8 = 1;
pub const NOTIFY_NONE: u8 = 2;

pub const ST_PENDING: u8 = 0;

pub const CAUSE_KERNEL_LINK: u8 = 1;
pub const CAUSE_LINK_FAILED: u8 = 2;
pub const CAUSE_PROGRAM_FAIL: u8 = 3;
pub const CAUSE_PROGRAM_STOP: u8 = 4;
pub const CAUSE_DROPPED: u8 = 5;
pub const CAUSE_BAD_RETURN: u8 = 6;
pub const CAUSE_BUDGET: u8 = 7;
pub const CAUSE_SHUTDOWN: u8 = 8;
pub const CAUSE_SUBMIT_FAILED: u8 = 9;
pub const CAUSE_KLIMIT: u8 = 10;

pub const KLIM_WINDOW: u8 = 1;
pub const KLIM_ACTIONS: u8 = 2;
pub const KLIM_PROG: u8 = 3;

pub const OUT_COMPLETED: u8 = 0;
pub const OUT_STOPPED: u8 = 1;
pub const OUT_FAILED: u8 = 2;

pub const APP_FINAL: u8 = 0;
pub const APP_STEP: u8 = 1;
pub const APP_CANCELLED: u8 = 2;

pub const REC_STARTED: u32 = 1;
pub const REC_SUBMITTED: u32 = 2;
pub const REC_COMPLETED: u32 = 3;
pub const REC_STEP_ADDED: u32 = 4;
pub const REC_UNLINKED: u32 = 5;
pub const REC_CANCELLED: u32 = 6;
pub const REC_APP: u32 = 7;
pub const REC_FINISHED: u32 = 8;
pub const REC_SHUTDOWN: u32 = 9;
pub const REC_DECISION: u32 = 10;
pub const REC_CALL: u32 = 11;
pub const REC_DATA: u32 = 12;
pub const REC_DECIDED: u32 = 13;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KStep {
    pub sqe: [u8; 40],
    pub uid: u32,
    pub res: i32,
    pub state: u8,
    pub attempt: u8,
    pub detached: u8,
    pub unlinked: u8,
    pub prog: u16,
    pub _pad: u16,
    pub submitted_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KCause {
    pub kind: u8,
    pub vkind: u8,
    pub _pad: u16,
    pub step: u32,
    pub decision: u64,
    pub limit: u64,
    pub value: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KChain {
    pub id: u64,
    pub user_data: u64,
    pub base: u32,
    pub nstored: u32,
    pub next_uid: u32,
    pub inflight: u32,
    pub state: u8,
    pub driver: u8,
    pub notify: u8,
    pub drain: u8,
    pub has_failure: u8,
    pub stopped: u8,
    pub cancelled: u8,
    pub has_final_res: u8,
    pub prog: u16,
    pub start: u16,
    pub final_res: i32,
    pub last_res: i32,
    pub current: i32,
    pub fail_step: u32,
    pub fail_res: i32,
    pub fail_cause: KCause,
    pub stop_decision: u64,
    pub _pad1: u64,
    pub steps: [KStep; WIN],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KSlot {
    pub gen_: u32,
    pub chain: u16,
    pub used: u16,
    pub uid: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KComp {
    pub chain: u64,
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
    pub step: u32,
    pub kind: u8,
    pub _pad: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KFin {
    pub chain: u64,
    pub slot: u32,
    pub res: i32,
    pub outcome: u8,
    pub _pad: [u8; 3],
    pub fail_step: u32,
    pub steps: u32,
    pub _pad2: u32,
    pub stop_decision: u64,
    pub cause: KCause,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KTimespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KMemHdr {
    pub magic: u32,
    pub version: u32,
    pub ctl: u32,
    pub record: u32,
    pub deadline_ns: u64,
    pub submits_per_decision: u32,
    pub steps_per_chain: u32,
    pub attempts_per_step: u32,
    pub ring_prog: u32,
    pub sub_head: u32,
    pub sub_tail: u32,
    pub comp_head: u32,
    pub comp_tail: u32,
    pub fin_head: u32,
    pub fin_tail: u32,
    pub running: u32,
    pub barrier: u32,
    pub shut: u32,
    pub inflight: u32,
    pub cancels: u32,
    pub timers: u32,
    pub timer_gen: u32,
    pub timer_armed: u32,
    pub error: u32,
    pub err_arg: i32,
    pub nfree: u32,
    pub pause: u32,
    pub decisions: u64,
    pub submitted: u64,
    pub completed: u64,
    pub chains_finished: u64,
    pub loop_steps: u64,
    pub lost: u64,
    pub decision_ns: u64,
    pub nstage: u32,
    pub _pad: u32,
    pub _rsvd: [u64; 8],
}

#[repr(C)]
pub struct KMem {
    pub hdr: KMemHdr,
    pub sub: [u32; SUB_RING],
    pub comp: [KComp; COMP_RING],
    pub fin: [KFin; FIN_RING],
    pub slots: [KSlot; MAX_SLOTS],
    pub free: [u16; MAX_SLOTS],
    pub ts: [KTimespec; MAX_SLOTS],
    pub timer_ts: KTimespec,
    pub stage: [[u8; 64]; STAGE],
    pub chains: [KChain; MAX_CHAINS],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KEv {
    pub kind: u32,
    pub step: u32,
    pub chain: u64,
    pub ts: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
    pub cause: KCause,
    pub sqe: [u8; 40],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KPend {
    pub index: u32,
    pub unlinked: u8,
    pub dropped: u8,
    pub _pad: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KDec {
    pub kind: u32,
    pub prog: u32,
    pub seq: u64,
    pub chain: u64,
    pub ctx: [u8; 64],
    pub step: u32,
    pub nsteps: u32,
    pub opcode: u8,
    pub attempt: u8,
    pub npending: u16,
    pub fd: i32,
    pub pending: [KPend; WIN],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KCall {
    pub kind: u32,
    pub helper: u32,
    pub seq: u64,
    pub ret: i64,
    pub _pad: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KDecided {
    pub kind: u32,
    pub result: u32,
    pub seq: u64,
    pub ret: u64,
    pub duration_ns: u64,
    pub vkind: u32,
    pub _pad: u32,
    pub limit: u64,
    pub value: u64,
}

/// `Default` as all-zero for structs whose arrays are too long to derive it.
macro_rules! zeroed_default {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                // SAFETY: integers and integer arrays only: all-zero is valid.
                unsafe { std::mem::zeroed() }
            }
        }
    )*};
}
zeroed_default!(KStep, KEv, KDec);

/// Read a record struct from ring buffer bytes (shorter input is zero-filled).
pub fn read<T: Copy + Default>(bytes: &[u8]) -> T {
    let mut v = T::default();
    let n = bytes.len().min(std::mem::size_of::<T>());
    // SAFETY: T is a plain repr(C) struct of integers (every bit pattern is
    // valid), and at most size_of::<T>() bytes are copied into it.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), &mut v as *mut T as *mut u8, n);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn the_layouts_are_the_headers() {
        assert_eq!(size_of::<KStep>(), 64);
        assert_eq!(size_of::<KCause>(), 32);
        assert_eq!(offset_of!(KChain, prog), 40);
        assert_eq!(offset_of!(KChain, fail_cause), 64);
        assert_eq!(offset_of!(KChain, stop_decision), 96);
        assert_eq!(offset_of!(KChain, steps), 112);
        assert_eq!(size_of::<KSlot>(), 16);
        assert_eq!(size_of::<KComp>(), 32);
        assert_eq!(size_of::<KFin>(), 72);
        assert_eq!(size_of::<KMemHdr>(), 240);
        assert_eq!(offset_of!(KMemHdr, decisions), 112);
        assert_eq!(offset_of!(KMemHdr, nstage), 168);
        assert_eq!(size_of::<KEv>(), 128);
        assert_eq!(size_of::<KDec>(), 232);
        assert_eq!(size_of::<KMem>(), 480_512);
        assert_eq!(offset_of!(KMem, chains), 189_696);
        assert_eq!(size_of::<KCall>(), 32);
        assert_eq!(size_of::<KDecided>(), 56);
    }
}
