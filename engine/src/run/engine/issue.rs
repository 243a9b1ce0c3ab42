//! Issuing: chains start, their steps go to the kernel, completions come
//! back and are matched to their steps.

use super::*;

impl Engine {
    /// Start queued chains in order, honouring drain barriers.
    pub(super) fn start_queued(&mut self) {
        while let Some(&k) = self.queue.front() {
            if self.barrier.is_some() {
                return;
            }
            let drain = self.chains.get(k).is_some_and(|c| c.drain);
            if drain && self.running > 0 {
                return;
            }
            self.queue.pop_front();
            if drain {
                self.barrier = Some(k);
            }
            self.start_chain(k);
        }
    }

    pub(super) fn start_chain(&mut self, k: ChainKey) {
        self.running += 1;
        let Some(c) = self.chains.get_mut(k) else {
            return;
        };
        c.state = ChainState::Running;
        let (driver, id) = (c.driver, c.id);
        self.bus.emit(|| Event::ChainStarted { chain: id });
        match driver {
            Driver::Engine => self.advance(k, None),
            Driver::Kernel { hard } => self.issue_kernel_link(k, hard),
        }
    }

    pub(super) fn issue_kernel_link(&mut self, k: ChainKey, hard: bool) {
        let n = self.chains[k].steps.len();
        if self.ring.sq_space() < n {
            // A link must be in one submission: make room first.
            if let Err(e) = self.ring.submit(0) {
                self.fail_submit(k, 0, e);
                return;
            }
        }
        for pos in 0..n {
            let flags = if pos + 1 < n {
                if hard {
                    squeue::Flags::IO_HARDLINK
                } else {
                    squeue::Flags::IO_LINK
                }
            } else {
                squeue::Flags::empty()
            };
            if let Err(e) = self.issue(k, pos, flags) {
                self.fail_submit(k, pos as u32, e);
                return;
            }
        }
    }

    /// Put one step in the SQ.
    pub(super) fn issue(
        &mut self,
        k: ChainKey,
        pos: usize,
        flags: squeue::Flags,
    ) -> std::io::Result<()> {
        let now = if self.bus.active() {
            self.bus.now_ns()
        } else {
            0
        };
        let c = self.chains.get_mut(k).expect("chain");
        let step = &mut c.steps[pos];
        let ud = self.ring.alloc_slot(Owner {
            chain: k,
            uid: step.uid,
        });
        let entry = self.ring.build(&step.sqe, ud, flags);
        step.state = StepState::Inflight;
        step.submitted_ns = now;
        c.inflight += 1;
        let (id, index, sqe, attempt) = (c.id, c.base + pos as u32, step.sqe, step.attempt);
        self.stats.submitted += 1;
        self.bus.emit(|| Event::Submitted {
            chain: id,
            step: index,
            sqe,
            sqe_flags: flags.bits(),
            ring_user_data: ud,
            attempt,
        });
        if let Err(e) = self.ring.push(entry) {
            let _ = self.ring.release(ud);
            return Err(e);
        }
        Ok(())
    }

    pub(super) fn fail_submit(&mut self, k: ChainKey, step: u32, e: std::io::Error) {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        if let Some(c) = self.chains.get_mut(k)
            && let Some(pos) = c.pos(step)
        {
            let s = &mut c.steps[pos];
            if s.state == StepState::Inflight {
                s.state = StepState::Pending;
                c.inflight -= 1;
            }
        }
        self.fail(k, step, -errno, CancelCause::SubmitFailed { errno });
    }

    /// Issue the next in-order step after `after`, running `bpf` steps inline.
    pub(super) fn advance(&mut self, k: ChainKey, after: Option<u32>) {
        let mut after = after;
        loop {
            let Some(c) = self.chains.get(k) else {
                return;
            };
            if c.state != ChainState::Running || self.shut {
                self.finish_if_idle(k);
                return;
            }
            let Some(pos) = c.next_pending(after) else {
                self.chains.get_mut(k).expect("chain").state = ChainState::Finishing;
                self.finish_if_idle(k);
                return;
            };
            let index = c.index(pos);
            if c.steps[pos].kind == StepKind::Bpf {
                let prog = c.steps[pos].program.expect("checked at submit");
                let res = c.last_res;
                let ctx = self.context(k, pos, res, 0);
                let c = self.chains.get_mut(k).expect("chain");
                c.steps[pos].state = StepState::Done;
                c.steps[pos].res = res;
                c.current = Some(index);
                if !self.decide(k, pos, prog, ctx) {
                    return;
                }
                after = Some(index);
                continue;
            }
            if let Err(e) = self.issue(k, pos, squeue::Flags::empty()) {
                self.fail_submit(k, index, e);
            }
            return;
        }
    }

    pub(super) fn context(&self, k: ChainKey, pos: usize, res: i32, cqe_flags: u32) -> RsCtx {
        let c = &self.chains[k];
        let s = &c.steps[pos];
        let index = c.index(pos);
        let last = c.next_pending(Some(index)).is_none();
        RsCtx {
            user_data: s.sqe.user_data,
            res,
            cqe_flags,
            chain_id: c.id,
            step: index,
            nsteps: c.nsteps(),
            opcode: if s.kind == StepKind::Bpf {
                abi::OP_BPF
            } else {
                s.sqe.opcode
            },
            attempt: s.attempt,
            ctx_flags: if last { abi::CTX_LAST_STEP } else { 0 },
            fd: s.sqe.fd,
            off: s.sqe.off,
            len: s.sqe.len,
            buf_index: s.sqe.buf_index,
            _pad: 0,
            buf_off: s.sqe.buf_off,
        }
    }

    pub(super) fn on_cqe(&mut self, cqe: Cqe) {
        if cqe.user_data == CANCEL_USER_DATA {
            return;
        }
        let Some(owner) = self.ring.release(cqe.user_data) else {
            return;
        };
        self.stats.completed += 1;
        let now = if self.bus.active() {
            self.bus.now_ns()
        } else {
            0
        };
        let k = owner.chain;
        let Some(c) = self.chains.get_mut(k) else {
            return;
        };
        let Some(pos) = c.pos_of_uid(owner.uid) else {
            return;
        };
        c.inflight -= 1;
        let index = c.index(pos);
        let step = &mut c.steps[pos];
        let latency = now.saturating_sub(step.submitted_ns);
        let (sqe, detached, unlinked, program) =
            (step.sqe, step.detached, step.unlinked, step.program);
        let id = c.id;
        let driver = c.driver;
        let res = cqe.res;

        // The kernel cancelled it: an earlier step of its link failed, or shutdown asked.
        let link_cancel = driver == (Driver::Kernel { hard: false }) && c.failure.is_some();
        if res == -libc::ECANCELED && (link_cancel || self.shut) {
            step.state = StepState::Cancelled;
            step.res = res;
            let cause = match &c.failure {
                Some((failed, _, _)) if link_cancel => CancelCause::KernelLink {
                    failed_step: *failed,
                },
                _ => CancelCause::Shutdown,
            };
            if c.inflight == 0 && c.state == ChainState::Running {
                c.state = ChainState::Finishing;
            }
            self.cancelled(k, index, cause, true, true);
            self.finish_if_idle(k);
            return;
        }
        step.state = StepState::Done;
        step.res = res;
        if !detached {
            c.last_res = res;
            c.current = Some(c.current.map_or(index, |cur| cur.max(index)));
        }
        let notify_all = c.notify == Notify::All;
        let short = op::short_is_failure(sqe.opcode) && res >= 0 && (res as u32) < sqe.len;
        self.bus.emit(|| Event::Completed {
            chain: id,
            step: index,
            res,
            flags: cqe.flags,
            latency_ns: latency,
            short,
        });
        if notify_all {
            self.post(AppCompletion {
                chain: id,
                step: Some(index),
                user_data: sqe.user_data,
                res,
                flags: cqe.flags,
                kind: AppKind::Step,
            });
        }
        let link_failure = res < 0 || short;

        match driver {
            Driver::Kernel { hard } => {
                let c = self.chains.get_mut(k).expect("chain");
                if !hard && link_failure && c.failure.is_none() {
                    c.failure = Some((index, res, CancelCause::KernelLink { failed_step: index }));
                }
                if c.inflight == 0 {
                    c.state = ChainState::Finishing;
                }
                self.finish_if_idle(k);
            }
            Driver::Engine => {
                let c = self.chains.get(k).expect("chain");
                if detached || c.state != ChainState::Running || self.shut {
                    self.finish_if_idle(k);
                    return;
                }
                let prog = program.or(c.program).or(self.ring_program);
                let go_on = match prog {
                    Some(p) => {
                        let ctx = self.context(k, pos, res, cqe.flags);
                        self.decide(k, pos, p, ctx)
                    }
                    None if link_failure && !unlinked => {
                        self.fail(
                            k,
                            index,
                            res,
                            CancelCause::LinkFailed { failed_step: index },
                        );
                        false
                    }
                    None => true,
                };
                if go_on {
                    self.advance(k, Some(index));
                }
                if let Some(c) = self.chains.get_mut(k) {
                    c.compact();
                }
            }
        }
    }

    pub(super) fn cancel_pending(&mut self, k: ChainKey) {
        let Some(c) = self.chains.get_mut(k) else {
            return;
        };
        if c.failure.is_none() && c.stopped.is_none() {
            c.cancelled = true;
        }
        if c.state == ChainState::Queued {
            // Never started: it never counted as running.
        } else {
            c.state = ChainState::Finishing;
        }
        for i in c.end_pending(StepState::Cancelled) {
            self.cancelled(k, i, CancelCause::Shutdown, false, true);
        }
        self.finish_if_idle(k);
    }
}
