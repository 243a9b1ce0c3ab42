//! The helpers: what each helper call of a running program does, checked
//! against the chain it decides about. The only implementation of helper
//! semantics: live decisions ([`super::decision`]) and re-executed ones
//! ([`super::reexecute`]) both run through it.

use crate::abi::{self, RsSqe, Where, helper_id, op};
use crate::program::maps::Map;
use crate::program::mem::AddrSpace;
use crate::program::vm::HelperHost;
use crate::program::{LoadedProgram, MapId};
use ringside_schema::decision::*;

/// Sources of a decision's nondeterministic inputs.
pub trait InputSource {
    /// `bpf_ktime_get_ns`.
    fn ktime_ns(&mut self) -> u64;
    /// Copy `dst.len()` bytes of registered buffer `buf` at `off` (already
    /// range-checked against the registration).
    fn read_buf(&mut self, buf: u16, off: u64, dst: &mut [u8]);
}

/// The environment a program runs in: helper semantics over a chain view.
pub(crate) struct Env<'a> {
    pub(crate) prog: &'a LoadedProgram,
    pub(crate) maps: &'a mut [Map],
    /// Object-local map index -> index into `maps` (None: identity, for replay).
    pub(crate) map_index: Option<&'a [MapId]>,
    pub(crate) regs: &'a Registrations,
    pub(crate) budgets: &'a Budgets,
    pub(crate) view: ChainView,
    pub(crate) source: &'a mut dyn InputSource,
    /// What the run records: nothing, its inputs, or everything.
    pub(crate) record: Option<Detail>,
    pub(crate) calls: Vec<HelperCall>,
    pub(crate) actions: Vec<Action>,
    pub(crate) touched: Vec<MapTouch>,
    pub(crate) writes: Vec<MapWrite>,
    /// (local map, key, address, last known bytes) of looked-up values, to see direct writes.
    pub(crate) watches: Vec<(u32, Vec<u8>, u64, Vec<u8>)>,
    pub(crate) submits: u32,
    pub(crate) violation: Option<BudgetViolation>,
}

impl<'a> Env<'a> {
    /// An environment with nothing recorded or asked for yet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        prog: &'a LoadedProgram,
        maps: &'a mut [Map],
        map_index: Option<&'a [MapId]>,
        regs: &'a Registrations,
        budgets: &'a Budgets,
        view: ChainView,
        source: &'a mut dyn InputSource,
        record: Option<Detail>,
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
        if self.record.is_none() || self.touched.iter().any(|t| t.map == local && t.key == key) {
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

/// A copy of key or value bytes the program pointed at: inline when small
/// (most keys and values are a few words), so an unrecorded decision
/// neither allocates nor clears a buffer the size of the largest key. A
/// copy, because the bytes may lie in a map value the call then changes.
type Bytes = smallvec::SmallVec<[u8; 64]>;

/// Copy the `len` bytes the program pointed at.
fn read_bytes(mem: &AddrSpace<'_>, addr: u64, len: usize) -> Option<Bytes> {
    mem.read(addr, len).map(Bytes::from_slice)
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
                let ks = self.maps[idx].def().key_size as usize;
                let Some(key) = read_bytes(mem, a2, ks) else {
                    self.log(
                        id,
                        args,
                        0,
                        || CallDetail::None,
                        || Some(bad_pointer(2, ks, false)),
                    );
                    return 0;
                };
                self.touch(local, idx, &key);
                match self.maps[idx].lookup_ptr(&key) {
                    Ok(Some(addr)) => {
                        if self.full() {
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
                        self.log(
                            id,
                            args,
                            0,
                            || CallDetail::MapLookup {
                                map: local,
                                key: key.to_vec(),
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
                let fault = |arg, len| {
                    let ret = errno(libc::EFAULT);
                    (ret, bad_pointer(arg, len, false))
                };
                let Some(key) = read_bytes(mem, a2, ks) else {
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
                self.touch(local, idx, &key);
                let before = if self.full() {
                    self.maps[idx].get(&key).ok().flatten()
                } else {
                    None
                };
                // The value is copied before the map changes: it may be
                // another value of this very map (the program's own memory).
                let value = Bytes::from_slice(value);
                let res = if id == helper_id::MAP_UPDATE_ELEM {
                    self.maps[idx].update(&key, &value, a4)
                } else {
                    self.maps[idx].delete(&key)
                };
                let ret = match &res {
                    Ok(()) => 0,
                    Err(e) => e.errno(),
                };
                if self.full() {
                    let key = key.to_vec();
                    let detail = if id == helper_id::MAP_UPDATE_ELEM {
                        CallDetail::MapUpdate {
                            map: local,
                            key: key.clone(),
                            value: value.to_vec(),
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
                if self.full() {
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
    /// True when everything is recorded (not only the inputs).
    fn full(&self) -> bool {
        self.record == Some(Detail::Full)
    }

    /// Record a call (only when recording: the closures build its details).
    /// An inputs-only record keeps only the calls whose result is an input
    /// a re-run cannot recompute: ktime values and buffer bytes.
    fn log(
        &mut self,
        id: u32,
        args: [u64; 5],
        ret: i64,
        detail: impl FnOnce() -> CallDetail,
        error: impl FnOnce() -> Option<String>,
    ) {
        if !self.record.is_some_and(|d| d.keeps_call(id)) {
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
    pub(crate) fn collect_direct_writes(&mut self) {
        // Most decisions look nothing up: no iterator to build and drop.
        if self.watches.is_empty() {
            return;
        }
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
