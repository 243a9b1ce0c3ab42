//! The event stream: everything the engine does, as typed events.
//!
//! The UI, recordings and `--headless` output all consume these; live and
//! replay differ only in where the events come from. Emission costs one
//! branch when nobody subscribes: events are built only inside
//! [`EventBus::emit`]'s closure, after the subscriber check.

pub use ringside_schema::event::*;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
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

struct Subscriber {
    tx: Sender<Arc<EventRecord>>,
    overflow: Overflow,
    dropped: Arc<AtomicU64>,
}

/// A subscription: the receiving end and its drop counter.
///
/// Read it with [`Subscription::recv_timeout`] or [`Subscription::iter`]
/// rather than blocking on `rx`: a receiver parked on the channel makes the
/// engine pay a futex wake-up on every event it sends (about 1 us, more than
/// the rest of a step), while these poll and leave the engine alone.
pub struct Subscription {
    /// Events.
    pub rx: Receiver<Arc<EventRecord>>,
    /// Events dropped because the queue was full.
    pub dropped: Arc<AtomicU64>,
}

/// How long a polling reader sleeps when the queue is empty: short against a
/// frame (16 ms) and long against the engine's event rate.
const POLL: Duration = Duration::from_millis(1);

impl Subscription {
    /// The next event, waiting at most `timeout`; polls, never parks.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Arc<EventRecord>, RecvTimeoutError> {
        // The clock is read only once the queue is found empty.
        let mut deadline = None;
        loop {
            match self.rx.try_recv() {
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
pub struct EventBus {
    subs: Vec<Subscriber>,
    start: Instant,
    seq: u64,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl EventBus {
    /// A bus with no subscribers; time starts now.
    pub fn new() -> EventBus {
        EventBus {
            subs: Vec::new(),
            start: Instant::now(),
            seq: 0,
        }
    }

    /// True when someone listens.
    #[inline]
    pub fn active(&self) -> bool {
        !self.subs.is_empty()
    }

    /// Add a subscriber with a bounded queue; `prelude` (earlier events it
    /// should see first) goes into the queue before anything else.
    pub fn subscribe(
        &mut self,
        capacity: usize,
        overflow: Overflow,
        prelude: &[Arc<EventRecord>],
    ) -> Subscription {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(prelude.len() + 1));
        for r in prelude {
            let _ = tx.try_send(r.clone());
        }
        let dropped = Arc::new(AtomicU64::new(0));
        self.subs.push(Subscriber {
            tx,
            overflow,
            dropped: dropped.clone(),
        });
        Subscription { rx, dropped }
    }

    /// Nanoseconds since the bus started.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Emit the event `f` builds, if anyone listens.
    #[inline]
    pub fn emit(&mut self, f: impl FnOnce() -> Event) {
        if self.subs.is_empty() {
            return;
        }
        self.emit_always(f());
    }

    /// Emit an event whether or not anyone listens, and return it (for
    /// events kept for late subscribers).
    pub fn emit_always(&mut self, event: Event) -> Arc<EventRecord> {
        let rec = Arc::new(EventRecord {
            seq: self.seq,
            t_ns: self.now_ns(),
            event,
        });
        self.seq += 1;
        self.send(&rec);
        rec
    }

    fn send(&mut self, rec: &Arc<EventRecord>) {
        self.subs.retain(|s| match s.overflow {
            Overflow::Drop => match s.tx.try_send(rec.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    s.dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            },
            Overflow::Block => s.tx.send(rec.clone()).is_ok(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_polling_reader_gets_every_event_then_times_out_then_sees_the_end() {
        let mut bus = EventBus::new();
        let sub = bus.subscribe(4, Overflow::Block, &[]);
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
