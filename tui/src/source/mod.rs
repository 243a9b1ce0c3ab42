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
        let m = match self.tx.try_send(m) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(m)) => m,
        };
        // What gives the view its shape waits briefly for room: shed, a
        // chain would never end (a live run of 64 NOP chains the view
        // could not keep up with ended 42 of them).
        if keeps_shape(&m) {
            match self.tx.send_timeout(m, SHAPE_WAIT) {
                Ok(()) => return true,
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return false,
                Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => {}
            }
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// How long an item the view's shape needs waits for room in a full UI
/// queue before it is dropped and counted like any other.
const SHAPE_WAIT: Duration = Duration::from_millis(50);

/// The items a UI that cannot keep up still shows: what opens or ends a
/// ring, a program, a chain or a run, the engine's pauses, and the counts
/// of what other queues lost. The rest (steps, requests, decisions) is
/// shed first. Rare: a few per chain.
fn keeps_shape(m: &Msg) -> bool {
    use ringside_engine::event::Event as E;
    use ringside_probes::ProbeEvent as P;
    let (Msg::Item(item) | Msg::ItemAt(item, _)) = m else {
        return true;
    };
    match item {
        Item::Lost { .. } => true,
        Item::Engine(rec) => match &rec.event {
            E::RingSetup(_)
            | E::ProgramLoaded(_)
            | E::RingProgram { .. }
            | E::ChainCreated { .. }
            | E::ChainFinished { .. }
            | E::Shutdown { .. }
            | E::Paused { .. }
            | E::Resumed => true,
            E::ChainStarted { .. }
            | E::StepAdded { .. }
            | E::Submitted { .. }
            | E::Completed { .. }
            | E::Decision(_)
            | E::Cancelled { .. }
            | E::Unlinked { .. }
            | E::AppCompletion(_)
            | E::MapUpdate { .. } => false,
        },
        Item::Probe(ev) => match ev {
            P::Create { .. } | P::Ring(_) | P::NewTask { .. } => true,
            P::SubmitReq { .. }
            | P::Complete { .. }
            | P::Link { .. }
            | P::FailLink { .. }
            | P::ReqFailed { .. }
            | P::CqeOverflow { .. }
            | P::ShortWrite { .. }
            | P::PollArm { .. }
            | P::QueueAsyncWork { .. }
            | P::TaskWorkRun { .. } => false,
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use ringside_engine::event::{Event, Outcome};

    fn engine(seq: u64, event: Event) -> Item {
        Item::Engine(Arc::new(EventRecord {
            seq,
            t_ns: seq,
            event,
        }))
    }

    fn completed(seq: u64) -> Item {
        engine(
            seq,
            Event::Completed {
                chain: 1,
                step: seq as u32,
                res: 0,
                flags: 0,
                latency_ns: 0,
                short: false,
            },
        )
    }

    fn finished(seq: u64) -> Item {
        engine(
            seq,
            Event::ChainFinished {
                chain: 1,
                outcome: Outcome::Completed,
                res: 0,
                steps: 1,
            },
        )
    }

    fn seqs(rx: &Receiver<Msg>) -> Vec<u64> {
        rx.try_iter()
            .filter_map(|m| match m {
                Msg::Item(Item::Engine(r)) => Some(r.seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_full_ui_queue_sheds_steps_and_makes_room_for_a_chain_s_end() {
        let (feed, rx, dropped) = Feed::new(16);
        for i in 0..16 {
            assert!(feed.item(completed(i)));
        }
        // Full: a step is shed at once and counted.
        assert!(feed.item(completed(16)));
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        // A chain's end waits for the reader to make room.
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Ok(Msg::Item(Item::Engine(r))) = rx.recv() {
                got.push(r.seq);
                if matches!(r.event, Event::ChainFinished { .. }) {
                    break;
                }
            }
            got
        });
        assert!(feed.item(finished(17)));
        // Gone, so that a reader still waiting sees the end of the queue.
        drop(feed);
        let got = reader.join().unwrap();
        assert_eq!(got.last(), Some(&17), "{got:?}");
        assert_eq!(got.len(), 17, "the 16 queued steps, then the end: {got:?}");
    }

    #[test]
    fn a_chain_s_end_that_finds_no_room_in_time_is_counted_not_lost_silently() {
        let (feed, rx, dropped) = Feed::new(16);
        for i in 0..16 {
            feed.item(completed(i));
        }
        // Nobody reads: the end waits its while, then is dropped and counted.
        assert!(feed.item(finished(16)));
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert_eq!(seqs(&rx), (0..16).collect::<Vec<_>>());
    }

    #[test]
    fn what_the_view_s_shape_needs_is_told_from_what_can_be_shed() {
        assert!(keeps_shape(&Msg::Item(finished(0))));
        assert!(!keeps_shape(&Msg::Item(completed(0))));
        assert!(keeps_shape(&Msg::Item(Item::Lost {
            queue: "engine".into(),
            count: 3
        })));
    }
}
