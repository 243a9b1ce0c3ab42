//! Items into record payloads (the reading side is [`crate::decode`]).
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

use crate::codec::Enc;
use crate::item::Item;
use ringside_engine::abi::{RsCtx, RsSqe, Verdict, Where};
use ringside_engine::decision::{
    Action, BudgetKind, BudgetViolation, CallDetail, ChainView, DecisionRecord, DecisionResult,
    Detail, HelperCall, MapTouch, MapWrite, PendingStep,
};
use ringside_engine::event::{AppCompletion, AppKind, Event, EventRecord};
use ringside_engine::program::vm::ExecMode;
use ringside_probes::ProbeEvent;
use ringside_probes::discover::{RegisteredBuffer, RegisteredFile, RingSetup, RingWhen};
use ringside_probes::event::wire;

use crate::format::{DETAIL_INPUTS, rtype};

/// Probe wire fields, in bitmap order: (offset, size) in the 80-byte wire record.
pub(crate) const PROBE_FIELDS: [(usize, usize); 14] = [
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
pub(crate) const PROBE_KIND_AT: usize = 70;

/// Decoding/encoding state between sync points.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub(crate) next_seq: u64,
    pub(crate) t_ns: u64,
    pub(crate) decision: u64,
    pub(crate) probe: [u64; 14],
    pub(crate) strings: Vec<String>,
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
        detail: level,
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
    let inputs = if *level == Detail::Inputs {
        DETAIL_INPUTS
    } else {
        0
    };
    e.u8(inputs
        | match exec {
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
pub(crate) mod ring_have {
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
