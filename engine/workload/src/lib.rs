//! Workloads: a TOML file (or the built-in demo) turned into files, pipes,
//! socket pairs with writer threads, buffers, programs, map pre-loads and
//! chains, run on an [`Engine`].
//!
//! A spec may come from someone else, so it is checked first ([`check_text`]:
//! every name, every size against [`limits`], nothing created), then set up
//! ([`prepare`]) and run ([`Prepared::run`]). Setup builds everything but
//! starts nothing, so callers can subscribe to the engine's events first;
//! the run starts the writers, feeds the chains (up to `run.concurrency` at
//! a time) and reports. `[run] timeout_s` counts from the start of setup.

pub mod check;
pub mod content;
pub mod error;
pub mod files;
pub mod fuzzing;
pub mod limits;
mod plan;
pub mod spec;

pub use error::{FieldError, Figure, TotalExceeded};
pub use files::{FileKind, FileProblem};
pub use plan::{CheckOptions, Plan};

use check::Check;
use content::ContentReader;
use plan::{ChainTemplate, FileSource};
use ringside_engine::engine::{Engine, EngineConfig, EngineError, ShutdownReport, Stats};
use ringside_engine::event::Outcome;
use ringside_engine::program::ProgId;
use serde::Serialize;
use spec::{Locator, Spec, SpecError};
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The built-in demo workload (see `demo.toml`).
pub const DEMO_SPEC: &str = include_str!("demo.toml");

/// Why a workload could not be set up or run.
///
/// Each variant's text says everything, and none has a `source()`: printed
/// with `{}` or as an error chain (`{:#}`), each fact appears once.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The spec is wrong (with file:line:column).
    #[error("{0}")]
    Spec(SpecError),
    /// The spec file could not be read.
    #[error("the spec {path}: {problem}")]
    SpecFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        problem: FileProblem,
    },
    /// Setup waited (for a FIFO's writer) until the run's timeout.
    #[error("{at}: the run's timeout ({timeout_s} s) passed")]
    TimedOut {
        /// What setup was waiting for, and where the spec asked for it.
        at: SpecError,
        /// `[run] timeout_s`.
        timeout_s: f64,
    },
    /// Setup was waiting (for a FIFO's writer) when the run was stopped.
    #[error("{at}: stopped")]
    Stopped {
        /// What setup was waiting for, and where the spec asked for it.
        at: SpecError,
    },
    /// The engine refused.
    #[error("{0}")]
    Engine(EngineError),
    /// A repetition's offsets overflow (checking rules it out: a bug if seen).
    #[error("chain {chain}, repetition {repetition}: an offset overflows")]
    Overflow {
        /// Chain index in the spec.
        chain: usize,
        /// Repetition.
        repetition: u64,
    },
    /// The system refused (files, pipes, threads).
    #[error("{what}: {error}")]
    Io {
        /// What we were doing.
        what: IoAction,
        /// The error.
        error: std::io::Error,
    },
}

/// What setup (or the run's start) was doing when the system refused
/// ([`WorkloadError::Io`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoAction {
    /// Spawning the thread that writes a stream.
    WriterThread,
    /// Spawning the thread that drains a sink.
    SinkThread,
    /// Making the directory for a spec's temporary files.
    TempDir,
    /// Creating and filling a temporary file.
    WriteFile {
        /// The file made.
        path: PathBuf,
        /// Its name in the spec.
        name: String,
    },
    /// Making a stream: a socket pair, else a pipe.
    Stream {
        /// A socket pair (else a pipe).
        socket: bool,
    },
    /// Making our end of a stream non-blocking.
    NonBlocking,
    /// Duplicating a stream's peer end for a writer or a sink.
    Dup,
}

impl std::fmt::Display for IoAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IoAction::WriterThread => f.write_str("starting a writer thread"),
            IoAction::SinkThread => f.write_str("starting a sink thread"),
            IoAction::TempDir => f.write_str("creating a temporary directory"),
            IoAction::WriteFile { path, name } => {
                write!(f, "writing {} (`{name}`)", path.display())
            }
            IoAction::Stream { socket: true } => f.write_str("socketpair"),
            IoAction::Stream { socket: false } => f.write_str("pipe"),
            IoAction::NonBlocking => f.write_str("setting O_NONBLOCK"),
            IoAction::Dup => f.write_str("dup"),
        }
    }
}

impl From<SpecError> for WorkloadError {
    fn from(e: SpecError) -> Self {
        WorkloadError::Spec(e)
    }
}

impl From<EngineError> for WorkloadError {
    fn from(e: EngineError) -> Self {
        WorkloadError::Engine(e)
    }
}

fn io_err(what: IoAction) -> impl FnOnce(std::io::Error) -> WorkloadError {
    move |error| WorkloadError::Io { what, error }
}

struct Writer {
    name: String,
    written: Arc<AtomicU64>,
    fd: OwnedFd,
    content: ContentReader,
    chunks: Vec<u64>,
    interval: Duration,
    delay: Duration,
    close: bool,
    /// Set when the run is over: a writer pausing between writes ends.
    over: Arc<AtomicBool>,
}

/// A workload ready to run.
pub struct Prepared {
    engine: Engine,
    chains: Vec<ChainTemplate>,
    /// Program ids, by the plan's program index.
    prog_ids: Vec<ProgId>,
    writers: Vec<Writer>,
    sinks: Vec<(String, OwnedFd)>,
    concurrency: u32,
    timeout: Option<Duration>,
    /// When setup began: the timeout counts from here.
    started: Instant,
    /// When setup ended.
    ready: Instant,
    writers_over: Over,
    /// Registered fds we own (closed after the engine is gone).
    _fds: Vec<OwnedFd>,
    _dir: Option<tempfile::TempDir>,
    /// Program names -> ids.
    pub programs: HashMap<String, ProgId>,
}

/// Tells the writers the run is over when the workload goes away.
struct Over(Arc<AtomicBool>);

impl Drop for Over {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunReport {
    /// Chains submitted.
    pub chains: u64,
    /// Chains that completed.
    pub completed: u64,
    /// Chains a program stopped early (successfully).
    pub stopped: u64,
    /// Chains that failed.
    pub failed: u64,
    /// Chains cancelled by shutdown.
    pub cancelled: u64,
    /// Failures by cause.
    pub failures_by_cause: BTreeMap<String, u64>,
    /// Completions posted to the application.
    pub app_completions: u64,
    /// Requests submitted.
    pub submitted: u64,
    /// Completions reaped.
    pub completed_requests: u64,
    /// Decisions run.
    pub decisions: u64,
    /// io_uring_enter calls.
    pub enter_calls: u64,
    /// Seconds the run took (from its start, after setup).
    pub elapsed_s: f64,
    /// Seconds setup took (files, programs, waiting for a FIFO's writer).
    pub setup_s: f64,
    /// The run ended at `[run] timeout_s` (counted from the start of setup).
    pub timed_out: bool,
    /// Bytes each writer wrote (by stream name).
    pub written: BTreeMap<String, u64>,
    /// Requests in flight when shutdown began (Ctrl-C or timeout).
    pub shutdown_inflight: Option<u32>,
}

impl Prepared {
    /// The engine (subscribe to it before [`Prepared::run`]).
    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Chains that will be submitted, every repetition counted.
    pub fn chain_count(&self) -> usize {
        self.chains.iter().map(|c| c.repeat as usize).sum()
    }

    /// Start writers, feed every chain, wait for them (or for `stop`, or the
    /// spec's timeout, counted from the start of setup), shut down cleanly,
    /// and report.
    pub fn run(mut self, stop: &AtomicBool) -> Result<(RunReport, Engine), WorkloadError> {
        let start = Instant::now();
        let deadline = self.timeout.map(|t| self.started + t);
        let past_deadline = || deadline.is_some_and(|d| Instant::now() >= d);
        // Writers are joined only once done (see the report below): one may
        // sit on a full pipe nobody reads any more (a failed kernel link); it
        // ends with EPIPE when the workload's fds close. Progress is reported
        // through counters.
        let mut written = Vec::new();
        for (i, w) in self.writers.drain(..).enumerate() {
            let (name, counter) = (w.name.clone(), w.written.clone());
            // Thread names are ours: a spec's names may hold anything (a NUL).
            let thread = std::thread::Builder::new()
                .name(format!("writer {i}"))
                .spawn(move || run_writer(w))
                .map_err(io_err(IoAction::WriterThread))?;
            written.push((name, counter, thread));
        }
        for (i, (_, fd)) in self.sinks.drain(..).enumerate() {
            std::thread::Builder::new()
                .name(format!("sink {i}"))
                .spawn(move || run_sink(fd))
                .map_err(io_err(IoAction::SinkThread))?;
        }
        let total = self.chain_count();
        let mut report = RunReport {
            chains: total as u64,
            setup_s: (self.ready - self.started).as_secs_f64(),
            ..Default::default()
        };
        // The next chain to submit: (template, repetition).
        let mut cursor = (0usize, 0u64);
        let mut next = 0;
        let mut shutdown: Option<ShutdownReport> = None;
        let (mut completions, mut finished) = (Vec::new(), Vec::new());
        loop {
            // First, so a run whose setup used up its timeout submits nothing.
            let timed_out = past_deadline();
            if stop.load(Ordering::Relaxed) || timed_out {
                report.timed_out = timed_out;
                shutdown = Some(self.engine.shutdown()?);
                report.app_completions += self.engine.take_completions().len() as u64;
                for end in self.engine.take_finished() {
                    tally(&mut report, &end.outcome);
                }
                // Chains never submitted count as cancelled too.
                report.cancelled += (total - next) as u64;
                break;
            }
            while next < total
                && (self.concurrency == 0
                    || (self.engine.active_chains() as u32) < self.concurrency)
            {
                // Many chains at once can take a while: keep to the deadline.
                if next % 1024 == 1023 && (past_deadline() || stop.load(Ordering::Relaxed)) {
                    break;
                }
                let t = &self.chains[cursor.0];
                // Checking ruled this out.
                let spec = t
                    .copy(cursor.1, &self.prog_ids)
                    .ok_or(WorkloadError::Overflow {
                        chain: cursor.0,
                        repetition: cursor.1,
                    })?;
                cursor.1 += 1;
                if cursor.1 == t.repeat {
                    cursor = (cursor.0 + 1, 0);
                }
                self.engine.submit_chain(spec)?;
                next += 1;
            }
            // Into buffers kept across rounds: at full speed this loop
            // runs after every reaped batch.
            self.engine.take_completions_into(&mut completions);
            report.app_completions += completions.len() as u64;
            completions.clear();
            self.engine.take_finished_into(&mut finished);
            for end in &finished {
                tally(&mut report, &end.outcome);
            }
            if next == total && self.engine.active_chains() == 0 {
                break;
            }
            let wait = deadline.map_or(Duration::from_millis(100), |d| {
                d.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100))
            });
            self.engine.run_timeout(true, Some(wait))?;
        }
        if shutdown.is_none() {
            // Nothing is in flight, but shut down explicitly so the events say so.
            shutdown = Some(self.engine.shutdown()?);
        }
        self.writers_over.0.store(true, Ordering::Relaxed);
        report.shutdown_inflight = shutdown.map(|s| s.inflight_at_start).filter(|&n| n > 0);
        let stats: Stats = self.engine.stats();
        report.submitted = stats.submitted;
        report.completed_requests = stats.completed;
        report.decisions = stats.decisions;
        report.enter_calls = stats.enter_calls;
        report.elapsed_s = start.elapsed().as_secs_f64();
        // A reader can consume a write before the writer's write() returns
        // and its counter moves: the last chunk went uncounted once in CI.
        // Writers that are done exit at once; one stuck on a full pipe does
        // not, so the wait is bounded.
        let grace = Instant::now() + WRITER_GRACE;
        for (name, n, thread) in written {
            while !thread.is_finished() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(1));
            }
            if thread.is_finished() {
                // Returns at once; orders the writer's last store before the load.
                let _ = thread.join();
            }
            report.written.insert(name, n.load(Ordering::Relaxed));
        }
        Ok((report, self.engine))
    }
}

/// How long a finished run waits for its writers to return from their last
/// write before it reports what they wrote.
const WRITER_GRACE: Duration = Duration::from_millis(200);

fn tally(report: &mut RunReport, outcome: &Outcome) {
    match outcome {
        Outcome::Completed => report.completed += 1,
        Outcome::Stopped { .. } => report.stopped += 1,
        Outcome::Failed { cause, .. } => {
            report.failed += 1;
            *report
                .failures_by_cause
                .entry(cause.name().to_string())
                .or_default() += 1;
        }
        Outcome::Cancelled => report.cancelled += 1,
    }
}

/// Sleep `d`, in slices, unless the run is over first; whether it is not.
fn pause(d: Duration, over: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    loop {
        if over.load(Ordering::Relaxed) {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

fn run_writer(mut w: Writer) {
    if !pause(w.delay, &w.over) {
        return;
    }
    // SAFETY: we own the fd; File closes it when dropped.
    let mut f = unsafe { std::fs::File::from_raw_fd(w.fd.as_raw_fd()) };
    std::mem::forget(w.fd);
    // Content is made as it is written, at most one piece at a time.
    let mut piece = Vec::new();
    let mut done = 0u64;
    let mut k = 0;
    'chunks: while w.content.remaining() > 0 {
        let chunk = if w.chunks.is_empty() {
            w.content.remaining()
        } else {
            w.chunks[k % w.chunks.len()].max(1)
        };
        k += 1;
        let mut left = chunk.min(w.content.remaining());
        while left > 0 {
            let n = left.min(limits::WRITE_PIECE as u64) as usize;
            piece.resize(n, 0);
            if std::io::Read::read_exact(&mut w.content, &mut piece).is_err()
                || f.write_all(&piece).is_err()
            {
                break 'chunks; // the reader went away (shutdown)
            }
            left -= n as u64;
            done += n as u64;
            w.written.store(done, Ordering::Relaxed);
        }
        // No pause after the last chunk: the writer is done.
        if w.content.remaining() > 0 && !w.interval.is_zero() && !pause(w.interval, &w.over) {
            break;
        }
    }
    if !w.close {
        // Keep the write end open (readers then block instead of seeing EOF).
        std::mem::forget(f);
    }
}

fn run_sink(fd: OwnedFd) {
    let mut buf = vec![0u8; 65536];
    loop {
        // SAFETY: valid buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.len()) };
        if n <= 0 {
            return;
        }
    }
}

fn pipe_pair(socket: bool) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid out-array.
    let r = unsafe {
        if socket {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        } else {
            libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC)
        }
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: plain fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Options for [`prepare`].
#[derive(Clone, Debug, Default)]
pub struct PrepareOptions {
    /// Run every program under the interpreter (the default compiles every
    /// verified program to native code).
    pub interpreter: bool,
    /// Where decisions run.
    pub backend: ringside_engine::Backend,
}

/// Read a spec file: a regular file of at most [`limits::MAX_SPEC_BYTES`]
/// of UTF-8 (a FIFO or a device is refused, never waited on).
pub fn read_spec(path: &Path) -> Result<String, WorkloadError> {
    files::read_spec_text(path).map_err(|problem| WorkloadError::SpecFile {
        path: path.display().to_string(),
        problem,
    })
}

/// Parse and check a spec without creating anything: what [`prepare_text`]
/// would refuse (save what only the system can refuse, such as a failed
/// io_uring setup), refused the same way.
pub fn check_text(
    file: &str,
    text: &str,
    base: &Path,
    copts: &CheckOptions,
) -> Result<Plan, WorkloadError> {
    let (spec, loc) = spec::parse(file, text)?;
    plan::check(&spec, &loc, base, copts)
}

/// Parse and set up a workload. `base` resolves relative paths.
pub fn prepare_text(
    file: &str,
    text: &str,
    base: &Path,
    opts: &PrepareOptions,
) -> Result<Prepared, WorkloadError> {
    prepare_text_until(file, text, base, opts, &AtomicBool::new(false))
}

/// [`prepare_text`], where setup that waits (for a FIFO's writer) also ends
/// when `stop` is set (Ctrl-C, the UI quitting).
pub fn prepare_text_until(
    file: &str,
    text: &str,
    base: &Path,
    opts: &PrepareOptions,
    stop: &AtomicBool,
) -> Result<Prepared, WorkloadError> {
    let started = Instant::now();
    let (spec, loc) = spec::parse(file, text)?;
    setup(&spec, &loc, base, opts, stop, started)
}

/// The built-in demo.
pub fn prepare_demo(opts: &PrepareOptions) -> Result<Prepared, WorkloadError> {
    prepare_text("<demo>", DEMO_SPEC, Path::new("."), opts)
}

/// Set up a parsed workload.
pub fn prepare(
    spec: Spec,
    loc: &Locator,
    base: &Path,
    opts: &PrepareOptions,
) -> Result<Prepared, WorkloadError> {
    setup(
        &spec,
        loc,
        base,
        opts,
        &AtomicBool::new(false),
        Instant::now(),
    )
}

fn setup(
    spec: &Spec,
    loc: &Locator,
    base: &Path,
    opts: &PrepareOptions,
    stop: &AtomicBool,
    started: Instant,
) -> Result<Prepared, WorkloadError> {
    let copts = CheckOptions {
        filesystem: true,
        // The engine verifies as it loads.
        verify: false,
        interpreter: opts.interpreter,
    };
    let plan = plan::check(spec, loc, base, &copts)?;
    create(plan, loc, stop, started, opts.backend)
}

/// Create what a checked plan says, in order: files, streams, the engine,
/// programs, map entries.
fn create(
    plan: Plan,
    loc: &Locator,
    stop: &AtomicBool,
    started: Instant,
    backend: ringside_engine::Backend,
) -> Result<Prepared, WorkloadError> {
    let deadline = plan.timeout.map(|t| started + t);
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut files: Vec<(RawFd, String)> = Vec::new();
    let mut dir: Option<tempfile::TempDir> = None;
    let mut writers = Vec::new();
    let mut sinks = Vec::new();
    let over = Arc::new(AtomicBool::new(false));

    for (i, f) in plan.files.iter().enumerate() {
        let file = match &f.source {
            FileSource::Existing {
                path,
                kind,
                writable,
                at,
            } => {
                let wait = files::Wait { deadline, stop };
                files::open_existing(path, *kind, *writable, wait).map_err(|e| {
                    let waiting = || loc.error(*at, Check::FifoWait { path: path.clone() });
                    match e {
                        files::OpenFailure::Problem(problem) => {
                            let path = path.clone();
                            let suggest = None;
                            WorkloadError::Spec(loc.error(
                                *at,
                                Check::File {
                                    path,
                                    problem: Box::new(problem),
                                    suggest,
                                },
                            ))
                        }
                        files::OpenFailure::TimedOut => WorkloadError::TimedOut {
                            at: waiting(),
                            timeout_s: plan.timeout.unwrap_or_default().as_secs_f64(),
                        },
                        files::OpenFailure::Stopped => WorkloadError::Stopped { at: waiting() },
                    }
                })?
            }
            FileSource::Temp { content, size } => {
                if dir.is_none() {
                    dir = Some(
                        tempfile::Builder::new()
                            .prefix("ringside-")
                            .tempdir()
                            .map_err(io_err(IoAction::TempDir))?,
                    );
                }
                // Named by number: a spec's name could be a path (`../x`, `/etc/x`).
                let path = dir
                    .as_ref()
                    .map_or_else(PathBuf::new, |d| d.path().join(format!("file-{i}")));
                let what = || IoAction::WriteFile {
                    path: path.clone(),
                    name: f.name.clone(),
                };
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_err(what()))?;
                if content.is_zero() {
                    file.set_len(content.len(*size)).map_err(io_err(what()))?;
                } else {
                    let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut file);
                    std::io::copy(&mut content.reader(*size), &mut w).map_err(io_err(what()))?;
                    w.flush().map_err(io_err(what()))?;
                }
                file
            }
        };
        let fd: OwnedFd = file.into();
        files.push((fd.as_raw_fd(), f.name.clone()));
        fds.push(fd);
    }
    for s in &plan.streams {
        let (ours, peer) =
            pipe_pair(s.socket).map_err(io_err(IoAction::Stream { socket: s.socket }))?;
        // A pipe is read at [0] and written at [1]; a socket pair is symmetric.
        if s.nonblocking {
            set_nonblocking(ours.as_raw_fd()).map_err(io_err(IoAction::NonBlocking))?;
        }
        let kind = if s.socket { "socket" } else { "pipe" };
        files.push((ours.as_raw_fd(), format!("{} ({kind})", s.name)));
        fds.push(ours);
        if let Some(w) = &s.writer {
            writers.push(Writer {
                name: s.name.clone(),
                written: Arc::new(AtomicU64::new(0)),
                fd: dup(&peer).map_err(io_err(IoAction::Dup))?,
                content: w.content.reader(w.total),
                chunks: w.chunks.clone(),
                interval: w.interval,
                delay: w.delay,
                close: w.close,
                over: over.clone(),
            });
        }
        if s.sink {
            sinks.push((s.name.clone(), dup(&peer).map_err(io_err(IoAction::Dup))?));
        }
        // Without a writer that closes, keep the peer open so reads block
        // rather than see EOF; it is closed with the workload.
        if s.writer.as_ref().is_none_or(|w| !w.close) {
            fds.push(peer);
        }
    }

    let mut engine = Engine::new(EngineConfig {
        entries: plan.entries,
        files,
        buffers: plan.buffers.iter().map(|&b| b as usize).collect(),
        budgets: plan.budgets,
        backend,
    })
    .map_err(|e| match e {
        EngineError::Entries { entries } => {
            WorkloadError::Spec(loc.error(plan.entries_at, Check::Entries { entries }))
        }
        other => other.into(),
    })?;

    let mut prog_ids = Vec::new();
    let mut programs = HashMap::new();
    for p in &plan.programs {
        let Some(bytes) = &p.bytes else {
            return Err(loc.error(p.at, Check::NotRead).into());
        };
        let obj = engine
            .load_object_programs(&p.label, bytes, &[&p.section], &p.opts)
            .map_err(|e| {
                WorkloadError::Spec(match e {
                    EngineError::Load(e) => loc.error(p.at, e),
                    other => loc.error(p.at, Check::Engine(Box::new(other))),
                })
            })?;
        let Some(&(_, id)) = obj.programs.first() else {
            let section = p.section.clone();
            return Err(loc.error(p.at, Check::NoSection { section }).into());
        };
        prog_ids.push(id);
        if programs.insert(p.name.clone(), id).is_some() {
            let name = p.name.clone();
            return Err(loc.error(p.name_at, Check::ProgramTwice { name }).into());
        }
    }
    if let Some(p) = plan.ring_program {
        engine.set_ring_program(Some(prog_ids[p]))?;
    }
    for m in &plan.maps {
        let Some(map) = engine.map_by_name(prog_ids[m.prog], &m.map) else {
            return Err(loc
                .error(
                    m.map_at,
                    Check::NoMap {
                        program: plan.programs[m.prog].name.clone(),
                        map: m.map.clone(),
                    },
                )
                .into());
        };
        for (k, v, at) in &m.entries {
            engine
                .map_update(map, k, v, 0)
                .map_err(|err| loc.error(*at, Check::Engine(Box::new(err))))?;
        }
    }
    Ok(Prepared {
        engine,
        chains: plan.chains,
        prog_ids,
        writers,
        sinks,
        concurrency: plan.concurrency,
        timeout: plan.timeout,
        started,
        ready: Instant::now(),
        writers_over: Over(over),
        _fds: fds,
        _dir: dir,
        programs,
    })
}

fn dup(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    fd.try_clone()
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::IoAction;
    use std::path::PathBuf;

    /// The typed actions print what the `String` ones did.
    #[test]
    fn io_actions_print_as_before() {
        let cases = [
            (IoAction::WriterThread, "starting a writer thread"),
            (IoAction::SinkThread, "starting a sink thread"),
            (IoAction::TempDir, "creating a temporary directory"),
            (
                IoAction::WriteFile {
                    path: PathBuf::from("/tmp/ringside-x/file-0"),
                    name: "data".into(),
                },
                "writing /tmp/ringside-x/file-0 (`data`)",
            ),
            (IoAction::Stream { socket: true }, "socketpair"),
            (IoAction::Stream { socket: false }, "pipe"),
            (IoAction::NonBlocking, "setting O_NONBLOCK"),
            (IoAction::Dup, "dup"),
        ];
        for (a, want) in cases {
            assert_eq!(a.to_string(), want);
        }
    }
}
