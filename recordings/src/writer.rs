//! Writing recordings: [`Writer`] (synchronous, any `Write`) and
//! [`Recorder`] (a bounded queue and a writer thread; `push` never blocks).

use crate::codec::Enc;
use crate::encode::{self, State};
use crate::format::{self, Header, rtype};
use crate::item::Item;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use ringside_engine::event::Subscription;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Records between sync points at most (a sync is also written at each flush).
pub const SYNC_EVERY: u32 = 4096;

/// Synchronous writer: header, then one frame per item, sync records every
/// [`SYNC_EVERY`] records, an end record on [`Writer::finish`].
pub struct Writer<W: Write> {
    out: W,
    state: State,
    enc: Enc,
    frame: Vec<u8>,
    offset: u64,
    items: u64,
    since_sync: u32,
    bytes_by_type: [u64; 256],
    count_by_type: [u64; 256],
    /// Replaces kernel pointers, when the header says the file holds ids.
    ids: Option<ringside_probes::event::PtrIds>,
}

impl<W: Write> std::fmt::Debug for Writer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("offset", &self.offset)
            .field("items", &self.items)
            .finish()
    }
}

impl<W: Write> Writer<W> {
    /// Write the header and get ready for items.
    pub fn new(mut out: W, header: &Header) -> io::Result<Writer<W>> {
        let h = format::header_bytes(header);
        out.write_all(&h)?;
        Ok(Writer {
            out,
            state: State::default(),
            enc: Enc::default(),
            frame: Vec::with_capacity(1 << 16),
            offset: h.len() as u64,
            items: 0,
            since_sync: 0,
            bytes_by_type: [0; 256],
            count_by_type: [0; 256],
            ids: (header.kernel_pointers == format::KernelPointers::Ids)
                .then(ringside_probes::event::PtrIds::new),
        })
    }

    fn put(&mut self, rt: u8) -> io::Result<()> {
        let before = self.frame.len();
        format::put_frame(&mut self.frame, rt, &self.enc.buf);
        let n = (self.frame.len() - before) as u64;
        self.offset += n;
        self.bytes_by_type[rt as usize] += n;
        self.count_by_type[rt as usize] += 1;
        if self.frame.len() >= 1 << 16 {
            self.out.write_all(&self.frame)?;
            self.frame.clear();
        }
        Ok(())
    }

    /// Append one item.
    pub fn write_item(&mut self, item: &Item) -> io::Result<()> {
        if self.since_sync >= SYNC_EVERY {
            self.sync()?;
        }
        let rt = match (&mut self.ids, item) {
            (Some(ids), Item::Probe(p)) => {
                let mut p = p.clone();
                ids.apply(&mut p);
                encode::encode_item(&mut self.state, &Item::Probe(p), &mut self.enc)
            }
            _ => encode::encode_item(&mut self.state, item, &mut self.enc),
        };
        self.put(rt)?;
        self.items += 1;
        self.since_sync += 1;
        Ok(())
    }

    /// Record the engine's time origin on CLOCK_MONOTONIC.
    pub fn write_clock(&mut self, engine_origin_mono_ns: u64) -> io::Result<()> {
        self.enc.buf.clear();
        self.enc.var(engine_origin_mono_ns);
        self.put(rtype::CLOCK)
    }

    /// A sync point: decoding can start here; delta state resets.
    pub fn sync(&mut self) -> io::Result<()> {
        encode::encode_sync(self.items, &mut self.enc);
        self.put(rtype::SYNC)?;
        self.state.reset();
        self.since_sync = 0;
        Ok(())
    }

    /// Hand everything written so far to the OS (after a sync point, so a
    /// reader that resynchronizes finds one at the end of each flush).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.since_sync > 0 {
            self.sync()?;
        }
        self.out.write_all(&self.frame)?;
        self.frame.clear();
        self.out.flush()
    }

    /// Items written.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Bytes written (header included).
    pub fn bytes(&self) -> u64 {
        self.offset
    }

    /// (record count, bytes) for a record type.
    pub fn type_stats(&self, rt: u8) -> (u64, u64) {
        (
            self.count_by_type[rt as usize],
            self.bytes_by_type[rt as usize],
        )
    }

    /// Write the end record and flush. Nothing may be written after it.
    pub fn finish(&mut self, dropped: u64) -> io::Result<()> {
        self.enc.buf.clear();
        self.enc.var(self.items);
        self.enc.var(dropped);
        self.put(rtype::END)?;
        self.out.write_all(&self.frame)?;
        self.frame.clear();
        self.out.flush()
    }

    /// The output.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// The output, mutably (tests).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }
}

/// Recorder tuning.
#[derive(Clone, Debug)]
pub struct RecorderOptions {
    /// Queue capacity in items; beyond it `push` drops and counts.
    pub queue: usize,
    /// Longest time written data waits before reaching the OS.
    pub flush_interval: Duration,
    /// Also fsync at each flush (survives a machine crash, costs a disk write).
    pub fsync: bool,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions {
            queue: 1 << 16,
            flush_interval: Duration::from_millis(100),
            fsync: false,
        }
    }
}

enum Msg {
    Item(Item),
    Clock(u64),
    Finish,
}

/// Counters of a running recorder, shared with its handles.
#[derive(Debug, Default)]
pub struct RecorderCounters {
    /// Items written to the file.
    pub written: AtomicU64,
    /// Bytes written (header included).
    pub bytes: AtomicU64,
    /// Items dropped because the queue was full.
    pub dropped: AtomicU64,
    /// The writer failed (see [`Recorder::finish`] for the error).
    pub failed: AtomicBool,
}

/// What a finished recording holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecordStats {
    /// Items written.
    pub items: u64,
    /// Bytes in the file.
    pub bytes: u64,
    /// Items the recorder dropped (said in the file as `lost` items).
    pub dropped: u64,
}

/// A cloneable, thread-safe handle that pushes items into a [`Recorder`].
#[derive(Clone, Debug)]
pub struct RecorderHandle {
    tx: Sender<Msg>,
    counters: Arc<RecorderCounters>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Item(_) => "Item",
            Msg::Clock(_) => "Clock",
            Msg::Finish => "Finish",
        })
    }
}

impl RecorderHandle {
    /// Queue an item; never blocks. Returns false when it was dropped (the
    /// queue was full or the recorder finished); drops are counted and
    /// written into the file as a `lost` item with queue `"recorder"`.
    pub fn push(&self, item: Item) -> bool {
        match self.tx.try_send(Msg::Item(item)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Queue an item, waiting for room when the queue is full (lossless:
    /// for a recording that must be whole, where the source can wait, as
    /// `ringside record`'s engine does, and for tools and benchmarks).
    /// False when the recorder finished.
    pub fn push_blocking(&self, item: Item) -> bool {
        self.tx.send(Msg::Item(item)).is_ok()
    }

    /// Record the engine's time origin (CLOCK_MONOTONIC ns of its `t_ns` 0);
    /// dropped silently when the queue is full (a later one will do).
    pub fn push_clock(&self, engine_origin_mono_ns: u64) {
        let _ = self.tx.try_send(Msg::Clock(engine_origin_mono_ns));
    }

    /// [`RecorderHandle::push_clock`], waiting for room: where the queue is
    /// full most of the time (a lossless forwarder), a dropped clock record
    /// might never be followed by one that gets in.
    pub fn push_clock_blocking(&self, engine_origin_mono_ns: u64) {
        let _ = self.tx.send(Msg::Clock(engine_origin_mono_ns));
    }

    /// Live counters.
    pub fn counters(&self) -> &RecorderCounters {
        &self.counters
    }
}

/// A recording being written: a bounded queue feeding a writer thread that
/// flushes at least every [`RecorderOptions::flush_interval`].
#[derive(Debug)]
pub struct Recorder {
    handle: RecorderHandle,
    thread: Option<JoinHandle<io::Result<RecordStats>>>,
    path: Option<PathBuf>,
    error: Arc<Mutex<Option<String>>>,
}

impl Recorder {
    /// Create `path` (truncating it), write the header, start the writer thread.
    pub fn create(path: impl AsRef<Path>, header: Header) -> io::Result<Recorder> {
        Recorder::create_with(path, header, RecorderOptions::default())
    }

    /// [`Recorder::create`] with options.
    pub fn create_with(
        path: impl AsRef<Path>,
        header: Header,
        opts: RecorderOptions,
    ) -> io::Result<Recorder> {
        let path = path.as_ref();
        let file = std::fs::File::create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
        let fsync_file = if opts.fsync {
            Some(file.try_clone()?)
        } else {
            None
        };
        let mut r = Recorder::to_writer(file, header, opts, fsync_file)?;
        r.path = Some(path.to_path_buf());
        Ok(r)
    }

    /// Record into any writer (benchmarks, tests). `fsync` is synced at each
    /// flush when given.
    pub fn to_writer<W: Write + Send + 'static>(
        out: W,
        header: Header,
        opts: RecorderOptions,
        fsync: Option<std::fs::File>,
    ) -> io::Result<Recorder> {
        let writer = Writer::new(out, &header)?;
        let (tx, rx) = crossbeam_channel::bounded(opts.queue.max(1));
        let counters = Arc::new(RecorderCounters::default());
        counters.bytes.store(writer.bytes(), Ordering::Relaxed);
        let c = counters.clone();
        let error = Arc::new(Mutex::new(None));
        let err2 = error.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || writer_thread(writer, rx, c, opts, fsync, err2))?;
        Ok(Recorder {
            handle: RecorderHandle { tx, counters },
            thread: Some(thread),
            path: None,
            error,
        })
    }

    /// A handle for producer threads.
    pub fn handle(&self) -> RecorderHandle {
        self.handle.clone()
    }

    /// Queue an item (see [`RecorderHandle::push`]).
    pub fn push(&self, item: Item) -> bool {
        self.handle.push(item)
    }

    /// Live counters.
    pub fn counters(&self) -> &RecorderCounters {
        &self.handle.counters
    }

    /// The first write error, if the writer failed (it keeps draining the
    /// queue so producers never block).
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    /// The file, when recording to one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Write what is queued, the end record, flush, and stop the thread.
    /// Items pushed after this are dropped.
    pub fn finish(mut self) -> io::Result<RecordStats> {
        // Blocks only if the queue is full: the writer is draining it.
        let _ = self.handle.tx.send(Msg::Finish);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the recorder thread panicked")),
            None => Err(io::Error::other("the recorder already finished")),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.handle.tx.send(Msg::Finish);
            let _ = t.join();
        }
    }
}

fn writer_thread<W: Write>(
    mut w: Writer<W>,
    rx: Receiver<Msg>,
    c: Arc<RecorderCounters>,
    opts: RecorderOptions,
    fsync: Option<std::fs::File>,
    error: Arc<Mutex<Option<String>>>,
) -> io::Result<RecordStats> {
    let mut failed: Option<io::Error> = None;
    let mut reported_drops = 0u64;
    let mut dirty = false;
    let mut last_flush = Instant::now();
    let fail = |e: io::Error, failed: &mut Option<io::Error>| {
        if failed.is_none() {
            if let Ok(mut g) = error.lock() {
                *g = Some(e.to_string());
            }
            c.failed.store(true, Ordering::Relaxed);
            *failed = Some(e);
        }
    };
    macro_rules! attempt {
        ($e:expr) => {
            if failed.is_none() {
                if let Err(e) = $e {
                    fail(e, &mut failed);
                }
            }
        };
    }
    let note_drops = |w: &mut Writer<W>, failed: &mut Option<io::Error>, reported: &mut u64| {
        let d = c.dropped.load(Ordering::Relaxed);
        if d > *reported && failed.is_none() {
            let r = w.write_item(&Item::Lost {
                queue: "recorder".into(),
                count: d - *reported,
            });
            *reported = d;
            r
        } else {
            Ok(())
        }
    };
    loop {
        let msg = if dirty {
            let deadline = last_flush + opts.flush_interval;
            match rx.recv_deadline(deadline) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Msg::Finish),
            }
        } else {
            match rx.recv_timeout(opts.flush_interval) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Msg::Finish),
            }
        };
        match msg {
            Some(Msg::Item(item)) => {
                if let Err(e) = note_drops(&mut w, &mut failed, &mut reported_drops) {
                    fail(e, &mut failed);
                }
                attempt!(w.write_item(&item));
                dirty = true;
            }
            Some(Msg::Clock(t)) => {
                attempt!(w.write_clock(t));
                dirty = true;
            }
            Some(Msg::Finish) => break,
            None => {}
        }
        if c.dropped.load(Ordering::Relaxed) > reported_drops {
            if let Err(e) = note_drops(&mut w, &mut failed, &mut reported_drops) {
                fail(e, &mut failed);
            }
            dirty = true;
        }
        if dirty && last_flush.elapsed() >= opts.flush_interval {
            attempt!(w.flush());
            if let Some(f) = &fsync {
                attempt!(f.sync_data());
            }
            dirty = false;
            last_flush = Instant::now();
        }
        c.written.store(w.items(), Ordering::Relaxed);
        c.bytes.store(w.bytes(), Ordering::Relaxed);
    }
    // Whatever is still queued (items pushed before finish).
    while let Ok(m) = rx.try_recv() {
        match m {
            Msg::Item(item) => attempt!(w.write_item(&item)),
            Msg::Clock(t) => attempt!(w.write_clock(t)),
            Msg::Finish => {}
        }
    }
    if let Err(e) = note_drops(&mut w, &mut failed, &mut reported_drops) {
        fail(e, &mut failed);
    }
    drop(rx); // later pushes count as dropped
    let items = w.items();
    let dropped = c.dropped.load(Ordering::Relaxed);
    attempt!(w.finish(dropped));
    if let Some(f) = &fsync {
        attempt!(f.sync_data());
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let bytes = w.bytes();
    c.written.store(items, Ordering::Relaxed);
    c.bytes.store(bytes, Ordering::Relaxed);
    Ok(RecordStats {
        items,
        bytes,
        dropped,
    })
}

/// Forward an engine subscription into a recorder until the engine closes
/// it: each event becomes an [`Item::Engine`]; events the subscription
/// dropped become [`Item::Lost`] with queue `"engine"`; the engine's time
/// origin on CLOCK_MONOTONIC is estimated (the smallest receive time minus
/// `t_ns` seen, so within the queue's shortest latency) and recorded.
/// Returns the number of events forwarded.
///
/// Nothing is dropped here: the thread waits for room in the recorder's
/// queue ([`RecorderHandle::push_blocking`]). With a subscription made
/// with [`Overflow::Block`](ringside_engine::event::Overflow) the engine in
/// turn waits for this thread, so the whole stream reaches the file at
/// whatever speed the writer keeps (a NOP workload at full speed produces
/// events about twice as fast as the writer takes them).
pub fn spawn_engine_forwarder(
    sub: Subscription,
    rec: RecorderHandle,
) -> io::Result<JoinHandle<u64>> {
    std::thread::Builder::new()
        .name("record engine".into())
        .spawn(move || {
            let mut n = 0u64;
            let mut seen_drops = 0u64;
            let mut origin = u64::MAX;
            let mut written_origin = u64::MAX;
            let mut last_clock = Instant::now();
            for ev in sub.iter() {
                let now = format::mono_now_ns();
                origin = origin.min(now.saturating_sub(ev.t_ns));
                if let Some(count) = sub.newly_dropped(&mut seen_drops) {
                    rec.push_blocking(Item::Lost {
                        queue: "engine".into(),
                        count,
                    });
                }
                // Before the event: a reader stamps each item with the
                // clock records before it (the first one included).
                if origin < written_origin
                    && (written_origin == u64::MAX
                        || last_clock.elapsed() >= Duration::from_millis(50))
                {
                    rec.push_clock_blocking(origin);
                    written_origin = origin;
                    last_clock = Instant::now();
                }
                rec.push_blocking(Item::Engine(ev));
                n += 1;
            }
            if let Some(count) = sub.newly_dropped(&mut seen_drops) {
                rec.push_blocking(Item::Lost {
                    queue: "engine".into(),
                    count,
                });
            }
            if origin < written_origin {
                rec.push_clock_blocking(origin);
            }
            n
        })
}
