//! Engine chains as the Chains view shows them: each step's state, result
//! and cause, as the engine's events said them.

#[allow(unused_imports)]
use super::*;

use ringside_engine::abi::{RsSqe, op};
use ringside_engine::event::{CancelCause, Event, EventRecord, LinkMode, Outcome, StepKind};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A node's state, as the Chains view colours it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeState {
    /// Declared, not issued yet.
    Queued,
    /// In the kernel.
    Inflight,
    /// Completed in full.
    Done,
    /// Completed with fewer bytes than asked.
    Short,
    /// Completed with an error.
    Failed,
    /// Cancelled by the kernel (a hard link broke) or by the engine on link
    /// semantics / shutdown.
    Cancelled,
    /// Dropped by a BPF decision (rs_drop, RS_STOP, RS_FAIL before issue).
    Dropped,
}

impl NodeState {
    /// Every state, in legend order.
    pub const ALL: [NodeState; 7] = [
        NodeState::Queued,
        NodeState::Inflight,
        NodeState::Done,
        NodeState::Short,
        NodeState::Failed,
        NodeState::Cancelled,
        NodeState::Dropped,
    ];

    /// Name used in filters and the legend.
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Queued => "queued",
            NodeState::Inflight => "inflight",
            NodeState::Done => "done",
            NodeState::Short => "short",
            NodeState::Failed => "failed",
            NodeState::Cancelled => "cancelled",
            NodeState::Dropped => "dropped",
        }
    }

    /// Parse a filter word.
    pub fn parse(s: &str) -> Option<NodeState> {
        NodeState::ALL
            .into_iter()
            .find(|n| n.name().starts_with(&s.to_ascii_lowercase()) && !s.is_empty())
    }
}

/// One request of a chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Request template.
    pub sqe: RsSqe,
    /// IO or bpf step.
    pub kind: StepKind,
    /// Model.
    pub state: NodeState,
    /// Added by a BPF decision (`rs_submit`).
    pub inserted: Option<u64>,
    /// Made independent by `rs_unlink`.
    pub unlinked: bool,
    /// Issued outside the chain's order (`RS_DETACHED`).
    pub detached: bool,
    /// Attempt number.
    pub attempt: u8,
    /// IOSQE_* flags used at submission.
    pub sqe_flags: u8,
    /// user_data the kernel saw.
    pub ring_user_data: u64,
    /// Event time of submission.
    pub submitted_ns: Option<u64>,
    /// Event time of completion or cancellation.
    pub finished_ns: Option<u64>,
    /// CQE result.
    pub res: Option<i32>,
    /// CQE flags.
    pub cqe_flags: u32,
    /// Submission to reaping.
    pub latency_ns: Option<u64>,
    /// Why it was cancelled or dropped.
    pub cause: Option<CancelCause>,
    /// It was in the kernel when it was cancelled or dropped (with `cause`).
    pub cancel_issued: bool,
}

impl Node {
    pub(crate) fn new(sqe: RsSqe, kind: StepKind) -> Node {
        Node {
            sqe,
            kind,
            state: NodeState::Queued,
            inserted: None,
            unlinked: false,
            detached: false,
            attempt: 1,
            sqe_flags: 0,
            ring_user_data: 0,
            submitted_ns: None,
            finished_ns: None,
            res: None,
            cqe_flags: 0,
            latency_ns: None,
            cause: None,
            cancel_issued: false,
        }
    }
}

/// A chain run by an engine.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainRow {
    /// Engine instance (one per RingSetup seen).
    pub epoch: u32,
    /// Chain id.
    pub chain: u64,
    /// user_data.
    pub user_data: u64,
    /// Requested link mode.
    pub mode: LinkMode,
    /// Engine-driven or kernel link.
    pub driven_by: LinkMode,
    /// Chain-level program name.
    pub program: Option<String>,
    /// Steps.
    pub nodes: Vec<Node>,
    /// How it ended.
    pub outcome: Option<Outcome>,
    /// Final result.
    pub res: Option<i32>,
    /// Created at.
    pub created_ns: u64,
    /// Started (after drain waits).
    pub started_ns: Option<u64>,
    /// Finished at.
    pub finished_ns: Option<u64>,
    /// Decisions about it.
    pub decisions: u32,
}

impl ChainRow {
    /// True if any node is in `s`.
    pub fn has_state(&self, s: NodeState) -> bool {
        self.nodes.iter().any(|n| n.state == s)
    }
}

/// A row of the Chains view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowKey {
    /// An engine chain.
    Engine {
        /// Engine instance.
        epoch: u32,
        /// Chain id.
        chain: u64,
    },
    /// A kernel link chain seen by the probes.
    KernelChain(u64),
    /// A kernel request outside any chain, seen by the probes.
    KernelReq(u64),
}

/// How a completion looks, from the engine's verdict: failed, short or done.
pub fn completion_state(res: i32, short: bool) -> NodeState {
    if res < 0 {
        NodeState::Failed
    } else if short {
        NodeState::Short
    } else {
        NodeState::Done
    }
}

/// Short outcome name.
pub fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Completed => "completed",
        Outcome::Stopped { .. } => "stopped",
        Outcome::Failed { .. } => "failed",
        Outcome::Cancelled => "cancelled",
    }
}

/// The Chains view's rows, oldest first. Chains (the engine's, and the
/// kernel's linked ones) and lone kernel requests are kept to a cap each:
/// in one, every NOP of a traced ring (the engine's own, at millions a
/// second) pushed out the engine chains it belonged to, and a live view
/// of a NOP-chain run said "no chains yet".
#[derive(Debug)]
pub struct Rows {
    /// (order of arrival, row), chains and lone requests apart.
    chains: VecDeque<(u64, RowKey)>,
    requests: VecDeque<(u64, RowKey)>,
    next: u64,
    cap: usize,
}

impl Rows {
    /// Rows keeping at most `cap` chains and `cap` lone requests.
    pub fn new(cap: usize) -> Rows {
        Rows {
            chains: VecDeque::new(),
            requests: VecDeque::new(),
            next: 0,
            cap,
        }
    }

    /// How many rows are kept.
    pub fn len(&self) -> usize {
        self.chains.len() + self.requests.len()
    }

    /// True when no row is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most rows of each kind kept.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Chain rows kept (the engine's and the kernel's linked ones).
    pub fn chains(&self) -> usize {
        self.chains.len()
    }

    /// Lone kernel request rows kept.
    pub fn requests(&self) -> usize {
        self.requests.len()
    }

    /// Every row, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = RowKey> + '_ {
        let (mut a, mut b) = (
            self.chains.iter().peekable(),
            self.requests.iter().peekable(),
        );
        std::iter::from_fn(move || {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                (Some(_), Some(_)) | (None, _) => b.next(),
                (Some(_), None) => a.next(),
            };
            next.map(|(_, k)| *k)
        })
    }

    /// Add a row; returns the row it pushed out of its kind's cap.
    fn push(&mut self, key: RowKey) -> Option<RowKey> {
        let q = match key {
            RowKey::KernelReq(_) => &mut self.requests,
            RowKey::Engine { .. } | RowKey::KernelChain(_) => &mut self.chains,
        };
        q.push_back((self.next, key));
        self.next += 1;
        (q.len() > self.cap)
            .then(|| q.pop_front())
            .flatten()
            .map(|(_, k)| k)
    }
}

impl Model {
    pub(super) fn push_row(&mut self, key: RowKey) {
        if let Some(RowKey::Engine { epoch, chain }) = self.rows.push(key) {
            self.chains.remove(&(epoch, chain));
        }
    }

    pub(super) fn apply_engine(&mut self, rec: &Arc<EventRecord>, t: u64) {
        // A RingSetup starts a new engine instance: its clock and ids start again.
        let epoch = self.epoch();
        match &rec.event {
            Event::RingSetup(info) => {
                for r in self.rings.iter_mut().filter(|r| r.source == "engine") {
                    r.closed = true;
                }
                let mut row = RingRow::new("engine", info.pid);
                row.epoch = Some(epoch);
                row.fd = Some(info.fd);
                row.sq_entries = Some(info.sq_entries);
                row.cq_entries = Some(info.cq_entries);
                row.files = info.files.iter().map(|f| f.name.clone()).collect();
                self.rings.push(row);
                // Keep the newest engine rings only.
                let engine_rings = self.rings.iter().filter(|r| r.source == "engine").count();
                if engine_rings > 8
                    && let Some(i) = self.rings.iter().position(|r| r.source == "engine")
                {
                    self.rings.remove(i);
                }
                self.ring_info.insert(epoch, (**info).clone());
                while self.ring_info.len() > 16 {
                    self.ring_info.pop_first();
                }
            }
            Event::ProgramLoaded(info) => {
                for m in &info.maps {
                    self.maps.insert(
                        (epoch, m.id),
                        MapState {
                            epoch,
                            program: info.name.clone(),
                            info: m.clone(),
                            entries: BTreeMap::new(),
                            writes: 0,
                        },
                    );
                }
                self.programs
                    .insert((epoch, info.prog), Arc::new((**info).clone()));
                // Forget maps and programs of old engine instances.
                let keep_from = epoch.saturating_sub(2);
                self.maps.retain(|(e, _), _| *e >= keep_from);
                self.programs.retain(|(e, _), _| *e + 16 >= epoch);
            }
            Event::RingProgram { .. } => {}
            Event::ChainCreated {
                chain,
                user_data,
                mode,
                driven_by,
                program,
                steps,
                ..
            } => {
                self.totals.chains += 1;
                let program = program.and_then(|p| self.prog_name(epoch, p));
                let nodes = steps.iter().map(|s| Node::new(s.sqe, s.kind)).collect();
                self.chains.insert(
                    (epoch, *chain),
                    ChainRow {
                        epoch,
                        chain: *chain,
                        user_data: *user_data,
                        mode: *mode,
                        driven_by: *driven_by,
                        program,
                        nodes,
                        outcome: None,
                        res: None,
                        created_ns: t,
                        started_ns: None,
                        finished_ns: None,
                        decisions: 0,
                    },
                );
                self.push_row(RowKey::Engine {
                    epoch,
                    chain: *chain,
                });
            }
            Event::ChainStarted { chain } => {
                if let Some(c) = self.chains.get_mut(&(epoch, *chain)) {
                    c.started_ns = Some(t);
                }
            }
            Event::StepAdded {
                chain,
                step,
                place,
                sqe,
                attempt,
                decision,
            } => {
                if let Some(c) = self.chains.get_mut(&(epoch, *chain)) {
                    let mut n = Node::new(*sqe, StepKind::Io);
                    n.inserted = Some(*decision);
                    n.attempt = *attempt;
                    n.detached = *place == ringside_engine::abi::Where::Detached;
                    let at = (*step as usize).min(c.nodes.len());
                    c.nodes.insert(at, n);
                }
            }
            Event::Submitted {
                chain,
                step,
                sqe,
                sqe_flags,
                ring_user_data,
                attempt,
            } => {
                self.totals.submitted += 1;
                if let Some(r) = self.ring_mut(epoch) {
                    r.submitted += 1;
                    r.inflight += 1;
                    r.submit_rate.add(t, 1);
                }
                if let Some(n) = self.node_mut(epoch, *chain, *step) {
                    n.state = NodeState::Inflight;
                    n.sqe = *sqe;
                    n.sqe_flags = *sqe_flags;
                    n.ring_user_data = *ring_user_data;
                    n.attempt = *attempt;
                    n.submitted_ns = Some(t);
                }
            }
            Event::Completed {
                chain,
                step,
                res,
                flags,
                latency_ns,
                short,
            } => {
                self.totals.completed += 1;
                self.latency.add(*latency_ns);
                self.throughput.add(t);
                if let Some(r) = self.ring_mut(epoch) {
                    r.completed += 1;
                    r.inflight -= 1;
                    r.complete_rate.add(t, 1);
                }
                if let Some(n) = self.node_mut(epoch, *chain, *step) {
                    let opcode = n.sqe.opcode;
                    n.res = Some(*res);
                    n.cqe_flags = *flags;
                    n.latency_ns = Some(*latency_ns);
                    n.finished_ns = Some(t);
                    n.state = completion_state(*res, *short);
                    self.latency_by_op.add(opcode, *latency_ns);
                }
            }
            Event::Decision(d) => {
                self.totals.decisions += 1;
                if !self.cost_by_program.contains_key(&d.prog_name) {
                    self.cost_by_program
                        .insert(d.prog_name.clone(), ProgramCost::default());
                }
                let cost = self
                    .cost_by_program
                    .get_mut(&d.prog_name)
                    .expect("inserted");
                if let Some(i) = d.insns {
                    self.decision_insns.add(i);
                    cost.insns.add(i);
                }
                self.decision_ns.add(d.duration_ns);
                cost.ns.add(d.duration_ns);
                if let Some(c) = self.chains.get_mut(&(epoch, d.chain)) {
                    c.decisions += 1;
                }
                for w in &d.map_writes {
                    let Some(id) = self
                        .programs
                        .get(&(epoch, d.prog))
                        .and_then(|p| p.maps.get(w.map as usize))
                        .map(|m| m.id)
                    else {
                        continue;
                    };
                    if let Some(m) = self.maps.get_mut(&(epoch, id)) {
                        m.writes += 1;
                        match &w.after {
                            Some(v) => {
                                m.entries.insert(w.key.clone(), (v.clone(), t));
                            }
                            None => {
                                m.entries.remove(&w.key);
                            }
                        }
                    }
                }
                self.decisions.push_back(DecisionEntry {
                    epoch,
                    rec: rec.clone(),
                    t_ns: t,
                });
                while self.decisions.len() > self.decisions_cap {
                    self.decisions.pop_front();
                }
            }
            Event::Cancelled {
                chain,
                step,
                cause,
                res,
                issued,
                dropped,
            } => {
                self.totals.cancelled += 1;
                if *issued && let Some(r) = self.ring_mut(epoch) {
                    r.inflight -= 1;
                    r.completed += 1;
                }
                let mut op_name = "?";
                if let Some(n) = self.node_mut(epoch, *chain, *step) {
                    n.res = Some(*res);
                    n.finished_ns = Some(t);
                    n.cause = Some(cause.clone());
                    n.cancel_issued = *issued;
                    n.state = if *dropped {
                        NodeState::Dropped
                    } else {
                        NodeState::Cancelled
                    };
                    op_name = op::name(n.sqe.opcode);
                }
                let (group, detail) =
                    describe_cancel(cause, *issued, &|s| self.step_in_words(epoch, *chain, s));
                let user_data = self
                    .chains
                    .get(&(epoch, *chain))
                    .and_then(|c| c.nodes.get(*step as usize))
                    .map_or(0, |n| n.sqe.user_data);
                let entry = CancelEntry {
                    t_ns: t,
                    what: format!(
                        "e{epoch} chain {chain} step {step} ({op_name}, user_data {user_data})"
                    ),
                    detail,
                    row: Some(RowKey::Engine {
                        epoch,
                        chain: *chain,
                    }),
                };
                self.add_cancel(group, entry);
            }
            Event::Unlinked { chain, step, .. } => {
                if let Some(n) = self.node_mut(epoch, *chain, *step) {
                    n.unlinked = true;
                }
            }
            Event::ChainFinished {
                chain,
                outcome,
                res,
                ..
            } => {
                *self
                    .totals
                    .outcomes
                    .entry(outcome_name(outcome))
                    .or_default() += 1;
                if let Some(c) = self.chains.get_mut(&(epoch, *chain)) {
                    c.outcome = Some(outcome.clone());
                    c.res = Some(*res);
                    c.finished_ns = Some(t);
                }
            }
            Event::AppCompletion(_) => self.totals.app_completions += 1,
            Event::MapUpdate {
                map, key, after, ..
            } => {
                if let Some(m) = self.maps.get_mut(&(epoch, *map)) {
                    m.writes += 1;
                    match after {
                        Some(v) => {
                            m.entries.insert(key.clone(), (v.clone(), t));
                        }
                        None => {
                            m.entries.remove(key);
                        }
                    }
                }
            }
            Event::Shutdown { chains, inflight } => {
                if let Some(r) = self.ring_mut(epoch) {
                    r.closed = true;
                }
                self.close_probe_twins();
                if *chains > 0 || *inflight > 0 {
                    self.note(format!(
                        "engine {epoch} shut down with {chains} chains and {inflight} requests in flight"
                    ));
                }
            }
            Event::Paused { reason, decision } => {
                self.pauses += 1;
                self.paused = Some(PausedAt {
                    epoch,
                    reason: reason.clone(),
                    decision: *decision,
                });
            }
            Event::Resumed => self.paused = None,
        }
    }

    pub(super) fn node_mut(&mut self, epoch: u32, chain: u64, step: u32) -> Option<&mut Node> {
        self.chains
            .get_mut(&(epoch, chain))
            .and_then(|c| c.nodes.get_mut(step as usize))
    }

    /// A program's name.
    pub fn prog_name(&self, epoch: u32, prog: u32) -> Option<String> {
        self.programs.get(&(epoch, prog)).map(|p| p.name.clone())
    }
}
