//! Item <-> record payloads.
//!
//! Hot kinds (engine submitted/completed/chain_started/step_added/
//! app_completion/unlinked/decision, every kernel probe event) have
//! hand-written varint/delta layouts; every other engine event is the
//! MessagePack form of its JSON object. Delta state lives in [`State`] and
//! is reset by every sync record, so decoding can start at any sync point.
//!
//! The encoders destructure each type without `..`: adding a field to an
//! engine or probe type is a compile error here, on purpose (the format
//! must carry it; see docs/recording-format.md for the layouts).

use crate::codec::{DResult, Dec, Enc, FieldError};
use crate::item::Item;
use ringside_engine::abi::{RsCtx, RsSqe, Verdict, Where};
use ringside_engine::decision::{
    Action, BudgetKind, BudgetViolation, CallDetail, ChainView, DecisionRecord, DecisionResult,
    HelperCall, MapTouch, MapWrite, PendingStep,
};
use ringside_engine::event::{AppCompletion, AppKind, Event, EventRecord};
use ringside_engine::program::vm::ExecMode;
use ringside_probes::ProbeEvent;
use ringside_probes::discover::{RegisteredBuffer, RegisteredFile, RingSetup, RingWhen};
use ringside_probes::event::wire;
use std::sync::Arc;

use crate::format::rtype;

/// Probe wire fields, in bitmap order: (offset, size) in the 80-byte wire record.
const PROBE_FIELDS: [(usize, usize); 14] = [
    (0, 8),  // ts_ns
    (16, 8), // req
    (24, 8), // user_data
    (56, 4), // res
    (60, 4), // c
    (32, 8), // a
    (71, 1), // opcode
    (52, 4), // tid
    (68, 2), // cpu
    (8, 8),  // ring
    (40, 8), // b
    (64, 4), // d
    (48, 4), // tgid
    (72, 4), // absent: 0 on a kernel with every field (and in files before it)
];
const PROBE_KIND_AT: usize = 70;

/// Decoding/encoding state between sync points.
#[derive(Debug, Clone, Default)]
pub struct State {
    next_seq: u64,
    t_ns: u64,
    decision: u64,
    probe: [u64; 14],
    strings: Vec<String>,
}

impl State {
    /// Back to the state at a sync point.
    pub fn reset(&mut self) {
        *self = State::default();
    }
}

/// What a record holds, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// An item.
    Item(Item),
    /// A sync point; the next item has this index.
    Sync {
        /// Index of the next item.
        next_index: u64,
    },
    /// The clean end.
    End {
        /// Items written.
        items: u64,
        /// Items the recorder's queue dropped (also in `lost` items).
        dropped: u64,
    },
    /// The engine's time origin on CLOCK_MONOTONIC (ns).
    Clock {
        /// CLOCK_MONOTONIC ns of engine `t_ns` 0.
        engine_origin_mono_ns: u64,
    },
}

// ---- writing ----------------------------------------------------------------

fn sqe(e: &mut Enc, s: &RsSqe) {
    let RsSqe {
        opcode,
        _rsvd,
        buf_index,
        fd,
        off,
        buf_off,
        len,
        op_flags,
        user_data,
    } = *s;
    e.u8(opcode);
    e.u8(_rsvd);
    e.var(buf_index as u64);
    e.zz(fd as i64);
    e.var(off);
    e.var(buf_off);
    e.var(len as u64);
    e.var(op_flags as u64);
    e.var(user_data);
}

fn ctx(e: &mut Enc, c: &RsCtx) {
    let RsCtx {
        user_data,
        res,
        cqe_flags,
        chain_id,
        step,
        nsteps,
        opcode,
        attempt,
        ctx_flags,
        fd,
        off,
        len,
        buf_index,
        _pad,
        buf_off,
    } = *c;
    e.var(user_data);
    e.zz(res as i64);
    e.var(cqe_flags as u64);
    e.var(chain_id);
    e.var(step as u64);
    e.var(nsteps as u64);
    e.u8(opcode);
    e.u8(attempt);
    e.var(ctx_flags as u64);
    e.zz(fd as i64);
    e.var(off);
    e.var(len as u64);
    e.var(buf_index as u64);
    e.var(_pad as u64);
    e.var(buf_off);
}

fn place(p: Where) -> u8 {
    match p {
        Where::AfterCurrent => 0,
        Where::AtEnd => 1,
        Where::Detached => 2,
    }
}

fn budget(e: &mut Enc, v: &BudgetViolation) {
    let BudgetViolation { kind, limit, value } = *v;
    e.u8(match kind {
        BudgetKind::Instructions => 0,
        BudgetKind::SubmitsPerDecision => 1,
        BudgetKind::StepsPerChain => 2,
        BudgetKind::AttemptsPerStep => 3,
    });
    e.var(limit);
    e.var(value);
}

fn detail(e: &mut Enc, d: &CallDetail) {
    match d {
        CallDetail::None => e.u8(0),
        CallDetail::MapLookup { map, key, value } => {
            e.u8(1);
            e.var(*map as u64);
            e.bytes(key);
            e.opt_bytes(value.as_deref());
        }
        CallDetail::MapUpdate {
            map,
            key,
            value,
            flags,
        } => {
            e.u8(2);
            e.var(*map as u64);
            e.bytes(key);
            e.bytes(value);
            e.var(*flags);
        }
        CallDetail::MapDelete { map, key } => {
            e.u8(3);
            e.var(*map as u64);
            e.bytes(key);
        }
        CallDetail::Ktime { ns } => {
            e.u8(4);
            e.var(*ns);
        }
        CallDetail::Printk { text } => {
            e.u8(5);
            e.str(text);
        }
        CallDetail::Submit { sqe: s, place } => {
            e.u8(6);
            sqe(e, s);
            e.var(*place);
        }
        CallDetail::Drop { step } => {
            e.u8(7);
            e.var(*step);
        }
        CallDetail::Unlink { step } => {
            e.u8(8);
            e.var(*step);
        }
        CallDetail::Emit {
            user_data,
            res,
            flags,
        } => {
            e.u8(9);
            e.var(*user_data);
            e.zz(*res as i64);
            e.var(*flags as u64);
        }
        CallDetail::ReadBuf {
            buf_index,
            off,
            data,
        } => {
            e.u8(10);
            e.var(*buf_index as u64);
            e.var(*off);
            e.bytes(data);
        }
        CallDetail::SetRes { res } => {
            e.u8(11);
            e.zz(*res as i64);
        }
    }
}

fn action(e: &mut Enc, a: &Action) {
    match a {
        Action::Submit {
            index,
            place: p,
            sqe: s,
            attempt,
        } => {
            e.u8(0);
            e.var(*index as u64);
            e.u8(place(*p));
            sqe(e, s);
            e.u8(*attempt);
        }
        Action::Drop { step } => {
            e.u8(1);
            e.var(*step as u64);
        }
        Action::Unlink { step } => {
            e.u8(2);
            e.var(*step as u64);
        }
        Action::Emit {
            user_data,
            res,
            flags,
        } => {
            e.u8(3);
            e.var(*user_data);
            e.zz(*res as i64);
            e.var(*flags as u64);
        }
        Action::SetRes { res } => {
            e.u8(4);
            e.zz(*res as i64);
        }
    }
}

fn string_ref(e: &mut Enc, st: &mut State, s: &str) {
    match st.strings.iter().position(|x| x == s) {
        Some(i) => e.var(i as u64 + 1),
        None => {
            e.var(0);
            e.str(s);
            if st.strings.len() < 4096 {
                st.strings.push(s.to_string());
            }
        }
    }
}

fn decision(e: &mut Enc, st: &mut State, d: &DecisionRecord) {
    let DecisionRecord {
        seq,
        prog,
        prog_name,
        chain,
        step,
        ctx: c,
        view,
        touched,
        calls,
        map_writes,
        actions,
        ret,
        result,
        insns,
        duration_ns,
        exec,
    } = d;
    e.zz(seq.wrapping_sub(st.decision) as i64);
    st.decision = seq.wrapping_add(1);
    e.var(*prog as u64);
    string_ref(e, st, prog_name);
    ctx(e, c);
    e.zz(chain.wrapping_sub(c.chain_id) as i64);
    e.zz(*step as i64 - c.step as i64);
    let ChainView {
        chain: vchain,
        step: vstep,
        nsteps,
        opcode,
        fd,
        attempt,
        pending,
    } = view;
    e.zz(vchain.wrapping_sub(c.chain_id) as i64);
    e.zz(*vstep as i64 - c.step as i64);
    e.zz(*nsteps as i64 - c.nsteps as i64);
    e.u8(opcode ^ c.opcode);
    e.zz(*fd as i64 - c.fd as i64);
    e.u8(attempt ^ c.attempt);
    e.var(pending.len() as u64);
    for p in pending {
        let PendingStep {
            index,
            dropped,
            unlinked,
        } = *p;
        e.var(((index as u64) << 2) | dropped as u64 | (unlinked as u64) << 1);
    }
    e.var(touched.len() as u64);
    for t in touched {
        let MapTouch {
            map,
            key,
            before,
            len_before,
        } = t;
        e.var(*map as u64);
        e.bytes(key);
        e.opt_bytes(before.as_deref());
        e.var(*len_before as u64);
    }
    e.var(calls.len() as u64);
    for call in calls {
        let HelperCall {
            helper,
            args,
            ret,
            detail: dt,
            error,
        } = call;
        e.var(*helper as u64);
        for a in args {
            e.var(*a);
        }
        e.zz(*ret);
        detail(e, dt);
        e.opt_str(error.as_deref());
    }
    e.var(map_writes.len() as u64);
    for w in map_writes {
        let MapWrite {
            map,
            key,
            before,
            after,
        } = w;
        e.var(*map as u64);
        e.bytes(key);
        e.opt_bytes(before.as_deref());
        e.opt_bytes(after.as_deref());
    }
    e.var(actions.len() as u64);
    for a in actions {
        action(e, a);
    }
    e.var(*ret);
    match result {
        DecisionResult::Verdict { verdict } => {
            e.u8(0);
            e.u8(match verdict {
                Verdict::Next => 0,
                Verdict::Stop => 1,
                Verdict::Fail => 2,
            });
        }
        DecisionResult::BadReturn { ret } => {
            e.u8(1);
            e.var(*ret);
        }
        DecisionResult::VmError { message } => {
            e.u8(2);
            e.str(message);
        }
        DecisionResult::Budget { violation } => {
            e.u8(3);
            budget(e, violation);
        }
    }
    e.opt_var(*insns);
    e.var(*duration_ns);
    e.u8(match exec {
        ExecMode::Interpreter => 0,
        ExecMode::Compiled => 1,
    });
}

fn engine_prefix(e: &mut Enc, st: &mut State, r: &EventRecord) {
    e.zz(r.seq.wrapping_sub(st.next_seq) as i64);
    st.next_seq = r.seq.wrapping_add(1);
    e.zz(r.t_ns.wrapping_sub(st.t_ns) as i64);
    st.t_ns = r.t_ns;
}

/// Bits of a ring record's `have` mask: which optional fields follow.
mod ring_have {
    pub const FD: u64 = 1 << 0;
    pub const OWNER_TID: u64 = 1 << 1;
    pub const SETUP_FLAGS: u64 = 1 << 2;
    pub const SQ_ENTRIES: u64 = 1 << 3;
    pub const CQ_ENTRIES: u64 = 1 << 4;
    pub const SQ_THREAD: u64 = 1 << 5;
    pub const SQ_THREAD_CPU: u64 = 1 << 6;
    pub const FILE_SLOTS: u64 = 1 << 7;
    pub const BUFFER_SLOTS: u64 = 1 << 8;
    pub const SQ_PENDING: u64 = 1 << 9;
    pub const CQ_PENDING: u64 = 1 << 10;
    pub const CQ_OVERFLOW: u64 = 1 << 11;
    pub const ALL: u64 = (1 << 12) - 1;
}

fn when_code(w: RingWhen) -> u8 {
    match w {
        RingWhen::Attach => 0,
        RingWhen::Create => 1,
        RingWhen::Changed => 2,
    }
}

/// The ring record (docs/recording-format.md 1.9): no delta state, so it
/// decodes wherever reading starts.
fn ring(e: &mut Enc, r: &RingSetup) {
    let RingSetup {
        hdr,
        when,
        ring,
        fd,
        owner_tid,
        setup_flags,
        sq_entries,
        cq_entries,
        sq_thread,
        sq_thread_cpu,
        file_slots,
        files,
        buffer_slots,
        buffers,
        sq_pending,
        cq_pending,
        cq_overflow,
    } = r;
    let ringside_probes::Header {
        ts_ns,
        cpu,
        tgid,
        tid,
    } = *hdr;
    e.var(ts_ns);
    e.var(tgid as u64);
    e.var(tid as u64);
    e.var(cpu as u64);
    e.u8(when_code(*when));
    e.var(ring.0);
    use ring_have as h;
    let unsigned = [
        (h::OWNER_TID, *owner_tid),
        (h::SETUP_FLAGS, *setup_flags),
        (h::SQ_ENTRIES, *sq_entries),
        (h::CQ_ENTRIES, *cq_entries),
        (h::SQ_THREAD, *sq_thread),
        (h::FILE_SLOTS, *file_slots),
        (h::BUFFER_SLOTS, *buffer_slots),
        (h::SQ_PENDING, *sq_pending),
        (h::CQ_PENDING, *cq_pending),
        (h::CQ_OVERFLOW, *cq_overflow),
    ];
    let mut have = 0u64;
    if fd.is_some() {
        have |= h::FD;
    }
    if sq_thread_cpu.is_some() {
        have |= h::SQ_THREAD_CPU;
    }
    for (bit, v) in unsigned {
        if v.is_some() {
            have |= bit;
        }
    }
    e.var(have);
    if let Some(fd) = fd {
        e.zz(*fd as i64);
    }
    if let Some(c) = sq_thread_cpu {
        e.zz(*c as i64);
    }
    for (_, v) in unsigned {
        if let Some(v) = v {
            e.var(v as u64);
        }
    }
    e.var(files.len() as u64);
    for f in files {
        let RegisteredFile { index, path } = f;
        e.var(*index as u64);
        e.str(path);
    }
    e.var(buffers.len() as u64);
    for b in buffers {
        let RegisteredBuffer { index, addr, len } = *b;
        e.var(index as u64);
        e.var(addr);
        e.var(len);
    }
}

fn g_ring(d: &mut Dec) -> DResult<RingSetup> {
    let ts_ns = d.var("ring.ts_ns")?;
    let tgid = d.u32("ring.tgid")?;
    let tid = d.u32("ring.tid")?;
    let cpu = d.u16("ring.cpu")?;
    let at = d.pos();
    let when = match d.u8("ring.when")? {
        0 => RingWhen::Attach,
        1 => RingWhen::Create,
        2 => RingWhen::Changed,
        w => return Err(bad("ring.when", at, format!("unknown code {w}"))),
    };
    let ring = ringside_probes::Ptr(d.var("ring.ring")?);
    let at = d.pos();
    let have = d.var("ring.have")?;
    if have & !ring_have::ALL != 0 {
        return Err(bad(
            "ring.have",
            at,
            format!("field mask {have:#x} names fields this version does not know"),
        ));
    }
    use ring_have as h;
    let fd = if have & h::FD != 0 {
        Some(d.i32("ring.fd")?)
    } else {
        None
    };
    let sq_thread_cpu = if have & h::SQ_THREAD_CPU != 0 {
        Some(d.i32("ring.sq_thread_cpu")?)
    } else {
        None
    };
    let mut opt = |bit: u64, field: &'static str| -> DResult<Option<u32>> {
        if have & bit != 0 {
            d.u32(field).map(Some)
        } else {
            Ok(None)
        }
    };
    let owner_tid = opt(h::OWNER_TID, "ring.owner_tid")?;
    let setup_flags = opt(h::SETUP_FLAGS, "ring.setup_flags")?;
    let sq_entries = opt(h::SQ_ENTRIES, "ring.sq_entries")?;
    let cq_entries = opt(h::CQ_ENTRIES, "ring.cq_entries")?;
    let sq_thread = opt(h::SQ_THREAD, "ring.sq_thread")?;
    let file_slots = opt(h::FILE_SLOTS, "ring.file_slots")?;
    let buffer_slots = opt(h::BUFFER_SLOTS, "ring.buffer_slots")?;
    let sq_pending = opt(h::SQ_PENDING, "ring.sq_pending")?;
    let cq_pending = opt(h::CQ_PENDING, "ring.cq_pending")?;
    let cq_overflow = opt(h::CQ_OVERFLOW, "ring.cq_overflow")?;
    // Each entry takes at least two bytes: `len` bounds the count by the
    // bytes left, so a damaged count cannot make us allocate.
    let n = d.len("ring.files")?;
    let mut files = Vec::with_capacity(n);
    for _ in 0..n {
        files.push(RegisteredFile {
            index: d.u32("ring.files.index")?,
            path: d.str("ring.files.path")?,
        });
    }
    let n = d.len("ring.buffers")?;
    let mut buffers = Vec::with_capacity(n);
    for _ in 0..n {
        buffers.push(RegisteredBuffer {
            index: d.u32("ring.buffers.index")?,
            addr: d.var("ring.buffers.addr")?,
            len: d.var("ring.buffers.len")?,
        });
    }
    Ok(RingSetup {
        hdr: ringside_probes::Header {
            ts_ns,
            cpu,
            tgid,
            tid,
        },
        when,
        ring,
        fd,
        owner_tid,
        setup_flags,
        sq_entries,
        cq_entries,
        sq_thread,
        sq_thread_cpu,
        file_slots,
        files,
        buffer_slots,
        buffers,
        sq_pending,
        cq_pending,
        cq_overflow,
    })
}

fn probe(e: &mut Enc, st: &mut State, p: &ProbeEvent) {
    // Ring records never reach here (encode_item gives them their own
    // record type); a wire form of all zeros keeps this total anyway.
    let w = wire::encode(p).unwrap_or([0; wire::EVENT_SIZE]);
    let mut vals = [0u64; 14];
    let mut mask = 0u64;
    for (i, &(off, size)) in PROBE_FIELDS.iter().enumerate() {
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(&w[off..off + size]);
        vals[i] = u64::from_le_bytes(b);
        if vals[i] != st.probe[i] {
            mask |= 1 << i;
        }
    }
    e.u8(w[PROBE_KIND_AT]);
    e.var(mask);
    for (i, (v, prev)) in vals.iter().zip(st.probe.iter()).enumerate() {
        if mask & (1 << i) != 0 {
            e.zz(v.wrapping_sub(*prev) as i64);
        }
    }
    st.probe = vals;
}

/// Encode an item into `e` (cleared first); returns its record type.
pub fn encode_item(st: &mut State, item: &Item, e: &mut Enc) -> u8 {
    e.buf.clear();
    match item {
        Item::Probe(ProbeEvent::Ring(r)) => {
            ring(e, r);
            rtype::RING
        }
        Item::Probe(p) => {
            probe(e, st, p);
            rtype::PROBE
        }
        Item::Lost { queue, count } => {
            e.str(queue);
            e.var(*count);
            rtype::LOST
        }
        Item::Engine(r) => {
            engine_prefix(e, st, r);
            match &r.event {
                Event::Submitted {
                    chain,
                    step,
                    sqe: s,
                    sqe_flags,
                    ring_user_data,
                    attempt,
                } => {
                    e.var(*chain);
                    e.var(*step as u64);
                    sqe(e, s);
                    e.u8(*sqe_flags);
                    e.var(ring_user_data ^ ((chain << 32) | *step as u64));
                    e.u8(*attempt);
                    rtype::SUBMITTED
                }
                Event::Completed {
                    chain,
                    step,
                    res,
                    flags,
                    latency_ns,
                    short,
                } => {
                    e.var(*chain);
                    e.var(*step as u64);
                    e.zz(*res as i64);
                    e.var(*flags as u64);
                    e.var(*latency_ns);
                    // Verdict bits; absent in files written before them.
                    e.u8(*short as u8);
                    rtype::COMPLETED
                }
                Event::ChainStarted { chain } => {
                    e.var(*chain);
                    rtype::CHAIN_STARTED
                }
                Event::StepAdded {
                    chain,
                    step,
                    place: p,
                    sqe: s,
                    attempt,
                    decision,
                } => {
                    e.var(*chain);
                    e.var(*step as u64);
                    e.u8(place(*p));
                    sqe(e, s);
                    e.u8(*attempt);
                    e.zz(decision.wrapping_sub(st.decision.wrapping_sub(1)) as i64);
                    rtype::STEP_ADDED
                }
                Event::AppCompletion(AppCompletion {
                    chain,
                    step,
                    user_data,
                    res,
                    flags,
                    kind,
                }) => {
                    e.var(*chain);
                    e.opt_var(step.map(|s| s as u64));
                    e.var(*user_data);
                    e.zz(*res as i64);
                    e.var(*flags as u64);
                    e.u8(match kind {
                        AppKind::Final => 0,
                        AppKind::Step => 1,
                        AppKind::Cancelled => 2,
                        AppKind::Emit => 3,
                    });
                    rtype::APP_COMPLETION
                }
                Event::Unlinked {
                    chain,
                    step,
                    decision,
                } => {
                    e.var(*chain);
                    e.var(*step as u64);
                    e.zz(decision.wrapping_sub(st.decision.wrapping_sub(1)) as i64);
                    rtype::UNLINKED
                }
                Event::Decision(d) => {
                    decision(e, st, d);
                    rtype::DECISION
                }
                other => {
                    match rmp_serde::to_vec_named(other) {
                        Ok(b) => e.buf.extend_from_slice(&b),
                        Err(err) => {
                            // Cannot happen for the engine's types; keep the
                            // stream decodable and say what was lost.
                            e.buf.clear();
                            e.str("encoder");
                            e.var(1);
                            let _ = err;
                            return rtype::LOST;
                        }
                    }
                    rtype::ENGINE_GENERIC
                }
            }
        }
    }
}

/// Sync payload.
pub fn encode_sync(next_index: u64, e: &mut Enc) {
    e.buf.clear();
    e.buf.extend_from_slice(&crate::format::SYNC_MARKER);
    e.var(next_index);
}

// ---- reading ----------------------------------------------------------------

fn g_sqe(d: &mut Dec) -> DResult<RsSqe> {
    Ok(RsSqe {
        opcode: d.u8("sqe.opcode")?,
        _rsvd: d.u8("sqe._rsvd")?,
        buf_index: d.u16("sqe.buf_index")?,
        fd: d.i32("sqe.fd")?,
        off: d.var("sqe.off")?,
        buf_off: d.var("sqe.buf_off")?,
        len: d.u32("sqe.len")?,
        op_flags: d.u32("sqe.op_flags")?,
        user_data: d.var("sqe.user_data")?,
    })
}

fn g_ctx(d: &mut Dec) -> DResult<RsCtx> {
    Ok(RsCtx {
        user_data: d.var("ctx.user_data")?,
        res: d.i32("ctx.res")?,
        cqe_flags: d.u32("ctx.cqe_flags")?,
        chain_id: d.var("ctx.chain_id")?,
        step: d.u32("ctx.step")?,
        nsteps: d.u32("ctx.nsteps")?,
        opcode: d.u8("ctx.opcode")?,
        attempt: d.u8("ctx.attempt")?,
        ctx_flags: d.u16("ctx.ctx_flags")?,
        fd: d.i32("ctx.fd")?,
        off: d.var("ctx.off")?,
        len: d.u32("ctx.len")?,
        buf_index: d.u16("ctx.buf_index")?,
        _pad: d.u16("ctx._pad")?,
        buf_off: d.var("ctx.buf_off")?,
    })
}

fn g_place(d: &mut Dec, field: &'static str) -> DResult<Where> {
    let at = d.pos();
    match d.u8(field)? {
        0 => Ok(Where::AfterCurrent),
        1 => Ok(Where::AtEnd),
        2 => Ok(Where::Detached),
        v => Err(FieldError {
            field,
            at,
            what: format!("{v} is not a placement (0..=2)"),
        }),
    }
}

fn bad(field: &'static str, at: usize, what: String) -> FieldError {
    FieldError { field, at, what }
}

/// `base + delta` where the result must fit in 32 bits.
fn rel_u32(d: &mut Dec, base: u32, field: &'static str) -> DResult<u32> {
    let at = d.pos();
    let v = d.zz(field)?;
    u32::try_from(base as i64 + v)
        .map_err(|_| bad(field, at, format!("{base} + {v} is out of range")))
}

fn g_budget(d: &mut Dec) -> DResult<BudgetViolation> {
    let at = d.pos();
    let kind = match d.u8("budget.kind")? {
        0 => BudgetKind::Instructions,
        1 => BudgetKind::SubmitsPerDecision,
        2 => BudgetKind::StepsPerChain,
        3 => BudgetKind::AttemptsPerStep,
        v => return Err(bad("budget.kind", at, format!("{v} is not a budget kind"))),
    };
    Ok(BudgetViolation {
        kind,
        limit: d.var("budget.limit")?,
        value: d.var("budget.value")?,
    })
}

fn g_detail(d: &mut Dec) -> DResult<CallDetail> {
    let at = d.pos();
    Ok(match d.u8("call.detail")? {
        0 => CallDetail::None,
        1 => CallDetail::MapLookup {
            map: d.u32("call.detail.map")?,
            key: d.bytes("call.detail.key")?,
            value: d.opt_bytes("call.detail.value")?,
        },
        2 => CallDetail::MapUpdate {
            map: d.u32("call.detail.map")?,
            key: d.bytes("call.detail.key")?,
            value: d.bytes("call.detail.value")?,
            flags: d.var("call.detail.flags")?,
        },
        3 => CallDetail::MapDelete {
            map: d.u32("call.detail.map")?,
            key: d.bytes("call.detail.key")?,
        },
        4 => CallDetail::Ktime {
            ns: d.var("call.detail.ns")?,
        },
        5 => CallDetail::Printk {
            text: d.str("call.detail.text")?,
        },
        6 => CallDetail::Submit {
            sqe: g_sqe(d)?,
            place: d.var("call.detail.place")?,
        },
        7 => CallDetail::Drop {
            step: d.var("call.detail.step")?,
        },
        8 => CallDetail::Unlink {
            step: d.var("call.detail.step")?,
        },
        9 => CallDetail::Emit {
            user_data: d.var("call.detail.user_data")?,
            res: d.i32("call.detail.res")?,
            flags: d.u32("call.detail.flags")?,
        },
        10 => CallDetail::ReadBuf {
            buf_index: d.u16("call.detail.buf_index")?,
            off: d.var("call.detail.off")?,
            data: d.bytes("call.detail.data")?,
        },
        11 => CallDetail::SetRes {
            res: d.i32("call.detail.res")?,
        },
        v => {
            return Err(bad(
                "call.detail",
                at,
                format!("{v} is not a call detail kind"),
            ));
        }
    })
}

fn g_action(d: &mut Dec) -> DResult<Action> {
    let at = d.pos();
    Ok(match d.u8("action")? {
        0 => Action::Submit {
            index: d.u32("action.index")?,
            place: g_place(d, "action.place")?,
            sqe: g_sqe(d)?,
            attempt: d.u8("action.attempt")?,
        },
        1 => Action::Drop {
            step: d.u32("action.step")?,
        },
        2 => Action::Unlink {
            step: d.u32("action.step")?,
        },
        3 => Action::Emit {
            user_data: d.var("action.user_data")?,
            res: d.i32("action.res")?,
            flags: d.u32("action.flags")?,
        },
        4 => Action::SetRes {
            res: d.i32("action.res")?,
        },
        v => return Err(bad("action", at, format!("{v} is not an action kind"))),
    })
}

fn g_string_ref(d: &mut Dec, st: &mut State, field: &'static str) -> DResult<String> {
    let at = d.pos();
    match d.var(field)? {
        0 => {
            let s = d.str(field)?;
            if st.strings.len() < 4096 {
                st.strings.push(s.clone());
            }
            Ok(s)
        }
        i => st.strings.get(i as usize - 1).cloned().ok_or_else(|| {
            bad(
                field,
                at,
                format!(
                    "string reference {i} but only {} strings are defined since the last sync",
                    st.strings.len()
                ),
            )
        }),
    }
}

fn g_decision(d: &mut Dec, st: &mut State) -> DResult<DecisionRecord> {
    let seq = st.decision.wrapping_add(d.zz("decision.seq")? as u64);
    st.decision = seq.wrapping_add(1);
    let prog = d.u32("decision.prog")?;
    let prog_name = g_string_ref(d, st, "decision.prog_name")?;
    let c = g_ctx(d)?;
    let chain = c.chain_id.wrapping_add(d.zz("decision.chain")? as u64);
    let step = rel_u32(d, c.step, "decision.step")?;
    let vchain = c.chain_id.wrapping_add(d.zz("view.chain")? as u64);
    let vstep = rel_u32(d, c.step, "view.step")?;
    let nsteps = rel_u32(d, c.nsteps, "view.nsteps")?;
    let opcode = d.u8("view.opcode")? ^ c.opcode;
    let at = d.pos();
    let fdv = d.zz("view.fd")?;
    let fd = i32::try_from(c.fd as i64 + fdv)
        .map_err(|_| bad("view.fd", at, format!("{} + {fdv} is out of range", c.fd)))?;
    let attempt = d.u8("view.attempt")? ^ c.attempt;
    let n = d.len("view.pending")?;
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        let at = d.pos();
        let v = d.var("view.pending")?;
        pending.push(PendingStep {
            index: u32::try_from(v >> 2).map_err(|_| {
                bad(
                    "view.pending",
                    at,
                    format!("step {} is out of range", v >> 2),
                )
            })?,
            dropped: v & 1 != 0,
            unlinked: v & 2 != 0,
        });
    }
    let n = d.len("decision.touched")?;
    let mut touched = Vec::with_capacity(n);
    for _ in 0..n {
        touched.push(MapTouch {
            map: d.u32("touched.map")?,
            key: d.bytes("touched.key")?,
            before: d.opt_bytes("touched.before")?,
            len_before: d.u32("touched.len_before")?,
        });
    }
    let n = d.len("decision.calls")?;
    let mut calls = Vec::with_capacity(n);
    for _ in 0..n {
        let helper = d.u32("call.helper")?;
        let mut args = [0u64; 5];
        for a in &mut args {
            *a = d.var("call.args")?;
        }
        calls.push(HelperCall {
            helper,
            args,
            ret: d.zz("call.ret")?,
            detail: g_detail(d)?,
            error: d.opt_str("call.error")?,
        });
    }
    let n = d.len("decision.map_writes")?;
    let mut map_writes = Vec::with_capacity(n);
    for _ in 0..n {
        map_writes.push(MapWrite {
            map: d.u32("map_write.map")?,
            key: d.bytes("map_write.key")?,
            before: d.opt_bytes("map_write.before")?,
            after: d.opt_bytes("map_write.after")?,
        });
    }
    let n = d.len("decision.actions")?;
    let mut actions = Vec::with_capacity(n);
    for _ in 0..n {
        actions.push(g_action(d)?);
    }
    let ret = d.var("decision.ret")?;
    let at = d.pos();
    let result = match d.u8("decision.result")? {
        0 => {
            let at = d.pos();
            DecisionResult::Verdict {
                verdict: match d.u8("decision.result.verdict")? {
                    0 => Verdict::Next,
                    1 => Verdict::Stop,
                    2 => Verdict::Fail,
                    v => {
                        return Err(bad(
                            "decision.result.verdict",
                            at,
                            format!("{v} is not a verdict"),
                        ));
                    }
                },
            }
        }
        1 => DecisionResult::BadReturn {
            ret: d.var("decision.result.ret")?,
        },
        2 => DecisionResult::VmError {
            message: d.str("decision.result.message")?,
        },
        3 => DecisionResult::Budget {
            violation: g_budget(d)?,
        },
        v => {
            return Err(bad(
                "decision.result",
                at,
                format!("{v} is not a result kind"),
            ));
        }
    };
    let insns = d.opt_var("decision.insns")?;
    let duration_ns = d.var("decision.duration_ns")?;
    let at = d.pos();
    let exec = match d.u8("decision.exec")? {
        0 => ExecMode::Interpreter,
        1 => ExecMode::Compiled,
        v => return Err(bad("decision.exec", at, format!("{v} is not an exec mode"))),
    };
    Ok(DecisionRecord {
        seq,
        prog,
        prog_name,
        chain,
        step,
        ctx: c,
        view: ChainView {
            chain: vchain,
            step: vstep,
            nsteps,
            opcode,
            fd,
            attempt,
            pending,
        },
        touched,
        calls,
        map_writes,
        actions,
        ret,
        result,
        insns,
        duration_ns,
        exec,
    })
}

fn g_probe(d: &mut Dec, st: &mut State) -> DResult<ProbeEvent> {
    let kind = d.u8("probe.kind")?;
    let at = d.pos();
    let mask = d.var("probe.fields")?;
    if mask >> PROBE_FIELDS.len() != 0 {
        return Err(bad(
            "probe.fields",
            at,
            format!("field mask {mask:#x} names fields this version does not know"),
        ));
    }
    let mut vals = st.probe;
    let mut w = [0u8; wire::EVENT_SIZE];
    for (i, &(off, size)) in PROBE_FIELDS.iter().enumerate() {
        if mask & (1 << i) != 0 {
            let at = d.pos();
            let delta = d.zz("probe.field")?;
            vals[i] = st.probe[i].wrapping_add(delta as u64);
            if size < 8 && vals[i] >> (size * 8) != 0 {
                return Err(bad(
                    "probe.field",
                    at,
                    format!("value {:#x} does not fit in {size} bytes", vals[i]),
                ));
            }
        }
        w[off..off + size].copy_from_slice(&vals[i].to_le_bytes()[..size]);
    }
    w[PROBE_KIND_AT] = kind;
    let ev = wire::decode(&w).map_err(|e| bad("probe.kind", 0, e.to_string()))?;
    st.probe = vals;
    Ok(ev)
}

/// Decode one record's payload.
pub fn decode_record(st: &mut State, rt: u8, payload: &[u8]) -> DResult<Record> {
    let mut d = Dec::new(payload);
    let rec = match rt {
        rtype::SYNC => {
            let m = d.raw(8, "sync.marker")?;
            if m != crate::format::SYNC_MARKER {
                return Err(bad("sync.marker", 0, "wrong sync marker".into()));
            }
            let next_index = d.var("sync.next_index")?;
            Record::Sync { next_index }
        }
        rtype::END => Record::End {
            items: d.var("end.items")?,
            dropped: d.var("end.dropped")?,
        },
        rtype::CLOCK => Record::Clock {
            engine_origin_mono_ns: d.var("clock.engine_origin_mono_ns")?,
        },
        rtype::PROBE => Record::Item(Item::Probe(g_probe(&mut d, st)?)),
        rtype::RING => Record::Item(Item::Probe(ProbeEvent::Ring(Box::new(g_ring(&mut d)?)))),
        rtype::LOST => Record::Item(Item::Lost {
            queue: d.str("lost.queue")?,
            count: d.var("lost.count")?,
        }),
        rtype::ENGINE_GENERIC
        | rtype::SUBMITTED
        | rtype::COMPLETED
        | rtype::CHAIN_STARTED
        | rtype::STEP_ADDED
        | rtype::APP_COMPLETION
        | rtype::UNLINKED
        | rtype::DECISION => {
            let seq = st.next_seq.wrapping_add(d.zz("seq")? as u64);
            let t_ns = st.t_ns.wrapping_add(d.zz("t_ns")? as u64);
            let event = match rt {
                rtype::SUBMITTED => {
                    let chain = d.var("submitted.chain")?;
                    let step = d.u32("submitted.step")?;
                    Event::Submitted {
                        chain,
                        step,
                        sqe: g_sqe(&mut d)?,
                        sqe_flags: d.u8("submitted.sqe_flags")?,
                        ring_user_data: d.var("submitted.ring_user_data")?
                            ^ ((chain << 32) | step as u64),
                        attempt: d.u8("submitted.attempt")?,
                    }
                }
                rtype::COMPLETED => Event::Completed {
                    chain: d.var("completed.chain")?,
                    step: d.u32("completed.step")?,
                    res: d.i32("completed.res")?,
                    flags: d.u32("completed.flags")?,
                    latency_ns: d.var("completed.latency_ns")?,
                    short: d.remaining() > 0 && d.u8("completed.verdict")? & 1 != 0,
                },
                rtype::CHAIN_STARTED => Event::ChainStarted {
                    chain: d.var("chain_started.chain")?,
                },
                rtype::STEP_ADDED => Event::StepAdded {
                    chain: d.var("step_added.chain")?,
                    step: d.u32("step_added.step")?,
                    place: g_place(&mut d, "step_added.place")?,
                    sqe: g_sqe(&mut d)?,
                    attempt: d.u8("step_added.attempt")?,
                    decision: st
                        .decision
                        .wrapping_sub(1)
                        .wrapping_add(d.zz("step_added.decision")? as u64),
                },
                rtype::APP_COMPLETION => {
                    let chain = d.var("app_completion.chain")?;
                    let at = d.pos();
                    let step = match d.opt_var("app_completion.step")? {
                        None => None,
                        Some(s) => Some(u32::try_from(s).map_err(|_| {
                            bad("app_completion.step", at, format!("{s} is out of range"))
                        })?),
                    };
                    let user_data = d.var("app_completion.user_data")?;
                    let res = d.i32("app_completion.res")?;
                    let flags = d.u32("app_completion.flags")?;
                    let at = d.pos();
                    let kind = match d.u8("app_completion.kind")? {
                        0 => AppKind::Final,
                        1 => AppKind::Step,
                        2 => AppKind::Cancelled,
                        3 => AppKind::Emit,
                        v => {
                            return Err(bad(
                                "app_completion.kind",
                                at,
                                format!("{v} is not a completion kind"),
                            ));
                        }
                    };
                    Event::AppCompletion(AppCompletion {
                        chain,
                        step,
                        user_data,
                        res,
                        flags,
                        kind,
                    })
                }
                rtype::UNLINKED => Event::Unlinked {
                    chain: d.var("unlinked.chain")?,
                    step: d.u32("unlinked.step")?,
                    decision: st
                        .decision
                        .wrapping_sub(1)
                        .wrapping_add(d.zz("unlinked.decision")? as u64),
                },
                rtype::DECISION => Event::Decision(Box::new(g_decision(&mut d, st)?)),
                _ => {
                    let at = d.pos();
                    let body = d.rest();
                    rmp_serde::from_slice::<Event>(body)
                        .map_err(|e| bad("event", at, format!("MessagePack body: {e}")))?
                }
            };
            st.next_seq = seq.wrapping_add(1);
            st.t_ns = t_ns;
            Record::Item(Item::Engine(Arc::new(EventRecord { seq, t_ns, event })))
        }
        other => {
            return Err(bad(
                "type",
                0,
                format!("record type {other:#04x} is not known to this version"),
            ));
        }
    };
    d.finish(rtype::name(rt))?;
    Ok(rec)
}
