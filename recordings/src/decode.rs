//! Record payloads back into items: the layouts [`crate::encode`] writes
//! (docs/recording-format.md), every field checked, an error naming the
//! field and its offset instead of a panic.

use crate::codec::{DResult, Dec, FieldError};
use crate::error::{Code, FieldProblem as F, MsgPackCause};
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
use std::sync::Arc;

use crate::encode::{PROBE_FIELDS, PROBE_KIND_AT, Record, State, ring_have};
use crate::format::{DETAIL_INPUTS, rtype};

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
        w => return Err(bad("ring.when", at, F::UnknownWhen { code: w })),
    };
    let ring = ringside_probes::Ptr(d.var("ring.ring")?);
    let at = d.pos();
    let have = d.var("ring.have")?;
    if have & !ring_have::ALL != 0 {
        return Err(bad("ring.have", at, F::UnknownFields { mask: have }));
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
            problem: F::BadCode {
                code: v,
                of: Code::Placement,
            },
        }),
    }
}

fn bad(field: &'static str, at: usize, problem: F) -> FieldError {
    FieldError { field, at, problem }
}

/// `code` is not one of the codes of `of`.
fn bad_code(field: &'static str, at: usize, code: u8, of: Code) -> FieldError {
    bad(field, at, F::BadCode { code, of })
}

/// `base + delta` where the result must fit in 32 bits.
fn rel_u32(d: &mut Dec, base: u32, field: &'static str) -> DResult<u32> {
    let at = d.pos();
    let v = d.zz(field)?;
    u32::try_from(base as i64 + v).map_err(|_| {
        bad(
            field,
            at,
            F::SumOutOfRange {
                base: base.into(),
                delta: v,
            },
        )
    })
}

fn g_budget(d: &mut Dec) -> DResult<BudgetViolation> {
    let at = d.pos();
    let kind = match d.u8("budget.kind")? {
        0 => BudgetKind::Instructions,
        1 => BudgetKind::SubmitsPerDecision,
        2 => BudgetKind::StepsPerChain,
        3 => BudgetKind::AttemptsPerStep,
        v => return Err(bad_code("budget.kind", at, v, Code::BudgetKind)),
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
            return Err(bad_code("call.detail", at, v, Code::CallDetail));
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
        v => return Err(bad_code("action", at, v, Code::Action)),
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
                F::UnknownString {
                    index: i,
                    defined: st.strings.len(),
                },
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
    let fd = i32::try_from(c.fd as i64 + fdv).map_err(|_| {
        bad(
            "view.fd",
            at,
            F::SumOutOfRange {
                base: c.fd.into(),
                delta: fdv,
            },
        )
    })?;
    let attempt = d.u8("view.attempt")? ^ c.attempt;
    let n = d.len("view.pending")?;
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        let at = d.pos();
        let v = d.var("view.pending")?;
        pending.push(PendingStep {
            index: u32::try_from(v >> 2)
                .map_err(|_| bad("view.pending", at, F::StepOutOfRange { step: v >> 2 }))?,
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
                        return Err(bad_code("decision.result.verdict", at, v, Code::Verdict));
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
            return Err(bad_code("decision.result", at, v, Code::ResultKind));
        }
    };
    let insns = d.opt_var("decision.insns")?;
    let duration_ns = d.var("decision.duration_ns")?;
    let at = d.pos();
    // Bit 1 of the exec byte: an inputs-only record (format 3).
    let byte = d.u8("decision.exec")?;
    let exec = match byte & !DETAIL_INPUTS {
        0 => ExecMode::Interpreter,
        1 => ExecMode::Compiled,
        v => return Err(bad_code("decision.exec", at, v, Code::ExecMode)),
    };
    let detail = if byte & DETAIL_INPUTS != 0 {
        Detail::Inputs
    } else {
        Detail::Full
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
        detail,
    })
}

fn g_probe(d: &mut Dec, st: &mut State) -> DResult<ProbeEvent> {
    let kind = d.u8("probe.kind")?;
    let at = d.pos();
    let mask = d.var("probe.fields")?;
    if mask >> PROBE_FIELDS.len() != 0 {
        return Err(bad("probe.fields", at, F::UnknownFields { mask }));
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
                    F::ValueTooWide {
                        value: vals[i],
                        size,
                    },
                ));
            }
        }
        w[off..off + size].copy_from_slice(&vals[i].to_le_bytes()[..size]);
    }
    w[PROBE_KIND_AT] = kind;
    let ev = wire::decode(&w).map_err(|e| bad("probe.kind", 0, F::ProbeEvent(e)))?;
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
                return Err(bad("sync.marker", 0, F::SyncMarker));
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
                            bad("app_completion.step", at, F::OutOfRange { value: s })
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
                            return Err(bad_code(
                                "app_completion.kind",
                                at,
                                v,
                                Code::CompletionKind,
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
                    rmp_serde::from_slice::<Event>(body).map_err(|e| {
                        let text = e.to_string();
                        bad("event", at, F::MessagePack(MsgPackCause { text }))
                    })?
                }
            };
            st.next_seq = seq.wrapping_add(1);
            st.t_ns = t_ns;
            Record::Item(Item::Engine(Arc::new(EventRecord { seq, t_ns, event })))
        }
        other => {
            return Err(bad("type", 0, F::UnknownRecordType { record_type: other }));
        }
    };
    d.finish(rtype::name(rt))?;
    Ok(rec)
}
