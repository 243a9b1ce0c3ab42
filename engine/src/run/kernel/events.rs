//! What the loop reports, turned into the userspace engine's terms: each
//! ring-buffer record into an [`Event`], each decision's inputs into a
//! [`DecisionRecord`] rebuilt by running it again in userspace, the shared
//! region's application completions and finished chains.

use super::*;

impl KernelLoop {
    /// Everything the loop reported since the last call.
    pub(super) fn collect(&mut self, cx: &mut RunCtx<'_>) -> Result<(), KernelError> {
        let records = self.rb.as_mut().map(|rb| rb.consume()).unwrap_or_default();
        // One batch of events, as the userspace engine's reaped batch: one
        // clock read, and with one subscriber one handoff for all of them
        // (each was a batch of its own).
        cx.bus.begin_batch();
        for r in records {
            self.record(&r, cx);
        }
        cx.bus.end_batch();
        // Completions for the application, then finished chains.
        let mut done = Vec::new();
        {
            let mem = self.mem();
            while mem.hdr.comp_head != mem.hdr.comp_tail {
                let c = mem.comp[mem.hdr.comp_head as usize % abi::COMP_RING];
                mem.hdr.comp_head = mem.hdr.comp_head.wrapping_add(1);
                cx.completions.push_back(app_completion(&c));
            }
            while mem.hdr.fin_head != mem.hdr.fin_tail {
                let f = mem.fin[mem.hdr.fin_head as usize % abi::FIN_RING];
                mem.hdr.fin_head = mem.hdr.fin_head.wrapping_add(1);
                done.push(f);
            }
        }
        for f in done {
            let slot = f.slot as usize % abi::MAX_CHAINS;
            let meta = self.chains[slot].take();
            self.free.push(slot as u32);
            self.active = self.active.saturating_sub(1);
            cx.finished.push(ChainEnd {
                chain: f.chain,
                user_data: meta.map_or(0, |m| m.user_data),
                outcome: outcome(f.outcome, f.fail_step, f.stop_decision, &f.cause),
                res: f.res,
            });
        }
        Ok(())
    }

    /// One ring buffer record -> events.
    fn record(&mut self, r: &[u8], cx: &mut RunCtx<'_>) {
        if r.len() < 4 {
            return;
        }
        let kind = u32::from_le_bytes(r[0..4].try_into().expect("4"));
        match kind {
            abi::REC_DECISION => {
                self.partial = Some(Partial {
                    dec: abi::read(r),
                    ..Default::default()
                });
            }
            abi::REC_CALL => {
                let c: abi::KCall = abi::read(r);
                if let Some(p) = self.partial.as_mut() {
                    p.calls.push((c.helper, c.ret));
                }
            }
            abi::REC_DATA => {
                let len = u32::from_le_bytes(r[4..8].try_into().expect("4")) as usize;
                if let Some(p) = self.partial.as_mut() {
                    p.reads.push(r.get(16..16 + len).unwrap_or(&[]).to_vec());
                }
            }
            abi::REC_DECIDED => {
                let d: abi::KDecided = abi::read(r);
                if let Some(p) = self.partial.take() {
                    self.decision(p, &d, cx);
                }
            }
            _ => {
                let e: abi::KEv = abi::read(r);
                if let Some(ev) = event(&e) {
                    cx.bus.emit(|| ev);
                }
            }
        }
    }

    /// A kernel decision, re-executed in userspace from its inputs.
    fn decision(&mut self, p: Partial, d: &abi::KDecided, cx: &mut RunCtx<'_>) {
        let Some(&prog) = self.linked.get(p.dec.prog as usize) else {
            return;
        };
        let ctx = RsCtx::from_bytes(&p.dec.ctx);
        let view = ChainView {
            chain: p.dec.chain,
            step: p.dec.step,
            nsteps: p.dec.nsteps,
            opcode: p.dec.opcode,
            fd: p.dec.fd,
            attempt: p.dec.attempt,
            pending: p.dec.pending[..(p.dec.npending as usize).min(abi::WIN)]
                .iter()
                .map(|q| PendingStep {
                    index: q.index,
                    dropped: q.dropped != 0,
                    unlinked: q.unlinked != 0,
                })
                .collect(),
        };
        let ktimes: Vec<u64> = p
            .calls
            .iter()
            .filter(|c| c.0 == 5)
            .map(|c| c.1 as u64)
            .collect();
        let mut source = Inputs {
            ktimes: &ktimes,
            reads: &p.reads,
            kt: 0,
            rd: 0,
        };
        let req = DecisionRequest {
            seq: p.dec.seq,
            ctx,
            view,
            regs: cx.regs,
            budgets: cx.budgets,
            record: Some(decision::Detail::Full),
            count_insns: true,
        };
        let Some((lp, maps)) = cx.registry.program_and_maps(prog) else {
            return;
        };
        let mut rec = Box::<DecisionRecord>::default();
        let _ = decision::execute_into(lp, maps, req, &mut source, &mut rec);
        // What the kernel saw replaces what the re-run saw: where they
        // differ, `ringside check` reports it.
        let mut kcalls = p.calls.iter().filter(|c| c.0 >= 0x1000);
        for c in rec.calls.iter_mut().filter(|c| c.helper >= 0x1000) {
            if let Some(k) = kcalls.next() {
                c.ret = k.1;
            }
        }
        rec.ret = d.ret;
        rec.duration_ns = d.duration_ns;
        rec.result = match d.result {
            0 => match Verdict::from_ret(d.ret) {
                Some(verdict) => DecisionResult::Verdict { verdict },
                None => DecisionResult::BadReturn { ret: d.ret },
            },
            1 => DecisionResult::BadReturn { ret: d.ret },
            2 => DecisionResult::Budget {
                violation: violation(d.vkind as u8, d.limit, d.value),
            },
            _ => DecisionResult::VmError {
                message: klimit(d.vkind as u8),
            },
        };
        if rec.result.verdict().is_none() {
            rec.actions.clear();
        }
        let stop = cx.debugger.as_ref().and_then(|dbg| dbg.should_stop(&rec));
        let seq = rec.seq;
        cx.bus.emit_decision(&mut rec);
        if let (Some(reason), Some(dbg)) = (stop, cx.debugger.clone()) {
            // The loop returned to userspace after this decision (it
            // pauses after every one while a debugger is attached); the
            // decision has taken effect in the kernel already.
            cx.bus.emit(|| Event::Paused {
                reason,
                decision: Some(seq),
            });
            // The UI must see the pause now, and what follows is later.
            cx.bus.flush_now();
            dbg.wait(&|| false);
            cx.bus.emit(|| Event::Resumed);
        }
    }
}

/// Recorded inputs of a kernel decision, in call order.
struct Inputs<'a> {
    ktimes: &'a [u64],
    reads: &'a [Vec<u8>],
    kt: usize,
    rd: usize,
}

impl InputSource for Inputs<'_> {
    fn ktime_ns(&mut self) -> u64 {
        let v = self.ktimes.get(self.kt).copied().unwrap_or(0);
        self.kt += 1;
        v
    }

    fn read_buf(&mut self, _buf: u16, _off: u64, dst: &mut [u8]) {
        if let Some(d) = self.reads.get(self.rd) {
            let n = d.len().min(dst.len());
            dst[..n].copy_from_slice(&d[..n]);
        }
        self.rd += 1;
    }
}

fn violation(kind: u8, limit: u64, value: u64) -> BudgetViolation {
    BudgetViolation {
        kind: match kind {
            1 => BudgetKind::SubmitsPerDecision,
            2 => BudgetKind::StepsPerChain,
            3 => BudgetKind::AttemptsPerStep,
            _ => BudgetKind::Instructions,
        },
        limit,
        value,
    }
}

fn klimit(kind: u8) -> String {
    match kind {
        abi::KLIM_WINDOW => format!(
            "kernel backend: the chain would hold more than {} unfinished steps",
            abi::WIN
        ),
        abi::KLIM_ACTIONS => "kernel backend: more than 32 actions in one decision".into(),
        abi::KLIM_PROG => "kernel backend: the program is not linked into the loop".into(),
        k => format!("kernel backend: limit {k}"),
    }
}

fn cause(c: &abi::KCause) -> CancelCause {
    match c.kind {
        abi::CAUSE_KERNEL_LINK => CancelCause::KernelLink {
            failed_step: c.step,
        },
        abi::CAUSE_LINK_FAILED => CancelCause::LinkFailed {
            failed_step: c.step,
        },
        abi::CAUSE_PROGRAM_FAIL => CancelCause::ProgramFail {
            decision: c.decision,
            step: c.step,
        },
        abi::CAUSE_PROGRAM_STOP => CancelCause::ProgramStop {
            decision: c.decision,
            step: c.step,
        },
        abi::CAUSE_DROPPED => CancelCause::Dropped {
            decision: c.decision,
        },
        abi::CAUSE_BAD_RETURN => CancelCause::ProgramError {
            decision: c.decision,
            reason: format!(
                "returned {}, which is not RS_NEXT (0), RS_STOP (1) or RS_FAIL (2)",
                c.value
            ),
        },
        abi::CAUSE_BUDGET => CancelCause::Budget {
            decision: c.decision,
            violation: violation(c.vkind, c.limit, c.value),
        },
        abi::CAUSE_SUBMIT_FAILED => CancelCause::SubmitFailed {
            errno: c.value as i32,
        },
        abi::CAUSE_KLIMIT => CancelCause::ProgramError {
            decision: c.decision,
            reason: klimit(c.vkind),
        },
        _ => CancelCause::Shutdown,
    }
}

fn outcome(kind: u8, step: u32, stop: u64, c: &abi::KCause) -> Outcome {
    match kind {
        abi::OUT_COMPLETED => Outcome::Completed,
        abi::OUT_STOPPED => Outcome::Stopped { decision: stop },
        abi::OUT_FAILED => Outcome::Failed {
            step,
            cause: cause(c),
        },
        _ => Outcome::Cancelled,
    }
}

fn app_kind(k: u8) -> AppKind {
    match k {
        abi::APP_FINAL => AppKind::Final,
        abi::APP_STEP => AppKind::Step,
        abi::APP_CANCELLED => AppKind::Cancelled,
        _ => AppKind::Emit,
    }
}

fn app_completion(c: &abi::KComp) -> AppCompletion {
    AppCompletion {
        chain: c.chain,
        step: (c.step != u32::MAX).then_some(c.step),
        user_data: c.user_data,
        res: c.res,
        flags: c.flags,
        kind: app_kind(c.kind),
    }
}

fn sqe_of(b: &[u8; 40]) -> RsSqe {
    RsSqe::from_bytes(b)
}

/// A plain event record -> the engine's event.
fn event(e: &abi::KEv) -> Option<Event> {
    Some(match e.kind {
        abi::REC_STARTED => Event::ChainStarted { chain: e.chain },
        abi::REC_SUBMITTED => Event::Submitted {
            chain: e.chain,
            step: e.step,
            sqe: sqe_of(&e.sqe),
            sqe_flags: e.a as u8,
            ring_user_data: e.b,
            attempt: e.c as u8,
        },
        abi::REC_COMPLETED => Event::Completed {
            chain: e.chain,
            step: e.step,
            res: e.a as i64 as i32,
            flags: e.b as u32,
            latency_ns: e.c,
            short: e.d & 1 != 0,
        },
        abi::REC_STEP_ADDED => Event::StepAdded {
            chain: e.chain,
            step: e.step,
            place: Where::from_raw(e.a).unwrap_or(Where::AtEnd),
            sqe: sqe_of(&e.sqe),
            attempt: e.b as u8,
            decision: e.c,
        },
        abi::REC_UNLINKED => Event::Unlinked {
            chain: e.chain,
            step: e.step,
            decision: e.a,
        },
        abi::REC_CANCELLED => Event::Cancelled {
            chain: e.chain,
            step: e.step,
            cause: cause(&e.cause),
            res: e.a as i64 as i32,
            issued: e.b != 0,
            dropped: e.d & 1 != 0,
        },
        abi::REC_APP => Event::AppCompletion(AppCompletion {
            chain: e.chain,
            step: (e.step != u32::MAX).then_some(e.step),
            user_data: e.a,
            res: e.b as i64 as i32,
            flags: e.c as u32,
            kind: app_kind(e.d as u8),
        }),
        abi::REC_FINISHED => Event::ChainFinished {
            chain: e.chain,
            outcome: outcome(e.b as u8, e.step, e.d, &e.cause),
            res: e.a as i64 as i32,
            steps: e.c as u32,
        },
        abi::REC_SHUTDOWN => Event::Shutdown {
            chains: e.a as u32,
            inflight: e.b as u32,
        },
        _ => return None,
    })
}
