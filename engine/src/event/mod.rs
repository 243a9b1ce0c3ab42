//! The event stream: everything the engine does, as typed events.
//!
//! The UI, recordings and `--headless` output all consume these; live and
//! replay differ only in where the events come from. Emission costs one
//! branch when nobody subscribes: events are built only inside
//! [`EventBus::emit`]'s closure, after the subscriber check.

pub use ringside_schema::decision::Detail;
pub use ringside_schema::event::*;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

struct Subscriber {
    tx: Sender<Vec<EventRecord>>,
    /// Batches the reader emptied, to be filled again: a fresh batch each
    /// time costs its pages' first touch, a watched step's dearest part.
    recycled: Receiver<Vec<EventRecord>>,
    /// Events sent and not yet taken by the reader (the queue's bound is
    /// in events, whatever the batches).
    queued: Arc<AtomicUsize>,
    capacity: usize,
    overflow: Overflow,
    dropped: Arc<AtomicU64>,
    detail: Detail,
}

/// A subscription: the receiving end and its drop counter.
///
/// Read it with [`Subscription::recv_timeout`], [`Subscription::iter`] or
/// [`Subscription::try_iter`]: they poll and never park, because a reader
/// parked on the channel makes the engine pay a futex wake-up on every
/// batch it sends (about 1 us, more than the rest of a step).
pub struct Subscription {
    rx: Receiver<Vec<EventRecord>>,
    recycle: Sender<Vec<EventRecord>>,
    queued: Arc<AtomicUsize>,
    /// The batch being read.
    batch: RefCell<VecDeque<EventRecord>>,
    /// Events dropped because the queue was full.
    pub dropped: Arc<AtomicU64>,
}

/// How long a polling reader sleeps when the queue is empty: short against a
/// frame (16 ms) and long against the engine's event rate.
const POLL: Duration = Duration::from_millis(1);

impl Subscription {
    /// The next event if one is queued.
    pub fn try_recv(&self) -> Result<Arc<EventRecord>, TryRecvError> {
        let mut batch = self.batch.borrow_mut();
        loop {
            if let Some(rec) = batch.pop_front() {
                return Ok(Arc::new(rec));
            }
            let next = self.rx.try_recv()?;
            self.queued.fetch_sub(next.len(), Ordering::Relaxed);
            let done = std::mem::replace(&mut *batch, VecDeque::from(next));
            if done.capacity() >= BATCH {
                // Empty: back to the engine (or dropped, when it has enough).
                let _ = self.recycle.try_send(Vec::from(done));
            }
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
            match self.try_recv() {
                Ok(rec) => return Ok(rec),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    let deadline = *deadline.get_or_insert(now + timeout);
                    if now >= deadline {
                        return Err(RecvTimeoutError::Timeout);
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
/// emitted outside a batch goes out at once. A reader never waits longer
/// for an event than the engine takes to handle one reaped batch.
pub struct EventBus {
    subs: Vec<Subscriber>,
    /// The most any subscriber asked decisions to hold.
    detail: Detail,
    /// Inside a batch ([`EventBus::begin_batch`]): the time every event of
    /// the batch carries, read at its first use.
    batch_now: Option<Option<u64>>,
    /// Events not sent yet.
    pending: Vec<EventRecord>,
    start: Instant,
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
            pending: Vec::new(),
            start: Instant::now(),
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
        let (tx, rx) = crossbeam_channel::unbounded();
        let (recycle, recycled) = crossbeam_channel::bounded(4);
        let queued = Arc::new(AtomicUsize::new(prelude.len()));
        if !prelude.is_empty() {
            let _ = tx.send(prelude.iter().map(|r| (**r).clone()).collect());
        }
        let dropped = Arc::new(AtomicU64::new(0));
        self.subs.push(Subscriber {
            tx,
            recycled,
            queued: queued.clone(),
            capacity: capacity.max(prelude.len() + 1),
            overflow,
            dropped: dropped.clone(),
            detail,
        });
        self.detail = self.detail.max(detail);
        Subscription {
            rx,
            recycle,
            queued,
            batch: RefCell::new(VecDeque::new()),
            dropped,
        }
    }

    /// Nanoseconds since the bus started; inside a batch, the time the
    /// batch was first asked for.
    pub fn now_ns(&mut self) -> u64 {
        match &mut self.batch_now {
            None => self.start.elapsed().as_nanos() as u64,
            Some(cached) => *cached.get_or_insert_with(|| self.start.elapsed().as_nanos() as u64),
        }
    }

    /// Start a batch: the events of one reaped batch of completions (and
    /// the steps they issue) all happen at one time, read once, and go out
    /// together. A clock read costs more than the rest of an event (25 ns
    /// in a VM, and a watched step made six).
    pub fn begin_batch(&mut self) {
        self.batch_now = Some(None);
    }

    /// End the batch: what it emitted goes out, and events read the clock
    /// again each.
    pub fn end_batch(&mut self) {
        self.batch_now = None;
        self.flush();
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
        let rec = EventRecord {
            seq: self.seq,
            t_ns: self.now_ns(),
            event: f(),
        };
        self.push(rec);
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
            self.push((*rec).clone());
        }
        rec
    }

    fn push(&mut self, rec: EventRecord) {
        self.seq += 1;
        if self.pending.capacity() == 0 {
            self.pending = self
                .subs
                .last()
                .and_then(|s| s.recycled.try_recv().ok())
                .unwrap_or_else(|| Vec::with_capacity(BATCH));
        }
        self.pending.push(rec);
        if self.batch_now.is_none() || self.pending.len() >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.pending);
        let last = self.subs.len().saturating_sub(1);
        let mut i = 0;
        self.subs.retain(|s| {
            let mine = i;
            i += 1;
            let n = batch.len();
            loop {
                let queued = s.queued.load(Ordering::Relaxed);
                // An empty queue takes any batch (one may exceed a small bound).
                if queued == 0 || queued + n <= s.capacity {
                    break;
                }
                match s.overflow {
                    Overflow::Drop => {
                        s.dropped.fetch_add(n as u64, Ordering::Relaxed);
                        return true;
                    }
                    // The reader polls: so does the writer.
                    Overflow::Block => {
                        if Arc::strong_count(&s.queued) == 1 {
                            return false;
                        }
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
            }
            // The last subscriber takes the batch itself; the others a copy.
            let out = if mine == last {
                std::mem::take(&mut batch)
            } else {
                batch.clone()
            };
            s.queued.fetch_add(n, Ordering::Relaxed);
            s.tx.send(out).is_ok()
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
        // Reuse the batch's allocation when nobody took it.
        if batch.capacity() > 0 {
            batch.clear();
            self.pending = batch;
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
}
