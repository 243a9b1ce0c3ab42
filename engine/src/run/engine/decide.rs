//! Deciding: a program runs on a completion, its actions are applied, and a
//! chain that has nothing left to do ends.

use super::*;

impl Engine {
    /// Run a decision and apply it. Returns true when the chain goes on.
    pub(super) fn decide(&mut self, k: ChainKey, pos: usize, prog: ProgId, ctx: RsCtx) -> bool {
        let seq = self.stats.decisions;
        self.stats.decisions += 1;
        let step = ctx.step;
        let (p, maps) = self
            .registry
            .program_and_maps(prog)
            .expect("program exists");
        let quiet = !self.bus.active()
            && self.debugger.is_none()
            && !decision::needs_count(p, &self.budgets);
        let result = if quiet {
            // Nobody looks at this decision: no record, no event.
            self.chains[k].view_into(pos, &mut self.quick.view);
            let mut source = LiveSource {
                bufs: self.ring.buffers(),
            };
            // Two clock reads cost more than a short program's run: time one
            // decision in TIME_EVERY and count it for all of them.
            let (result, ns) = decision::execute_unrecorded(
                p,
                maps,
                &ctx,
                &self.regs,
                &self.budgets,
                &mut source,
                &mut self.quick,
                seq.is_multiple_of(TIME_EVERY),
            );
            if let Some(ns) = ns {
                self.stats.decision_ns += ns * TIME_EVERY;
            }
            if result.verdict().is_some() {
                let mut actions = std::mem::take(&mut self.quick.actions);
                for a in actions.drain(..) {
                    self.apply(k, seq, a);
                }
                self.quick.actions = actions;
            }
            result
        } else {
            self.decide_recorded(k, pos, prog, seq, ctx)
        };
        self.conclude(k, seq, step, result)
    }

    /// [`Engine::decide`] with the decision recorded: sent as an event, seen by
    /// the debugger, its instructions counted. Applies the actions of a verdict.
    pub(super) fn decide_recorded(
        &mut self,
        k: ChainKey,
        pos: usize,
        prog: ProgId,
        seq: u64,
        ctx: RsCtx,
    ) -> DecisionResult {
        // One record is reused for every decision (a sent one is swapped
        // with a spare of the event batch), and one view: nothing here
        // allocates once the buffers have grown.
        let mut view = std::mem::take(&mut self.scratch_view);
        self.chains[k].view_into(pos, &mut view);
        let record = self.bus.active();
        // Breakpoints read only the program, chain and context, which every
        // record has: the debugger needs no more than the listeners.
        let detail = self.bus.detail();
        let req = DecisionRequest {
            seq,
            ctx,
            view,
            regs: &self.regs,
            budgets: &self.budgets,
            record: record.then_some(detail),
            count_insns: record,
        };
        let (p, maps) = self
            .registry
            .program_and_maps(prog)
            .expect("program exists");
        let mut source = LiveSource {
            bufs: self.ring.buffers(),
        };
        self.scratch_view = decision::execute_into(p, maps, req, &mut source, &mut self.scratch);
        self.stats.decision_ns += self.scratch.duration_ns;
        let result = self.scratch.result.clone();
        let mut actions = std::mem::take(&mut self.scratch_actions);
        if result.verdict().is_some() {
            actions.extend_from_slice(&self.scratch.actions);
        }
        let stop = self
            .debugger
            .as_ref()
            .and_then(|d| d.should_stop(&self.scratch));
        if record {
            self.bus.emit_decision(&mut self.scratch);
        }
        if let (Some(reason), Some(d)) = (stop, self.debugger.clone()) {
            // Stopped after the decision ran, before it takes effect.
            self.bus.emit(|| Event::Paused {
                reason,
                decision: Some(seq),
            });
            // The UI must see the pause now, and what follows is later.
            self.bus.flush_now();
            d.wait(&|| false);
            self.bus.emit(|| Event::Resumed);
        }
        for a in actions.drain(..) {
            self.apply(k, seq, a);
        }
        self.scratch_actions = actions;
        result
    }

    /// Act on how a decision ended. Returns true when the chain goes on.
    pub(super) fn conclude(
        &mut self,
        k: ChainKey,
        seq: u64,
        step: u32,
        result: DecisionResult,
    ) -> bool {
        match result {
            DecisionResult::Verdict {
                verdict: Verdict::Next,
            } => true,
            DecisionResult::Verdict {
                verdict: Verdict::Stop,
            } => {
                self.stop(k, seq, step);
                false
            }
            DecisionResult::Verdict {
                verdict: Verdict::Fail,
            } => {
                let res = self
                    .chains
                    .get(k)
                    .and_then(|c| c.pos(step).map(|p| c.steps[p].res))
                    .unwrap_or(0);
                self.fail(
                    k,
                    step,
                    res,
                    CancelCause::ProgramFail {
                        decision: seq,
                        step,
                    },
                );
                false
            }
            DecisionResult::BadReturn { ret } => {
                let reason =
                    format!("returned {ret}, which is not RS_NEXT (0), RS_STOP (1) or RS_FAIL (2)");
                self.fail(
                    k,
                    step,
                    -libc::EINVAL,
                    CancelCause::ProgramError {
                        decision: seq,
                        reason,
                    },
                );
                false
            }
            DecisionResult::VmError { message } => {
                self.fail(
                    k,
                    step,
                    -libc::EFAULT,
                    CancelCause::ProgramError {
                        decision: seq,
                        reason: message,
                    },
                );
                false
            }
            DecisionResult::Budget { violation } => {
                self.fail(
                    k,
                    step,
                    -libc::E2BIG,
                    CancelCause::Budget {
                        decision: seq,
                        violation,
                    },
                );
                false
            }
        }
    }

    pub(super) fn apply(&mut self, k: ChainKey, decision: u64, action: Action) {
        match action {
            Action::Submit {
                index,
                place,
                sqe,
                attempt,
            } => {
                let c = self.chains.get_mut(k).expect("chain");
                let detached = place == Where::Detached;
                let pos = c.insert(index, sqe, attempt, detached);
                let (id, index) = (c.id, c.index(pos));
                self.bus.emit(|| Event::StepAdded {
                    chain: id,
                    step: index,
                    place,
                    sqe,
                    attempt,
                    decision,
                });
                if detached && let Err(e) = self.issue(k, pos, squeue::Flags::empty()) {
                    let c = self.chains.get_mut(k).expect("chain");
                    c.steps[pos].state = StepState::Cancelled;
                    let errno = e.raw_os_error().unwrap_or(libc::EIO);
                    self.cancelled(k, index, CancelCause::SubmitFailed { errno }, false, true);
                }
            }
            Action::Drop { step } => {
                let c = self.chains.get_mut(k).expect("chain");
                if let Some(p) = c.pos(step)
                    && c.steps[p].state == StepState::Pending
                {
                    c.steps[p].state = StepState::Dropped;
                    self.cancelled(k, step, CancelCause::Dropped { decision }, false, true);
                }
            }
            Action::Unlink { step } => {
                let c = self.chains.get_mut(k).expect("chain");
                let id = c.id;
                if let Some(p) = c.pos(step) {
                    c.steps[p].unlinked = true;
                    self.bus.emit(|| Event::Unlinked {
                        chain: id,
                        step,
                        decision,
                    });
                }
            }
            Action::Emit {
                user_data,
                res,
                flags,
            } => {
                let c = AppCompletion {
                    chain: self.chains[k].id,
                    step: None,
                    user_data,
                    res,
                    flags,
                    kind: AppKind::Emit,
                };
                self.post(c);
            }
            Action::SetRes { res } => {
                if let Some(c) = self.chains.get_mut(k) {
                    c.final_res = Some(res);
                }
            }
        }
    }

    pub(super) fn post(&mut self, c: AppCompletion) {
        self.bus.emit(|| Event::AppCompletion(c));
        self.completions.push_back(c);
    }

    /// Report a cancelled step; `notify` posts it under notify = all.
    pub(super) fn cancelled(
        &mut self,
        k: ChainKey,
        step: u32,
        cause: CancelCause,
        issued: bool,
        notify: bool,
    ) {
        let res = -libc::ECANCELED;
        // Only live chains have steps to cancel.
        let Some(c) = self.chains.get(k) else {
            return;
        };
        let at = c.pos(step).map(|p| &c.steps[p]);
        let (id, post, user_data, dropped) = (
            c.id,
            notify && c.notify == Notify::All,
            at.map_or(0, |s| s.sqe.user_data),
            // The step's own state is the verdict (set by the caller).
            at.is_some_and(|s| s.state == StepState::Dropped),
        );
        self.bus.emit(|| Event::Cancelled {
            chain: id,
            step,
            cause,
            res,
            issued,
            dropped,
        });
        if post {
            self.post(AppCompletion {
                chain: id,
                step: Some(step),
                user_data,
                res,
                flags: 0,
                kind: AppKind::Cancelled,
            });
        }
    }

    /// Fail the chain at `step`: cancel every step not yet issued.
    pub(super) fn fail(&mut self, k: ChainKey, step: u32, res: i32, cause: CancelCause) {
        let Some(c) = self.chains.get_mut(k) else {
            return;
        };
        if c.failure.is_none() {
            c.failure = Some((step, res, cause.clone()));
        }
        c.state = ChainState::Finishing;
        for i in c.end_pending(StepState::Cancelled) {
            self.cancelled(k, i, cause.clone(), false, true);
        }
        self.finish_if_idle(k);
    }

    /// Stop the chain successfully: drop the rest quietly.
    pub(super) fn stop(&mut self, k: ChainKey, decision: u64, step: u32) {
        let Some(c) = self.chains.get_mut(k) else {
            return;
        };
        c.stopped = Some(decision);
        c.state = ChainState::Finishing;
        for i in c.end_pending(StepState::Dropped) {
            self.cancelled(
                k,
                i,
                CancelCause::ProgramStop { decision, step },
                false,
                false,
            );
        }
        self.finish_if_idle(k);
    }

    pub(super) fn finish_if_idle(&mut self, k: ChainKey) {
        let Some(c) = self.chains.get(k) else {
            return;
        };
        if c.inflight > 0 || c.state == ChainState::Running && !self.shut {
            return;
        }
        let c = self.chains.remove(k).expect("chain");
        let id = c.id;
        let outcome = if let Some((step, _, cause)) = &c.failure {
            Outcome::Failed {
                step: *step,
                cause: cause.clone(),
            }
        } else if c.cancelled {
            Outcome::Cancelled
        } else if let Some(decision) = c.stopped {
            Outcome::Stopped { decision }
        } else {
            Outcome::Completed
        };
        let res = match (&c.failure, c.final_res) {
            (_, Some(r)) => r,
            (Some((_, r, _)), None) => *r,
            (None, None) if c.cancelled => -libc::ECANCELED,
            (None, None) => c.last_res,
        };
        let failed = !outcome.is_success();
        self.stats.chains_finished += 1;
        let steps = c.nsteps();
        self.bus.emit(|| Event::ChainFinished {
            chain: id,
            outcome: outcome.clone(),
            res,
            steps,
        });
        if let Some(v) = self.shutdown_outcomes.as_mut() {
            v.push((id, outcome.clone()));
        }
        self.finished.push(ChainEnd {
            chain: id,
            user_data: c.user_data,
            outcome,
            res,
        });
        if c.notify != Notify::None {
            self.post(AppCompletion {
                chain: id,
                step: None,
                user_data: c.user_data,
                res,
                flags: if failed { FINAL_FAILED } else { 0 },
                kind: AppKind::Final,
            });
        }
        if c.state != ChainState::Queued {
            self.running -= 1;
        }
        if self.barrier == Some(k) {
            self.barrier = None;
        }
        if !self.shut {
            self.start_queued();
        }
    }
}
