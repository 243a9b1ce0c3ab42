//! `ringside replay FILE`: a recording as a source.
//!
//! The collector thread plays the recorded items into the same feed a live
//! source uses, at the recorded pace (scaled) or stepwise, and obeys the
//! same debugger commands (pause, continue, step over a decision,
//! breakpoints, checked with the engine's own [`Breakpoint::hits`]), plus
//! seek and step back: going back resets the model and plays the items
//! from the start up to the target, as fast as the UI folds them.

use crate::source::{ControlError, ControlKind, Controller, Ctl, Feed, ReplayPos, Status};
use crossbeam_channel::{Receiver, Sender};
use ringside_engine::debug::{Breakpoint, Command};
use ringside_engine::event::{Event, EventRecord};
use ringside_recordings::session::Clock;
use ringside_recordings::{Item, ReadError};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Speeds `<` and `>` step through (0 = as fast as possible).
pub const SPEEDS: [f64; 9] = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0, 0.0];

/// Steers the replay thread.
pub struct ReplayControl {
    tx: Sender<Ctl>,
}

impl Controller for ReplayControl {
    fn send(&mut self, c: Ctl) -> Result<(), ControlError> {
        self.tx.send(c).map_err(|_| ControlError::ReplayEnded)
    }
    fn kind(&self) -> ControlKind {
        ControlKind::Replay
    }
}

/// Read a recording into memory: a ringside recording (via the recordings
/// crate's reader) or JSON Lines as `--headless` / `export --format jsonl`
/// print. Returns the items and notes about damage skipped.
pub fn load(path: &Path) -> anyhow::Result<(Vec<Item>, Vec<String>)> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    load_bytes(&bytes, &path.display().to_string())
}

/// Parse recording bytes (see [`load`]).
pub fn load_bytes(bytes: &[u8], name: &str) -> anyhow::Result<(Vec<Item>, Vec<String>)> {
    if bytes.first() == Some(&b'{') {
        return Ok((load_jsonl(bytes, name)?, Vec::new()));
    }
    load_recording(bytes, name)
}

/// A ringside recording: every item the reader can get, going on past
/// damaged records (each is a note).
pub fn load_recording(bytes: &[u8], name: &str) -> anyhow::Result<(Vec<Item>, Vec<String>)> {
    use ringside_recordings::{ReadOptions, Reader};
    let mut r = Reader::new(
        bytes,
        name,
        ReadOptions {
            resync: true,
            ..ReadOptions::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut items = Vec::new();
    let mut notes = Vec::new();
    for e in r.by_ref() {
        match e {
            Ok(entry) => items.push(entry.item),
            Err(e) => notes.push(format!("skipped damage: {e}")),
        }
    }
    match r.stop() {
        Some(ringside_recordings::Stop::End { dropped, .. }) if *dropped > 0 => notes.push(
            format!("the recorder dropped {dropped} items while recording (shown as lost)"),
        ),
        Some(ringside_recordings::Stop::Error(e)) => notes.push(format!("stopped reading: {e}")),
        _ => {}
    }
    if items.is_empty() && !notes.is_empty() {
        anyhow::bail!("{name}: no items could be read ({})", notes.join("; "));
    }
    Ok((items, notes))
}

/// JSON Lines: engine events as `--headless` prints them
/// (`{"seq":..,"t_ns":..,"kind":..}`), or serialized [`Item`]s. Lines of
/// other kinds (summaries) are skipped.
pub fn load_jsonl(bytes: &[u8], name: &str) -> anyhow::Result<Vec<Item>> {
    let text = std::str::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |e: serde_json::Error| anyhow::anyhow!("{name}:{}: {e}", i + 1);
        let mut v: serde_json::Value = serde_json::from_str(line).map_err(at)?;
        if v.get("source").is_some() {
            out.push(serde_json::from_value(v).map_err(at)?);
            continue;
        }
        let Some(obj) = v.as_object_mut() else {
            continue;
        };
        let seq = obj.remove("seq").and_then(|x| x.as_u64());
        let t_ns = obj.remove("t_ns").and_then(|x| x.as_u64());
        let (Some(seq), Some(t_ns)) = (seq, t_ns) else {
            if obj.get("kind").and_then(|k| k.as_str()) == Some("lost") {
                let count = obj.get("events").and_then(|x| x.as_u64()).unwrap_or(0);
                out.push(Item::Lost {
                    queue: "engine".into(),
                    count,
                });
            }
            continue;
        };
        let event: Event = serde_json::from_value(v).map_err(at)?;
        out.push(Item::Engine(Arc::new(EventRecord { seq, t_ns, event })));
    }
    Ok(out)
}

/// Where replayed items come from: a recording file read on demand, or items
/// in memory (JSON Lines).
pub trait Tape {
    /// Items on the tape.
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Position the tape so that `next` returns item `at`; a file tape
    /// says where the recording could not be read again.
    fn rewind(&mut self, at: usize) -> Result<(), ReadError>;
    /// The next item (None at the end), with its session time when the
    /// tape knows it (a recording's clock; [`Clock`] stamps the others).
    fn next_item(&mut self) -> Option<(Item, Option<u64>)>;
    /// Item indexes of the decisions, ascending.
    fn decisions(&self) -> Vec<usize>;
}

/// Items in memory.
pub struct VecTape {
    items: Vec<Item>,
    pos: usize,
}

impl VecTape {
    /// A tape of `items`.
    pub fn new(items: Vec<Item>) -> VecTape {
        VecTape { items, pos: 0 }
    }
}

impl Tape for VecTape {
    fn len(&self) -> usize {
        self.items.len()
    }
    fn rewind(&mut self, at: usize) -> Result<(), ReadError> {
        self.pos = at.min(self.items.len());
        Ok(())
    }
    fn next_item(&mut self) -> Option<(Item, Option<u64>)> {
        let it = self.items.get(self.pos).cloned();
        self.pos += usize::from(it.is_some());
        it.map(|i| (i, None))
    }
    fn decisions(&self) -> Vec<usize> {
        self.items
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i, Item::Engine(r) if matches!(r.event, Event::Decision(_))))
            .map(|(k, _)| k)
            .collect()
    }
}

/// A ringside recording read on demand through the recordings crate's
/// index (about 16 bytes per item in memory, whatever the file's size).
pub struct FileTape {
    replay: ringside_recordings::Replay,
    items: Option<ringside_recordings::replay::Items>,
}

impl FileTape {
    /// Open and index `path` (going on past damaged records); notes say
    /// what was skipped.
    pub fn open(path: &Path) -> anyhow::Result<(FileTape, Vec<String>)> {
        let replay = ringside_recordings::Replay::open_with(
            path,
            ringside_recordings::ReadOptions {
                resync: true,
                ..Default::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(why) = replay.refusal() {
            anyhow::bail!("{}: refused: {why}", path.display());
        }
        let mut notes: Vec<String> = replay
            .errors()
            .iter()
            .map(|e| format!("skipped damage: {e}"))
            .collect();
        match replay.stop() {
            ringside_recordings::Stop::End { dropped, .. } if *dropped > 0 => notes.push(format!(
                "the recorder dropped {dropped} items while recording (shown as lost)"
            )),
            ringside_recordings::Stop::Error(e) => notes.push(format!("stopped reading: {e}")),
            _ => {}
        }
        if replay.is_empty() && !notes.is_empty() {
            anyhow::bail!(
                "{}: no items could be read ({})",
                path.display(),
                notes.join("; ")
            );
        }
        Ok((
            FileTape {
                replay,
                items: None,
            },
            notes,
        ))
    }
}

impl Tape for FileTape {
    fn len(&self) -> usize {
        self.replay.len() as usize
    }
    fn rewind(&mut self, at: usize) -> Result<(), ReadError> {
        self.items = Some(self.replay.iter_from(at as u64)?);
        Ok(())
    }
    fn next_item(&mut self) -> Option<(Item, Option<u64>)> {
        if self.items.is_none() {
            self.rewind(0).ok()?;
        }
        loop {
            match self.items.as_mut()?.next()? {
                Ok(e) => return Some((e.item, self.replay.time_of(e.index))),
                Err(_) => continue, // damage: reported when opened
            }
        }
    }
    fn decisions(&self) -> Vec<usize> {
        self.replay
            .decisions()
            .iter()
            .map(|&(_, index)| index as usize)
            .collect()
    }
}

struct Player {
    tape: Box<dyn Tape>,
    len: usize,
    decisions: Vec<usize>,
    /// The next item, fetched ahead, with its session time.
    pending: Option<(Item, u64)>,
    /// Places items the tape has no time for (JSON Lines).
    clock: Clock,
    last_t: u64,
    last_decision: Option<u64>,
    feed: Feed,
    pos: usize,
    playing: bool,
    to_next_decision: bool,
    speed: usize,
    breakpoints: Vec<Breakpoint>,
    last_status: Instant,
}

impl Player {
    fn status(&mut self) {
        self.last_status = Instant::now();
        self.feed.status(Status::Replay(ReplayPos {
            pos: self.pos as u64,
            total: self.len as u64,
            playing: self.playing,
            speed: SPEEDS[self.speed],
        }));
    }

    /// The next item and its time, without taking it.
    fn peek(&mut self) -> Option<u64> {
        if self.pending.is_none() {
            let (it, t) = self.tape.next_item()?;
            let t = t.unwrap_or_else(|| self.clock.stamp(&it));
            self.pending = Some((it, t));
        }
        self.pending.as_ref().map(|p| p.1)
    }

    /// Send the next item; false when the UI is gone.
    fn send_one(&mut self) -> bool {
        if self.peek().is_none() {
            // The tape ended early (damage at the end).
            self.len = self.pos;
            return true;
        }
        let (item, t) = self.pending.take().expect("peeked");
        self.pos += 1;
        self.last_t = t;
        let decision = match &item {
            Item::Engine(rec) => match &rec.event {
                Event::Decision(d) => Some(d.clone()),
                _ => None,
            },
            _ => None,
        };
        if !self.feed.item_at(item, t) {
            return false;
        }
        if let Some(d) = decision {
            self.last_decision = Some(d.seq);
            let hit = self.breakpoints.iter().find(|b| b.hits(&d));
            if hit.is_some() || self.to_next_decision {
                let reason = match hit {
                    Some(b) => format!("breakpoint: {}", b.describe()),
                    None => "stepped".into(),
                };
                self.playing = false;
                self.to_next_decision = false;
                self.feed.status(Status::Stopped {
                    reason,
                    decision: Some(d.seq),
                });
                self.status();
            }
        }
        true
    }

    fn restart(&mut self) -> bool {
        if !self.feed.status(Status::Reset) {
            return false;
        }
        if let Err(e) = self.tape.rewind(0) {
            self.feed
                .status(Status::Notice(format!("cannot rewind: {e}")));
        }
        self.pos = 0;
        self.pending = None;
        self.clock = Clock::unanchored();
        self.last_t = 0;
        self.last_decision = None;
        true
    }

    /// Go to item `target` (items before it applied, none after).
    fn seek(&mut self, target: usize) -> bool {
        let target = target.min(self.len);
        self.playing = false;
        if target < self.pos && !self.restart() {
            return false;
        }
        self.skip_while(|r| r.pos < target && r.pos < r.len)
    }

    /// Go to the first item later than `t` on the session timeline.
    fn seek_time(&mut self, t: u64) -> bool {
        self.playing = false;
        if self.last_t > t && !self.restart() {
            return false;
        }
        self.skip_while(|r| r.peek().is_some_and(|nt| nt <= t))
    }

    /// Send items while `more` holds, with breakpoints and "to the next
    /// decision" off (a seek passes over them); false when the UI is gone.
    fn skip_while(&mut self, mut more: impl FnMut(&mut Self) -> bool) -> bool {
        let bps = std::mem::take(&mut self.breakpoints);
        let to_next = std::mem::replace(&mut self.to_next_decision, false);
        while more(self) {
            if !self.send_one() {
                return false;
            }
        }
        self.breakpoints = bps;
        self.to_next_decision = to_next;
        self.status();
        true
    }

    fn handle(&mut self, c: Ctl) -> bool {
        match c {
            Ctl::Debug(Command::Pause) => self.playing = false,
            Ctl::Debug(Command::Continue) => {
                self.to_next_decision = false;
                self.playing = self.pos < self.len;
            }
            Ctl::Debug(Command::Step) => {
                self.to_next_decision = true;
                self.playing = self.pos < self.len;
            }
            Ctl::Debug(Command::SetBreakpoints { breakpoints }) => self.breakpoints = breakpoints,
            Ctl::Debug(Command::Detach) => {
                self.breakpoints.clear();
            }
            Ctl::StepItem => {
                self.playing = false;
                if self.pos < self.len && !self.send_one() {
                    return false;
                }
            }
            Ctl::StepBack => {
                let t = self.pos.saturating_sub(1);
                return self.seek(t);
            }
            Ctl::PrevDecision => {
                // The decision before the last one applied becomes the last one.
                let k = self.decisions.partition_point(|&i| i < self.pos);
                match k.checked_sub(2).map(|j| self.decisions[j]) {
                    Some(i) => {
                        if !self.seek(i + 1) {
                            return false;
                        }
                        if let Some(seq) = self.last_decision {
                            self.feed.status(Status::Stopped {
                                reason: "stepped back".into(),
                                decision: Some(seq),
                            });
                        }
                    }
                    None => {
                        self.feed
                            .status(Status::Notice("no earlier decision".into()));
                    }
                }
            }
            Ctl::SeekItem(n) => return self.seek(n as usize),
            Ctl::SeekTime(t) => return self.seek_time(t),
            Ctl::Speed(d) => {
                self.speed =
                    (self.speed as i64 + d as i64).clamp(0, SPEEDS.len() as i64 - 1) as usize;
            }
        }
        self.status();
        true
    }
}

/// Something that opens a tape on the replay thread (a recording's index
/// holds loaded programs, which stay on the thread that loaded them).
pub type TapeMaker = Box<dyn FnOnce() -> anyhow::Result<Box<dyn Tape>> + Send>;

/// Play `items` into `feed`. Starts playing at 1x unless `paused`.
pub fn spawn(
    items: Vec<Item>,
    feed: Feed,
    stop: Arc<AtomicBool>,
    paused: bool,
) -> (ReplayControl, JoinHandle<()>) {
    spawn_tape(
        Box::new(move || Ok(Box::new(VecTape::new(items)) as Box<dyn Tape>)),
        feed,
        stop,
        paused,
    )
}

/// Play the tape `make` opens into `feed`.
pub fn spawn_tape(
    make: TapeMaker,
    feed: Feed,
    stop: Arc<AtomicBool>,
    paused: bool,
) -> (ReplayControl, JoinHandle<()>) {
    let (tx, rx) = crossbeam_channel::unbounded::<Ctl>();
    let h = std::thread::Builder::new()
        .name("replay".into())
        .spawn(move || {
            let feed = feed.lossless();
            let tape = match make() {
                Ok(t) => t,
                Err(e) => {
                    feed.status(Status::Ended(format!("{e:#}")));
                    return;
                }
            };
            let mut p = Player {
                len: tape.len(),
                decisions: tape.decisions(),
                tape,
                pending: None,
                clock: Clock::unanchored(),
                last_t: 0,
                last_decision: None,
                feed,
                pos: 0,
                playing: !paused,
                to_next_decision: false,
                speed: 3,
                breakpoints: Vec::new(),
                last_status: Instant::now(),
            };
            p.status();
            run(&mut p, &rx, &stop);
        })
        .expect("spawning the replay thread");
    (ReplayControl { tx }, h)
}

/// Open `path` for replay: a ringside recording read on demand, or JSON
/// Lines loaded into memory. Notes (damage skipped) go to the status line.
pub fn open(path: &Path, feed: &Feed) -> anyhow::Result<TapeMaker> {
    let mut head = [0u8; 1];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    if n == 1 && head[0] == b'{' {
        let (items, _) = load(path)?;
        return Ok(Box::new(move || {
            Ok(Box::new(VecTape::new(items)) as Box<dyn Tape>)
        }));
    }
    // Check it opens before the UI starts; the thread opens its own.
    let (_, notes) = FileTape::open(path)?;
    for n in notes {
        feed.status(Status::Notice(n));
    }
    let path = path.to_path_buf();
    Ok(Box::new(move || {
        FileTape::open(&path).map(|(t, _)| Box::new(t) as Box<dyn Tape>)
    }))
}

fn run(p: &mut Player, rx: &Receiver<Ctl>, stop: &AtomicBool) {
    let mut ended_said = false;
    while !stop.load(Ordering::Relaxed) {
        // Commands first.
        let wait = if p.playing {
            Duration::ZERO
        } else {
            Duration::from_millis(100)
        };
        match rx.recv_timeout(wait) {
            Ok(c) => {
                if !p.handle(c) {
                    return;
                }
                while let Ok(c) = rx.try_recv() {
                    if !p.handle(c) {
                        return;
                    }
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
        if !p.playing {
            continue;
        }
        if p.pos >= p.len {
            p.playing = false;
            p.status();
            if !ended_said {
                ended_said = true;
                p.feed.status(Status::Notice(
                    "end of the recording: , N :seek go back".into(),
                ));
            }
            continue;
        }
        ended_said = false;
        // Pace: the recorded gap, scaled, at most 250 ms.
        let speed = SPEEDS[p.speed];
        if speed > 0.0
            && p.pos > 0
            && let Some(t) = p.peek()
        {
            let gap = t.saturating_sub(p.last_t);
            let d =
                Duration::from_nanos((gap as f64 / speed) as u64).min(Duration::from_millis(250));
            if d > Duration::from_micros(50) {
                std::thread::sleep(d);
            }
        }
        if !p.send_one() {
            return;
        }
        if p.last_status.elapsed() > Duration::from_millis(100) {
            p.status();
        }
    }
}
