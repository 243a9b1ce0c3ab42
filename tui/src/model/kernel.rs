//! Kernel requests and chains the probes saw, folded into the model.

#[allow(unused_imports)]
use super::*;

use ringside_probes::graph::{KernelCause, ReqState};
use ringside_probes::{ProbeEvent, Ptr};

/// A probed request's state as a node state.
pub fn kernel_state(s: ReqState) -> NodeState {
    match s {
        ReqState::Submitted => NodeState::Queued,
        ReqState::Inflight => NodeState::Inflight,
        ReqState::Completed | ReqState::Unobserved => NodeState::Done,
        ReqState::Short => NodeState::Short,
        ReqState::Failed => NodeState::Failed,
        ReqState::Cancelled => NodeState::Cancelled,
    }
}

impl Model {
    /// Why a kernel request was cancelled, naming the request that broke
    /// its link by what a person knows it by: `-ECANCELED after req 1
    /// (READ, user_data 2) came back short: res 100`, `-ECANCELED: its req
    /// 4 (LINK_TIMEOUT, user_data 41) expired (-ETIME)`.
    pub fn kernel_why(&self, by: Option<u64>, cause: Option<KernelCause>) -> String {
        let Some(b) = by else {
            return "-ECANCELED with no failed link (async cancel or ring teardown)".into();
        };
        let Some(r) = self.graph.request(b) else {
            return format!("-ECANCELED after req {b} failed (no longer kept)");
        };
        let name = ringside_probes::event::opcode_name(r.opcode);
        let what = format!("req {b} ({name}, user_data {})", r.user_data);
        match (cause, r.res) {
            (Some(KernelCause::LinkTimeout), Some(res)) => {
                format!("-ECANCELED: its {what} expired ({})", super::neg_errno(res))
            }
            (Some(KernelCause::LinkTimeout), None) => format!("-ECANCELED: its {what} expired"),
            (_, Some(res)) if res < 0 => {
                format!("-ECANCELED after {what} failed: {}", super::neg_errno(res))
            }
            (_, Some(res)) => format!("-ECANCELED after {what} came back short: res {res}"),
            (_, None) => format!("-ECANCELED after {what} broke the link"),
        }
    }

    pub(super) fn apply_probe(&mut self, ev: &ProbeEvent, t: u64) {
        if let Some(id) = self.ring_dir.observe(ev).cloned() {
            // A ring found at attach has a row without a ctx: this is it.
            if let Some(fd) = id.fd
                && let Some(r) = self.rings.iter_mut().find(|r| {
                    r.source == "probes"
                        && r.ctx.is_none()
                        && !r.closed
                        && r.pid == id.pid
                        && r.fd == Some(fd)
                })
            {
                r.ctx = Some(id.ring.0);
                if let ProbeEvent::Create { generation, .. } = ev {
                    r.generation = *generation;
                }
                r.sq_entries = r.sq_entries.or(id.sq_entries);
                r.cq_entries = r.cq_entries.or(id.cq_entries);
                r.setup_flags = r.setup_flags.or(id.setup_flags);
                return self.apply_probe_counts(ev, t);
            }
            let mut row = RingRow::new("probes", id.pid);
            row.ctx = Some(id.ring.0);
            row.fd = id.fd;
            row.sq_entries = id.sq_entries;
            row.cq_entries = id.cq_entries;
            // A create at a reused address replaces the old row; an older
            // ring with the same fd is gone (its fd was reused).
            self.rings
                .retain(|r| !(r.source == "probes" && r.ctx == Some(id.ring.0)));
            if let Some(fd) = id.fd {
                for r in self
                    .rings
                    .iter_mut()
                    .filter(|r| r.source == "probes" && r.pid == id.pid && r.fd == Some(fd))
                {
                    r.closed = true;
                }
            }
            row.setup_flags = id.setup_flags;
            if let ProbeEvent::Create {
                hdr, generation, ..
            } = ev
            {
                row.owner_tid = Some(hdr.tid);
                row.generation = *generation;
            }
            self.rings.push(row);
            let closed = self
                .rings
                .iter()
                .filter(|r| r.source == "probes" && r.closed)
                .count();
            if closed > 8
                && let Some(i) = self
                    .rings
                    .iter()
                    .position(|r| r.source == "probes" && r.closed)
            {
                self.rings.remove(i);
            }
        }
        self.apply_probe_counts(ev, t)
    }

    fn apply_probe_counts(&mut self, ev: &ProbeEvent, t: u64) {
        if let ProbeEvent::Ring(setup) = ev {
            return self.apply_ring_setup(setup);
        }
        let ring = ev.ring().map(|p| p.0);
        let row = ring.and_then(|c| {
            self.rings
                .iter_mut()
                .find(|r| r.source == "probes" && r.ctx == Some(c))
        });
        if let Some(r) = row {
            match ev {
                ProbeEvent::SubmitReq { hdr, sq_thread, .. } => {
                    if r.owner_tid.is_none() && !sq_thread {
                        r.owner_tid = Some(hdr.tid);
                    }
                    r.submitted += 1;
                    r.inflight += 1;
                    r.submit_rate.add(t, 1);
                }
                ProbeEvent::Complete { cflags, .. } => {
                    r.completed += 1;
                    if cflags & ringside_probes::event::cqe_flags::MORE == 0 {
                        r.inflight -= 1;
                    }
                    r.complete_rate.add(t, 1);
                }
                ProbeEvent::CqeOverflow { .. } => r.overflows += 1,
                _ => {}
            }
        }
        if let ProbeEvent::Complete { .. } = ev {
            self.kernel_throughput.add(t);
        }
        let before = self.graph.cancellation_total();
        let pushed = self.graph.push(ev);
        if let (ProbeEvent::Complete { hdr, .. }, Some(id)) = (ev, pushed)
            && let Some(r) = self.graph.request(id)
            && let Some(sub) = r.submitted_ns
        {
            let lat = hdr.ts_ns.saturating_sub(sub);
            self.kernel_latency.add(lat);
            self.kernel_latency_by_op.add(r.opcode, lat);
        }
        if let Some(id) = pushed {
            let chain = self.graph.request(id).and_then(|r| r.chain);
            match chain {
                Some(c) if self.newest_kernel_chain.is_none_or(|n| c > n) => {
                    self.newest_kernel_chain = Some(c);
                    self.push_row(RowKey::KernelChain(c));
                }
                Some(_) => {}
                // A request is submitted once: its submission gives it a row.
                None if matches!(ev, ProbeEvent::SubmitReq { .. }) => {
                    self.push_row(RowKey::KernelReq(id));
                }
                None => {}
            }
        }
        if self.graph.cancellation_total() > before
            && let Some(c) = self.graph.last_cancellation().cloned()
        {
            let cause = c.cause.map_or("pending", |c| c.as_str());
            let victim = self.graph.request(c.victim);
            let what = match victim {
                Some(v) => format!(
                    "kernel req {} ({}, user_data {})",
                    v.id,
                    ringside_probes::event::opcode_name(v.opcode),
                    v.user_data
                ),
                None => format!("kernel req {}", c.victim),
            };
            let row = victim.map(|v| match v.chain {
                Some(ch) => RowKey::KernelChain(ch),
                None => RowKey::KernelReq(v.id),
            });
            self.add_cancel(
                format!("kernel: {cause}"),
                CancelEntry {
                    t_ns: t,
                    what,
                    detail: self.kernel_why(c.by, c.cause),
                    row,
                },
            );
            self.totals.cancelled += 1;
        }
    }

    /// A `ring` record: the row of its ctx, or of its (pid, fd) when the
    /// ctx is not known yet (a ring found at attach), made if missing.
    fn apply_ring_setup(&mut self, s: &ringside_probes::event::RingSetup) {
        let pid = s.hdr.tgid;
        let i = if s.ring.is_null() {
            self.rings.iter().rposition(|r| {
                r.source == "probes" && !r.closed && r.pid == pid && s.fd.is_some() && r.fd == s.fd
            })
        } else {
            self.rings
                .iter()
                .rposition(|r| r.source == "probes" && r.ctx == Some(s.ring.0))
        };
        let i = match i {
            Some(i) => i,
            None => {
                self.rings.push(RingRow::new("probes", pid));
                self.rings.len() - 1
            }
        };
        self.rings[i].apply_setup(s);
    }

    /// Node states of a row (for filters and drawing).
    pub fn row_states(&self, key: RowKey) -> Vec<NodeState> {
        match key {
            RowKey::Engine { epoch, chain } => self
                .chains
                .get(&(epoch, chain))
                .map(|c| c.nodes.iter().map(|n| n.state).collect())
                .unwrap_or_default(),
            RowKey::KernelChain(c) => self
                .graph
                .chain(c)
                .map(|ch| {
                    ch.members
                        .iter()
                        .map(|m| {
                            self.graph
                                .request(*m)
                                .map_or(NodeState::Done, |r| kernel_state(r.state))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            RowKey::KernelReq(r) => self
                .graph
                .request(r)
                .map(|r| vec![kernel_state(r.state)])
                .unwrap_or_default(),
        }
    }

    /// The ring ctx of a kernel row.
    pub fn kernel_ring(&self, key: RowKey) -> Option<Ptr> {
        match key {
            RowKey::KernelChain(c) => self.graph.chain(c).map(|c| c.ring),
            RowKey::KernelReq(r) => self.graph.request(r).map(|r| r.ring),
            RowKey::Engine { .. } => None,
        }
    }
}
