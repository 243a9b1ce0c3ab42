//! A whole trace of processes' rings, start to summary, as typed lines:
//! what `ringside attach --pid PID --headless` prints (the binary writes
//! each [`TraceLine`] as one JSON object; this crate says what happens and
//! in which order, not where it goes).
//!
//! The lines, each serialized with a `"kind"`:
//! 1. `{"kind":"attached", ...}` ([`Attached`]): pids, the rings discovered
//!    in /proc, the tracepoints attached or skipped, the BPF program ids,
//!    notes (a pid without rings yet, a busy ring).
//! 2. one line per [`ProbeEvent`](crate::ProbeEvent) (`"submit_req"`,
//!    `"complete"`, `"link"`, `"fail_link"`, ...).
//! 3. `{"kind":"exited","ts_ns":T,"pids":[...]}` when every traced
//!    process (followed children included) exited, after their last events.
//! 4. `{"kind":"summary", ...}` (a [`Summary`]) when the traced processes
//!    exited, the duration ran out, or SIGINT/SIGTERM arrived; its
//!    `counters` are the BPF side's counts of every event
//!    ([`crate::Counters`]).

use crate::ProbeEvent;
use crate::counters::Counters;
use crate::discover::{self, RingDirectory, RingFd, RingIdentity};
use crate::error::ProbeError;
use crate::graph::{CancellationCounts, ChainCounts, RequestCounts, RequestGraph};
use crate::session::{AttachOptions, Probes, Skipped};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Options of [`trace`].
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// What to trace (pids, ring filter, buffer size...).
    pub attach: AttachOptions,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop when every traced process has exited (default true).
    pub until_exit: bool,
    /// A pid without rings is not an error: keep watching for rings it
    /// creates later.
    pub wait_for_rings: bool,
    /// Stop when this flag becomes true (see [`install_signal_handlers`]).
    /// When `None`, [`trace`] installs SIGINT/SIGTERM handlers itself.
    pub stop: Option<Arc<AtomicBool>>,
    /// One line per event (false: only the attached, exited and summary lines).
    pub print_events: bool,
    /// Requests the graph keeps for the summary (older finished ones are
    /// only counted).
    pub graph_limit: usize,
    /// Poll timeout: the longest an event waits in the buffer before the
    /// sink gets it when the traced process is quiet.
    pub poll_interval: Duration,
    /// Print kernel pointers as they are; by default each becomes a small
    /// stable id ([`crate::event::PtrIds`]): output is often shared.
    pub keep_kernel_pointers: bool,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            attach: AttachOptions {
                follow_forks: true,
                ..AttachOptions::default()
            },
            duration: None,
            until_exit: true,
            wait_for_rings: false,
            stop: None,
            print_events: true,
            keep_kernel_pointers: false,
            graph_limit: 100_000,
            poll_interval: Duration::from_millis(50),
        }
    }
}

/// Why tracing stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Every traced process exited.
    Exited,
    /// The duration ran out.
    Duration,
    /// SIGINT / SIGTERM, or the caller's stop flag.
    Signal,
}

/// The final summary line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Why it stopped.
    pub stopped: StopReason,
    /// Every pid traced (forked children included).
    pub pids: Vec<u32>,
    /// Rings seen in events, with what is known of their fds.
    pub rings: Vec<RingIdentity>,
    /// Events received.
    pub events: u64,
    /// Events lost (ring buffer full), all CPUs.
    pub lost: u64,
    /// Events of the kinds asked for that the kernel counted but that
    /// were neither read nor lost: still in the ring buffer when tracing
    /// stopped while the process ran on (a duration or a signal, with a
    /// consumer that had fallen behind). 0 after an exit.
    #[serde(default)]
    pub not_read: u64,
    /// Requests by state.
    pub requests: RequestCounts,
    /// Link chains.
    pub chains: ChainCounts,
    /// Cancellations by cause.
    pub cancellations: CancellationCounts,
    /// Wall time traced, in ms.
    pub duration_ms: u64,
    /// The kernel-side counts of every event, per ring (ring pointers
    /// as ids unless kept), by kind; they include kinds not printed
    /// (`--no-events`, count-0 task_work_run) and lost events.
    #[serde(default)]
    pub counters: Counters,
}

/// The first line: what was attached.
#[derive(Debug, Clone, Serialize)]
pub struct Attached<'a> {
    /// Pids traced from the start.
    pub pids: &'a [u32],
    /// The rings discovered in /proc.
    pub rings: &'a [RingFd],
    /// Tracepoints attached.
    pub tracepoints: &'a [String],
    /// Tracepoints this kernel lacks or refused.
    pub skipped: &'a [Skipped],
    /// The BPF program ids (to find them with bpftool).
    pub program_ids: &'a [u32],
    /// Size of the BPF ring buffer.
    pub ring_buffer_bytes: u32,
    /// Event kinds delivered.
    pub kinds: Vec<&'static str>,
    /// What a reader should know (a pid without rings yet, a busy ring).
    pub notes: &'a [String],
}

/// One line of a trace, in order: [`TraceLine::Attached`] once, events,
/// [`TraceLine::Exited`] when the processes exited, [`TraceLine::Summary`]
/// last. Serializes as the JSON object `attach --headless` prints.
#[derive(Debug, Clone)]
pub enum TraceLine<'a> {
    /// What was attached.
    Attached(Attached<'a>),
    /// An event (kernel pointers already made ids unless kept).
    Event(&'a ProbeEvent),
    /// Every traced process exited.
    Exited {
        /// When the last one did (the events' clock).
        ts_ns: u64,
        /// Every pid traced (forked children included).
        pids: &'a [u32],
    },
    /// The summary.
    Summary(&'a Summary),
}

/// The non-event lines' JSON shape (an event is its own JSON object: it
/// carries its own `"kind"`).
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Tagged<'a> {
    Attached(&'a Attached<'a>),
    Exited { ts_ns: u64, pids: &'a [u32] },
    Summary(&'a Summary),
}

impl Serialize for TraceLine<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TraceLine::Attached(a) => Tagged::Attached(a).serialize(s),
            TraceLine::Event(ev) => ev.serialize(s),
            TraceLine::Exited { ts_ns, pids } => Tagged::Exited {
                ts_ns: *ts_ns,
                pids,
            }
            .serialize(s),
            TraceLine::Summary(sum) => Tagged::Summary(sum).serialize(s),
        }
    }
}

/// Where a trace's lines go.
pub trait TraceSink {
    /// One line.
    fn line(&mut self, line: &TraceLine<'_>) -> std::io::Result<()>;
    /// The lines so far should reach the reader (after each poll: a quiet
    /// process's events are not held back).
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs SIGINT and SIGTERM handlers that set the returned flag instead
/// of killing the process, so the caller can stop, detach and print its
/// summary. (Probes are freed by the kernel on any exit, since nothing is
/// pinned; this is about finishing the output.)
pub fn install_signal_handlers() -> Result<Arc<AtomicBool>, ProbeError> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag)).map_err(|e| ProbeError::Io {
            what: format!("installing the handler for signal {sig}"),
            error: e,
        })?;
    }
    Ok(flag)
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> ProbeError + '_ {
    move |e| ProbeError::Io {
        what: what.to_string(),
        error: e,
    }
}

/// Traces `opts.attach.pids` until they exit (or the duration, or a
/// signal), giving `sink` every line; returns the summary it gave last.
/// A sink's write error ends the trace as [`ProbeError::Io`] ("writing
/// output"); [`ProbeError::exit_code`] maps every error to an exit code.
pub fn trace(opts: &TraceOptions, sink: &mut dyn TraceSink) -> Result<Summary, ProbeError> {
    crate::session::check_privileges()?;
    crate::session::check_io_uring_enabled()?;
    let mut dir = RingDirectory::new();
    let mut all_fds = Vec::new();
    let mut notes = Vec::new();
    for &pid in &opts.attach.pids {
        let tree = discover::discover_tree(pid, opts.attach.follow_forks)?;
        if tree.iter().all(|(_, fds)| fds.is_empty()) {
            if !opts.wait_for_rings {
                return Err(ProbeError::NoRings { pid });
            }
            notes.push(format!(
                "process {pid} has no io_uring rings yet; watching for rings it creates"
            ));
        }
        for (p, fds) in tree {
            for r in fds.iter().filter(|r| r.info.busy) {
                notes.push(format!(
                    "ring fd {} of process {p} was busy: fdinfo showed no ring details",
                    r.fd
                ));
            }
            all_fds.extend(fds.iter().cloned());
            dir.add_discovered(p, fds);
        }
    }
    let stop = match &opts.stop {
        Some(s) => Arc::clone(s),
        None => install_signal_handlers()?,
    };
    let mut probes = Probes::attach(opts.attach.clone())?;
    let pids = probes.pids();
    sink.line(&TraceLine::Attached(Attached {
        pids: &pids,
        rings: &all_fds,
        tracepoints: probes.tracepoints(),
        skipped: probes.skipped(),
        program_ids: probes.program_ids(),
        ring_buffer_bytes: probes.ring_buffer_bytes(),
        kinds: probes.kinds().names(),
        notes: &notes,
    }))
    .map_err(io("writing output"))?;
    sink.flush().map_err(io("writing output"))?;

    let mut graph = RequestGraph::with_limit(opts.graph_limit);
    let start = Instant::now();
    let mut events = 0u64;
    let mut last_check = Instant::now();
    let mut write_err: Option<std::io::Error> = None;
    let mut traced: std::collections::BTreeSet<u32> = pids.iter().copied().collect();
    let mut ids = crate::event::PtrIds::new();
    let mut consume = |probes: &mut Probes,
                       graph: &mut RequestGraph,
                       dir: &mut RingDirectory,
                       sink: &mut dyn TraceSink,
                       timeout: Duration|
     -> Result<usize, ProbeError> {
        let n = probes.poll(timeout, |ev| {
            events += 1;
            if let crate::ProbeEvent::NewTask { child, .. } = ev {
                traced.insert(child);
            }
            graph.push(&ev);
            dir.observe(&ev);
            if opts.print_events && write_err.is_none() {
                let mut ev = ev;
                if !opts.keep_kernel_pointers {
                    ids.apply(&mut ev);
                }
                if let Err(e) = sink.line(&TraceLine::Event(&ev)) {
                    write_err = Some(e);
                }
            }
        })?;
        if let Some(e) = write_err.take() {
            return Err(io("writing output")(e));
        }
        sink.flush().map_err(io("writing output"))?;
        Ok(n)
    };

    let stopped = loop {
        consume(&mut probes, &mut graph, &mut dir, sink, opts.poll_interval)?;
        if stop.load(Ordering::Relaxed) {
            break StopReason::Signal;
        }
        if opts.duration.is_some_and(|d| start.elapsed() >= d) {
            break StopReason::Duration;
        }
        if last_check.elapsed() >= Duration::from_millis(100) {
            last_check = Instant::now();
            probes.prune_exited()?;
            if opts.until_exit && probes.pids().is_empty() {
                break StopReason::Exited;
            }
        }
    };
    // What the kernel wrote before we stopped. After an exit nothing new
    // comes but ring teardown completions (from a kworker, a moment
    // later): read all of it, until a quiet 100 ms; a consumer that fell
    // behind (a slow terminal) can have a full buffer to catch up on.
    // Otherwise the process still runs: take what is there for up to a
    // second; what is left is `not_read` in the summary.
    let (quiet, cap) = if stopped == StopReason::Exited {
        (Duration::from_millis(100), Duration::from_secs(120))
    } else {
        (Duration::ZERO, Duration::from_secs(1))
    };
    let grace = Instant::now();
    loop {
        let n = consume(&mut probes, &mut graph, &mut dir, sink, quiet)?;
        if n == 0 || grace.elapsed() >= cap {
            break;
        }
    }
    let lost = probes.lost()?;
    let mut counters = probes.counters()?;
    let kinds = probes.kinds();
    let counted: u64 = crate::kinds::NAMES
        .iter()
        .filter(|(_, b)| kinds.contains_bit(*b))
        .map(|(_, b)| counters.total.by_kind[*b as usize])
        .sum();
    let not_read = counted.saturating_sub(counters.total.lost + events);
    if !opts.keep_kernel_pointers {
        for r in &mut counters.rings {
            // 0x0 (not a ring) and OTHER_RINGS stay as they are.
            if r.ring.0 != crate::counters::OTHER_RINGS {
                r.ring = ids.id(r.ring);
            }
        }
    }
    let stats = graph.stats();
    traced.extend(probes.pids());
    if let Some(ts_ns) = probes.exited() {
        let all: Vec<u32> = traced.iter().copied().collect();
        sink.line(&TraceLine::Exited { ts_ns, pids: &all })
            .map_err(io("writing output"))?;
    }
    let summary = Summary {
        stopped,
        pids: traced.into_iter().collect(),
        // As the events said them: ids unless kept.
        rings: dir
            .rings()
            .cloned()
            .map(|mut r| {
                if !opts.keep_kernel_pointers {
                    r.ring = ids.id(r.ring);
                }
                r
            })
            .collect(),
        events,
        lost,
        not_read,
        requests: stats.requests,
        chains: stats.chains,
        cancellations: stats.cancellations,
        duration_ms: start.elapsed().as_millis() as u64,
        counters,
    };
    drop(probes);
    sink.line(&TraceLine::Summary(&summary))
        .map_err(io("writing output"))?;
    sink.flush().map_err(io("writing output"))?;
    Ok(summary)
}
