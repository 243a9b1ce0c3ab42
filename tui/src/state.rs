//! The UI's model: everything the views show, folded from [`Item`]s.
//!
//! This is the only place items become state, whatever their source (the
//! engine in this process, kernel probes, an engine behind a socket, a
//! recording): live and replay share it. It interprets events for display
//! only (which colour a node gets, which group a cancellation joins); the
//! engine's decisions are never recomputed here.
//!
//! Memory is bounded by `history` (N, `--history`): the model keeps what the
//! last N events made of the views, not the events themselves: the newest
//! N/20 chains, N/10 decisions, N/50 cancellations per cause (at least a
//! few hundred of each) and N/4 kernel requests. Counters and histograms
//! cover everything since the start.

use ringside_engine::abi::{RsSqe, op};
use ringside_engine::decision::DecisionRecord;
use ringside_engine::event::{
    CancelCause, Event, EventRecord, LinkMode, MapInfo, Outcome, ProgramInfo, RingInfo, StepKind,
};
use ringside_probes::discover::RingDirectory;
use ringside_probes::graph::{ReqState, RequestGraph};
use ringside_probes::{ProbeEvent, Ptr};
use ringside_recordings::Item;
use std::collections::{BTreeMap, HashMap, VecDeque};
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
    /// State.
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
}

impl Node {
    fn new(sqe: RsSqe, kind: StepKind) -> Node {
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

/// A ring, engine-owned or seen by the probes.
#[derive(Clone, Debug, PartialEq)]
pub struct RingRow {
    /// Source label ("engine", "probes").
    pub source: &'static str,
    /// Engine instance, for engine rings.
    pub epoch: Option<u32>,
    /// Kernel ctx pointer, for probed rings.
    pub ctx: Option<u64>,
    /// Process.
    pub pid: u32,
    /// Ring fd, when known.
    pub fd: Option<i32>,
    /// SQ entries.
    pub sq_entries: Option<u32>,
    /// CQ entries.
    pub cq_entries: Option<u32>,
    /// Requests submitted.
    pub submitted: u64,
    /// Completions seen.
    pub completed: u64,
    /// Requests in flight (submitted, neither completed nor cancelled).
    pub inflight: i64,
    /// CQ overflows (probes only).
    pub overflows: u64,
    /// Submissions per event-time bucket.
    pub submit_rate: Rate,
    /// Completions per event-time bucket.
    pub complete_rate: Rate,
    /// Registered files (engine rings).
    pub files: Vec<String>,
    /// The engine shut this ring down.
    pub closed: bool,
}

impl RingRow {
    fn new(source: &'static str, pid: u32) -> RingRow {
        RingRow {
            source,
            epoch: None,
            ctx: None,
            pid,
            fd: None,
            sq_entries: None,
            cq_entries: None,
            submitted: 0,
            completed: 0,
            inflight: 0,
            overflows: 0,
            submit_rate: Rate::default(),
            complete_rate: Rate::default(),
            files: Vec::new(),
            closed: false,
        }
    }
}

/// Events per second over the last second of event time (10 buckets of 100 ms).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rate {
    buckets: [u64; 10],
    last: u64,
}

impl Rate {
    const BUCKET_NS: u64 = 100_000_000;

    fn add(&mut self, t_ns: u64, n: u64) {
        let b = t_ns / Self::BUCKET_NS;
        self.advance(b);
        self.buckets[(b % 10) as usize] += n;
    }

    fn advance(&mut self, b: u64) {
        if b > self.last {
            let gap = (b - self.last).min(10);
            for i in 1..=gap {
                self.buckets[((self.last + i) % 10) as usize] = 0;
            }
            self.last = b;
        }
    }

    /// Per second, as of event time `now_ns`.
    pub fn per_sec(&self, now_ns: u64) -> u64 {
        let b = now_ns / Self::BUCKET_NS;
        if b >= self.last + 10 {
            return 0;
        }
        let stale = b.saturating_sub(self.last) as usize;
        let mut sum = 0;
        for i in 0..(10 - stale) {
            sum += self.buckets[((self.last + 10 - i as u64) % 10) as usize];
        }
        sum
    }
}

/// A cancelled or dropped request.
#[derive(Clone, Debug, PartialEq)]
pub struct CancelEntry {
    /// Timeline time.
    pub t_ns: u64,
    /// Which request ("e1 chain 7 step 2", "kernel req 4").
    pub what: String,
    /// The cause in words.
    pub detail: String,
    /// The chain row, when it is still kept.
    pub row: Option<RowKey>,
}

/// Cancellations of one cause.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CancelGroup {
    /// How many, since the start.
    pub count: u64,
    /// The most recent ones.
    pub recent: VecDeque<CancelEntry>,
}

/// A decision in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionEntry {
    /// Engine instance.
    pub epoch: u32,
    /// The event (its `event` is an [`Event::Decision`]).
    pub rec: Arc<EventRecord>,
    /// Timeline time.
    pub t_ns: u64,
}

impl DecisionEntry {
    /// The decision.
    pub fn decision(&self) -> &DecisionRecord {
        match &self.rec.event {
            Event::Decision(d) => d,
            _ => unreachable!("decision entries hold decisions"),
        }
    }
}

/// One program map, as the events show it.
#[derive(Clone, Debug, PartialEq)]
pub struct MapState {
    /// Engine instance.
    pub epoch: u32,
    /// Program that declared it.
    pub program: String,
    /// Definition.
    pub info: MapInfo,
    /// Key -> (value, timeline time of the last change).
    pub entries: BTreeMap<Vec<u8>, (Vec<u8>, u64)>,
    /// Writes seen.
    pub writes: u64,
}

/// Log2 histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Bucket i counts values in [2^i, 2^(i+1)) (bucket 0 also counts 0).
    pub buckets: [u64; 40],
    /// Values added.
    pub count: u64,
    /// Sum.
    pub sum: u128,
    /// Largest.
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: [0; 40],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    /// Add a value.
    pub fn add(&mut self, v: u64) {
        let b = (63 - v.max(1).leading_zeros()) as usize;
        self.buckets[b.min(39)] += 1;
        self.count += 1;
        self.sum += v as u128;
        self.max = self.max.max(v);
    }

    /// Mean.
    pub fn mean(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            (self.sum / self.count as u128) as u64
        }
    }

    /// Value below which `q` of the values fall (bucket upper bound).
    pub fn quantile(&self, q: f64) -> u64 {
        let want = (self.count as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= want && *c > 0 {
                return (1u64 << (i + 1)).min(self.max.max(1));
            }
        }
        self.max
    }

    /// The non-empty bucket range.
    pub fn span(&self) -> std::ops::Range<usize> {
        let lo = self.buckets.iter().position(|&c| c > 0).unwrap_or(0);
        let hi = self
            .buckets
            .iter()
            .rposition(|&c| c > 0)
            .map_or(0, |i| i + 1);
        lo..hi.max(lo)
    }
}

/// Counters over the whole session.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Items folded.
    pub items: u64,
    /// Engine events.
    pub engine_events: u64,
    /// Probe events.
    pub probe_events: u64,
    /// Chains created.
    pub chains: u64,
    /// Chains finished, by outcome name.
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Requests submitted (engine).
    pub submitted: u64,
    /// Completions (engine).
    pub completed: u64,
    /// Decisions.
    pub decisions: u64,
    /// Cancellations and drops.
    pub cancelled: u64,
    /// Application completions.
    pub app_completions: u64,
    /// Items lost, by queue.
    pub lost: BTreeMap<String, u64>,
    /// Engine instances seen.
    pub epochs: u32,
}

/// Where the engine is stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct PausedAt {
    /// Engine instance.
    pub epoch: u32,
    /// Why.
    pub reason: String,
    /// Decision number.
    pub decision: Option<u64>,
}

/// Throughput over event time, in fixed buckets.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Bucket width.
    pub bucket_ns: u64,
    /// Index of the first bucket kept.
    pub first: u64,
    /// Counts.
    pub counts: VecDeque<u64>,
}

impl Series {
    fn new(bucket_ns: u64) -> Series {
        Series {
            bucket_ns,
            first: 0,
            counts: VecDeque::new(),
        }
    }

    fn add(&mut self, t_ns: u64) {
        let b = t_ns / self.bucket_ns;
        if self.counts.is_empty() {
            self.first = b;
        }
        if b < self.first {
            return;
        }
        while self.first + (self.counts.len() as u64) <= b {
            self.counts.push_back(0);
        }
        let i = (b - self.first) as usize;
        self.counts[i] += 1;
        while self.counts.len() > 600 {
            self.counts.pop_front();
            self.first += 1;
        }
    }
}

/// Session time: engine event times (which restart with each engine
/// instance) and probe times folded onto one monotonic line. Replay seeks
/// by it, so the recording source and the model use the same rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Engine instances seen (a `RingSetup` starts one).
    pub epoch: u32,
    offset: u64,
    /// Newest time.
    pub now: u64,
    engine_seen: bool,
    /// Kernel time of the first probe event (probe times count from it).
    pub probe_base: Option<u64>,
}

impl Timeline {
    /// The time of `item`, advancing the line.
    pub fn stamp(&mut self, item: &Item) -> u64 {
        match item {
            Item::Engine(rec) => {
                if let Event::RingSetup(_) = rec.event {
                    self.epoch += 1;
                    self.offset = if self.epoch == 1 {
                        0
                    } else {
                        self.now + 1_000_000
                    };
                }
                self.engine_seen = true;
                let t = self.offset + rec.t_ns;
                self.now = self.now.max(t);
                t
            }
            Item::Probe(ev) => {
                let ts = ev.header().ts_ns;
                let base = *self.probe_base.get_or_insert(ts);
                let t = ts.saturating_sub(base);
                if !self.engine_seen {
                    self.now = self.now.max(t);
                }
                t
            }
            Item::Lost { .. } => self.now,
        }
    }
}

/// The model.
pub struct State {
    /// N: the events of history the tables are sized for.
    pub history_cap: usize,
    /// Counters.
    pub totals: Totals,
    /// Current engine instance (0 before any).
    pub epoch: u32,
    /// Session time.
    pub timeline: Timeline,
    /// Timeline time of the newest item.
    pub now_ns: u64,
    /// Rings.
    pub rings: Vec<RingRow>,
    /// Ring setup per engine instance (regs and budgets, for re-execution).
    pub ring_info: BTreeMap<u32, RingInfo>,
    /// Programs per (epoch, prog id).
    pub programs: BTreeMap<(u32, u32), Arc<ProgramInfo>>,
    /// Engine chains.
    pub chains: HashMap<(u32, u64), ChainRow>,
    /// Chains view rows, oldest first.
    pub rows: VecDeque<RowKey>,
    rows_cap: usize,
    /// Decisions, oldest first.
    pub decisions: VecDeque<DecisionEntry>,
    decisions_cap: usize,
    /// Cancellations by cause.
    pub cancels: BTreeMap<String, CancelGroup>,
    /// Maps by (epoch, registry id).
    pub maps: BTreeMap<(u32, u32), MapState>,
    /// Completion latency (engine requests), ns.
    pub latency: Histogram,
    /// Completion latency of kernel requests seen by the probes
    /// (submission to completion tracepoint), ns.
    pub kernel_latency: Histogram,
    /// Decision cost in instructions.
    pub decision_insns: Histogram,
    /// Decision cost in ns.
    pub decision_ns: Histogram,
    /// Engine completions over time.
    pub throughput: Series,
    /// Kernel completions over time (probes).
    pub kernel_throughput: Series,
    /// Kernel request graph (probes).
    pub graph: RequestGraph,
    /// Kernel rings (probes).
    pub ring_dir: RingDirectory,
    /// The engine is stopped here.
    pub paused: Option<PausedAt>,
    /// Notes for the status line (newest last).
    pub notes: VecDeque<String>,
    /// Breakpoint hits seen (Paused events).
    pub pauses: u64,
    kernel_rows: HashMap<u64, ()>,
}

impl State {
    /// A model sized for `history` events.
    pub fn new(history: usize) -> State {
        let history = history.max(100);
        State {
            history_cap: history,
            totals: Totals::default(),
            epoch: 0,
            timeline: Timeline::default(),
            now_ns: 0,
            rings: Vec::new(),
            ring_info: BTreeMap::new(),
            programs: BTreeMap::new(),
            chains: HashMap::new(),
            rows: VecDeque::new(),
            rows_cap: (history / 20).max(500),
            decisions: VecDeque::new(),
            decisions_cap: (history / 10).max(1000),
            cancels: BTreeMap::new(),
            maps: BTreeMap::new(),
            latency: Histogram::default(),
            kernel_latency: Histogram::default(),
            decision_insns: Histogram::default(),
            decision_ns: Histogram::default(),
            throughput: Series::new(10_000_000),
            kernel_throughput: Series::new(10_000_000),
            graph: RequestGraph::with_limit((history / 4).max(1000)),
            ring_dir: RingDirectory::new(),
            paused: None,
            notes: VecDeque::new(),
            pauses: 0,
            kernel_rows: HashMap::new(),
        }
    }

    /// (chains, decisions) the model keeps at most.
    pub fn caps(&self) -> (usize, usize) {
        (self.rows_cap, self.decisions_cap)
    }

    /// Add a note for the status line.
    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push_back(s.into());
        while self.notes.len() > 50 {
            self.notes.pop_front();
        }
    }

    /// Fold one item.
    pub fn apply(&mut self, item: Item) {
        self.totals.items += 1;
        let t = self.timeline.stamp(&item);
        self.epoch = self.timeline.epoch;
        self.totals.epochs = self.epoch;
        self.now_ns = self.timeline.now;
        match &item {
            Item::Engine(rec) => {
                self.totals.engine_events += 1;
                let rec = rec.clone();
                self.apply_engine(&rec, t);
            }
            Item::Probe(ev) => {
                self.totals.probe_events += 1;
                self.apply_probe(ev, t);
            }
            Item::Lost { queue, count } => {
                *self.totals.lost.entry(queue.clone()).or_default() += count;
            }
        }
        let _ = t;
    }

    fn ring_mut(&mut self, epoch: u32) -> Option<&mut RingRow> {
        self.rings.iter_mut().rev().find(|r| r.epoch == Some(epoch))
    }

    fn push_row(&mut self, key: RowKey) {
        self.rows.push_back(key);
        while self.rows.len() > self.rows_cap {
            match self.rows.pop_front() {
                Some(RowKey::Engine { epoch, chain }) => {
                    self.chains.remove(&(epoch, chain));
                }
                Some(RowKey::KernelChain(c)) => {
                    self.kernel_rows.remove(&(c | 1 << 63));
                }
                Some(RowKey::KernelReq(r)) => {
                    self.kernel_rows.remove(&r);
                }
                None => {}
            }
        }
    }

    fn apply_engine(&mut self, rec: &Arc<EventRecord>, t: u64) {
        // A RingSetup starts a new engine instance: its clock and ids start again.
        let epoch = self.epoch;
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
                self.ring_info.insert(epoch, info.clone());
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
                    .insert((epoch, info.prog), Arc::new(info.clone()));
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
                    n.res = Some(*res);
                    n.cqe_flags = *flags;
                    n.latency_ns = Some(*latency_ns);
                    n.finished_ns = Some(t);
                    n.state = classify(n.kind, &n.sqe, *res);
                }
            }
            Event::Decision(d) => {
                self.totals.decisions += 1;
                if let Some(i) = d.insns {
                    self.decision_insns.add(i);
                }
                self.decision_ns.add(d.duration_ns);
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
                    n.state = match cause {
                        CancelCause::Dropped { .. }
                        | CancelCause::ProgramStop { .. }
                        | CancelCause::ProgramFail { .. }
                        | CancelCause::ProgramError { .. }
                        | CancelCause::Budget { .. }
                            if !issued =>
                        {
                            NodeState::Dropped
                        }
                        _ => NodeState::Cancelled,
                    };
                    op_name = op::name(n.sqe.opcode);
                }
                let (group, detail) = describe_cancel(cause, *issued);
                let entry = CancelEntry {
                    t_ns: t,
                    what: format!("e{epoch} chain {chain} step {step} ({op_name})"),
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

    /// The kernel's view of a closed engine ring (same pid and fd) is closed too.
    fn close_probe_twins(&mut self) {
        let closed: Vec<(u32, Option<i32>)> = self
            .rings
            .iter()
            .filter(|r| r.source == "engine" && r.closed)
            .map(|r| (r.pid, r.fd))
            .collect();
        for r in self.rings.iter_mut().filter(|r| r.source == "probes") {
            if closed.contains(&(r.pid, r.fd)) {
                r.closed = true;
            }
        }
    }

    fn add_cancel(&mut self, group: String, entry: CancelEntry) {
        let g = self.cancels.entry(group).or_default();
        g.count += 1;
        g.recent.push_back(entry);
        let cap = (self.history_cap / 50).clamp(200, 20_000);
        while g.recent.len() > cap {
            g.recent.pop_front();
        }
    }

    fn node_mut(&mut self, epoch: u32, chain: u64, step: u32) -> Option<&mut Node> {
        self.chains
            .get_mut(&(epoch, chain))
            .and_then(|c| c.nodes.get_mut(step as usize))
    }

    /// A program's name.
    pub fn prog_name(&self, epoch: u32, prog: u32) -> Option<String> {
        self.programs.get(&(epoch, prog)).map(|p| p.name.clone())
    }

    fn apply_probe(&mut self, ev: &ProbeEvent, t: u64) {
        if let Some(id) = self.ring_dir.observe(ev).cloned() {
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
        let ring = ev.ring().map(|p| p.0);
        let row = ring.and_then(|c| {
            self.rings
                .iter_mut()
                .find(|r| r.source == "probes" && r.ctx == Some(c))
        });
        if let Some(r) = row {
            match ev {
                ProbeEvent::SubmitReq { .. } => {
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
        let before = self.graph.stats().cancellations.total;
        let pushed = self.graph.push(ev);
        if let (ProbeEvent::Complete { hdr, .. }, Some(id)) = (ev, pushed)
            && let Some(sub) = self.graph.request(id).and_then(|r| r.submitted_ns)
        {
            self.kernel_latency.add(hdr.ts_ns.saturating_sub(sub));
        }
        if let Some(id) = pushed {
            let chain = self.graph.request(id).and_then(|r| r.chain);
            match chain {
                Some(c) => {
                    if self.kernel_rows.insert(c | 1 << 63, ()).is_none() {
                        self.push_row(RowKey::KernelChain(c));
                    }
                }
                None => {
                    if matches!(ev, ProbeEvent::SubmitReq { .. })
                        && self.kernel_rows.insert(id, ()).is_none()
                    {
                        self.push_row(RowKey::KernelReq(id));
                    }
                }
            }
        }
        if self.graph.stats().cancellations.total > before
            && let Some(c) = self.graph.cancellations().last().cloned()
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
            let by =
                c.by.map_or(String::new(), |b| format!(" after req {b} failed"));
            let row = victim.map(|v| match v.chain {
                Some(ch) => RowKey::KernelChain(ch),
                None => RowKey::KernelReq(v.id),
            });
            self.add_cancel(
                format!("kernel: {cause}"),
                CancelEntry {
                    t_ns: t,
                    what,
                    detail: format!("-ECANCELED{by}"),
                    row,
                },
            );
            self.totals.cancelled += 1;
        }
    }

    /// The decision `seq` of engine instance `epoch`, if still kept.
    pub fn find_decision(&self, epoch: u32, seq: u64) -> Option<usize> {
        self.decisions
            .binary_search_by(|d| (d.epoch, d.decision().seq).cmp(&(epoch, seq)))
            .ok()
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

/// How a completion looks: done, short or failed.
pub fn classify(kind: StepKind, sqe: &RsSqe, res: i32) -> NodeState {
    if res < 0 {
        NodeState::Failed
    } else if kind == StepKind::Io && op::short_is_failure(sqe.opcode) && (res as u32) < sqe.len {
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

/// (group, detail) of an engine cancellation.
pub fn describe_cancel(cause: &CancelCause, issued: bool) -> (String, String) {
    let where_ = if issued {
        "was in the kernel"
    } else {
        "never issued"
    };
    match cause {
        CancelCause::KernelLink { failed_step } => (
            "kernel link broke".into(),
            format!("step {failed_step} failed/short: the kernel cancelled the rest"),
        ),
        CancelCause::LinkFailed { failed_step } => (
            "engine link failed".into(),
            format!("step {failed_step} failed with no program to decide ({where_})"),
        ),
        CancelCause::ProgramFail { decision, step } => (
            "program: RS_FAIL".into(),
            format!("decision #{decision} on step {step} failed the chain ({where_})"),
        ),
        CancelCause::ProgramStop { decision, step } => (
            "program: RS_STOP".into(),
            format!("decision #{decision} on step {step} finished the chain early ({where_})"),
        ),
        CancelCause::Dropped { decision } => (
            "program: rs_drop".into(),
            format!("decision #{decision} dropped it ({where_})"),
        ),
        CancelCause::ProgramError { decision, reason } => (
            "program error".into(),
            format!("decision #{decision}: {reason} ({where_})"),
        ),
        CancelCause::Budget {
            decision,
            violation,
        } => (
            format!("budget: {}", violation.kind),
            format!("decision #{decision}: {violation} ({where_})"),
        ),
        CancelCause::Shutdown => ("shutdown".into(), format!("engine shut down ({where_})")),
        CancelCause::SubmitFailed { errno } => (
            "submit failed".into(),
            format!("the kernel refused the submission: errno {errno}"),
        ),
    }
}
