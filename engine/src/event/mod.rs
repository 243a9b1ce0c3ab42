//! The event stream: everything the engine does, as typed events.
//!
//! The UI, recordings and `--headless` output all consume these; live and
//! replay differ only in where the events come from. Emission costs one
//! branch when nobody subscribes: events are built only inside
//! [`EventBus::emit`]'s closure, after the subscriber check.

pub use ringside_schema::decision::Detail;
pub use ringside_schema::event::*;

use crate::clock;
use ringside_schema::decision::DecisionRecord;

use crossbeam_channel::{RecvTimeoutError, TryRecvError};
use crossbeam_utils::atomic::AtomicCell;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a subscriber's queue does when full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the event and count it (the engine never waits: UI, recordings).
    Drop,
    /// Wait for room (lossless; the engine slows to the consumer: scripts).
    Block,
}

/// Events go to subscribers in batches of at most this many: one channel
/// operation and one allocation per batch instead of per event. Between
/// two channel operations on one queue the reader's polling moves the
/// queue's cache lines to the other CPU and back, which made the channel
/// the dearest part of a watched step.
const BATCH: usize = 256;

/// What a new batch has room for. Batches grow to what the engine puts in
/// them and keep it on their way back; one chain's step is 4 events, and a
/// batch made for 256 (24 KiB of fresh pages) each step was most of a
/// watched step there.
const FIRST_BATCH: usize = 16;

/// One batch on its way to a subscriber. Decision records travel beside
/// the events: the reader boxes a copy of each as it hands the event out,
/// and the batch comes back with the records' buffers, which the engine
/// swaps with its working record. A watched decision then allocates
/// nothing on the engine's thread; before, its box and vectors were
/// allocated there and freed on the reader's, the allocator's slow path
/// (a fifth of a watched NOP step).
///
/// The events of a batch the engine fills have consecutive numbers, and
/// come in runs of one time each (one reaped batch of completions, and
/// the steps it issues): the batch says the first number once and each
/// run's time once, and an item is 80 bytes instead of 96 (the copying
/// into memory the reader's CPU touched last is what watching costs).
#[derive(Clone, Default)]
struct Batch {
    /// The number of `items[0]`; the others follow one by one.
    seq: u64,
    /// When the items of the first run happened.
    t_ns: u64,
    /// Later runs: (index of the run's first item, its time), in order.
    runs: Vec<(u32, u64)>,
    /// The time of the last run (checked at every event).
    last_t: u64,
    /// Each item's own number and time instead (older events a new
    /// subscriber is sent first).
    stamps: Option<Box<[(u64, u64)]>>,
    items: Vec<Item>,
    /// The records of the batch's [`Item::Decision`]s, and spare ones with
    /// their buffers (from an earlier trip) past those. Boxed, so that the
    /// engine swaps a pointer, not 328 bytes.
    #[allow(clippy::vec_box)]
    decisions: Vec<Box<DecisionRecord>>,
}

/// An event in a [`Batch`].
#[derive(Clone)]
enum Item {
    Event(Event),
    /// An [`Event::Decision`] whose record is `decisions[slot]`.
    Decision(u32),
}

impl Batch {
    fn with_capacity(n: usize) -> Batch {
        Batch {
            items: Vec::with_capacity(n),
            ..Batch::default()
        }
    }

    /// Start a run of items of time `t_ns` (out of line: once a reaped
    /// batch at most).
    #[inline(never)]
    fn new_run(&mut self, t_ns: u64) {
        self.runs.push((self.items.len() as u32, t_ns));
        self.last_t = t_ns;
    }

    /// Empty, its room kept.
    fn clear(&mut self) {
        self.items.clear();
        self.runs.clear();
        self.stamps = None;
    }
}

/// Where the engine leaves a partly filled batch between two reaped
/// batches of completions when one subscriber listens: the engine takes it
/// back at its next event, and the reader takes it when its queue has run
/// dry (at once from [`Subscription::try_recv`], after a poll interval
/// from [`Subscription::recv_timeout`]). Lock-free: a pointer-sized cell.
type Parked = Arc<AtomicCell<Option<Box<Batch>>>>;

/// The batch a [`Subscription`] is reading.
#[derive(Default)]
struct Reading {
    /// The batch, its items in a queue (taken from the front, so that the
    /// reader writes nothing into the lines the engine fills next).
    batch: Box<Batch>,
    items: VecDeque<Item>,
    /// Items taken.
    taken: usize,
    /// The time of the run being read, the next run, and the item it
    /// begins at (`usize::MAX`: none).
    t_ns: u64,
    next_run: usize,
    next_run_at: usize,
}

impl Reading {
    /// Start reading `batch`, whose items are `items`.
    fn new(batch: Box<Batch>, items: VecDeque<Item>) -> Reading {
        let mut r = Reading {
            t_ns: batch.t_ns,
            batch,
            items,
            taken: 0,
            next_run: 0,
            next_run_at: 0,
        };
        r.next_run_at = r.run_start(0);
        r
    }

    fn run_start(&self, run: usize) -> usize {
        self.batch
            .runs
            .get(run)
            .map_or(usize::MAX, |r| r.0 as usize)
    }

    /// The number and time of the next item: the reader goes through a
    /// batch in order, so its runs are walked, not searched.
    #[inline]
    fn next_stamp(&mut self) -> (u64, u64) {
        let i = self.taken;
        if let Some(s) = &self.batch.stamps {
            return s.get(i).copied().unwrap_or_default();
        }
        while i >= self.next_run_at {
            self.t_ns = self.batch.runs[self.next_run].1;
            self.next_run += 1;
            self.next_run_at = self.run_start(self.next_run);
        }
        (self.batch.seq + i as u64, self.t_ns)
    }
}

/// The engine's end of a subscription. The handoff is a ring with a slot
/// per event of the queue's bound, so that a queue of one-event batches
/// (events of different times) holds as many events as one of full
/// batches: the bound is in events and nothing else binds first. Slots
/// hold boxes (8 bytes each, allocated up front; a batch in place was 80).
struct Subscriber {
    tx: rtrb::Producer<Box<Batch>>,
    /// Batches the reader emptied, to be filled again: a fresh batch each
    /// time costs its pages' first touch, a watched step's dearest part.
    recycled: rtrb::Consumer<Box<Batch>>,
    /// Events sent, and the reader's count of events taken as last seen:
    /// what is queued is their difference (see [`Counter`]).
    sent: u64,
    taken: Counter,
    /// Room for events in the batches taken back from `recycled` (the
    /// reader bounds what waits there by what it sent back minus this).
    reused: Arc<AtomicU64>,
    reused_total: u64,
    capacity: usize,
    overflow: Overflow,
    dropped: Arc<AtomicU64>,
    detail: Detail,
    /// The batch left for the reader between reaps, and its events then.
    parked: Parked,
    parked_len: u64,
}

/// A running total one side of a subscription stores and the other reads,
/// with the reader's last reading cached: it looks again only when the
/// cached value says the queue is full. A count both sides modify (an
/// atomic add on one, a subtract on the other) moved its cache line
/// between the CPUs twice a batch, and with the channel's own lines that
/// was most of what watching cost a chain stepping alone (docs/bench.md).
struct Counter {
    shared: Arc<AtomicU64>,
    seen: u64,
}

impl Counter {
    fn new(shared: Arc<AtomicU64>) -> Counter {
        Counter { shared, seen: 0 }
    }

    /// The total as last read.
    fn cached(&self) -> u64 {
        self.seen
    }

    /// Read the total afresh.
    fn refresh(&mut self) -> u64 {
        self.seen = self.shared.load(Ordering::Acquire);
        self.seen
    }
}

/// The longest queue a subscriber gets, in events (a larger ask is cut
/// to this): 4M events hold 320 MiB and more, far more than any reader
/// catches up on.
const MAX_QUEUE: usize = 1 << 22;

/// A subscription: the receiving end and its drop counter.
///
/// Read it with [`Subscription::recv_timeout`], [`Subscription::iter`] or
/// [`Subscription::try_iter`]: they poll and never park, because a reader
/// parked on the channel makes the engine pay a futex wake-up on every
/// batch it sends (about 1 us, more than the rest of a step).
pub struct Subscription {
    ring: RefCell<ReaderRing>,
    capacity: usize,
    /// The batch being read.
    batch: RefCell<Reading>,
    /// Events dropped because the queue was full.
    pub dropped: Arc<AtomicU64>,
}

/// The reader's ends of the handoff, and its totals (see [`Counter`]).
struct ReaderRing {
    rx: rtrb::Consumer<Box<Batch>>,
    recycle: rtrb::Producer<Box<Batch>>,
    /// Events taken, stored for the engine.
    taken: Arc<AtomicU64>,
    taken_total: u64,
    /// Room sent back, and the engine's total of room taken back.
    returned: u64,
    reused: Counter,
    /// The engine's parked batch, and one taken from there that waits for
    /// the ring's older batches.
    parked: Parked,
    held: Option<Box<Batch>>,
    /// Since when the ring has been found empty.
    empty_since: Option<Instant>,
}

/// How long a queue stays empty before a [`Subscription::recv_timeout`]
/// takes the engine's parked batch: a reader that keeps up with a busy
/// engine finds full batches instead and leaves the engine's to fill.
const TAKE_PARKED_AFTER: Duration = POLL;

impl ReaderRing {
    /// The next batch, or why there is none; `take_parked`: whether an
    /// empty ring's reader takes the engine's parked batch now or only
    /// once the ring has been empty for [`TAKE_PARKED_AFTER`].
    fn next(&mut self, take_parked: bool) -> Result<Box<Batch>, TryRecvError> {
        if let Some(held) = &self.held {
            // The ring's batches pushed before the parked one was taken
            // are older than it: they go first.
            if self.rx.peek().is_ok_and(|b| b.seq < held.seq)
                && let Ok(b) = self.rx.pop()
            {
                return Ok(b);
            }
            return self.held.take().ok_or(TryRecvError::Empty);
        }
        match self.rx.pop() {
            Ok(b) => {
                self.empty_since = None;
                Ok(b)
            }
            // Pushed before the engine's end went: read it all first (a
            // bus that goes sends its parked batch first).
            Err(_) if self.rx.is_abandoned() => {
                self.rx.pop().map_err(|_| TryRecvError::Disconnected)
            }
            Err(_) => {
                let now = Instant::now();
                let since = *self.empty_since.get_or_insert(now);
                if !take_parked && now.duration_since(since) < TAKE_PARKED_AFTER {
                    return Err(TryRecvError::Empty);
                }
                // Taken, it is the newest batch there is: any older one
                // pushed meanwhile is in the ring now (the engine pushes
                // before it parks), and goes first.
                match self.parked.take() {
                    Some(b) => {
                        self.empty_since = None;
                        self.held = Some(b);
                        self.next(take_parked)
                    }
                    None => Err(TryRecvError::Empty),
                }
            }
        }
    }

    /// Send an emptied batch back, unless as much room as the queue holds
    /// waits there already.
    fn give_back(&mut self, batch: Box<Batch>, capacity: usize) {
        let room = batch.items.capacity() as u64;
        if room == 0 {
            return;
        }
        let fits = |reused: u64| self.returned - reused + room <= capacity as u64;
        if !fits(self.reused.cached()) && !fits(self.reused.refresh()) {
            return;
        }
        if self.recycle.push(batch).is_ok() {
            self.returned += room;
        }
    }
}

/// How long a polling reader sleeps when the queue is empty: short against a
/// frame (16 ms) and long against the engine's event rate.
const POLL: Duration = Duration::from_millis(1);

impl Subscription {
    /// The next event if one is queued.
    pub fn try_recv(&self) -> Result<Arc<EventRecord>, TryRecvError> {
        self.next_event(true)
    }

    /// The next event if one is queued; `take_parked` as in [`ReaderRing::next`].
    fn next_event(&self, take_parked: bool) -> Result<Arc<EventRecord>, TryRecvError> {
        let mut batch = self.batch.borrow_mut();
        loop {
            if let Some(item) = batch.items.pop_front() {
                let (seq, t_ns) = batch.next_stamp();
                batch.taken += 1;
                let event = match item {
                    Item::Event(e) => e,
                    Item::Decision(slot) => match batch.batch.decisions.get(slot as usize) {
                        Some(rec) => Event::Decision(rec.clone()),
                        None => unreachable!("a decision item names a record of its batch"),
                    },
                };
                return Ok(Arc::new(EventRecord { seq, t_ns, event }));
            }
            let mut ring = self.ring.borrow_mut();
            let next = ring.next(take_parked)?;
            ring.taken_total += next.items.len() as u64;
            ring.taken.store(ring.taken_total, Ordering::Release);
            let mut next = next;
            let items = VecDeque::from(std::mem::take(&mut next.items));
            let next = Reading::new(next, items);
            let done = std::mem::replace(&mut *batch, next);
            // A reader that sleeps a poll interval (1 ms) finds hundreds
            // of batches at once; they must all come back, or the engine
            // fills new ones without spare records.
            let mut back = done.batch;
            back.items = Vec::from(done.items);
            back.clear();
            ring.give_back(back, self.capacity);
        }
    }

    /// Every event queued now, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = Arc<EventRecord>> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }

    /// The next event, waiting at most `timeout`; polls, never parks.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Arc<EventRecord>, RecvTimeoutError> {
        // The clock is read only once the queue is found empty.
        let mut deadline = None;
        loop {
            // A queue found empty twice a poll interval apart takes the
            // engine's parked batch (an engine that went quiet).
            match self.next_event(false) {
                Ok(rec) => return Ok(rec),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    let deadline = *deadline.get_or_insert(now + timeout);
                    if now >= deadline {
                        // A wait shorter than the poll interval still
                        // gets what the engine parked.
                        return self.next_event(true).map_err(|_| RecvTimeoutError::Timeout);
                    }
                    std::thread::sleep(POLL.min(deadline - now));
                }
            }
        }
    }

    /// Events dropped since `reported` (then brought up to date), if any:
    /// what a reader reports as lost.
    pub fn newly_dropped(&self, reported: &mut u64) -> Option<u64> {
        let d = self.dropped.load(Ordering::Relaxed);
        (d > *reported)
            .then(|| std::mem::replace(reported, d))
            .map(|r| d - r)
    }

    /// Every event until the engine drops its end; polls, never parks.
    pub fn iter(&self) -> impl Iterator<Item = Arc<EventRecord>> + '_ {
        std::iter::from_fn(move || {
            loop {
                match self.recv_timeout(Duration::from_secs(3600)) {
                    Ok(rec) => return Some(rec),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return None,
                }
            }
        })
    }
}

/// Fan-out of events to subscribers.
///
/// Events wait in a batch until it is full, the engine ends a batch of
/// completions ([`EventBus::end_batch`]), or the bus is dropped; an event
/// emitted outside a batch goes out at once. With one subscriber, a batch
/// the engine ends with room left is parked instead, for the engine to
/// fill on or the reader to take when its queue runs dry ([`Parked`]): a
/// reader waits at most about two poll intervals for an engine gone quiet.
pub struct EventBus {
    subs: Vec<Subscriber>,
    /// The most any subscriber asked decisions to hold.
    detail: Detail,
    /// Inside a batch ([`EventBus::begin_batch`]): the time every event of
    /// the batch carries, read at its first use.
    batch_now: Option<Option<u64>>,
    /// Events not sent yet, once a batch is ready for them.
    pending: Option<Box<Batch>>,
    /// `pending` is parked in the only subscriber's cell instead.
    parked: bool,
    /// Decision records in `pending` (the rest of its `decisions` are spares).
    decisions: usize,
    /// When the bus started ([`clock::now`]).
    start: u64,
    seq: u64,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl Drop for EventBus {
    fn drop(&mut self) {
        self.flush();
    }
}

impl EventBus {
    /// A bus with no subscribers; time starts now.
    pub fn new() -> EventBus {
        EventBus {
            subs: Vec::new(),
            detail: Detail::Inputs,
            batch_now: None,
            pending: None,
            parked: false,
            decisions: 0,
            start: clock::now(),
            seq: 0,
        }
    }

    /// True when someone listens.
    #[inline]
    pub fn active(&self) -> bool {
        !self.subs.is_empty()
    }

    /// What decision events must hold for every subscriber (meaningful
    /// only while someone listens).
    #[inline]
    pub fn detail(&self) -> Detail {
        self.detail
    }

    /// Add a subscriber with a queue of `capacity` events that wants
    /// decisions with `detail`; `prelude` (earlier events it should see
    /// first) goes into the queue before anything else.
    pub fn subscribe(
        &mut self,
        capacity: usize,
        overflow: Overflow,
        detail: Detail,
        prelude: &[Arc<EventRecord>],
    ) -> Subscription {
        // Whatever is pending was emitted before this subscriber came.
        self.flush();
        let capacity = capacity.min(MAX_QUEUE).max(prelude.len() + 1);
        // Every batch holds an event: the queue's bound in events bounds
        // the batches in it (and the reader gives back no more room).
        let slots = capacity.max(2);
        let (mut tx, rx) = rtrb::RingBuffer::new(slots);
        let (recycle, recycled) = rtrb::RingBuffer::new(slots);
        let (taken, reused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut sent = 0;
        if !prelude.is_empty() {
            let batch = Box::new(Batch {
                items: prelude
                    .iter()
                    .map(|r| Item::Event(r.event.clone()))
                    .collect(),
                stamps: Some(prelude.iter().map(|r| (r.seq, r.t_ns)).collect()),
                ..Batch::default()
            });
            sent = batch.items.len() as u64;
            // The ring is empty and has a slot: this cannot fail.
            let _ = tx.push(batch);
        }
        let dropped = Arc::new(AtomicU64::new(0));
        let parked: Parked = Arc::new(AtomicCell::new(None));
        self.subs.push(Subscriber {
            tx,
            recycled,
            sent,
            taken: Counter::new(taken.clone()),
            reused: reused.clone(),
            reused_total: 0,
            capacity,
            overflow,
            dropped: dropped.clone(),
            detail,
            parked: parked.clone(),
            parked_len: 0,
        });
        self.detail = self.detail.max(detail);
        Subscription {
            ring: RefCell::new(ReaderRing {
                rx,
                recycle,
                taken,
                taken_total: 0,
                returned: 0,
                reused: Counter::new(reused),
                parked,
                held: None,
                empty_since: None,
            }),
            capacity: capacity.max(BATCH),
            batch: RefCell::new(Reading::default()),
            dropped,
        }
    }

    /// Nanoseconds since the bus started; inside a batch, the time the
    /// batch was first asked for.
    #[inline]
    pub fn now_ns(&mut self) -> u64 {
        // Inline: every event asks, and an out-of-line call with its
        // prologue was 96 of a watched step's instructions at 64 chains.
        match self.batch_now {
            Some(Some(t)) => t,
            _ => self.read_clock(),
        }
    }

    /// Read the clock, and keep the time for the rest of the batch.
    #[inline(never)]
    fn read_clock(&mut self) -> u64 {
        let t = clock::nanos_between(self.start, clock::now());
        if let Some(cached) = &mut self.batch_now {
            *cached = Some(t);
        }
        t
    }

    /// Start a batch: the events of one reaped batch of completions (and
    /// the steps they issue) all happen at one time, read once, and go out
    /// together. A clock read costs more than the rest of an event (25 ns
    /// in a VM, and a watched step made six).
    pub fn begin_batch(&mut self) {
        self.batch_now = Some(None);
    }

    /// End the batch: what it emitted goes out, and events read the clock
    /// again each. With one subscriber, a batch with room left is parked
    /// instead: the next reaped batch goes on filling it, unless the
    /// reader, its queue empty, has taken it meanwhile. At one chain (a
    /// reaped batch of one completion) each batch paid the handoff
    /// (the ring's slot, the reader's wake, the lines it moved).
    pub fn end_batch(&mut self) {
        self.batch_now = None;
        let park = self.subs.len() == 1
            && self
                .pending
                .as_ref()
                .is_some_and(|p| !p.items.is_empty() && p.items.len() < BATCH)
            && !self.subs[0].tx.is_abandoned();
        if !park {
            self.flush();
            return;
        }
        let batch = self.pending.take();
        let s = &mut self.subs[0];
        s.parked_len = batch.as_ref().map_or(0, |b| b.items.len() as u64);
        // The cell is empty: only the engine puts a batch there.
        let _ = s.parked.swap(batch);
        self.parked = true;
    }

    /// Take the parked batch back to fill on, or learn that the reader
    /// took it (its events count as sent).
    #[inline(never)]
    fn unpark(&mut self) {
        self.parked = false;
        let Some(s) = self.subs.first_mut() else {
            return;
        };
        match s.parked.take() {
            Some(b) => self.pending = Some(b),
            None => {
                s.sent += s.parked_len;
                self.decisions = 0;
            }
        }
    }

    /// Send what is pending now, and read the clock afresh for what comes
    /// next (the engine is about to wait: a debugger's pause).
    pub fn flush_now(&mut self) {
        if let Some(cached) = &mut self.batch_now {
            *cached = None;
        }
        self.flush();
    }

    /// Emit the event `f` builds, if anyone listens.
    #[inline]
    pub fn emit(&mut self, f: impl FnOnce() -> Event) {
        if self.subs.is_empty() {
            return;
        }
        let t_ns = self.now_ns();
        self.ready_for(t_ns).items.push(Item::Event(f()));
        self.pushed();
    }

    /// Emit [`Event::Decision`] with `rec`, if anyone listens. `rec` is
    /// swapped with a spare record of the batch: the caller gets back
    /// stale contents with their buffers, to overwrite.
    pub fn emit_decision(&mut self, rec: &mut Box<DecisionRecord>) {
        if self.subs.is_empty() {
            return;
        }
        let t_ns = self.now_ns();
        // After ready_for, which may have sent what was pending.
        self.ready_for(t_ns);
        let slot = self.decisions;
        self.decisions += 1;
        let batch = self.ready();
        match batch.decisions.get_mut(slot) {
            Some(spare) => std::mem::swap(spare, rec),
            // Until batches come back with spares; a copy keeps the
            // caller's buffers.
            None => batch.decisions.push(rec.clone()),
        }
        batch.items.push(Item::Decision(slot as u32));
        self.pushed();
    }

    /// Emit an event whether or not anyone listens, and return it (for
    /// events kept for late subscribers).
    pub fn emit_always(&mut self, event: Event) -> Arc<EventRecord> {
        let rec = Arc::new(EventRecord {
            seq: self.seq,
            t_ns: self.now_ns(),
            event,
        });
        if self.subs.is_empty() {
            self.seq += 1;
        } else {
            self.ready_for(rec.t_ns)
                .items
                .push(Item::Event(rec.event.clone()));
            self.pushed();
        }
        rec
    }

    /// The batch to fill: `pending`, or else one the reader emptied, or
    /// else a new one.
    #[inline]
    fn ready(&mut self) -> &mut Batch {
        if self.parked {
            self.unpark();
        }
        let subs = &mut self.subs;
        self.pending.get_or_insert_with(|| Self::fresh_batch(subs))
    }

    /// A batch the last subscriber's reader emptied, or else a new one
    /// (out of line: the inline rest is the check for a pending batch).
    #[inline(never)]
    fn fresh_batch(subs: &mut [Subscriber]) -> Box<Batch> {
        subs.last_mut()
            .and_then(|s| {
                let b = s.recycled.pop().ok()?;
                s.reused_total += b.items.capacity() as u64;
                s.reused.store(s.reused_total, Ordering::Release);
                Some(b)
            })
            .unwrap_or_else(|| Box::new(Batch::with_capacity(FIRST_BATCH)))
    }

    /// The batch to fill with an item of time `t_ns`: a batch's items
    /// share their time, so one of another time (a batch ended early)
    /// sends what is pending first.
    fn ready_for(&mut self, t_ns: u64) -> &mut Batch {
        let seq = self.seq;
        let batch = self.ready();
        if batch.items.is_empty() {
            batch.seq = seq;
            batch.t_ns = t_ns;
            batch.last_t = t_ns;
        } else if batch.last_t != t_ns {
            batch.new_run(t_ns);
        }
        batch
    }

    /// Count the item just put in the batch, and send the batch if it is
    /// full or no batch of completions is being handled.
    fn pushed(&mut self) {
        self.seq += 1;
        let full = self
            .pending
            .as_ref()
            .is_some_and(|p| p.items.len() >= BATCH);
        if self.batch_now.is_none() || full {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.parked {
            self.unpark();
        }
        let Some(batch) = self.pending.take_if(|p| !p.items.is_empty()) else {
            return;
        };
        self.decisions = 0;
        let n = batch.items.len();
        let last = self.subs.len().saturating_sub(1);
        let mut batch = Some(batch);
        let mut i = 0;
        self.subs.retain_mut(|s| {
            let mine = i;
            i += 1;
            // The last subscriber takes the batch itself; the others a copy.
            let mut out = match (mine == last, batch.take()) {
                (true, Some(b)) => b,
                (false, Some(b)) => {
                    let copy = b.clone();
                    batch = Some(b);
                    copy
                }
                (_, None) => unreachable!("only the last subscriber takes the batch"),
            };
            loop {
                let room = |taken: u64| {
                    // The reader counts a parked batch it took before
                    // the engine learns of it (at its next event).
                    let queued = s.sent.saturating_sub(taken);
                    // An empty queue takes any batch (one may exceed a small bound).
                    queued == 0 || queued + n as u64 <= s.capacity as u64
                };
                if room(s.taken.cached()) || room(s.taken.refresh()) {
                    match s.tx.push(out) {
                        Ok(()) => {
                            s.sent += n as u64;
                            // A reader that has gone takes no more.
                            return !s.tx.is_abandoned();
                        }
                        Err(rtrb::PushError::Full(b)) => out = b,
                    }
                }
                if s.tx.is_abandoned() {
                    return false;
                }
                match s.overflow {
                    Overflow::Drop => {
                        s.dropped.fetch_add(n as u64, Ordering::Relaxed);
                        if mine == last {
                            batch = Some(out);
                        }
                        return true;
                    }
                    // The reader polls: so does the writer.
                    Overflow::Block => std::thread::sleep(Duration::from_micros(50)),
                }
            }
        });
        if self.subs.iter().all(|s| s.detail < self.detail) {
            // The subscriber that wanted the most has gone.
            self.detail = self
                .subs
                .iter()
                .map(|s| s.detail)
                .max()
                .unwrap_or(Detail::Inputs);
        }
        // Reuse the batch when nobody took it.
        if let Some(mut batch) = batch {
            batch.clear();
            self.pending = Some(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_polling_reader_gets_every_event_then_times_out_then_sees_the_end() {
        let mut bus = EventBus::new();
        let sub = bus.subscribe(4, Overflow::Block, Detail::Full, &[]);
        let sender = std::thread::spawn(move || {
            for _ in 0..100 {
                bus.emit(|| Event::Resumed);
            }
            bus
        });
        // A queue of 4 and a blocking sender: the reader must keep draining.
        let got: Vec<u64> = (0..100)
            .map(|_| sub.recv_timeout(Duration::from_secs(10)).unwrap().seq)
            .collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        let bus = sender.join().unwrap();
        assert!(matches!(
            sub.recv_timeout(Duration::from_millis(5)),
            Err(RecvTimeoutError::Timeout)
        ));
        drop(bus);
        assert_eq!(sub.iter().count(), 0);
        assert!(matches!(
            sub.recv_timeout(Duration::from_secs(10)),
            Err(RecvTimeoutError::Disconnected)
        ));
    }

    #[test]
    fn an_item_is_no_larger_than_its_event() {
        // The batch carries numbers and times; an item is the event alone.
        assert_eq!(std::mem::size_of::<Item>(), std::mem::size_of::<Event>());
    }

    #[test]
    fn a_prelude_keeps_its_own_numbers_and_times_and_then_batches_follow() {
        let old: Vec<Arc<EventRecord>> = [(3, 10), (7, 20)]
            .into_iter()
            .map(|(seq, t_ns)| {
                Arc::new(EventRecord {
                    seq,
                    t_ns,
                    event: Event::Resumed,
                })
            })
            .collect();
        let mut bus = EventBus::new();
        bus.seq = 8;
        let sub = bus.subscribe(1 << 10, Overflow::Block, Detail::Inputs, &old);
        burst(&mut bus, 3);
        let got: Vec<(u64, u64)> = sub.try_iter().map(|r| (r.seq, r.t_ns)).collect();
        assert_eq!(&got[..2], &[(3, 10), (7, 20)]);
        let seqs: Vec<u64> = got[2..].iter().map(|g| g.0).collect();
        assert_eq!(seqs, vec![8, 9, 10]);
        // One reaped batch, one time.
        assert!(got[2..].iter().all(|g| g.1 == got[2].1));
    }

    /// `n` events in one engine batch.
    fn burst(bus: &mut EventBus, n: usize) {
        bus.begin_batch();
        for _ in 0..n {
            bus.emit(|| Event::Resumed);
        }
        bus.end_batch();
    }

    /// [`burst`], then sent (a full batch, or a debugger's pause).
    fn sent_burst(bus: &mut EventBus, n: usize) {
        burst(bus, n);
        bus.flush_now();
    }

    #[test]
    fn a_full_drop_queue_loses_whole_batches_counts_them_and_delivers_the_rest() {
        let mut bus = EventBus::new();
        let sub = bus.subscribe(8, Overflow::Drop, Detail::Inputs, &[]);
        // Five batches of 4 with nobody reading: two fit, three are lost.
        for _ in 0..5 {
            sent_burst(&mut bus, 4);
        }
        assert_eq!(sub.dropped.load(Ordering::Relaxed), 12);
        let seqs: Vec<u64> = sub.try_iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (0..8).collect::<Vec<_>>());
        // Read, the queue has room again; the lost events keep their numbers.
        sent_burst(&mut bus, 4);
        drop(bus);
        let seqs: Vec<u64> = sub.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (20..24).collect::<Vec<_>>());
        assert_eq!(sub.dropped.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn a_reader_that_went_away_is_forgotten() {
        let mut bus = EventBus::new();
        let sub = bus.subscribe(1 << 10, Overflow::Block, Detail::Full, &[]);
        let kept = bus.subscribe(1 << 10, Overflow::Block, Detail::Inputs, &[]);
        drop(sub);
        burst(&mut bus, 3);
        // The one that went wanted full records; the one left, inputs.
        assert_eq!(bus.subs.len(), 1);
        assert_eq!(bus.detail(), Detail::Inputs);
        drop(kept);
        // A blocking subscriber's reader gone must not hang the engine.
        for _ in 0..2000 {
            burst(&mut bus, 4);
        }
        assert!(!bus.active());
    }

    #[test]
    fn one_event_batches_fill_the_queue_to_its_bound_in_events() {
        // Events of different times go one per batch (a kernel backend's
        // do): a reader far behind still loses nothing below the bound.
        let mut bus = EventBus::new();
        let sub = bus.subscribe(50_000, Overflow::Drop, Detail::Inputs, &[]);
        for _ in 0..50_010 {
            bus.emit(|| Event::Resumed);
        }
        assert_eq!(sub.dropped.load(Ordering::Relaxed), 10);
        let seqs: Vec<u64> = sub.try_iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (0..50_000).collect::<Vec<_>>());
        bus.emit(|| Event::Resumed);
        assert_eq!(
            sub.try_iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![50_010]
        );
    }

    #[test]
    fn one_subscribers_bursts_share_a_parked_batch_until_it_is_full() {
        assert!(AtomicCell::<Option<Box<Batch>>>::is_lock_free());
        let mut bus = EventBus::new();
        let sub = bus.subscribe(1 << 16, Overflow::Drop, Detail::Inputs, &[]);
        // 100 reaped batches of 4 events: one full batch of 256 went out,
        // the other 144 events wait parked; nothing is read yet.
        for _ in 0..100 {
            burst(&mut bus, 4);
        }
        assert_eq!(bus.subs[0].sent, 256);
        assert!(bus.parked && bus.pending.is_none());
        let got: Vec<(u64, u64)> = sub.try_iter().map(|r| (r.seq, r.t_ns)).collect();
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            (0..400).collect::<Vec<_>>()
        );
        // Each reaped batch keeps its one time, and time does not go back.
        for b in got.chunks(4) {
            assert!(b.iter().all(|g| g.1 == b[0].1), "{b:?}");
        }
        assert!(got.windows(2).all(|w| w[0].1 <= w[1].1));
        // The reader took the parked batch: the engine learns it at its
        // next event and counts those as sent.
        burst(&mut bus, 4);
        assert_eq!(bus.subs[0].sent, 400);
        assert_eq!(
            sub.try_iter().map(|r| r.seq).collect::<Vec<_>>(),
            (400..404).collect::<Vec<_>>()
        );
        assert_eq!(sub.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_polling_reader_gets_what_a_quiet_engine_left_parked() {
        let mut bus = EventBus::new();
        let sub = bus.subscribe(1 << 10, Overflow::Drop, Detail::Inputs, &[]);
        burst(&mut bus, 3);
        // The engine does nothing more, and is not dropped: the reader's
        // queue stays empty for a poll interval, and it takes the batch.
        let t = Instant::now();
        let seqs: Vec<u64> = (0..3)
            .map(|_| {
                sub.recv_timeout(Duration::from_secs(10))
                    .expect("parked events")
                    .seq
            })
            .collect();
        assert_eq!(seqs, vec![0, 1, 2]);
        assert!(t.elapsed() < Duration::from_secs(10));
        // And even within a wait shorter than the poll interval.
        burst(&mut bus, 2);
        let r = sub.recv_timeout(Duration::ZERO).expect("parked event");
        assert_eq!(r.seq, 3);
        assert_eq!(
            sub.recv_timeout(Duration::ZERO).map(|r| r.seq).ok(),
            Some(4)
        );
        // Two subscribers: nothing is parked, each reaped batch goes out.
        let other = bus.subscribe(1 << 10, Overflow::Drop, Detail::Inputs, &[]);
        burst(&mut bus, 2);
        assert!(!bus.parked);
        assert_eq!(other.try_iter().count(), 2);
        assert_eq!(sub.try_iter().count(), 2);
    }

    #[test]
    fn an_engine_and_a_reader_racing_for_the_parked_batch_lose_and_repeat_nothing() {
        // Bursts of 1 to 40 events with pauses of no time to 2 ms between
        // them, against a reader that polls with short waits: the parked
        // batch is taken by either side at any point, full batches are
        // pushed while the reader takes one, and every event arrives once,
        // in order, with its burst's time.
        let mut bus = EventBus::new();
        let sub = bus.subscribe(1 << 20, Overflow::Block, Detail::Inputs, &[]);
        let engine = std::thread::spawn(move || {
            let mut x = 0x2545_f491_4f6c_dd1du64;
            let mut total = 0u64;
            for _ in 0..3000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let n = (x % 40 + 1) as usize;
                burst(&mut bus, n);
                total += n as u64;
                match x % 16 {
                    0 => std::thread::sleep(Duration::from_micros(x % 2000)),
                    1..=3 => std::thread::yield_now(),
                    _ => {}
                }
            }
            (bus, total)
        });
        let mut got = Vec::new();
        loop {
            match sub.recv_timeout(Duration::from_micros(300)) {
                Ok(r) => got.push((r.seq, r.t_ns)),
                Err(RecvTimeoutError::Timeout) if engine.is_finished() => break,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let (bus, total) = engine.join().expect("engine thread");
        drop(bus);
        got.extend(sub.iter().map(|r| (r.seq, r.t_ns)));
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            (0..total).collect::<Vec<_>>()
        );
        assert!(got.windows(2).all(|w| w[0].1 <= w[1].1), "time went back");
        assert_eq!(sub.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_queue_asked_beyond_reason_is_cut_to_the_longest() {
        let mut bus = EventBus::new();
        let sub = bus.subscribe(usize::MAX, Overflow::Drop, Detail::Inputs, &[]);
        assert_eq!(bus.subs[0].capacity, MAX_QUEUE);
        burst(&mut bus, 3);
        assert_eq!(sub.try_iter().count(), 3);
    }

    /// Decision `i` of [`every_decision_arrives_whole_through_recycled_spares`]:
    /// records of different sizes, so a spare that held a bigger one must
    /// be overwritten, not appended to.
    fn decision(i: u64, rec: &mut DecisionRecord) {
        use ringside_schema::decision::{Action, PendingStep};
        rec.seq = i;
        rec.chain = i / 7;
        rec.ctx.res = i as i32;
        rec.view.pending.clear();
        rec.view.pending.extend((0..i % 4).map(|n| PendingStep {
            index: n as u32,
            dropped: false,
            unlinked: n == 1,
        }));
        rec.actions.clear();
        rec.actions
            .extend((0..i % 3).map(|n| Action::Drop { step: n as u32 }));
    }

    #[test]
    fn every_decision_arrives_whole_through_recycled_spares() {
        let mut bus = EventBus::new();
        // Two subscribers: the first gets copies of each batch, the last
        // the batch itself, which it recycles with its spare records.
        let subs = [
            bus.subscribe(1 << 16, Overflow::Block, Detail::Inputs, &[]),
            bus.subscribe(1 << 16, Overflow::Block, Detail::Inputs, &[]),
        ];
        let mut rec = Box::<DecisionRecord>::default();
        let mut want = Vec::new();
        let mut got: [Vec<(u64, Event)>; 2] = Default::default();
        for round in 0..50u64 {
            bus.begin_batch();
            // Batches of 1 to 10 decisions between two other events.
            bus.emit(|| Event::Resumed);
            for n in 0..(round % 10 + 1) {
                let i = round * 100 + n;
                decision(i, &mut rec);
                want.push(Event::Decision(rec.clone()));
                bus.emit_decision(&mut rec);
            }
            bus.emit(|| Event::Resumed);
            bus.end_batch();
            for (g, sub) in got.iter_mut().zip(&subs) {
                g.extend(sub.try_iter().map(|r| (r.seq, r.event.clone())));
            }
        }
        for g in &got {
            let seqs: Vec<u64> = g.iter().map(|(s, _)| *s).collect();
            assert_eq!(seqs, (0..g.len() as u64).collect::<Vec<_>>());
            let decisions: Vec<&Event> = g
                .iter()
                .map(|(_, e)| e)
                .filter(|e| matches!(e, Event::Decision(_)))
                .collect();
            assert_eq!(decisions, want.iter().collect::<Vec<_>>());
        }
    }
}
