//! The application: the model, each view's state, keys and commands. The
//! draw loop that feeds it and draws it is [`crate::run`]; the views read
//! it ([`crate::ui`]) and this module knows nothing of them.

mod commands;
mod filter;
mod frame;
mod keys;

pub use commands::{BreakError, CommandError, SeekError, parse_seek};
pub use filter::{ChainFilter, FilterError};
pub use keys::HELP;

use crate::model::{Model, NodeState, RowKey};
use crate::source::{ControlKind, Controller, Ctl, Msg, ReplayPos, RingFill, Status};
use crate::stepper::{Trace, TraceError, Tracer};
use crossterm::event::{Event as CEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ringside_engine::abi::op;
use ringside_engine::debug::{Breakpoint, Command};
use ringside_recordings::Item;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The kernel rows a replay of `path` starts with: those of the live mode
/// it was recorded from. An `attach` recording (kernel probes only) shows
/// chains and single requests, as `attach` did; anything else keeps the
/// default. `None` when the header cannot be read (the tape reports why).
pub fn kernel_rows_for(path: &std::path::Path) -> Option<KernelRows> {
    let r = ringside_recordings::Reader::open(path).ok()?;
    r.header()
        .source
        .starts_with("attach --pid")
        .then_some(KernelRows::All)
}

/// The views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Rings.
    Rings,
    /// The request graph.
    Chains,
    /// Cancellations by cause.
    Cancels,
    /// Decision log and detail.
    Decisions,
    /// Program maps.
    Maps,
    /// Throughput, latency, costs, losses.
    Stats,
    /// The step debugger.
    Debug,
}

impl View {
    /// Every view, in tab order.
    pub const ALL: [View; 7] = [
        View::Rings,
        View::Chains,
        View::Cancels,
        View::Decisions,
        View::Maps,
        View::Stats,
        View::Debug,
    ];

    /// Tab title.
    pub fn title(self) -> &'static str {
        match self {
            View::Rings => "Rings",
            View::Chains => "Chains",
            View::Cancels => "Cancels",
            View::Decisions => "Decisions",
            View::Maps => "Maps",
            View::Stats => "Stats",
            View::Debug => "Debug",
        }
    }
}

/// A popup over the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overlay {
    /// Nothing.
    None,
    /// Every key.
    Help,
    /// Breakpoint editor.
    Breakpoints,
    /// `:` command line, with its text.
    Command(String),
    /// `/` filter line, with its text.
    Filter(String),
}

/// Which kernel (probe) rows the Chains view shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelRows {
    /// Chains and single requests.
    All,
    /// Link chains only.
    Chains,
    /// None.
    Hidden,
}

/// A scrollable list's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListPos {
    /// Selected index.
    pub sel: usize,
    /// Keep the newest selected.
    pub follow: bool,
}

impl Default for ListPos {
    fn default() -> Self {
        ListPos {
            sel: 0,
            follow: true,
        }
    }
}

impl ListPos {
    /// Clamp to `len` items, following the newest when asked.
    pub fn fit(&mut self, len: usize) {
        if len == 0 {
            self.sel = 0;
        } else if self.follow || self.sel >= len {
            self.sel = len - 1;
        }
    }

    fn up(&mut self, n: usize) {
        self.sel = self.sel.saturating_sub(n);
        self.follow = false;
    }

    fn down(&mut self, n: usize, len: usize) {
        self.sel = (self.sel + n).min(len.saturating_sub(1));
        if self.sel + 1 >= len {
            self.follow = true;
        }
    }
}

/// What a decision ran (see [`App::decision_path`]).
#[derive(Clone, Debug, Default)]
pub struct DecisionPath {
    /// Instruction slots executed.
    pub executed: std::collections::HashSet<usize>,
    /// Call instruction slot -> indexes of the calls it made.
    pub calls_at: std::collections::HashMap<usize, Vec<usize>>,
}

/// The last decision path computed: (engine instance, decision) and the path.
type PathCache = ((u32, u64), Option<Arc<DecisionPath>>);

/// Where a live session's clock stood at the newest item: it runs on from
/// there when no events come, so rates fall to zero when the traced
/// process stops.
#[derive(Clone, Copy, Debug)]
struct LiveClock {
    /// Items folded then.
    items: u64,
    /// Wall time then.
    at: Instant,
    /// The model time the item brought.
    now_ns: u64,
}

/// What the Decisions view's detail pane shows of the selected decision.
#[derive(Clone, Debug, Default)]
pub struct ShownDecision {
    /// Its program's disassembly.
    pub disasm: Option<Arc<crate::stepper::Disasm>>,
    /// What it ran, from its re-execution.
    pub path: Option<Arc<DecisionPath>>,
}

/// How the session was started, for the title and help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mode {
    /// "demo", "run x.toml", "attach pid 12", "replay f.rsr".
    pub title: String,
}

/// Everything the UI holds.
pub struct App {
    /// The model.
    pub state: Model,
    /// Current view.
    pub view: View,
    /// Popup.
    pub overlay: Overlay,
    /// Mode.
    pub mode: Mode,
    /// What the source says it is now.
    pub source: String,
    /// The source ended (why).
    pub ended: Option<String>,
    /// Kernel probes are off (why): the header says so while the session lasts.
    pub probes_off: Option<String>,
    /// Replay position, in replay.
    pub replay: Option<ReplayPos>,
    /// Steering.
    pub controller: Box<dyn Controller>,
    /// Breakpoints as set.
    pub breakpoints: Vec<Breakpoint>,
    /// Chains view: selected row (index in the filtered rows).
    pub chains_pos: ListPos,
    /// Chains view: selected node in the row.
    pub chains_node: usize,
    /// Chains view filter.
    pub filter: ChainFilter,
    /// Kernel rows shown.
    pub kernel_rows: KernelRows,
    /// Decisions view position.
    pub dec_pos: ListPos,
    /// Decision detail zoomed.
    pub dec_zoom: bool,
    /// Decision detail scroll.
    pub dec_scroll: u16,
    /// Cancellations: selected group.
    pub cancel_group: usize,
    /// Cancellations: selected entry in the group.
    pub cancel_pos: ListPos,
    /// Cancellations: focus on the entries (vs groups).
    pub cancel_focus_entries: bool,
    /// Maps: selected map.
    pub map_sel: usize,
    /// Maps: contents scroll.
    pub map_scroll: usize,
    /// Debug view trace.
    pub trace: Option<Trace>,
    /// Why there is no trace.
    pub trace_error: Option<TraceError>,
    tracer: Tracer,
    path_cache: Option<PathCache>,
    /// Chains view: the rows after filtering, as of the last `prepare`.
    pub shown_rows: Vec<RowKey>,
    /// Decisions view: the selected decision's disassembly and the path it
    /// ran, as of the last `prepare`.
    pub shown_decision: ShownDecision,
    /// Status message (shown until the next key).
    pub message: Option<String>,
    /// Ring fill from fdinfo.
    pub fills: Vec<RingFill>,
    /// Drops by the UI queue, as reported.
    ui_dropped_seen: u64,
    /// Shared counter of the UI queue's drops.
    pub ui_dropped: Arc<AtomicU64>,
    /// Quit requested.
    pub quit: bool,
    /// Items per key press for scrolling pages.
    pub page: usize,
    paused_seen: Option<(u32, Option<u64>)>,
    /// Frames drawn.
    pub frames: u64,
    /// The file a live session is being recorded to (the header says the
    /// recording is complete when the view is not).
    pub recording: Option<String>,
    /// Wall time of the newest item, and the model time it brought: a live
    /// session's clock runs on from there when no events come, so rates
    /// fall to zero when the traced process stops.
    clock: LiveClock,
}

/// How much of what the sources produced the view holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Coverage {
    /// Items folded into the model.
    pub shown: u64,
    /// Items the UI's queue dropped (the sources were faster than the fold).
    pub ui_dropped: u64,
    /// Events lost before ringside saw them (kernel buffers, other queues).
    pub lost_upstream: u64,
}

impl Coverage {
    /// Percent of the events that reached ringside which the view holds.
    pub fn percent(&self) -> f64 {
        let all = self.shown + self.ui_dropped;
        if all == 0 {
            100.0
        } else {
            self.shown as f64 * 100.0 / all as f64
        }
    }
}

impl App {
    /// A new app over `state`, steering through `controller`.
    pub fn new(state: Model, mode: Mode, controller: Box<dyn Controller>) -> App {
        let kernel_rows = if controller.kind() == ControlKind::WatchOnly {
            KernelRows::All
        } else {
            KernelRows::Chains
        };
        App {
            state,
            view: View::Chains,
            overlay: Overlay::None,
            source: mode.title.clone(),
            mode,
            ended: None,
            probes_off: None,
            replay: None,
            controller,
            breakpoints: Vec::new(),
            chains_pos: ListPos::default(),
            chains_node: 0,
            filter: ChainFilter::default(),
            kernel_rows,
            dec_pos: ListPos::default(),
            dec_zoom: false,
            dec_scroll: 0,
            cancel_group: 0,
            cancel_pos: ListPos::default(),
            cancel_focus_entries: false,
            map_sel: 0,
            map_scroll: 0,
            trace: None,
            trace_error: None,
            tracer: Tracer::default(),
            path_cache: None,
            shown_rows: Vec::new(),
            shown_decision: ShownDecision::default(),
            message: None,
            fills: Vec::new(),
            ui_dropped_seen: 0,
            ui_dropped: Arc::new(AtomicU64::new(0)),
            quit: false,
            page: 10,
            paused_seen: None,
            frames: 0,
            recording: None,
            clock: LiveClock {
                items: 0,
                at: Instant::now(),
                now_ns: 0,
            },
        }
    }

    /// What the view holds of what was sent to it; `None` when it holds
    /// everything and nothing was lost.
    pub fn coverage(&self) -> Option<Coverage> {
        let lost = &self.state.totals.lost;
        let ui_dropped = lost.get("ui").copied().unwrap_or(0);
        let lost_upstream = lost
            .iter()
            .filter(|(q, _)| q.as_str() != "ui")
            .map(|(_, n)| n)
            .sum();
        (ui_dropped > 0 || lost_upstream > 0).then(|| Coverage {
            shown: self.state.totals.engine_events + self.state.totals.probe_events,
            ui_dropped,
            lost_upstream,
        })
    }

    /// Control kind of the source.
    pub fn control_kind(&self) -> ControlKind {
        self.controller.kind()
    }

    /// Fold a message.
    pub fn handle_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Item(item) => self.state.apply(item),
            Msg::ItemAt(item, t) => self.state.apply_at(item, t),
            Msg::Status(s) => match s {
                Status::Notice(n) => self.state.note(n),
                Status::ProbesOff(why) => {
                    self.state.note(format!(
                        "kernel probes off: {why} · the engine runs without them"
                    ));
                    self.probes_off = Some(why);
                }
                Status::Source(s) => self.source = s,
                Status::Ended(e) => {
                    self.state.note(e.clone());
                    self.ended = Some(e);
                }
                Status::Connected(s) => {
                    self.ended = None;
                    self.source = s;
                }
                Status::Reset => {
                    let cap = self.state.history_cap;
                    let notes = std::mem::take(&mut self.state.notes);
                    self.state = Model::new(cap);
                    self.state.notes = notes;
                    self.paused_seen = None;
                }
                Status::Replay(p) => self.replay = Some(p),
                Status::Stopped { reason, decision } => {
                    self.state.paused = Some(crate::model::PausedAt {
                        epoch: self.state.epoch(),
                        reason,
                        decision,
                    });
                }
                Status::Fdinfo(f) => self.fills = f,
                Status::Counters(c) => self.state.apply_counters(&c),
                Status::Discovered { pid, fds } => self.state.ring_dir.add_discovered(pid, fds),
            },
        }
    }

    /// Once per tick: account for the UI queue's drops; follow pauses.
    pub fn tick(&mut self) {
        let d = self.ui_dropped.load(Ordering::Relaxed);
        if d > self.ui_dropped_seen {
            self.state.apply(Item::Lost {
                queue: "ui".into(),
                count: d - self.ui_dropped_seen,
            });
            self.ui_dropped_seen = d;
        }
        self.run_clock();
        self.follow_pause();
    }

    /// A live session's clock goes on between events (replay's does not:
    /// its time is the recording's).
    fn run_clock(&mut self) {
        if self.replay.is_some() || self.state.paused.is_some() {
            return;
        }
        let items = self.state.totals.items;
        if items != self.clock.items || self.state.now_ns < self.clock.now_ns {
            self.clock = LiveClock {
                items,
                at: Instant::now(),
                now_ns: self.state.now_ns,
            };
        } else {
            let idle = self.clock.at.elapsed().as_nanos() as u64;
            self.state.now_ns = self.state.now_ns.max(self.clock.now_ns + idle);
        }
    }

    /// When the engine stops at a decision, trace it and show the debugger.
    pub fn follow_pause(&mut self) {
        let now = self.state.paused.as_ref().map(|p| (p.epoch, p.decision));
        if now == self.paused_seen {
            return;
        }
        self.paused_seen = now;
        if let Some((epoch, Some(seq))) = now {
            self.open_trace(epoch, seq);
            self.view = View::Debug;
        }
    }

    /// Trace a decision into the Debug view.
    pub fn open_trace(&mut self, epoch: u32, seq: u64) {
        match self.tracer.trace(&self.state, epoch, seq) {
            Ok(t) => {
                self.trace = Some(t);
                self.trace_error = None;
            }
            Err(e) => {
                self.trace = None;
                self.trace_error = Some(e);
            }
        }
    }

    /// Which instructions a decision ran and which helper calls (indexes
    /// into its record's `calls`) each call instruction made, from its
    /// re-execution; cached for the last decision asked.
    pub fn decision_path(&mut self, epoch: u32, seq: u64) -> Option<Arc<DecisionPath>> {
        if let Some((k, p)) = &self.path_cache
            && *k == (epoch, seq)
        {
            return p.clone();
        }
        let p = self.tracer.trace(&self.state, epoch, seq).ok().map(|t| {
            let mut path = DecisionPath::default();
            let mut k = 0;
            for s in &t.steps {
                path.executed.insert(s.pc);
                if s.helper.is_some() {
                    path.calls_at.entry(s.pc).or_default().push(k);
                    k += 1;
                }
            }
            Arc::new(path)
        });
        self.path_cache = Some(((epoch, seq), p.clone()));
        p
    }

    /// Disassembly for the Decisions detail.
    pub fn disasm(&mut self, epoch: u32, prog: u32) -> Option<Arc<crate::stepper::Disasm>> {
        self.tracer.disasm(&self.state, epoch, prog)
    }

    /// The decision selected in the Decisions view.
    pub fn selected_decision(&self) -> Option<&crate::model::DecisionEntry> {
        self.state.decisions.get(self.dec_pos.sel)
    }

    /// The decision the breakpoint keys p/c/o take their program, chain and
    /// opcode from: the one in the Debug view, else the selected one.
    pub fn bp_target(&self) -> Option<&ringside_engine::decision::DecisionRecord> {
        if self.view == View::Debug
            && let Some(t) = &self.trace
            && let Some(i) = self.state.find_decision(t.epoch, t.decision)
        {
            return Some(self.state.decisions[i].decision());
        }
        self.selected_decision().map(|d| d.decision())
    }

    fn send(&mut self, c: Ctl) {
        if let Err(e) = self.controller.send(c) {
            self.message = Some(e.to_string());
        }
    }

    fn set_breakpoints(&mut self, bps: Vec<Breakpoint>) {
        self.breakpoints = bps.clone();
        let n = bps.len();
        self.send(Ctl::Debug(Command::SetBreakpoints { breakpoints: bps }));
        if self.message.is_none() {
            self.message = Some(format!("{n} breakpoint(s) set"));
        }
    }

    fn toggle_breakpoint(&mut self, bp: Breakpoint) {
        let mut bps = self.breakpoints.clone();
        if let Some(i) = bps.iter().position(|b| *b == bp) {
            bps.remove(i);
        } else {
            bps.push(bp);
        }
        self.set_breakpoints(bps);
    }
}
