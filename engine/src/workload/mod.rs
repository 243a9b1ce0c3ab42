//! Workloads: a TOML file (or the built-in demo) turned into files, pipes,
//! socket pairs with writer threads, buffers, programs, map pre-loads and
//! chains, run on an [`Engine`].
//!
//! [`prepare`] builds everything but starts nothing, so callers can subscribe
//! to the engine's events first; [`Prepared::run`] starts the writers, feeds
//! the chains (up to `run.concurrency` at a time) and reports.

pub mod content;
pub mod spec;

use crate::abi::{RsSqe, op};
use crate::chain::{ChainSpec, StepSpec};
use crate::decision::Budgets;
use crate::engine::{Engine, EngineConfig, EngineError, ShutdownReport, Stats};
use crate::event::{LinkMode, Notify, Outcome, StepKind};
use crate::program::vm::ExecMode;
use crate::program::{LoadOptions, ProgId};
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
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The spec is wrong (with file:line:column).
    #[error("{0}")]
    Spec(#[from] SpecError),
    /// The engine refused.
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// The system refused (files, pipes, threads).
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> WorkloadError {
    let what = what.into();
    move |source| WorkloadError::Io { what, source }
}

struct Writer {
    name: String,
    written: Arc<AtomicU64>,
    fd: OwnedFd,
    data: Vec<u8>,
    chunks: Vec<u64>,
    interval: Duration,
    delay: Duration,
    close: bool,
}

/// A workload ready to run.
pub struct Prepared {
    engine: Engine,
    chains: Vec<ChainSpec>,
    writers: Vec<Writer>,
    sinks: Vec<(String, OwnedFd)>,
    concurrency: u32,
    timeout: Option<Duration>,
    /// Registered fds we own (closed after the engine is gone).
    _fds: Vec<OwnedFd>,
    _dir: Option<tempfile::TempDir>,
    /// Program names -> ids.
    pub programs: HashMap<String, ProgId>,
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
    /// Seconds.
    pub elapsed_s: f64,
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

    /// Chains that will be submitted.
    pub fn chain_count(&self) -> usize {
        self.chains.len()
    }

    /// Start writers, feed every chain, wait for them (or for `stop`, or the
    /// spec's timeout), shut down cleanly, and report.
    pub fn run(mut self, stop: &AtomicBool) -> Result<(RunReport, Engine), WorkloadError> {
        let start = Instant::now();
        // Writers are never joined: one may sit on a full pipe nobody reads
        // any more (a failed kernel link); it ends with EPIPE when the
        // workload's fds close. Progress is reported through counters.
        let mut written = Vec::new();
        for w in self.writers.drain(..) {
            written.push((w.name.clone(), w.written.clone()));
            std::thread::Builder::new()
                .name(format!("writer {}", w.name))
                .spawn(move || run_writer(w))
                .map_err(io_err("starting a writer thread"))?;
        }
        for (name, fd) in self.sinks.drain(..) {
            std::thread::Builder::new()
                .name(format!("sink {name}"))
                .spawn(move || run_sink(fd))
                .map_err(io_err("starting a sink thread"))?;
        }
        let mut report = RunReport {
            chains: self.chains.len() as u64,
            ..Default::default()
        };
        let mut next = 0;
        let mut shutdown: Option<ShutdownReport> = None;
        let total = self.chains.len();
        loop {
            while next < total
                && (self.concurrency == 0
                    || (self.engine.active_chains() as u32) < self.concurrency)
            {
                let spec = std::mem::replace(&mut self.chains[next], empty_chain());
                self.engine.submit_chain(spec)?;
                next += 1;
            }
            report.app_completions += self.engine.take_completions().len() as u64;
            for end in self.engine.take_finished() {
                tally(&mut report, &end.outcome);
            }
            if next == total && self.engine.active_chains() == 0 {
                break;
            }
            let timed_out = self.timeout.is_some_and(|t| start.elapsed() >= t);
            if stop.load(Ordering::Relaxed) || timed_out {
                shutdown = Some(self.engine.shutdown()?);
                report.app_completions += self.engine.take_completions().len() as u64;
                for end in self.engine.take_finished() {
                    tally(&mut report, &end.outcome);
                }
                // Chains never submitted count as cancelled too.
                report.cancelled += (total - next) as u64;
                break;
            }
            self.engine
                .run_timeout(true, Some(Duration::from_millis(100)))?;
        }
        if shutdown.is_none() {
            // Nothing is in flight, but shut down explicitly so the events say so.
            shutdown = Some(self.engine.shutdown()?);
        }
        report.shutdown_inflight = shutdown.map(|s| s.inflight_at_start).filter(|&n| n > 0);
        let stats: Stats = self.engine.stats();
        report.submitted = stats.submitted;
        report.completed_requests = stats.completed;
        report.decisions = stats.decisions;
        report.enter_calls = stats.enter_calls;
        report.elapsed_s = start.elapsed().as_secs_f64();
        for (name, n) in written {
            report.written.insert(name, n.load(Ordering::Relaxed));
        }
        Ok((report, self.engine))
    }
}

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

fn empty_chain() -> ChainSpec {
    ChainSpec {
        user_data: 0,
        steps: Vec::new(),
        program: None,
        notify: Notify::Final,
        drain: false,
        link: LinkMode::Auto,
    }
}

fn run_writer(w: Writer) {
    std::thread::sleep(w.delay);
    // SAFETY: we own the fd; File closes it when dropped.
    let mut f = unsafe { std::fs::File::from_raw_fd(w.fd.as_raw_fd()) };
    std::mem::forget(w.fd);
    let mut done = 0usize;
    let mut k = 0;
    while done < w.data.len() {
        let chunk = if w.chunks.is_empty() {
            w.data.len() - done
        } else {
            w.chunks[k % w.chunks.len()] as usize
        };
        k += 1;
        let end = (done + chunk.max(1)).min(w.data.len());
        if f.write_all(&w.data[done..end]).is_err() {
            break; // the reader went away (shutdown)
        }
        done = end;
        w.written.store(done as u64, Ordering::Relaxed);
        if !w.interval.is_zero() {
            std::thread::sleep(w.interval);
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
    /// Run every program under the JIT where it verifies.
    pub jit: bool,
}

/// Parse and set up a workload. `base` resolves relative paths.
pub fn prepare_text(
    file: &str,
    text: &str,
    base: &Path,
    opts: &PrepareOptions,
) -> Result<Prepared, WorkloadError> {
    let (spec, loc) = spec::parse(file, text)?;
    prepare(spec, &loc, base, opts)
}

/// The built-in demo.
pub fn prepare_demo(opts: &PrepareOptions) -> Result<Prepared, WorkloadError> {
    prepare_text("<demo>", DEMO_SPEC, Path::new("."), opts)
}

fn encode_value(
    loc: &Locator,
    v: &toml::Spanned<toml::Value>,
    size: u32,
    names: &HashMap<String, u32>,
) -> Result<Vec<u8>, SpecError> {
    fn field(s: &str, names: &HashMap<String, u32>) -> Result<Vec<u8>, String> {
        let (ty, val) = s.split_once(':').ok_or_else(|| {
            format!("`{s}`: expected TYPE:VALUE (u8, u16, u32, u64, i32, i64, file, hex)")
        })?;
        let num = |v: &str| -> Result<i128, String> {
            let v = v.trim();
            let r = if let Some(h) = v.strip_prefix("0x") {
                i128::from_str_radix(h, 16)
            } else {
                v.parse::<i128>()
            };
            r.map_err(|_| format!("`{v}` is not a number"))
        };
        let fit = |n: i128, bytes: usize, signed: bool| -> Result<Vec<u8>, String> {
            let bits = bytes * 8;
            let (lo, hi) = if signed {
                (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
            } else {
                (0, (1i128 << bits) - 1)
            };
            if n < lo || n > hi {
                return Err(format!("{n} does not fit in {bytes} bytes"));
            }
            Ok((n as u128).to_le_bytes()[..bytes].to_vec())
        };
        match ty {
            "u8" => fit(num(val)?, 1, false),
            "u16" => fit(num(val)?, 2, false),
            "u32" => fit(num(val)?, 4, false),
            "u64" => fit(num(val)?, 8, false),
            "i32" => fit(num(val)?, 4, true),
            "i64" => fit(num(val)?, 8, true),
            "file" => names
                .get(val)
                .map(|i| i.to_le_bytes().to_vec())
                .ok_or_else(|| format!("no file or stream named `{val}`")),
            "hex" => (0..val.len() / 2)
                .map(|i| {
                    u8::from_str_radix(&val[2 * i..2 * i + 2], 16)
                        .map_err(|_| format!("`{val}` is not hex"))
                })
                .collect(),
            other => Err(format!("unknown field type `{other}`")),
        }
    }
    let bytes = match v.get_ref() {
        toml::Value::Integer(n) => {
            let n = *n as i128;
            if size > 16 || (size < 16 && (n < 0 || n >= 1i128 << (size * 8))) {
                return Err(loc.at(v, format!("{n} does not fit in {size} bytes")));
            }
            (n as u128).to_le_bytes()[..size as usize].to_vec()
        }
        toml::Value::String(s) => field(s, names).map_err(|m| loc.at(v, m))?,
        toml::Value::Array(a) => {
            let mut out = Vec::new();
            for f in a {
                let toml::Value::String(s) = f else {
                    return Err(loc.at(v, "array items must be TYPE:VALUE strings"));
                };
                out.extend(field(s, names).map_err(|m| loc.at(v, m))?);
            }
            out
        }
        _ => {
            return Err(loc.at(
                v,
                "expected an integer, a TYPE:VALUE string or an array of them",
            ));
        }
    };
    if bytes.len() != size as usize {
        return Err(loc.at(
            v,
            format!("{} bytes where the map wants {size}", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// Set up a parsed workload.
pub fn prepare(
    spec: Spec,
    loc: &Locator,
    base: &Path,
    opts: &PrepareOptions,
) -> Result<Prepared, WorkloadError> {
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut files: Vec<(RawFd, String)> = Vec::new();
    let mut names: HashMap<String, u32> = HashMap::new();
    let mut dir: Option<tempfile::TempDir> = None;
    let mut writers = Vec::new();
    let mut sinks = Vec::new();
    let add_name = |names: &mut HashMap<String, u32>,
                    n: &toml::Spanned<String>,
                    idx: u32|
     -> Result<(), SpecError> {
        if names.insert(n.get_ref().clone(), idx).is_some() {
            return Err(loc.at(n, format!("`{}` is defined twice", n.get_ref())));
        }
        Ok(())
    };

    for f in &spec.files {
        let file = match (&f.path, &f.size) {
            (Some(p), None) => {
                let path = resolve(base, p.get_ref());
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(f.writable)
                    .open(&path)
                    .map_err(|e| loc.at(p, format!("cannot open {}: {e}", path.display())))?
            }
            (None, Some(size)) => {
                let content = f.content.as_ref().map(|c| c.get_ref().as_str()).unwrap_or("pattern");
                let data = content::generate(content, *size.get_ref()).map_err(|m| match &f.content {
                    Some(c) => loc.at(c, m),
                    None => loc.at(size, m),
                })?;
                if dir.is_none() {
                    dir = Some(tempfile::Builder::new().prefix("ringside-").tempdir().map_err(io_err("creating a temporary directory"))?);
                }
                let path = dir.as_ref().expect("dir").path().join(f.name.get_ref());
                std::fs::write(&path, &data).map_err(io_err(format!("writing {}", path.display())))?;
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(io_err(format!("opening {}", path.display())))?
            }
            _ => return Err(loc.at(&f.name, "a [[file]] needs either `path` (an existing file) or `size` (a new temporary file)").into()),
        };
        let fd: OwnedFd = file.into();
        add_name(&mut names, &f.name, files.len() as u32)?;
        files.push((fd.as_raw_fd(), f.name.get_ref().clone()));
        fds.push(fd);
    }
    for (socket, list) in [(false, &spec.pipes), (true, &spec.socketpairs)] {
        for s in list {
            let (ours, peer) =
                pipe_pair(socket).map_err(io_err(if socket { "socketpair" } else { "pipe" }))?;
            // A pipe is read at [0] and written at [1]; a socket pair is symmetric.
            if s.nonblocking {
                set_nonblocking(ours.as_raw_fd()).map_err(io_err("setting O_NONBLOCK"))?;
            }
            add_name(&mut names, &s.name, files.len() as u32)?;
            let kind = if socket { "socket" } else { "pipe" };
            files.push((ours.as_raw_fd(), format!("{} ({kind})", s.name.get_ref())));
            fds.push(ours);
            if let Some(w) = &s.writer {
                let content = w
                    .content
                    .as_ref()
                    .map(|c| c.get_ref().as_str())
                    .unwrap_or("pattern");
                let data = content::generate(content, *w.total.get_ref()).map_err(|m| match &w
                    .content
                {
                    Some(c) => loc.at(c, m),
                    None => loc.at(&w.total, m),
                })?;
                let fd = dup(&peer).map_err(io_err("dup"))?;
                writers.push(Writer {
                    name: s.name.get_ref().clone(),
                    written: Arc::new(AtomicU64::new(0)),
                    fd,
                    data,
                    chunks: w.chunks.clone(),
                    interval: Duration::from_millis(w.interval_ms),
                    delay: Duration::from_millis(w.delay_ms),
                    close: w.close,
                });
            }
            if s.sink {
                sinks.push((s.name.get_ref().clone(), dup(&peer).map_err(io_err("dup"))?));
            }
            // Without a writer that closes, keep the peer open so reads block
            // rather than see EOF; it is closed with the workload.
            if s.writer.as_ref().is_none_or(|w| !w.close) {
                fds.push(peer);
            }
        }
    }

    let mut buffers = Vec::new();
    let mut buffer_names: HashMap<String, (u16, u64)> = HashMap::new();
    for b in &spec.buffers {
        let size = *b.size.get_ref();
        if size == 0 || size > 1 << 30 {
            return Err(loc
                .at(
                    &b.size,
                    format!("buffer size {size} out of range (1..=1 GiB)"),
                )
                .into());
        }
        if buffer_names
            .insert(b.name.get_ref().clone(), (buffers.len() as u16, size))
            .is_some()
        {
            return Err(loc
                .at(
                    &b.name,
                    format!("buffer `{}` is defined twice", b.name.get_ref()),
                )
                .into());
        }
        buffers.push(size as usize);
    }

    let mut budgets = Budgets::default();
    if let Some(b) = &spec.budgets {
        if let Some(v) = b.insns_per_decision {
            budgets.insns_per_decision = v;
        }
        if let Some(v) = b.submits_per_decision {
            budgets.submits_per_decision = v;
        }
        if let Some(v) = b.steps_per_chain {
            budgets.steps_per_chain = v;
        }
        if let Some(v) = b.attempts_per_step {
            budgets.attempts_per_step = v;
        }
    }
    let entries = *spec.ring.entries.get_ref();
    let mut engine = Engine::new(EngineConfig {
        entries,
        files,
        buffers,
        budgets,
    })
    .map_err(|e| match e {
        EngineError::Invalid(m) => WorkloadError::Spec(loc.at(&spec.ring.entries, m)),
        other => other.into(),
    })?;

    // Programs.
    let mut programs: HashMap<String, ProgId> = HashMap::new();
    for p in &spec.programs {
        let (label, bytes): (String, Vec<u8>) = match crate::progs::builtin(p.object.get_ref()) {
            Some(b) => (format!("{}.o", p.object.get_ref()), b.to_vec()),
            None => {
                let path = resolve(base, p.object.get_ref());
                let bytes = std::fs::read(&path).map_err(|e| {
                    loc.at(
                        &p.object,
                        format!(
                            "`{}` is neither a built-in program nor a readable file: {e}",
                            p.object.get_ref()
                        ),
                    )
                })?;
                (path.display().to_string(), bytes)
            }
        };
        let parsed = crate::program::elf::parse(&label, &bytes)
            .map_err(|e| loc.at(&p.object, e.to_string()))?;
        let section = match &p.section {
            Some(s) => {
                parsed
                    .program(s.get_ref())
                    .map_err(|e| loc.at(s, e.to_string()))?;
                s.get_ref().clone()
            }
            None if parsed.programs.len() == 1 => parsed.programs[0].name.clone(),
            None => {
                let have: Vec<_> = parsed.programs.iter().map(|p| p.name.as_str()).collect();
                return Err(loc
                    .at(
                        &p.object,
                        format!(
                            "the object has several programs ({}): say which with `section`",
                            have.join(", ")
                        ),
                    )
                    .into());
            }
        };
        let opts_l = LoadOptions {
            trusted: p.trusted,
            exec: if p.jit || opts.jit {
                ExecMode::Compiled
            } else {
                ExecMode::Interpreter
            },
            ..Default::default()
        };
        let obj = engine
            .load_object_programs(&label, &bytes, &[&section], &opts_l)
            .map_err(|e| WorkloadError::Spec(loc.at(&p.object, e.to_string())))?;
        let name = p
            .name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or(section.clone());
        let id = obj.programs[0].1;
        if programs.insert(name.clone(), id).is_some() {
            let at = p.name.as_ref().unwrap_or(&p.object);
            return Err(loc
                .at(at, format!("program `{name}` is defined twice"))
                .into());
        }
    }
    let prog = |n: &toml::Spanned<String>| -> Result<ProgId, SpecError> {
        programs.get(n.get_ref()).copied().ok_or_else(|| {
            let mut have: Vec<_> = programs.keys().cloned().collect();
            have.sort();
            loc.at(
                n,
                format!(
                    "no program named `{}` (have: {})",
                    n.get_ref(),
                    have.join(", ")
                ),
            )
        })
    };
    if let Some(p) = &spec.ring.program {
        engine.set_ring_program(Some(prog(p)?))?;
    }

    // Map pre-loads.
    for m in &spec.maps {
        let pid = prog(&m.program)?;
        let Some(map) = engine.map_by_name(pid, m.map.get_ref()) else {
            return Err(loc
                .at(
                    &m.map,
                    format!(
                        "program `{}` has no map `{}`",
                        m.program.get_ref(),
                        m.map.get_ref()
                    ),
                )
                .into());
        };
        let def = engine.registry().map(map).expect("map").def().clone();
        for e in &m.entries {
            let k = encode_value(loc, &e.key, def.key_size, &names)?;
            let v = encode_value(loc, &e.value, def.value_size, &names)?;
            engine
                .map_update(map, &k, &v, 0)
                .map_err(|err| loc.at(&e.key, err.to_string()))?;
        }
    }

    // Chains.
    let mut chains = Vec::new();
    for c in &spec.chains {
        if c.steps.is_empty() {
            return Err(loc
                .error(
                    0,
                    format!("chain {} has no steps", c.name.clone().unwrap_or_default()),
                )
                .into());
        }
        let notify = match c.notify.as_ref().map(|n| n.get_ref().as_str()) {
            None | Some("final") => Notify::Final,
            Some("all") => Notify::All,
            Some("none") => Notify::None,
            Some(other) => {
                return Err(loc
                    .at(
                        c.notify.as_ref().expect("some"),
                        format!("notify `{other}`: expected all, final or none"),
                    )
                    .into());
            }
        };
        let link = match c.link.as_ref().map(|n| n.get_ref().as_str()) {
            None | Some("auto") => LinkMode::Auto,
            Some("engine") => LinkMode::Engine,
            Some("kernel") => LinkMode::Kernel,
            Some("kernel-hard") => LinkMode::KernelHard,
            Some(other) => {
                return Err(loc
                    .at(
                        c.link.as_ref().expect("some"),
                        format!("link `{other}`: expected auto, engine, kernel or kernel-hard"),
                    )
                    .into());
            }
        };
        let chain_prog = c.program.as_ref().map(&prog).transpose()?;
        let reps = c.repeat.max(1) as u64;
        let mut steps = Vec::new();
        for s in &c.steps {
            let Some(opcode) = op::from_name(s.op.get_ref()) else {
                return Err(loc.at(&s.op, format!("unknown op `{}` (nop, read, write, read_fixed, write_fixed, recv, send, fsync, timeout, bpf)", s.op.get_ref())).into());
            };
            let kind = if opcode == crate::abi::OP_BPF {
                StepKind::Bpf
            } else {
                StepKind::Io
            };
            let fd = match &s.file {
                Some(f) => *names.get(f.get_ref()).ok_or_else(|| {
                    loc.at(
                        f,
                        format!("no file, pipe or socketpair named `{}`", f.get_ref()),
                    )
                })? as i32,
                None if op::needs_file(opcode) => {
                    return Err(loc
                        .at(&s.op, format!("`{}` needs a `file`", s.op.get_ref()))
                        .into());
                }
                None => -1,
            };
            let buf_index = match &s.buffer {
                Some(b) => {
                    let (i, size) = *buffer_names
                        .get(b.get_ref())
                        .ok_or_else(|| loc.at(b, format!("no buffer named `{}`", b.get_ref())))?;
                    let last_off = s.buf_off + c.repeat_buf_stride * (reps - 1);
                    if last_off + s.len as u64 > size {
                        return Err(loc.at(b, format!(
                            "buf_off {last_off} + len {} is outside buffer `{}` ({size} bytes){}",
                            s.len,
                            b.get_ref(),
                            if reps > 1 { " in the last repetition" } else { "" }
                        ))
                        .into());
                    }
                    i
                }
                None if op::needs_buffer(opcode) => {
                    return Err(loc
                        .at(&s.op, format!("`{}` needs a `buffer`", s.op.get_ref()))
                        .into());
                }
                None => crate::abi::NO_BUF,
            };
            let program = s.program.as_ref().map(&prog).transpose()?;
            if kind == StepKind::Bpf && program.is_none() {
                return Err(loc.at(&s.op, "a bpf step needs a `program`").into());
            }
            steps.push((
                StepSpec {
                    kind,
                    sqe: RsSqe {
                        opcode: if kind == StepKind::Bpf {
                            op::NOP
                        } else {
                            opcode
                        },
                        _rsvd: 0,
                        buf_index,
                        fd,
                        off: s.off,
                        buf_off: s.buf_off,
                        len: s.len,
                        op_flags: s.flags,
                        user_data: s.user_data.unwrap_or(c.user_data),
                    },
                    program,
                },
                s.user_data.is_none(),
            ));
        }
        for r in 0..c.repeat.max(1) {
            let steps = steps
                .iter()
                .map(|(s, default_ud)| {
                    let mut s = s.clone();
                    s.sqe.off = s.sqe.off.wrapping_add(c.repeat_off_stride * r as u64);
                    if s.sqe.buf_index != crate::abi::NO_BUF {
                        s.sqe.buf_off += c.repeat_buf_stride * r as u64;
                    }
                    if *default_ud {
                        s.sqe.user_data = c.user_data + r as u64;
                    }
                    s
                })
                .collect();
            chains.push(ChainSpec {
                user_data: c.user_data + r as u64,
                steps,
                program: chain_prog,
                notify,
                drain: c.drain,
                link,
            });
        }
    }
    let timeout = (spec.run.timeout_s > 0.0).then(|| Duration::from_secs_f64(spec.run.timeout_s));
    Ok(Prepared {
        engine,
        chains,
        writers,
        sinks,
        concurrency: spec.run.concurrency,
        timeout,
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
