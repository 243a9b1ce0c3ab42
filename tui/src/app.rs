//! The application: model + view state + keys, and the one draw loop.
//!
//! [`run`] is generic over ratatui's `Backend`, so tests drive the same
//! loop and views with a `TestBackend`.

use crate::model::{Model, NodeState, RowKey};
use crate::source::{ControlKind, Controller, Ctl, Msg, ReplayPos, RingFill, Status};
use crate::stepper::{Trace, Tracer};
use crossbeam_channel::Receiver;
use crossterm::event::{Event as CEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::Backend;
use ringside_engine::abi::op;
use ringside_engine::debug::{Breakpoint, Command};
use ringside_recordings::Item;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

/// Chains view filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainFilter {
    /// Engine instance or kernel ring (`ring:N` = engine N, `ring:k` = kernel).
    pub ring: Option<String>,
    /// Chain id.
    pub chain: Option<u64>,
    /// A node in this state.
    pub state: Option<NodeState>,
    /// Program name substring.
    pub text: Option<String>,
}

impl ChainFilter {
    /// Parse `ring:2 chain:7 state:short copy`.
    pub fn parse(s: &str) -> Result<ChainFilter, String> {
        let mut f = ChainFilter::default();
        for w in s.split_whitespace() {
            if let Some(v) = w.strip_prefix("ring:") {
                f.ring = Some(v.to_string());
            } else if let Some(v) = w.strip_prefix("chain:") {
                f.chain = Some(v.parse().map_err(|_| format!("chain:{v}: not a number"))?);
            } else if let Some(v) = w.strip_prefix("state:") {
                f.state = Some(NodeState::parse(v).ok_or_else(|| {
                    format!(
                        "state:{v}: one of {}",
                        NodeState::ALL.map(|s| s.name()).join(", ")
                    )
                })?);
            } else {
                f.text = Some(w.to_string());
            }
        }
        Ok(f)
    }

    /// Empty.
    pub fn is_empty(&self) -> bool {
        *self == ChainFilter::default()
    }

    /// In words, for the filter line.
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(r) = &self.ring {
            v.push(format!("ring:{r}"));
        }
        if let Some(c) = self.chain {
            v.push(format!("chain:{c}"));
        }
        if let Some(s) = self.state {
            v.push(format!("state:{}", s.name()));
        }
        if let Some(t) = &self.text {
            v.push(t.clone());
        }
        v.join(" ")
    }
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
    pub trace_error: Option<String>,
    tracer: Tracer,
    path_cache: Option<PathCache>,
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
    clock: (u64, Instant, u64),
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
            message: None,
            fills: Vec::new(),
            ui_dropped_seen: 0,
            ui_dropped: Arc::new(AtomicU64::new(0)),
            quit: false,
            page: 10,
            paused_seen: None,
            frames: 0,
            recording: None,
            clock: (0, Instant::now(), 0),
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
                        epoch: self.state.epoch,
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
        if items != self.clock.0 || self.state.now_ns < self.clock.2 {
            self.clock = (items, Instant::now(), self.state.now_ns);
        } else {
            let idle = self.clock.1.elapsed().as_nanos() as u64;
            self.state.now_ns = self.state.now_ns.max(self.clock.2 + idle);
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

    /// Rows of the Chains view after filtering.
    pub fn chain_rows(&self) -> Vec<RowKey> {
        let f = &self.filter;
        self.state
            .rows
            .iter()
            .copied()
            .filter(|k| match k {
                RowKey::Engine { epoch, chain } => {
                    if let Some(r) = &f.ring
                        && r.parse::<u32>().ok() != Some(*epoch)
                    {
                        return false;
                    }
                    if f.chain.is_some_and(|c| c != *chain) {
                        return false;
                    }
                    if let Some(t) = &f.text {
                        let Some(c) = self.state.chains.get(&(*epoch, *chain)) else {
                            return false;
                        };
                        if !c
                            .program
                            .as_deref()
                            .unwrap_or("kernel link")
                            .contains(t.as_str())
                        {
                            return false;
                        }
                    }
                    true
                }
                RowKey::KernelChain(c) => {
                    if self.kernel_rows == KernelRows::Hidden {
                        return false;
                    }
                    if f.ring.as_deref().is_some_and(|r| r != "k")
                        || f.chain.is_some_and(|x| x != *c)
                        || f.text.is_some()
                    {
                        return false;
                    }
                    true
                }
                RowKey::KernelReq(r) => {
                    if self.kernel_rows != KernelRows::All {
                        return false;
                    }
                    if f.ring.as_deref().is_some_and(|x| x != "k")
                        || f.chain.is_some_and(|x| x != *r)
                        || f.text.is_some()
                    {
                        return false;
                    }
                    true
                }
            })
            .filter(|k| match f.state {
                None => true,
                Some(s) => self.state.row_states(*k).contains(&s),
            })
            .collect()
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
            self.message = Some(e);
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

    /// Handle a terminal event. Returns true when the app should quit.
    pub fn handle_event(&mut self, ev: CEvent) -> bool {
        if let CEvent::Key(k) = ev
            && k.kind != KeyEventKind::Release
        {
            self.handle_key(k);
        }
        self.quit
    }

    /// Handle a key.
    pub fn handle_key(&mut self, k: KeyEvent) {
        if k.modifiers.contains(KeyModifiers::CONTROL)
            && matches!(k.code, KeyCode::Char('c') | KeyCode::Char('q'))
        {
            self.quit = true;
            return;
        }
        self.message = None;
        if let Overlay::Command(text) | Overlay::Filter(text) = self.overlay.clone() {
            let is_cmd = matches!(self.overlay, Overlay::Command(_));
            let mut text = text;
            match k.code {
                KeyCode::Esc => {
                    self.overlay = Overlay::None;
                    return;
                }
                KeyCode::Enter => {
                    self.overlay = Overlay::None;
                    if is_cmd {
                        self.command(&text);
                    } else {
                        match ChainFilter::parse(&text) {
                            Ok(f) => {
                                self.filter = f;
                                self.chains_pos = ListPos::default();
                            }
                            Err(e) => self.message = Some(e),
                        }
                    }
                    return;
                }
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) => text.push(c),
                _ => {}
            }
            self.overlay = if is_cmd {
                Overlay::Command(text)
            } else {
                Overlay::Filter(text)
            };
            return;
        }
        match &self.overlay {
            Overlay::Command(_) | Overlay::Filter(_) => {}
            Overlay::Help => {
                self.overlay = Overlay::None;
                if !matches!(k.code, KeyCode::Char('q')) {
                    return;
                }
            }
            Overlay::Breakpoints => {
                self.breakpoint_key(k);
                return;
            }
            Overlay::None => {}
        }
        match k.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.overlay = Overlay::Help,
            KeyCode::Char(':') => self.overlay = Overlay::Command(String::new()),
            KeyCode::Char('/') => {
                self.overlay = Overlay::Filter(self.filter.describe());
                self.view = View::Chains;
            }
            KeyCode::Char('b') => self.overlay = Overlay::Breakpoints,
            KeyCode::Tab => self.view = next_view(self.view, 1),
            KeyCode::BackTab => self.view = next_view(self.view, -1),
            KeyCode::Char(c @ '1'..='7') => {
                self.view = View::ALL[(c as u8 - b'1') as usize];
            }
            KeyCode::Char('p') | KeyCode::Char(' ') => self.pause_toggle(),
            KeyCode::Char('c') => {
                self.send(Ctl::Debug(Command::Continue));
                self.state.paused = None;
            }
            KeyCode::Char('n') => {
                // Step over the whole decision: apply it, stop at the next.
                self.send(Ctl::Debug(Command::Step));
            }
            KeyCode::Char('N') => self.send(Ctl::PrevDecision),
            KeyCode::Char('.') => self.send(Ctl::StepItem),
            KeyCode::Char(',') => self.send(Ctl::StepBack),
            KeyCode::Char('>') => self.send(Ctl::Speed(1)),
            KeyCode::Char('<') => self.send(Ctl::Speed(-1)),
            KeyCode::Char('k') if self.view == View::Chains => {
                self.kernel_rows = match self.kernel_rows {
                    KernelRows::All => KernelRows::Chains,
                    KernelRows::Chains => KernelRows::Hidden,
                    KernelRows::Hidden => KernelRows::All,
                };
                self.message = Some(format!(
                    "kernel rows: {}",
                    match self.kernel_rows {
                        KernelRows::All => "chains and single requests",
                        KernelRows::Chains => "link chains only",
                        KernelRows::Hidden => "hidden",
                    }
                ));
            }
            KeyCode::Char('t') if self.view == View::Decisions => {
                if let Some(d) = self.selected_decision() {
                    let (e, s) = (d.epoch, d.decision().seq);
                    self.open_trace(e, s);
                    self.view = View::Debug;
                }
            }
            KeyCode::Enter => self.enter(),
            KeyCode::Esc => {
                self.dec_zoom = false;
                if !self.filter.is_empty() {
                    self.filter = ChainFilter::default();
                }
            }
            _ => self.view_key(k),
        }
    }

    fn pause_toggle(&mut self) {
        let paused =
            self.state.paused.is_some() || self.replay.as_ref().is_some_and(|r| !r.playing);
        if paused {
            self.send(Ctl::Debug(Command::Continue));
            self.state.paused = None;
        } else {
            self.send(Ctl::Debug(Command::Pause));
            if self.message.is_none() && self.control_kind() == ControlKind::Engine {
                self.message = Some("pausing at the next decision".into());
            }
        }
    }

    fn enter(&mut self) {
        match self.view {
            View::Decisions => {
                self.dec_zoom = !self.dec_zoom;
                self.dec_scroll = 0;
            }
            View::Cancels => {
                if !self.cancel_focus_entries {
                    self.cancel_focus_entries = true;
                    return;
                }
                // Jump to the chain of the selected cancellation.
                let row = self
                    .state
                    .cancels
                    .values()
                    .nth(self.cancel_group)
                    .and_then(|g| g.recent.get(self.cancel_pos.sel))
                    .and_then(|e| e.row);
                if let Some(row) = row {
                    self.filter = ChainFilter::default();
                    let rows = self.chain_rows();
                    if let Some(i) = rows.iter().position(|r| *r == row) {
                        self.chains_pos = ListPos {
                            sel: i,
                            follow: false,
                        };
                        self.chains_node = 0;
                        self.view = View::Chains;
                    } else {
                        self.message = Some("that chain is no longer in the history".into());
                    }
                }
            }
            View::Chains => {
                // Show the decisions about the selected chain.
                let rows = self.chain_rows();
                if let Some(RowKey::Engine { epoch, chain }) =
                    rows.get(self.chains_pos.sel).copied()
                {
                    let node = self.chains_node as u32;
                    if let Some(i) = self.state.decisions.iter().rposition(|d| {
                        d.epoch == epoch && d.decision().chain == chain && d.decision().step <= node
                    }) {
                        self.dec_pos = ListPos {
                            sel: i,
                            follow: false,
                        };
                        self.view = View::Decisions;
                    } else {
                        self.message = Some("no decision about this chain in the history".into());
                    }
                }
            }
            _ => {}
        }
    }

    fn view_key(&mut self, k: KeyEvent) {
        let page = self.page.max(1);
        let (up, down, n) = match k.code {
            KeyCode::Up => (true, false, 1),
            KeyCode::Down => (false, true, 1),
            KeyCode::PageUp => (true, false, page),
            KeyCode::PageDown => (false, true, page),
            KeyCode::Home => (true, false, usize::MAX / 2),
            KeyCode::End | KeyCode::Char('G') => (false, true, usize::MAX / 2),
            _ => (false, false, 0),
        };
        match self.view {
            View::Chains => {
                let len = self.chain_rows().len();
                if up {
                    self.chains_pos.up(n);
                } else if down {
                    self.chains_pos.down(n, len);
                }
                match k.code {
                    KeyCode::Left => self.chains_node = self.chains_node.saturating_sub(1),
                    KeyCode::Right => self.chains_node += 1,
                    _ => {}
                }
            }
            View::Decisions => {
                let len = self.state.decisions.len();
                match k.code {
                    KeyCode::Char('J') => self.dec_scroll = self.dec_scroll.saturating_add(1),
                    KeyCode::Char('K') => self.dec_scroll = self.dec_scroll.saturating_sub(1),
                    _ => {
                        if up {
                            self.dec_pos.up(n);
                            self.dec_scroll = 0;
                        } else if down {
                            self.dec_pos.down(n, len);
                            self.dec_scroll = 0;
                        }
                    }
                }
            }
            View::Cancels => {
                match k.code {
                    KeyCode::Left => self.cancel_focus_entries = false,
                    KeyCode::Right => self.cancel_focus_entries = true,
                    _ => {}
                }
                if self.cancel_focus_entries {
                    let len = self
                        .state
                        .cancels
                        .values()
                        .nth(self.cancel_group)
                        .map_or(0, |g| g.recent.len());
                    if up {
                        self.cancel_pos.up(n);
                    } else if down {
                        self.cancel_pos.down(n, len);
                    }
                } else if up {
                    self.cancel_group = self.cancel_group.saturating_sub(n);
                    self.cancel_pos = ListPos::default();
                } else if down {
                    self.cancel_group =
                        (self.cancel_group + n).min(self.state.cancels.len().saturating_sub(1));
                    self.cancel_pos = ListPos::default();
                }
            }
            View::Maps => {
                if up {
                    self.map_sel = self.map_sel.saturating_sub(n);
                    self.map_scroll = 0;
                } else if down {
                    self.map_sel = (self.map_sel + n).min(self.state.maps.len().saturating_sub(1));
                    self.map_scroll = 0;
                }
                match k.code {
                    KeyCode::Char('J') => self.map_scroll += 1,
                    KeyCode::Char('K') => self.map_scroll = self.map_scroll.saturating_sub(1),
                    _ => {}
                }
            }
            View::Debug => {
                let Some(t) = &mut self.trace else { return };
                let last = t.steps.len().saturating_sub(1);
                match k.code {
                    KeyCode::Char('s') | KeyCode::Right | KeyCode::Down => {
                        t.pos = (t.pos + 1).min(last)
                    }
                    KeyCode::Char('S') | KeyCode::Left | KeyCode::Up => {
                        t.pos = t.pos.saturating_sub(1)
                    }
                    KeyCode::PageDown => t.pos = (t.pos + page).min(last),
                    KeyCode::PageUp => t.pos = t.pos.saturating_sub(page),
                    KeyCode::Home | KeyCode::Char('g') => t.pos = 0,
                    KeyCode::End | KeyCode::Char('G') => t.pos = last,
                    KeyCode::Char('r') => {
                        // run to the next helper call
                        let next = t
                            .steps
                            .iter()
                            .enumerate()
                            .skip(t.pos + 1)
                            .find(|(_, s)| s.helper.is_some())
                            .map(|(i, _)| i);
                        t.pos = next.unwrap_or(last);
                    }
                    _ => {}
                }
            }
            View::Rings | View::Stats => {}
        }
    }

    fn breakpoint_key(&mut self, k: KeyEvent) {
        let sel = self.bp_target().map(|r| (r.prog, r.chain, r.ctx.opcode));
        match k.code {
            KeyCode::Esc | KeyCode::Char('b') | KeyCode::Char('q') => self.overlay = Overlay::None,
            KeyCode::Char('1') => self.toggle_breakpoint(Breakpoint::ShortResult),
            KeyCode::Char('2') => self.toggle_breakpoint(Breakpoint::NegativeResult),
            KeyCode::Char('p') => match sel {
                Some((prog, _, _)) => self.toggle_breakpoint(Breakpoint::Program { prog }),
                None => self.message = Some("select a decision first (Decisions view)".into()),
            },
            KeyCode::Char('c') => match sel {
                Some((_, chain, _)) => self.toggle_breakpoint(Breakpoint::Chain { chain }),
                None => self.message = Some("select a decision first (Decisions view)".into()),
            },
            KeyCode::Char('o') => match sel {
                Some((_, _, opcode)) => self.toggle_breakpoint(Breakpoint::Opcode { opcode }),
                None => self.message = Some("select a decision first (Decisions view)".into()),
            },
            KeyCode::Char('x') => self.set_breakpoints(Vec::new()),
            KeyCode::Char(':') => self.overlay = Overlay::Command("break ".into()),
            _ => {}
        }
    }

    /// Run a `:` command.
    pub fn command(&mut self, text: &str) {
        let words: Vec<&str> = text.split_whitespace().collect();
        let r: Result<(), String> = match words.as_slice() {
            [] => Ok(()),
            ["q" | "quit"] => {
                self.quit = true;
                Ok(())
            }
            ["break" | "b", rest @ ..] => self.parse_break(rest).map(|bp| {
                let mut bps = self.breakpoints.clone();
                if !bps.contains(&bp) {
                    bps.push(bp);
                }
                self.set_breakpoints(bps);
            }),
            ["delete" | "d", n] => match n.parse::<usize>() {
                Ok(i) if i >= 1 && i <= self.breakpoints.len() => {
                    let mut bps = self.breakpoints.clone();
                    bps.remove(i - 1);
                    self.set_breakpoints(bps);
                    Ok(())
                }
                _ => Err(format!("no breakpoint {n}")),
            },
            ["clear"] => {
                self.set_breakpoints(Vec::new());
                Ok(())
            }
            ["seek" | "s", what] => match parse_seek(what) {
                Ok(c) => {
                    self.send(c);
                    Ok(())
                }
                Err(e) => Err(e),
            },
            ["filter" | "f", rest @ ..] => ChainFilter::parse(&rest.join(" ")).map(|f| {
                self.filter = f;
                self.view = View::Chains;
            }),
            ["trace", n] => match n.parse::<u64>() {
                Ok(seq) => {
                    let e = self.state.epoch;
                    self.open_trace(e, seq);
                    self.view = View::Debug;
                    Ok(())
                }
                Err(_) => Err(format!("trace {n}: not a decision number")),
            },
            _ => Err(format!(
                "unknown command `{text}` (break, delete N, clear, seek N|Ts, filter, trace N, quit)"
            )),
        };
        if let Err(e) = r {
            self.message = Some(e);
        }
    }

    fn parse_break(&self, w: &[&str]) -> Result<Breakpoint, String> {
        match w {
            ["short" | "res<len"] | ["res", "<", "len"] => Ok(Breakpoint::ShortResult),
            ["neg" | "error" | "res<0"] | ["res", "<", "0"] => Ok(Breakpoint::NegativeResult),
            ["chain", n] => n
                .parse()
                .map(|chain| Breakpoint::Chain { chain })
                .map_err(|_| format!("chain {n}: not a number")),
            ["program" | "prog", name] => {
                if let Ok(prog) = name.parse::<u32>() {
                    return Ok(Breakpoint::Program { prog });
                }
                self.state
                    .programs
                    .iter()
                    .rev()
                    .find(|(_, p)| p.name == *name)
                    .map(|((_, id), _)| Breakpoint::Program { prog: *id })
                    .ok_or_else(|| format!("no program named {name}"))
            }
            ["opcode" | "op", name] => {
                if let Ok(opcode) = name.parse::<u8>() {
                    return Ok(Breakpoint::Opcode { opcode });
                }
                op::from_name(name)
                    .or_else(|| op::from_name(&name.to_ascii_uppercase()))
                    .or_else(|| op::from_name(&name.to_ascii_lowercase()))
                    .map(|opcode| Breakpoint::Opcode { opcode })
                    .ok_or_else(|| format!("no opcode named {name}"))
            }
            _ => Err("break short | neg | chain N | program NAME | opcode NAME".to_string()),
        }
    }
}

fn next_view(v: View, d: i32) -> View {
    let i = View::ALL.iter().position(|x| *x == v).unwrap_or(0) as i32;
    let n = View::ALL.len() as i32;
    View::ALL[((i + d).rem_euclid(n)) as usize]
}

/// `1234` (an item index) or `1.5s` / `300ms` (a time).
pub fn parse_seek(s: &str) -> Result<Ctl, String> {
    if let Some(v) = s.strip_suffix("ms") {
        return v
            .parse::<f64>()
            .map(|x| Ctl::SeekTime((x * 1e6) as u64))
            .map_err(|_| format!("seek {s}: not a time"));
    }
    if let Some(v) = s.strip_suffix('s') {
        return v
            .parse::<f64>()
            .map(|x| Ctl::SeekTime((x * 1e9) as u64))
            .map_err(|_| format!("seek {s}: not a time"));
    }
    s.parse::<u64>()
        .map(Ctl::SeekItem)
        .map_err(|_| format!("seek {s}: an event number, or a time like 1.5s or 300ms"))
}

/// Draw loop rates.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    /// Model housekeeping interval.
    pub tick: Duration,
    /// Shortest time between frames.
    pub frame: Duration,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            tick: Duration::from_millis(250),
            frame: Duration::from_millis(50),
        }
    }
}

/// The one draw loop: drain the source queue (bounded time per round), read
/// keys, tick, and draw at most once per frame interval when something
/// changed. `input` waits up to the given time for a terminal event.
pub fn run<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    rx: &Receiver<Msg>,
    input: &mut dyn FnMut(Duration) -> std::io::Result<Option<CEvent>>,
    stop: &AtomicBool,
    rates: Rates,
) -> anyhow::Result<()>
where
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut last_tick = Instant::now();
    let mut last_frame = Instant::now() - rates.frame;
    let mut dirty = true;
    // For the end-to-end test of terminal restoration on panic.
    let panic_after: Option<u64> = std::env::var("RINGSIDE_TEST_PANIC_AFTER_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok());
    loop {
        if stop.load(Ordering::Relaxed) || app.quit {
            return Ok(());
        }
        // Items: at most ~20 ms of folding per round so keys stay responsive.
        let budget = Instant::now() + Duration::from_millis(20);
        while Instant::now() < budget {
            match rx.try_recv() {
                Ok(m) => {
                    app.handle_msg(m);
                    dirty = true;
                }
                Err(_) => break,
            }
        }
        if last_tick.elapsed() >= rates.tick {
            last_tick = Instant::now();
            app.tick();
            dirty = true;
        }
        if dirty && last_frame.elapsed() >= rates.frame {
            app.follow_pause();
            terminal.draw(|f| crate::views::draw(f, app))?;
            app.frames += 1;
            if panic_after.is_some_and(|n| app.frames >= n) {
                panic!("RINGSIDE_TEST_PANIC_AFTER_FRAMES: a panic for the test");
            }
            last_frame = Instant::now();
            dirty = false;
        }
        let wait = if rx.is_empty() {
            rates
                .frame
                .saturating_sub(last_frame.elapsed())
                .max(Duration::from_millis(5))
        } else {
            Duration::ZERO
        };
        if let Some(ev) = input(wait)? {
            if let CEvent::Resize(_, _) = ev {
                terminal.autoresize()?;
            }
            app.handle_event(ev);
            dirty = true;
            // Draw right after a key, whatever the frame interval.
            last_frame = Instant::now() - rates.frame;
        }
    }
}
