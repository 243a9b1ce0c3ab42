//! One decision: a program run on one completion, and the helpers' semantics.
//!
//! This is the only implementation of what helpers do. The live engine runs
//! it against the real maps, buffers and clock; replay runs it against the
//! inputs recorded in a decision's event ([`reexecute`]) and compares. A
//! helper never changes a chain directly: it validates its arguments against
//! a [`ChainView`] and appends an [`Action`] the engine applies after the
//! program returns, so a decision that breaks a budget can be discarded whole.

pub use ringside_schema::decision::*;

use crate::abi::{self, RsCtx, RsSqe, Verdict, Where, helper_id, op};
use crate::program::interp::{self, InterpError, TraceStep};
use crate::program::maps::{Map, MapDef, MapKind};
use crate::program::mem::{AddrSpace, Region, RegionKind};
use crate::program::vm::{ExecMode, HelperHost, RunError};
use crate::program::{LoadedProgram, MapId};
use std::time::Instant;

/// Sources of a decision's nondeterministic inputs.
pub trait InputSource {
    /// `bpf_ktime_get_ns`.
    fn ktime_ns(&mut self) -> u64;
    /// Copy `dst.len()` bytes of registered buffer `buf` at `off` (already
    /// range-checked against the registration).
    fn read_buf(&mut self, buf: u16, off: u64, dst: &mut [u8]);
}

/// The environment a program runs in: helper semantics over a chain view.
struct Env<'a> {
    prog: &'a LoadedProgram,
    maps: &'a mut [Map],
    /// Object-local map index -> index into `maps` (None: identity, for replay).
    map_index: Option<&'a [MapId]>,
    regs: &'a Registrations,
    budgets: &'a Budgets,
    view: ChainView,
    source: &'a mut dyn InputSource,
    record: bool,
    calls: Vec<HelperCall>,
    actions: Vec<Action>,
    touched: Vec<MapTouch>,
    writes: Vec<MapWrite>,
    /// (local map, key, address, last known bytes) of looked-up values, to see direct writes.
    watches: Vec<(u32, Vec<u8>, u64, Vec<u8>)>,
    submits: u32,
    violation: Option<BudgetViolation>,
}

impl<'a> Env<'a> {
    /// An environment with nothing recorded or asked for yet.
    #[allow(clippy::too_many_arguments)]
    fn new(
        prog: &'a LoadedProgram,
        maps: &'a mut [Map],
        map_index: Option<&'a [MapId]>,
        regs: &'a Registrations,
        budgets: &'a Budgets,
        view: ChainView,
        source: &'a mut dyn InputSource,
        record: bool,
    ) -> Env<'a> {
        Env {
            prog,
            maps,
            map_index,
            regs,
            budgets,
            view,
            source,
            record,
            calls: Vec::new(),
            actions: Vec::new(),
            touched: Vec::new(),
            writes: Vec::new(),
            watches: Vec::new(),
            submits: 0,
            violation: None,
        }
    }
}

fn errno(e: i32) -> i64 {
    -(e as i64)
}

/// Why a helper could not use a pointer argument (only a program loaded as
/// trusted can pass one: the verifier proves every other program's).
fn bad_pointer(arg: usize, len: usize, write: bool) -> String {
    format!(
        "argument {arg} is not {} memory of {len} bytes the program may touch",
        if write { "writable" } else { "readable" }
    )
}

impl Env<'_> {
    fn map(&mut self, handle: u64) -> Option<(u32, usize)> {
        let (local, _) = self.prog.map_of_handle(handle)?;
        Some((local as u32, self.map_index_of(local as u32)?))
    }

    /// Index into `maps` of the program's map `local`.
    fn map_index_of(&self, local: u32) -> Option<usize> {
        let idx = match self.map_index {
            Some(ids) => ids.get(local as usize)?.0 as usize,
            None => local as usize,
        };
        (idx < self.maps.len()).then_some(idx)
    }

    fn touch(&mut self, local: u32, idx: usize, key: &[u8]) {
        if !self.record || self.touched.iter().any(|t| t.map == local && t.key == key) {
            return;
        }
        let m = &self.maps[idx];
        self.touched.push(MapTouch {
            map: local,
            key: key.to_vec(),
            before: m.get(key).ok().flatten(),
            len_before: m.len() as u32,
        });
    }

    fn refresh_watch(&mut self, local: u32, key: &[u8], now: Option<&[u8]>) {
        for w in self
            .watches
            .iter_mut()
            .filter(|w| w.0 == local && w.1 == key)
        {
            w.3 = now
                .map(|v| v.to_vec())
                .unwrap_or_else(|| vec![0; w.3.len()]);
        }
    }

    /// Which arguments are pointers, and how many the helper takes: only
    /// those are recorded (the rest are leftovers that differ run to run).
    fn ptr_args(id: u32) -> ([bool; 5], usize) {
        const CTX_ONLY: [bool; 5] = [true, false, false, false, false];
        match id {
            helper_id::MAP_LOOKUP_ELEM | helper_id::MAP_DELETE_ELEM => {
                ([true, true, false, false, false], 2)
            }
            helper_id::MAP_UPDATE_ELEM => ([true, true, true, false, false], 4),
            helper_id::KTIME_GET_NS => ([false; 5], 0),
            helper_id::TRACE_PRINTK => (CTX_ONLY, 5),
            helper_id::RS_SUBMIT => ([true, true, false, false, false], 4),
            helper_id::RS_READ_BUF => ([true, false, false, true, false], 5),
            helper_id::RS_EMIT => (CTX_ONLY, 4),
            helper_id::RS_DROP | helper_id::RS_UNLINK | helper_id::RS_SET_RES => (CTX_ONLY, 2),
            _ => ([false; 5], 5),
        }
    }

    /// `rs_submit`: the new step's index, or (errno, why).
    fn submit(
        &mut self,
        mem: &AddrSpace<'_>,
        sqe_addr: u64,
        size: u64,
        place: u64,
    ) -> Result<i64, (i32, String)> {
        if size != abi::SQE_SIZE as u64 {
            let why = format!(
                "size {size} is not sizeof(struct rs_sqe) = {}",
                abi::SQE_SIZE
            );
            return Err((libc::EINVAL, why));
        }
        let Some(raw) = mem.read(sqe_addr, abi::SQE_SIZE) else {
            return Err((libc::EFAULT, bad_pointer(2, abi::SQE_SIZE, false)));
        };
        let sqe = RsSqe::from_bytes(raw.try_into().expect("40 bytes"));
        let fail = |e: i32, why: String| Err((e, why));
        let Some(place_w) = Where::from_raw(place) else {
            return fail(
                libc::EINVAL,
                format!("where = {place} is not RS_AFTER_CURRENT, RS_AT_END or RS_DETACHED"),
            );
        };
        if sqe._rsvd != 0 {
            return fail(libc::EINVAL, format!("_rsvd is {}, must be 0", sqe._rsvd));
        }
        if !op::allowed(sqe.opcode) {
            return fail(
                libc::EPERM,
                format!(
                    "opcode {} ({}) is not on the allow-list",
                    sqe.opcode,
                    op::name(sqe.opcode)
                ),
            );
        }
        if op::needs_file(sqe.opcode) && (sqe.fd < 0 || sqe.fd as u32 >= self.regs.files) {
            return fail(
                libc::EPERM,
                format!(
                    "fd {} is not a registered-file index ({} files registered)",
                    sqe.fd, self.regs.files
                ),
            );
        }
        if op::needs_buffer(sqe.opcode) {
            let Some(&size) = self.regs.buffers.get(sqe.buf_index as usize) else {
                return fail(
                    libc::EPERM,
                    format!(
                        "buf_index {} is not a registered buffer ({} registered)",
                        sqe.buf_index,
                        self.regs.buffers.len()
                    ),
                );
            };
            if sqe
                .buf_off
                .checked_add(sqe.len as u64)
                .is_none_or(|end| end > size)
            {
                return fail(
                    libc::EFAULT,
                    format!(
                        "buf_off {} + len {} is outside buffer {} ({size} bytes)",
                        sqe.buf_off, sqe.len, sqe.buf_index
                    ),
                );
            }
        } else if sqe.buf_index != abi::NO_BUF
            && (sqe.buf_index as usize) >= self.regs.buffers.len()
        {
            return fail(
                libc::EPERM,
                format!("buf_index {} is not a registered buffer", sqe.buf_index),
            );
        }
        if sqe.len > i32::MAX as u32 {
            return fail(libc::EINVAL, format!("len {} is too large", sqe.len));
        }
        // Budgets.
        self.submits += 1;
        if self.submits > self.budgets.submits_per_decision {
            self.violation.get_or_insert(BudgetViolation {
                kind: BudgetKind::SubmitsPerDecision,
                limit: self.budgets.submits_per_decision as u64,
                value: self.submits as u64,
            });
            return fail(
                libc::E2BIG,
                "submission budget of this completion exhausted".into(),
            );
        }
        if self.view.nsteps >= self.budgets.steps_per_chain {
            self.violation.get_or_insert(BudgetViolation {
                kind: BudgetKind::StepsPerChain,
                limit: self.budgets.steps_per_chain as u64,
                value: self.view.nsteps as u64 + 1,
            });
            return fail(libc::E2BIG, "step budget of this chain exhausted".into());
        }
        // A request placed right after the completed step, with its opcode and
        // file, is a resubmission of that step.
        let resubmission = place_w == Where::AfterCurrent
            && sqe.opcode == self.view.opcode
            && sqe.fd == self.view.fd;
        let attempt = if resubmission {
            self.view.attempt.saturating_add(1)
        } else {
            1
        };
        if attempt > self.budgets.attempts_per_step {
            self.violation.get_or_insert(BudgetViolation {
                kind: BudgetKind::AttemptsPerStep,
                limit: self.budgets.attempts_per_step as u64,
                value: attempt as u64,
            });
            return fail(
                libc::E2BIG,
                "resubmission budget of this step exhausted".into(),
            );
        }
        let index = match place_w {
            Where::AfterCurrent => {
                let at = self.view.step + 1;
                for p in self.view.pending.iter_mut().filter(|p| p.index >= at) {
                    p.index += 1;
                }
                // Later actions in this decision name indexes after the shift.
                for a in self.actions.iter_mut() {
                    match a {
                        Action::Submit { index, .. }
                        | Action::Drop { step: index }
                        | Action::Unlink { step: index }
                            if *index >= at =>
                        {
                            *index += 1
                        }
                        _ => {}
                    }
                }
                at
            }
            Where::AtEnd | Where::Detached => self.view.nsteps,
        };
        self.view.nsteps += 1;
        if place_w != Where::Detached {
            // Kept in index order: where the new step goes (mostly the end).
            let at = self.view.pending.partition_point(|p| p.index < index);
            let p = PendingStep {
                index,
                dropped: false,
                unlinked: false,
            };
            if at == self.view.pending.len() {
                self.view.pending.push(p);
            } else {
                self.view.pending.insert(at, p);
            }
        }
        self.actions.push(Action::Submit {
            index,
            place: place_w,
            sqe,
            attempt,
        });
        Ok(index as i64)
    }

    fn pending_step(&mut self, step: u64) -> Result<&mut PendingStep, (i32, String)> {
        let nsteps = self.view.nsteps as u64;
        match self
            .view
            .pending
            .iter_mut()
            .find(|p| p.index as u64 == step)
        {
            Some(p) => Ok(p),
            None if step >= nsteps => Err((
                libc::ENOENT,
                format!("no step {step} (the chain has {nsteps})"),
            )),
            None => Err((libc::EBUSY, format!("step {step} was already issued"))),
        }
    }
}

/// Largest key a map may have (see maps.rs): keys are copied into a stack
/// buffer of this size (the program may overwrite its own copy through a
/// map value), so an unrecorded decision allocates nothing.
const KEY_BUF: usize = crate::program::maps::MAX_KEY_SIZE as usize;

/// Copy the key the program pointed at into `buf`.
fn read_key<'k>(
    mem: &AddrSpace<'_>,
    addr: u64,
    len: usize,
    buf: &'k mut [u8; KEY_BUF],
) -> Option<&'k [u8]> {
    let len = len.min(KEY_BUF);
    buf[..len].copy_from_slice(mem.read(addr, len)?);
    Some(&buf[..len])
}

impl HelperHost for Env<'_> {
    fn call(&mut self, id: u32, args: [u64; 5], mem: &AddrSpace<'_>) -> u64 {
        let [a1, a2, a3, a4, a5] = args;
        // Each arm computes the result; the call record (detail, error) is
        // built only when someone records, so the hot path allocates nothing.
        match id {
            helper_id::MAP_LOOKUP_ELEM => {
                let Some((local, idx)) = self.map(a1) else {
                    self.log(
                        id,
                        args,
                        0,
                        || CallDetail::None,
                        || Some(format!("{a1:#x} is not a map of this program")),
                    );
                    return 0;
                };
                let mut kb = [0u8; KEY_BUF];
                let ks = self.maps[idx].def().key_size as usize;
                let Some(key) = read_key(mem, a2, ks, &mut kb) else {
                    self.log(
                        id,
                        args,
                        0,
                        || CallDetail::None,
                        || Some(bad_pointer(2, ks, false)),
                    );
                    return 0;
                };
                if self.record {
                    self.touch(local, idx, key);
                }
                match self.maps[idx].lookup_ptr(key) {
                    Ok(Some(addr)) => {
                        if self.record {
                            let value = self.maps[idx].value_at(addr).to_vec();
                            self.watches
                                .push((local, key.to_vec(), addr, value.clone()));
                            let detail = CallDetail::MapLookup {
                                map: local,
                                key: key.to_vec(),
                                value: Some(value),
                            };
                            // The real address goes to the program; the record keeps 1 (found).
                            self.calls.push(HelperCall {
                                helper: id,
                                args: [0; 5],
                                ret: 1,
                                detail,
                                error: None,
                            });
                        }
                        mem.map_value_addr(local, addr as *mut u8)
                    }
                    r => {
                        let key = key.to_vec();
                        self.log(
                            id,
                            args,
                            0,
                            || CallDetail::MapLookup {
                                map: local,
                                key,
                                value: None,
                            },
                            || r.err().map(|e| e.to_string()),
                        );
                        0
                    }
                }
            }
            helper_id::MAP_UPDATE_ELEM | helper_id::MAP_DELETE_ELEM => {
                let Some((local, idx)) = self.map(a1) else {
                    let ret = errno(libc::EINVAL);
                    self.log(
                        id,
                        args,
                        ret,
                        || CallDetail::None,
                        || Some(format!("{a1:#x} is not a map of this program")),
                    );
                    return ret as u64;
                };
                let (ks, vs) = (
                    self.maps[idx].def().key_size as usize,
                    self.maps[idx].def().value_size as usize,
                );
                let mut kb = [0u8; KEY_BUF];
                let fault = |arg, len| {
                    let ret = errno(libc::EFAULT);
                    (ret, bad_pointer(arg, len, false))
                };
                let Some(key) = read_key(mem, a2, ks, &mut kb) else {
                    let (ret, why) = fault(2, ks);
                    self.log(id, args, ret, || CallDetail::None, || Some(why));
                    return ret as u64;
                };
                let value = if id == helper_id::MAP_UPDATE_ELEM {
                    match mem.read(a3, vs) {
                        Some(v) => v,
                        None => {
                            let (ret, why) = fault(3, vs);
                            self.log(id, args, ret, || CallDetail::None, || Some(why));
                            return ret as u64;
                        }
                    }
                } else {
                    &[]
                };
                let before = if self.record {
                    self.touch(local, idx, key);
                    self.maps[idx].get(key).ok().flatten()
                } else {
                    None
                };
                // The value is copied before the map changes: it may be
                // another value of this very map (the program's own memory).
                let value = value.to_vec();
                let res = if id == helper_id::MAP_UPDATE_ELEM {
                    self.maps[idx].update(key, &value, a4)
                } else {
                    self.maps[idx].delete(key)
                };
                let ret = match &res {
                    Ok(()) => 0,
                    Err(e) => e.errno(),
                };
                if self.record {
                    let key = key.to_vec();
                    let detail = if id == helper_id::MAP_UPDATE_ELEM {
                        CallDetail::MapUpdate {
                            map: local,
                            key: key.clone(),
                            value,
                            flags: a4,
                        }
                    } else {
                        CallDetail::MapDelete {
                            map: local,
                            key: key.clone(),
                        }
                    };
                    if res.is_ok() {
                        let after = self.maps[idx].get(&key).ok().flatten();
                        self.refresh_watch(local, &key, after.as_deref());
                        self.writes.push(MapWrite {
                            map: local,
                            key,
                            before,
                            after,
                        });
                    }
                    self.log(
                        id,
                        args,
                        ret,
                        || detail,
                        || res.err().map(|e| e.to_string()),
                    );
                }
                ret as u64
            }
            helper_id::KTIME_GET_NS => {
                let ns = self.source.ktime_ns();
                self.log(id, args, ns as i64, || CallDetail::Ktime { ns }, || None);
                ns
            }
            helper_id::TRACE_PRINTK => {
                let size = a2.min(256) as usize;
                let Some(fmt) = mem.read(a1, size) else {
                    let ret = errno(libc::EFAULT);
                    self.log(
                        id,
                        args,
                        ret,
                        || CallDetail::None,
                        || Some(bad_pointer(1, size, false)),
                    );
                    return ret as u64;
                };
                let text = format_printk(fmt, [a3, a4, a5]);
                let ret = text.len() as i64;
                self.log(id, args, ret, || CallDetail::Printk { text }, || None);
                ret as u64
            }
            helper_id::RS_SUBMIT => {
                let r = self.submit(mem, a2, a3, a4);
                let ret = match &r {
                    Ok(index) => *index,
                    Err((e, _)) => errno(*e),
                };
                if self.record {
                    // The template as the program passed it (zeroes when its
                    // size was wrong): read again, only for the record.
                    let mut raw = [0u8; abi::SQE_SIZE];
                    if a3 == abi::SQE_SIZE as u64
                        && let Some(b) = mem.read(a2, abi::SQE_SIZE)
                    {
                        raw.copy_from_slice(b);
                    }
                    let sqe = RsSqe::from_bytes(&raw);
                    self.log(
                        id,
                        args,
                        ret,
                        || CallDetail::Submit { sqe, place: a4 },
                        || r.err().map(|(_, why)| why),
                    );
                }
                ret as u64
            }
            helper_id::RS_DROP | helper_id::RS_UNLINK => {
                let drop = id == helper_id::RS_DROP;
                let result = match self.pending_step(a2) {
                    Ok(p) if drop && p.dropped => {
                        Err((libc::EALREADY, format!("step {a2} is already dropped")))
                    }
                    Ok(p) => {
                        if drop {
                            p.dropped = true;
                            self.actions.push(Action::Drop { step: a2 as u32 });
                        } else {
                            p.unlinked = true;
                            self.actions.push(Action::Unlink { step: a2 as u32 });
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                let ret = result.as_ref().map_or_else(|(e, _)| errno(*e), |_| 0);
                let detail = move || {
                    if drop {
                        CallDetail::Drop { step: a2 }
                    } else {
                        CallDetail::Unlink { step: a2 }
                    }
                };
                self.log(id, args, ret, detail, || result.err().map(|(_, why)| why));
                ret as u64
            }
            helper_id::RS_EMIT => {
                let (user_data, res, flags) = (a2, a3 as i32, a4 as u32);
                self.actions.push(Action::Emit {
                    user_data,
                    res,
                    flags,
                });
                self.log(
                    id,
                    args,
                    0,
                    || CallDetail::Emit {
                        user_data,
                        res,
                        flags,
                    },
                    || None,
                );
                0
            }
            helper_id::RS_READ_BUF => {
                let (buf, off, len) = (a2 as u16, a3, a5 as usize);
                let size = if a2 > u16::MAX as u64 {
                    None
                } else {
                    self.regs.buffers.get(a2 as usize).copied()
                };
                let Some(dst) = mem.write(a4, len) else {
                    let ret = errno(libc::EFAULT);
                    self.log(
                        id,
                        args,
                        ret,
                        || CallDetail::None,
                        || Some(bad_pointer(4, len, true)),
                    );
                    return ret as u64;
                };
                let error = match size {
                    None => Some((
                        libc::EPERM,
                        format!("buf_index {a2} is not a registered buffer"),
                    )),
                    Some(size) if off.checked_add(len as u64).is_none_or(|e| e > size) => Some((
                        libc::EFAULT,
                        format!("off {off} + len {len} is outside buffer {buf} ({size} bytes)"),
                    )),
                    Some(_) => None,
                };
                let ret = match &error {
                    Some((e, _)) => {
                        // Zero the destination, as the kernel's probe-read helpers do,
                        // so a failed read never leaves stale bytes behind.
                        dst.fill(0);
                        errno(*e)
                    }
                    None => {
                        self.source.read_buf(buf, off, dst);
                        len as i64
                    }
                };
                let ok = error.is_none();
                self.log(
                    id,
                    args,
                    ret,
                    || CallDetail::ReadBuf {
                        buf_index: buf,
                        off,
                        data: if ok { dst.to_vec() } else { vec![] },
                    },
                    || error.map(|(_, why)| why),
                );
                ret as u64
            }
            helper_id::RS_SET_RES => {
                let res = a2 as i32;
                self.actions.push(Action::SetRes { res });
                self.log(id, args, 0, || CallDetail::SetRes { res }, || None);
                0
            }
            _ => {
                let ret = errno(libc::ENOSYS);
                self.log(
                    id,
                    args,
                    ret,
                    || CallDetail::None,
                    || Some(format!("unknown helper {id:#x}")),
                );
                ret as u64
            }
        }
    }
}

impl Env<'_> {
    /// Record a call (only when recording: the closures build its details).
    fn log(
        &mut self,
        id: u32,
        args: [u64; 5],
        ret: i64,
        detail: impl FnOnce() -> CallDetail,
        error: impl FnOnce() -> Option<String>,
    ) {
        if !self.record {
            return;
        }
        let (ptrs, arity) = Self::ptr_args(id);
        let mut a = args;
        for (i, p) in ptrs.iter().enumerate() {
            if *p || i >= arity {
                a[i] = 0;
            }
        }
        self.calls.push(HelperCall {
            helper: id,
            args: a,
            ret,
            detail: detail(),
            error: error(),
        });
    }

    /// After the run: direct writes through looked-up pointers.
    fn collect_direct_writes(&mut self) {
        for (local, key, addr, last) in std::mem::take(&mut self.watches) {
            let Some(idx) = self.map_index_of(local) else {
                continue;
            };
            let now = self.maps[idx].value_at(addr).to_vec();
            if now != last {
                self.writes.push(MapWrite {
                    map: local,
                    key,
                    before: Some(last),
                    after: Some(now),
                });
            }
        }
    }
}

/// `bpf_trace_printk` formatting: %d %i %u %x %ld %lu %lx %lld %llu %llx %p %% (no %s).
pub fn format_printk(fmt: &[u8], args: [u64; 3]) -> String {
    let end = fmt.iter().position(|&b| b == 0).unwrap_or(fmt.len());
    let s = String::from_utf8_lossy(&fmt[..end]);
    let mut out = String::new();
    let mut it = s.chars().peekable();
    let mut n = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut longs = 0;
        while it.peek() == Some(&'l') {
            it.next();
            longs += 1;
        }
        let Some(conv) = it.next() else { break };
        if conv == '%' {
            out.push('%');
            continue;
        }
        let v = args.get(n).copied().unwrap_or(0);
        n += 1;
        match conv {
            'd' | 'i' if longs == 0 => out.push_str(&(v as i32).to_string()),
            'd' | 'i' => out.push_str(&(v as i64).to_string()),
            'u' if longs == 0 => out.push_str(&(v as u32).to_string()),
            'u' => out.push_str(&v.to_string()),
            'x' if longs == 0 => out.push_str(&format!("{:x}", v as u32)),
            'x' => out.push_str(&format!("{v:x}")),
            'p' => out.push_str(&format!("{v:#x}")),
            other => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out.trim_end_matches('\n').to_string()
}

/// What the engine asks of one decision.
pub struct DecisionRequest<'a> {
    /// Decision number.
    pub seq: u64,
    /// Context.
    pub ctx: RsCtx,
    /// The chain as it stands.
    pub view: ChainView,
    /// What programs may name.
    pub regs: &'a Registrations,
    /// Budgets.
    pub budgets: &'a Budgets,
    /// Record calls, touches and writes (someone is listening).
    pub record: bool,
    /// Count instructions even when the budget does not need it.
    pub count_insns: bool,
}

/// Run one decision of `prog` against live `maps` (the registry's, indexed by
/// [`MapId`]), with `source` providing the nondeterministic inputs.
pub fn execute(
    prog: &LoadedProgram,
    maps: &mut [Map],
    req: DecisionRequest<'_>,
    source: &mut dyn InputSource,
) -> DecisionRecord {
    let mut rec = DecisionRecord::default();
    execute_into(prog, maps, req, source, &mut rec);
    rec
}

/// [`execute`] into `out`, reusing its buffers: a caller that keeps one
/// record for its unrecorded decisions allocates nothing per decision. When
/// the decision is not recorded, `out.view` holds the working copy of the
/// chain view afterwards (its allocation is there to be reused), not the
/// input.
pub fn execute_into(
    prog: &LoadedProgram,
    maps: &mut [Map],
    req: DecisionRequest<'_>,
    source: &mut dyn InputSource,
    out: &mut DecisionRecord,
) {
    let (chain, step) = (req.view.chain, req.view.step);
    let limit = insn_limit(prog, req.budgets);
    // Compiled code does not count instructions: a count someone asked for
    // needs a re-run under the interpreter, which needs the recorded inputs.
    let count = req.count_insns && prog.exec_mode() == ExecMode::Compiled && limit.is_none();
    let wanted = req.record;
    let record = wanted || count;
    let mut calls = std::mem::take(&mut out.calls);
    let mut actions = std::mem::take(&mut out.actions);
    let mut touched = std::mem::take(&mut out.touched);
    let mut writes = std::mem::take(&mut out.map_writes);
    calls.clear();
    actions.clear();
    touched.clear();
    writes.clear();
    let DecisionRequest {
        seq,
        ctx,
        view,
        regs,
        budgets,
        ..
    } = req;
    // The input view is only needed to replay a recorded decision.
    out.view = if record {
        view.clone()
    } else {
        ChainView::default()
    };
    let mut env = Env::new(
        prog,
        maps,
        Some(&prog.maps),
        regs,
        budgets,
        view,
        source,
        record,
    );
    (env.calls, env.actions, env.touched, env.writes) = (calls, actions, touched, writes);
    let mut ctx_bytes = ctx.to_bytes();
    let start = Instant::now();
    let ret = prog
        .vm()
        .execute(&mut ctx_bytes, prog.regions(), &mut env, limit);
    let duration_ns = start.elapsed().as_nanos() as u64;
    env.collect_direct_writes();
    let Env {
        calls,
        actions,
        touched,
        writes,
        violation,
        view: working,
        ..
    } = env;
    if !record {
        out.view = working;
    }
    out.seq = seq;
    out.prog = prog.id.0;
    // Names are for people reading events; nobody reads an unrecorded one.
    out.prog_name.clear();
    if record {
        out.prog_name.push_str(&prog.name);
    }
    out.chain = chain;
    out.step = step;
    out.ctx = ctx;
    out.touched = touched;
    out.calls = calls;
    out.map_writes = writes;
    out.actions = actions;
    out.ret = ret.as_ref().map_or(0, |r| r.ret);
    out.insns = ret
        .as_ref()
        .ok()
        .and_then(|r| r.insns)
        .filter(|_| req.count_insns);
    out.duration_ns = duration_ns;
    out.exec = if limit.is_some() {
        ExecMode::Interpreter
    } else {
        prog.exec_mode()
    };
    if count && ret.is_ok() {
        // Re-run under the counting interpreter with the recorded inputs.
        // Nothing of the re-run but its count is kept: it records nothing.
        match rerun(prog, out, regs, budgets, None, false) {
            Ok(r) => out.insns = Some(r.insns),
            Err(e) => {
                out.result = DecisionResult::VmError {
                    message: format!("re-execution for counting failed: {e}"),
                };
                return;
            }
        }
    }
    out.result = result_of(ret.map(|r| r.ret), violation);
    if !wanted {
        // Recording was only for counting; nobody wants the details.
        out.calls.clear();
        out.touched.clear();
        out.map_writes.clear();
    }
}

/// Whether decisions of `prog` must count their instructions under
/// `budgets` (its longest path may exceed the instruction budget).
pub fn needs_count(prog: &LoadedProgram, budgets: &Budgets) -> bool {
    prog.report.max_path as u64 > budgets.insns_per_decision
}

/// The instruction limit a decision of `prog` runs with: the budget, when
/// its longest path can exceed it (such a run goes through the interpreter,
/// which counts); none otherwise (nothing to count: the verifier bounded
/// every path).
fn insn_limit(prog: &LoadedProgram, budgets: &Budgets) -> Option<u64> {
    needs_count(prog, budgets).then_some(budgets.insns_per_decision)
}

/// Working buffers of unrecorded decisions, reused from one to the next.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The chain view the next decision sees (fill it before each run;
    /// helpers update it as they go).
    pub view: ChainView,
    /// The actions of the last decision.
    pub actions: Vec<Action>,
}

/// Run a decision that nobody records: the same helper semantics as [`execute`],
/// without building a [`DecisionRecord`]. The actions are left in
/// `scratch.actions` (to be applied only when the result is a verdict).
/// With `time`, the program's run is timed (as [`DecisionRecord::duration_ns`]
/// is) and its nanoseconds returned.
#[allow(clippy::too_many_arguments)]
pub fn execute_unrecorded(
    prog: &LoadedProgram,
    maps: &mut [Map],
    ctx: &RsCtx,
    regs: &Registrations,
    budgets: &Budgets,
    source: &mut dyn InputSource,
    scratch: &mut Scratch,
    time: bool,
) -> (DecisionResult, Option<u64>) {
    let mut actions = std::mem::take(&mut scratch.actions);
    actions.clear();
    let view = std::mem::take(&mut scratch.view);
    let mut env = Env::new(
        prog,
        maps,
        Some(&prog.maps),
        regs,
        budgets,
        view,
        source,
        false,
    );
    env.actions = actions;
    let mut ctx_bytes = ctx.to_bytes();
    let start = time.then(Instant::now);
    let limit = insn_limit(prog, budgets);
    let ret = prog
        .vm()
        .execute(&mut ctx_bytes, prog.regions(), &mut env, limit);
    let ns = start.map(|t| t.elapsed().as_nanos() as u64);
    scratch.view = env.view;
    scratch.actions = env.actions;
    (result_of(ret.map(|r| r.ret), env.violation), ns)
}

/// How a run ended, from r0 (or the VM's error) and a broken budget.
fn result_of(ret: Result<u64, RunError>, violation: Option<BudgetViolation>) -> DecisionResult {
    match (ret, violation) {
        (Err(RunError::Interp(InterpError::InsnLimit { limit })), _) => DecisionResult::Budget {
            violation: insn_violation(limit),
        },
        (Err(e), _) => DecisionResult::VmError {
            message: e.to_string(),
        },
        (Ok(_), Some(violation)) => DecisionResult::Budget { violation },
        (Ok(r), None) => match Verdict::from_ret(r) {
            Some(verdict) => DecisionResult::Verdict { verdict },
            None => DecisionResult::BadReturn { ret: r },
        },
    }
}

/// The instruction budget `limit`, broken: the run was stopped as it was
/// about to execute instruction `limit + 1`.
pub fn insn_violation(limit: u64) -> BudgetViolation {
    BudgetViolation {
        kind: BudgetKind::Instructions,
        limit,
        value: limit + 1,
    }
}

/// Inputs replayed from a recorded decision: ktime values and buffer bytes, in call order.
struct Recorded<'a> {
    calls: &'a [HelperCall],
    ktime_at: usize,
    read_at: usize,
    mismatch: Option<String>,
}

impl InputSource for Recorded<'_> {
    fn ktime_ns(&mut self) -> u64 {
        let found = self.calls[self.ktime_at.min(self.calls.len())..]
            .iter()
            .position(|c| matches!(c.detail, CallDetail::Ktime { .. }));
        match found {
            Some(p) => {
                let i = self.ktime_at + p;
                self.ktime_at = i + 1;
                match self.calls[i].detail {
                    CallDetail::Ktime { ns } => ns,
                    _ => unreachable!(),
                }
            }
            None => {
                self.mismatch.get_or_insert(
                    "the program asked for more ktime values than were recorded".into(),
                );
                0
            }
        }
    }

    fn read_buf(&mut self, buf: u16, off: u64, dst: &mut [u8]) {
        let found = self.calls[self.read_at.min(self.calls.len())..]
            .iter()
            .position(|c| matches!(c.detail, CallDetail::ReadBuf { .. }) && c.ret >= 0);
        match found {
            Some(p) => {
                let i = self.read_at + p;
                self.read_at = i + 1;
                if let CallDetail::ReadBuf {
                    buf_index,
                    off: o,
                    data,
                } = &self.calls[i].detail
                {
                    if *buf_index != buf || *o != off || data.len() != dst.len() {
                        self.mismatch.get_or_insert(format!(
                            "rs_read_buf({buf}, {off}, {}) where the recording has ({buf_index}, {o}, {})",
                            dst.len(),
                            data.len()
                        ));
                    }
                    let n = data.len().min(dst.len());
                    dst[..n].copy_from_slice(&data[..n]);
                }
            }
            None => {
                self.mismatch
                    .get_or_insert("the program read more buffer bytes than were recorded".into());
            }
        }
    }
}

/// Result of re-executing a recorded decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reexecution {
    /// r0.
    pub ret: u64,
    /// Instructions executed.
    pub insns: u64,
    /// Helper calls made.
    pub calls: Vec<HelperCall>,
    /// Map writes.
    pub map_writes: Vec<MapWrite>,
    /// Actions.
    pub actions: Vec<Action>,
    /// Budget broken, if any.
    pub violation: Option<BudgetViolation>,
    /// An input the recording did not have.
    pub input_mismatch: Option<String>,
}

/// Build the maps a recorded decision saw: its touched entries (and, for hash
/// maps, filler entries so the entry count matches).
pub fn maps_for_replay(defs: &[MapDef], touched: &[MapTouch]) -> Vec<Map> {
    let mut maps: Vec<Map> = defs.iter().cloned().map(Map::new).collect();
    for t in touched {
        let Some(m) = maps.get_mut(t.map as usize) else {
            continue;
        };
        if let Some(v) = &t.before {
            let _ = m.update(&t.key, v, crate::program::maps::BPF_ANY);
        }
    }
    for (i, m) in maps.iter_mut().enumerate() {
        if m.def().kind != MapKind::Hash {
            continue;
        }
        let want = touched
            .iter()
            .filter(|t| t.map as usize == i)
            .map(|t| t.len_before)
            .max()
            .unwrap_or(0) as usize;
        let ks = m.def().key_size as usize;
        let vs = m.def().value_size as usize;
        let mut n: u64 = 0;
        while m.len() < want {
            // Filler keys that no touched key equals.
            let mut key = vec![0xa5u8; ks];
            for (j, b) in n.to_le_bytes().iter().enumerate().take(ks) {
                key[j] = *b ^ 0x5a;
            }
            n += 1;
            if touched.iter().any(|t| t.map as usize == i && t.key == key) {
                continue;
            }
            if m.update(&key, &vec![0u8; vs], crate::program::maps::BPF_NOEXIST)
                .is_err()
                && n > want as u64 * 4 + 16
            {
                break;
            }
        }
    }
    maps
}

/// Re-execute a recorded decision from its record alone, under the tracing
/// interpreter, with the same helper semantics. `trace` sees every step.
pub fn reexecute(
    prog: &LoadedProgram,
    rec: &DecisionRecord,
    regs: &Registrations,
    budgets: &Budgets,
    trace: Option<&mut dyn FnMut(&TraceStep)>,
) -> Result<Reexecution, String> {
    rerun(prog, rec, regs, budgets, trace, true)
}

/// [`reexecute`]; without `record`, the helper calls, map writes and
/// touches of the re-run are not collected (counting needs none of them).
fn rerun(
    prog: &LoadedProgram,
    rec: &DecisionRecord,
    regs: &Registrations,
    budgets: &Budgets,
    trace: Option<&mut dyn FnMut(&TraceStep)>,
    record: bool,
) -> Result<Reexecution, String> {
    let defs = &prog.map_defs;
    let mut maps = maps_for_replay(defs, &rec.touched);
    // The program's address space over the rebuilt maps: their arenas in
    // object order, then its rodata (the order of their virtual ids).
    let mut regions: Vec<Region> = maps
        .iter()
        .enumerate()
        .map(|(i, m)| Region::map(i as u32, m))
        .collect();
    regions.extend(
        prog.regions()
            .iter()
            .filter(|r| matches!(r.kind, RegionKind::Rodata(_)))
            .copied(),
    );
    let mut source = Recorded {
        calls: &rec.calls,
        ktime_at: 0,
        read_at: 0,
        mismatch: None,
    };
    let view = rec.view.clone();
    let mut env = Env::new(
        prog,
        &mut maps,
        None,
        regs,
        budgets,
        view,
        &mut source,
        record,
    );
    let mut ctx = rec.ctx.to_bytes();
    // The budget's limit, as the live run had it; without one the
    // interpreter must still stop even if the recording lies about the program.
    let budget = insn_limit(prog, budgets);
    let limit = budget.unwrap_or(prog.report.max_path as u64 + 1);
    let run = interp::run(
        prog.code(),
        &mut ctx,
        &regions,
        &mut env,
        Some(limit),
        trace,
    );
    let (r, stopped) = match run {
        Ok(r) => (r, None),
        Err(InterpError::InsnLimit { limit }) if budget.is_some() => (
            interp::RunResult {
                ret: 0,
                insns: limit + 1,
            },
            Some(insn_violation(limit)),
        ),
        Err(e) => return Err(e.to_string()),
    };
    env.collect_direct_writes();
    let Env {
        calls,
        actions,
        writes,
        violation,
        ..
    } = env;
    let violation = stopped.or(violation);
    Ok(Reexecution {
        ret: r.ret,
        insns: r.insns,
        calls,
        map_writes: writes,
        actions,
        violation,
        input_mismatch: source.mismatch,
    })
}
