//! Event sources: one collector thread per source, all feeding one bounded
//! channel of [`Msg`]s to the draw loop.
//!
//! Live sources never wait for the UI: when the channel is full they drop
//! the item and count it; the UI reports the count as an `Item::Lost` for
//! queue `"ui"`. A recording is the only lossless source (nobody waits on
//! it). How the user steers a source (pause, step, breakpoints, seek) goes
//! the other way through a [`Controller`].

mod engine;
mod probes;
pub mod remote;
pub mod replay;

pub use engine::{WorkloadSource, forward_subscription, spawn_workload};
pub use probes::{ring_fills, spawn_fill_poller, spawn_probes};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use ringside_engine::debug::{Command, Debugger};
use ringside_engine::event::{EventRecord, Overflow};
use ringside_recordings::Item;
use ringside_workload::{self as workload, PrepareOptions, Prepared};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What travels from sources to the draw loop.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Something that happened.
    Item(Item),
    /// Something that happened at this session time (ns since the
    /// session started; a replay's items carry their recording's times,
    /// the same [`ringside_recordings::session::Clock`] export uses).
    ItemAt(Item, u64),
    /// News about the source itself.
    Status(Status),
}

/// News about a source (not part of the event stream; never recorded).
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// A line for the status bar.
    Notice(String),
    /// Kernel probes could not attach (why): shown for as long as it lasts.
    ProbesOff(String),
    /// What the source is now ("demo: round 3").
    Source(String),
    /// The source ended; the history stays.
    Ended(String),
    /// Replay: forget everything, items from the start follow.
    Reset,
    /// Replay: where playback is.
    Replay(ReplayPos),
    /// Replay: stopped at a breakpoint or after a step.
    Stopped {
        /// Why.
        reason: String,
        /// Decision number (in the current engine instance).
        decision: Option<u64>,
    },
    /// Ring fill from /proc/PID/fdinfo: (pid, fd, sq pending, sq entries, cq pending, cq entries, overflow).
    Fdinfo(Vec<RingFill>),
    /// The probes' counters of every event, per ring (kept in the kernel,
    /// before any queue: right even when the UI drops).
    Counters(Box<ringside_probes::counters::Counters>),
    /// A connection came up (socket): the engine there is new.
    Connected(String),
    /// Rings a traced process had when the probes attached (ties ring
    /// pointers seen later to their fds).
    Discovered {
        /// Process.
        pid: u32,
        /// Its io_uring fds.
        fds: Vec<ringside_probes::RingFd>,
    },
}

/// Ring fill from fdinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingFill {
    /// Process.
    pub pid: u32,
    /// Ring fd.
    pub fd: i32,
    /// SQ entries waiting.
    pub sq_pending: Option<u32>,
    /// CQ entries waiting.
    pub cq_pending: Option<u32>,
    /// Overflowed CQEs.
    pub cq_overflow: Option<u64>,
}

/// Playback position.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplayPos {
    /// Items applied.
    pub pos: u64,
    /// Items in the recording.
    pub total: u64,
    /// Playing (vs paused).
    pub playing: bool,
    /// Speed factor (0 = as fast as possible).
    pub speed: f64,
}

/// The sending end sources use.
#[derive(Clone)]
pub struct Feed {
    tx: Sender<Msg>,
    dropped: Arc<AtomicU64>,
    lossless: bool,
    /// Every item also goes here (recording while watching); never blocks.
    recorder: Option<ringside_recordings::RecorderHandle>,
    /// The engine's time origin on CLOCK_MONOTONIC, as estimated for the recording.
    origin: Arc<AtomicU64>,
}

impl Feed {
    /// A feed and the draw loop's end. `capacity` bounds the queue.
    pub fn new(capacity: usize) -> (Feed, Receiver<Msg>, Arc<AtomicU64>) {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(16));
        let dropped = Arc::new(AtomicU64::new(0));
        (
            Feed {
                tx,
                dropped: dropped.clone(),
                lossless: false,
                recorder: None,
                origin: Arc::new(AtomicU64::new(u64::MAX)),
            },
            rx,
            dropped,
        )
    }

    /// The same queue, but sends wait for room (recordings).
    pub fn lossless(&self) -> Feed {
        Feed {
            lossless: true,
            ..self.clone()
        }
    }

    /// Also record every item into `rec` (before the UI queue, so the UI
    /// dropping never loses anything from the recording).
    pub fn record_into(&mut self, rec: ringside_recordings::RecorderHandle) {
        self.recorder = Some(rec);
    }

    /// Send an item already placed on the session's clock; false when
    /// the UI is gone.
    pub fn item_at(&self, item: Item, t: u64) -> bool {
        self.send(Msg::ItemAt(item, t))
    }

    /// Send an item; false when the UI is gone.
    pub fn item(&self, item: Item) -> bool {
        if let Some(r) = &self.recorder {
            if let Item::Engine(e) = &item {
                // A new engine starts a new clock; estimate its origin as
                // the recorder's own forwarder does (smallest receive time
                // minus t_ns).
                if matches!(e.event, ringside_engine::event::Event::RingSetup(_)) {
                    self.origin.store(u64::MAX, Ordering::Relaxed);
                }
                let o = ringside_recordings::format::mono_now_ns().saturating_sub(e.t_ns);
                if o < self.origin.load(Ordering::Relaxed) {
                    self.origin.store(o, Ordering::Relaxed);
                    r.push_clock(o);
                }
            }
            r.push(item.clone());
        }
        self.send(Msg::Item(item))
    }

    /// Send a status; false when the UI is gone. Statuses are rare: they
    /// wait briefly for room rather than being dropped.
    pub fn status(&self, s: Status) -> bool {
        match self
            .tx
            .send_timeout(Msg::Status(s), Duration::from_millis(200))
        {
            Ok(()) => true,
            Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => true,
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => false,
        }
    }

    /// A status that must arrive (a source's end): waits for room in the
    /// queue as long as it takes, where [`status`](Self::status) gives up
    /// after 200 ms. False when `stop` is set or the UI is gone.
    pub fn status_must_arrive(&self, s: Status, stop: &AtomicBool) -> bool {
        let mut m = Msg::Status(s);
        loop {
            match self.tx.send_timeout(m, Duration::from_millis(100)) {
                Ok(()) => return true,
                Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                    if stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    m = back;
                }
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    }

    fn send(&self, m: Msg) -> bool {
        if self.lossless {
            return self.tx.send(m).is_ok();
        }
        match self.tx.try_send(m) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// A command from the user to the source.
#[derive(Clone, Debug, PartialEq)]
pub enum Ctl {
    /// Pause, continue, step over a decision, breakpoints (live and replay).
    Debug(Command),
    /// Replay: go to an item index.
    SeekItem(u64),
    /// Replay: go to a time on the session timeline (ns).
    SeekTime(u64),
    /// Replay: one item forward.
    StepItem,
    /// Replay: one item back.
    StepBack,
    /// Replay: back to the previous decision.
    PrevDecision,
    /// Replay: faster (+1) or slower (-1).
    Speed(i32),
}

/// Why a source did not take a command (shown on the status line).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Seek and step back need a recording to go back in.
    #[error("seeking and stepping back work in replay only")]
    ReplayOnly,
    /// Kernel probes watch another process; nothing here can stop it.
    #[error("kernel probes only watch: the traced process cannot be paused from here")]
    WatchOnly,
    /// The socket's reader thread panicked holding the connection.
    #[error("connection lock")]
    LockPoisoned,
    /// No application serves on the socket (yet, or any more).
    #[error("not connected to the application")]
    NotConnected,
    /// Writing the command to the socket failed.
    #[error("sending: {0}")]
    Send(#[source] std::io::Error),
    /// The replay thread is gone.
    #[error("the replay ended")]
    ReplayEnded,
}

/// How the UI steers its source.
pub trait Controller: Send {
    /// Send a command.
    fn send(&mut self, c: Ctl) -> Result<(), ControlError>;
    /// What the source can do, for the help and status lines.
    fn kind(&self) -> ControlKind;
}

/// What a source can be asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    /// An engine (in this process or behind a socket): pause, step, breakpoints.
    Engine,
    /// A recording: the same plus seek and step back.
    Replay,
    /// Kernel probes only watch.
    WatchOnly,
}

/// The engine in this process.
pub struct EngineControl(pub Debugger);

impl Controller for EngineControl {
    fn send(&mut self, c: Ctl) -> Result<(), ControlError> {
        match c {
            Ctl::Debug(cmd) => {
                self.0.command(cmd);
                Ok(())
            }
            _ => Err(ControlError::ReplayOnly),
        }
    }
    fn kind(&self) -> ControlKind {
        ControlKind::Engine
    }
}

/// Kernel probes: nothing to steer.
pub struct WatchOnly;

impl Controller for WatchOnly {
    fn send(&mut self, _c: Ctl) -> Result<(), ControlError> {
        Err(ControlError::WatchOnly)
    }
    fn kind(&self) -> ControlKind {
        ControlKind::WatchOnly
    }
}

/// Wrap an engine record as an item.
pub fn engine_item(rec: EventRecord) -> Item {
    Item::Engine(Arc::new(rec))
}
