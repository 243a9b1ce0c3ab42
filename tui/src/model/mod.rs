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

mod cancels;
mod chains;
mod decisions;
mod kernel;
mod maps;
mod rings;
mod stats;

pub use cancels::*;
pub use chains::*;
pub use decisions::*;
pub use kernel::*;
pub use maps::*;
pub use rings::*;
pub use stats::*;

use foldhash::{HashMap, HashMapExt};
use ringside_engine::event::{Detail, Event, EventRecord, ProgramInfo, RingInfo};
use ringside_probes::discover::RingDirectory;
use ringside_probes::graph::RequestGraph;
use ringside_recordings::Item;
use ringside_recordings::session::Completer;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// The model.
pub struct Model {
    /// N: the events of history the tables are sized for.
    pub history_cap: usize,
    /// Counters.
    pub totals: Totals,
    /// Session time (and the engine instance: [`Model::epoch`]).
    pub clock: ringside_recordings::session::Clock,
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
    pub rows: Rows,
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
    /// Engine completion latency by opcode, ns.
    pub latency_by_op: ByOpcode,
    /// Kernel completion latency by opcode (probes), ns.
    pub kernel_latency_by_op: ByOpcode,
    /// Decision cost by program name (every engine instance's copy of a
    /// program together).
    pub cost_by_program: BTreeMap<String, ProgramCost>,
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
    /// The newest kernel chain given a row (chain ids grow: a chain gets
    /// its row once, at its first event, with no set of rows to look up).
    newest_kernel_chain: Option<u64>,
    /// Programs and ring setups, to make inputs-only decisions whole.
    completer: Completer,
}

impl Model {
    /// A model sized for `history` events.
    pub fn new(history: usize) -> Model {
        let history = history.max(100);
        Model {
            history_cap: history,
            totals: Totals::default(),
            clock: ringside_recordings::session::Clock::unanchored(),
            now_ns: 0,
            rings: Vec::new(),
            ring_info: BTreeMap::new(),
            programs: BTreeMap::new(),
            chains: HashMap::new(),
            rows: Rows::new((history / 20).max(500)),
            decisions: VecDeque::new(),
            decisions_cap: (history / 10).max(1000),
            cancels: BTreeMap::new(),
            maps: BTreeMap::new(),
            latency: Histogram::default(),
            kernel_latency: Histogram::default(),
            latency_by_op: ByOpcode::default(),
            kernel_latency_by_op: ByOpcode::default(),
            cost_by_program: BTreeMap::new(),
            decision_insns: Histogram::default(),
            decision_ns: Histogram::default(),
            throughput: Series::new(10_000_000),
            kernel_throughput: Series::new(10_000_000),
            graph: RequestGraph::with_limit((history / 4).max(1000)),
            ring_dir: RingDirectory::new(),
            paused: None,
            notes: VecDeque::new(),
            pauses: 0,
            newest_kernel_chain: None,
            completer: Completer::default(),
        }
    }

    /// `rec`, with an inputs-only decision made whole (run again from its
    /// inputs): the views show helper calls, map writes and instruction
    /// counts, which a watched engine leaves out to stay fast. A decision
    /// that cannot be completed is kept as it came, and counted.
    fn completed(&mut self, rec: &Arc<EventRecord>) -> Arc<EventRecord> {
        let Event::Decision(d) = &rec.event else {
            return rec.clone();
        };
        if d.detail == Detail::Full {
            return rec.clone();
        }
        let epoch = self.clock.epoch();
        let info = self.programs.get(&(epoch, d.prog));
        let ring = self.ring_info.get(&epoch);
        let mut whole = d.clone();
        match self
            .completer
            .complete(epoch, info.map(|i| &**i), ring, &mut whole)
        {
            Ok(()) => Arc::new(EventRecord {
                seq: rec.seq,
                t_ns: rec.t_ns,
                event: Event::Decision(whole),
            }),
            Err(e) => {
                self.totals.incomplete += 1;
                if self.totals.incomplete == 1 {
                    self.note(format!("shown with its inputs only: {e}"));
                }
                rec.clone()
            }
        }
    }

    /// (rows of each kind, decisions) the model keeps at most.
    pub fn caps(&self) -> (usize, usize) {
        (self.rows.cap(), self.decisions_cap)
    }

    /// Add a note for the status line.
    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push_back(s.into());
        while self.notes.len() > 50 {
            self.notes.pop_front();
        }
    }

    /// Current engine instance (0 before any), as the session's clock
    /// counts them: one count for live and replay alike.
    pub fn epoch(&self) -> u32 {
        self.clock.epoch()
    }

    /// Fold one item, placed on the session's clock here.
    pub fn apply(&mut self, item: Item) {
        let t = self.clock.stamp(&item);
        self.fold(item, t);
    }

    /// Fold one item that its source placed at `t` on the session's clock
    /// (a replay: its recording's times).
    pub fn apply_at(&mut self, item: Item, t: u64) {
        self.clock.observe(&item, t);
        self.fold(item, t);
    }

    fn fold(&mut self, item: Item, t: u64) {
        self.totals.items += 1;
        self.totals.epochs = self.clock.epoch();
        self.now_ns = self.clock.now();
        match &item {
            Item::Engine(rec) => {
                self.totals.engine_events += 1;
                let rec = self.completed(rec);
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
}
