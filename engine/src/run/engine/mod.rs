//! The engine: chains on a real ring, steered by programs.
//!
//! One thread drives it: [`Engine::run`] submits what is queued, waits for
//! completions, and handles each one: the step's program (or the chain's, or
//! the ring's) decides, its actions are applied, the next step is issued.
//! Chains without programs go to the kernel as `IOSQE_IO_LINK` chains in one
//! submission. Many chains run at once; their requests share each
//! `io_uring_enter`.

mod decide;
mod issue;

use crate::run::error::io_err;
pub use crate::run::error::{EngineError, KernelLinkProblem, RingCall, StepProblem};

use crate::abi::{self, RsCtx, RsSqe, Verdict, Where, op};
use crate::chain::{Chain, ChainKey, ChainSpec, ChainState, ChainTable, Driver, StepState};
use crate::debug::Debugger;
use crate::decision::{
    self, Action, Budgets, ChainView, DecisionRecord, DecisionRequest, DecisionResult, Detail,
    InputSource, Registrations,
};
use crate::event::{
    AppCompletion, AppKind, CancelCause, Event, EventBus, EventRecord, FINAL_FAILED, FileInfo,
    LinkMode, MapInfo, MapWriter, Notify, Outcome, Overflow, ProgramInfo, RingInfo, StepInfo,
    StepKind, Subscription,
};
use crate::kernel::{self, Backend, KernelLoop, RunCtx};
use crate::program::{LoadOptions, LoadedObject, MapId, ProgId, Registry};
use crate::ring::{Buffer, CANCEL_USER_DATA, Cqe, Owner, Ring};
use io_uring::squeue;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Unrecorded decisions are timed one in this many (see [`Stats::decision_ns`]).
const TIME_EVERY: u64 = 32;

/// How to build an engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// SQ entries (the CQ gets four times as many).
    pub entries: u32,
    /// Files to register: (fd, description). Programs name them by index.
    pub files: Vec<(RawFd, String)>,
    /// Sizes of buffers to allocate and register.
    pub buffers: Vec<usize>,
    /// Budgets.
    pub budgets: Budgets,
    /// Where decisions run (see [`crate::kernel`]).
    pub backend: Backend,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            entries: 256,
            files: Vec::new(),
            buffers: Vec::new(),
            budgets: Budgets::default(),
            backend: Backend::User,
        }
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests submitted.
    pub submitted: u64,
    /// Completions reaped.
    pub completed: u64,
    /// Decisions run.
    pub decisions: u64,
    /// Nanoseconds spent in program runs: every recorded decision is timed;
    /// of the others one in 32 is, and counts for 32 (an estimate, since
    /// two clock reads cost more than a short program).
    pub decision_ns: u64,
    /// Chains finished.
    pub chains_finished: u64,
    /// io_uring_enter calls.
    pub enter_calls: u64,
}

/// What shutdown found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every chain that was queued or running, with how it ended.
    pub chains: Vec<(u64, Outcome)>,
    /// Requests in the kernel when shutdown began.
    pub inflight_at_start: u32,
    /// Completions reaped during shutdown.
    pub reaped: u64,
}

struct LiveSource<'a> {
    bufs: &'a [Buffer],
}

impl InputSource for LiveSource<'_> {
    fn ktime_ns(&mut self) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    fn read_buf(&mut self, buf: u16, off: u64, dst: &mut [u8]) {
        let b = &self.bufs[buf as usize];
        // SAFETY: range-checked against the registration by the helper; the
        // kernel may be writing other parts of the buffer, never moving it.
        unsafe {
            std::ptr::copy_nonoverlapping(b.ptr().add(off as usize), dst.as_mut_ptr(), dst.len())
        };
    }
}

/// The engine.
pub struct Engine {
    // Declared first: shut down (in Drop) while everything else still exists.
    ring: Ring,
    /// The kernel backend's loop, when decisions run in the kernel: it then
    /// runs the chains, and the engine's own chain table stays empty.
    kernel: Option<Box<KernelLoop>>,
    registry: Registry,
    regs: Registrations,
    budgets: Budgets,
    bus: EventBus,
    prelude: Vec<Arc<EventRecord>>,
    files: Vec<FileInfo>,
    chains: ChainTable,
    queue: VecDeque<ChainKey>,
    running: u32,
    barrier: Option<ChainKey>,
    next_chain: u64,
    ring_program: Option<ProgId>,
    completions: VecDeque<AppCompletion>,
    cqes: Vec<Cqe>,
    shut: bool,
    stats: Stats,
    shutdown_outcomes: Option<Vec<(u64, Outcome)>>,
    finished: Vec<ChainEnd>,
    debugger: Option<Debugger>,
    /// The record recorded decisions are written into, buffers and all
    /// (one sent out comes back as a spare of the event batch).
    scratch: Box<DecisionRecord>,
    /// The working chain view of recorded decisions.
    scratch_view: ChainView,
    /// The actions of a recorded decision, to apply.
    scratch_actions: Vec<Action>,
    /// Buffers of unrecorded decisions.
    quick: decision::Scratch,
}

/// A finished chain, as [`Engine::take_finished`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEnd {
    /// Chain id.
    pub chain: u64,
    /// Its user_data.
    pub user_data: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Its final result.
    pub res: i32,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("ring", &self.ring)
            .field("chains", &self.chains.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Engine {
    /// Set up the ring and registrations.
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        if config.entries == 0 || !config.entries.is_power_of_two() || config.entries > 32768 {
            return Err(EngineError::Entries {
                entries: config.entries,
            });
        }
        // Calibrated here, not in the first decision it times.
        crate::clock::calibrate();
        let fds: Vec<RawFd> = config.files.iter().map(|(fd, _)| *fd).collect();
        let in_kernel = config.backend == Backend::Kernel;
        if in_kernel {
            kernel::probe()?;
        }
        let entries = if in_kernel {
            config.entries.max(kernel::MIN_ENTRIES)
        } else {
            config.entries
        };
        let ring = Ring::with_setup(entries, &fds, &config.buffers, in_kernel)
            .map_err(io_err(RingCall::Setup))?;
        let kernel = if in_kernel {
            let bufs: Vec<(u64, u64)> = ring
                .buffers()
                .iter()
                .map(|b| (b.ptr() as u64, b.len() as u64))
                .collect();
            Some(Box::new(KernelLoop::new(
                ring.fd(),
                ring.sq_entries(),
                ring.cq_entries(),
                &bufs,
                fds.len() as u32,
            )?))
        } else {
            None
        };
        let regs = Registrations {
            files: fds.len() as u32,
            buffers: config.buffers.iter().map(|&b| b as u64).collect(),
        };
        let files: Vec<FileInfo> = config
            .files
            .iter()
            .enumerate()
            .map(|(i, (_, name))| FileInfo {
                index: i as u32,
                name: name.clone(),
            })
            .collect();
        let mut e = Engine {
            ring,
            kernel,
            registry: Registry::new(),
            regs,
            budgets: config.budgets,
            bus: EventBus::new(),
            prelude: Vec::new(),
            files,
            chains: ChainTable::default(),
            queue: VecDeque::new(),
            running: 0,
            barrier: None,
            next_chain: 1,
            ring_program: None,
            completions: VecDeque::new(),
            cqes: Vec::with_capacity(256),
            shut: false,
            stats: Stats::default(),
            shutdown_outcomes: None,
            finished: Vec::new(),
            debugger: None,
            scratch: Box::default(),
            scratch_view: ChainView::default(),
            scratch_actions: Vec::new(),
            quick: decision::Scratch::default(),
        };
        let info = RingInfo {
            fd: e.ring.fd(),
            pid: std::process::id(),
            sq_entries: e.ring.sq_entries(),
            cq_entries: e.ring.cq_entries(),
            files: e.files.clone(),
            regs: e.regs.clone(),
            budgets: e.budgets,
            backend: e.backend(),
        };
        e.emit_setup(Event::RingSetup(Box::new(info)));
        Ok(e)
    }

    /// Setup events are kept and replayed to late subscribers.
    fn emit_setup(&mut self, ev: Event) {
        let rec = self.bus.emit_always(ev);
        self.prelude.push(rec);
    }

    /// Listen to events, decisions in full (every helper call with its
    /// arguments, map writes, instruction counts: what a script reading
    /// events expects). The subscriber first gets the setup events (ring,
    /// programs, the application's map writes) it may have missed.
    pub fn subscribe(&mut self, capacity: usize, overflow: Overflow) -> Subscription {
        self.subscribe_with(capacity, overflow, Detail::Full)
    }

    /// [`Engine::subscribe`], decisions with `detail`: a listener that
    /// shows or stores decisions takes [`Detail::Inputs`] and completes
    /// the ones it shows ([`crate::decision::complete`]); the engine then
    /// records only what a re-run cannot recompute, and watching it costs
    /// little. With several subscribers, every one gets the most any asked.
    pub fn subscribe_with(
        &mut self,
        capacity: usize,
        overflow: Overflow,
        detail: Detail,
    ) -> Subscription {
        self.bus
            .subscribe(capacity, overflow, detail, &self.prelude)
    }

    /// Attach a debugger: the engine stops after decisions it asks for (see
    /// [`crate::debug`]).
    pub fn set_debugger(&mut self, debugger: Option<Debugger>) {
        self.debugger = debugger;
    }

    /// Registrations programs may name.
    pub fn registrations(&self) -> &Registrations {
        &self.regs
    }

    /// Budgets.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// Change the budgets (applies to decisions from now on).
    pub fn set_budgets(&mut self, budgets: Budgets) {
        self.budgets = budgets;
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        if let Some(k) = &self.kernel {
            let (submitted, completed, decisions, decision_ns, chains_finished) = k.counters();
            return Stats {
                submitted,
                completed,
                decisions,
                decision_ns,
                chains_finished,
                enter_calls: k.enter_calls,
            };
        }
        Stats {
            enter_calls: self.ring.enter_calls,
            ..self.stats
        }
    }

    /// Where decisions run.
    pub fn backend(&self) -> Backend {
        if self.kernel.is_some() {
            Backend::Kernel
        } else {
            Backend::User
        }
    }

    /// The kernel backend's view of what runs: its context for a run.
    fn kernel_run(&mut self) -> Option<(&mut KernelLoop, RunCtx<'_>)> {
        let k = self.kernel.as_deref_mut()?;
        Some((
            k,
            RunCtx {
                registry: &mut self.registry,
                regs: &self.regs,
                budgets: &self.budgets,
                ring_program: self.ring_program,
                bus: &mut self.bus,
                debugger: &self.debugger,
                completions: &mut self.completions,
                finished: &mut self.finished,
            },
        ))
    }

    /// What the ring got of the kernel's features for cheaper enters.
    pub fn ring_tuning(&self) -> &crate::ring::Tuning {
        self.ring.tuning()
    }

    /// The ring fd.
    pub fn ring_fd(&self) -> RawFd {
        self.ring.fd()
    }

    /// Requests in the kernel.
    pub fn inflight(&self) -> u32 {
        match &self.kernel {
            Some(k) => k.inflight(),
            None => self.ring.inflight(),
        }
    }

    /// Chains queued or running.
    pub fn active_chains(&self) -> usize {
        match &self.kernel {
            Some(k) => k.active(),
            None => self.chains.len(),
        }
    }

    /// Programs and maps.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Load every program of an ELF object.
    pub fn load_object(
        &mut self,
        file: &str,
        bytes: &[u8],
        opts: &LoadOptions,
    ) -> Result<LoadedObject, EngineError> {
        let obj = self.registry.load_object(file, bytes, opts)?;
        self.announce(&obj, bytes);
        Ok(obj)
    }

    /// Load only the named programs of an ELF object.
    pub fn load_object_programs(
        &mut self,
        file: &str,
        bytes: &[u8],
        names: &[&str],
        opts: &LoadOptions,
    ) -> Result<LoadedObject, EngineError> {
        let obj = self.registry.load_programs(file, bytes, names, opts)?;
        self.announce(&obj, bytes);
        Ok(obj)
    }

    fn announce(&mut self, obj: &LoadedObject, bytes: &[u8]) {
        let bytes = Arc::new(bytes.to_vec());
        for (_, id) in &obj.programs {
            let p = self.registry.program(*id).expect("just loaded");
            let info = ProgramInfo {
                prog: id.0,
                name: p.name.clone(),
                file: p.file.clone(),
                insns: p.report.insns as u32,
                max_path: p.report.max_path,
                exec: p.exec_mode(),
                exec_note: p.exec_note.clone(),
                trusted: p.trusted,
                object_hash: p.object_hash,
                maps: p
                    .maps
                    .iter()
                    .enumerate()
                    .map(|(local, &m)| {
                        let d = self.registry.map(m).expect("map").def();
                        MapInfo {
                            id: m.0,
                            local: local as u32,
                            name: d.name.clone(),
                            kind: d.kind,
                            key_size: d.key_size,
                            value_size: d.value_size,
                            max_entries: d.max_entries,
                        }
                    })
                    .collect(),
                object: bytes.clone(),
                code: Arc::new(p.code().to_vec()),
            };
            self.emit_setup(Event::ProgramLoaded(Box::new(info)));
        }
    }

    /// Under the kernel backend, link the loaded programs into the loop and
    /// load it now, so that the kernel's verifier judges them here rather
    /// than at the next submitted chain (it takes long: about a second
    /// under qemu TCG). Nothing to do under the user backend.
    pub fn link_programs(&mut self) -> Result<(), EngineError> {
        if let Some(k) = self.kernel.as_deref_mut() {
            k.ensure_linked(&self.registry, &self.budgets)?;
        }
        Ok(())
    }

    /// Find a loaded program by name.
    pub fn program_by_name(&self, name: &str) -> Option<ProgId> {
        self.registry
            .programs()
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.id)
    }

    /// The program every engine-driven step without its own (or its chain's) runs.
    pub fn set_ring_program(&mut self, prog: Option<ProgId>) -> Result<(), EngineError> {
        if let Some(p) = prog
            && self.registry.program(p).is_none()
        {
            return Err(EngineError::NoProgram(p.0));
        }
        self.ring_program = prog;
        self.emit_setup(Event::RingProgram {
            prog: prog.map(|p| p.0),
        });
        Ok(())
    }

    /// Find a program's map by name.
    pub fn map_by_name(&self, prog: ProgId, name: &str) -> Option<MapId> {
        self.registry.map_by_name(prog, name)
    }

    /// Read a map entry.
    pub fn map_lookup(&self, map: MapId, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let m = self.registry.map(map).ok_or(EngineError::NoMap(map.0))?;
        if let Some(v) = self
            .kernel
            .as_ref()
            .and_then(|k| k.map_lookup(&self.registry, map, key))
        {
            m.get(key)?; // the key's checks
            return Ok(v);
        }
        Ok(m.get(key)?)
    }

    /// Every entry of a map.
    pub fn map_entries(&self, map: MapId) -> Result<crate::program::maps::Entries, EngineError> {
        let m = self.registry.map(map).ok_or(EngineError::NoMap(map.0))?;
        if let Some(v) = self
            .kernel
            .as_ref()
            .and_then(|k| k.map_entries(&self.registry, map))
        {
            return Ok(v);
        }
        Ok(m.entries())
    }

    /// Write a map entry (pre-load, or change between decisions).
    pub fn map_update(
        &mut self,
        map: MapId,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), EngineError> {
        let m = self
            .registry
            .map_mut(map)
            .ok_or(EngineError::NoMap(map.0))?;
        let before = m.get(key)?;
        m.update(key, value, flags)?;
        let after = m.get(key)?;
        if let Some(k) = &self.kernel {
            k.map_write(map, key, Some(value), flags)?;
        }
        self.emit_setup(Event::MapUpdate {
            map: map.0,
            key: key.to_vec(),
            before,
            after,
            by: MapWriter::App,
        });
        Ok(())
    }

    /// Delete a map entry.
    pub fn map_delete(&mut self, map: MapId, key: &[u8]) -> Result<(), EngineError> {
        let m = self
            .registry
            .map_mut(map)
            .ok_or(EngineError::NoMap(map.0))?;
        let before = m.get(key)?;
        m.delete(key)?;
        if let Some(k) = &self.kernel {
            k.map_write(map, key, None, 0)?;
        }
        self.emit_setup(Event::MapUpdate {
            map: map.0,
            key: key.to_vec(),
            before,
            after: None,
            by: MapWriter::App,
        });
        Ok(())
    }

    /// A registered buffer's bytes. The kernel may be writing into it while
    /// requests that use it are in flight; read it after their completions.
    pub fn buffer(&self, index: usize) -> Option<&[u8]> {
        let b = self.ring.buffers().get(index)?;
        // SAFETY: the buffer lives as long as the ring; see the doc comment for races.
        Some(unsafe { std::slice::from_raw_parts(b.ptr(), b.len()) })
    }

    /// A registered buffer, to fill before issuing writes from it.
    pub fn buffer_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        let b = self.ring.buffers().get(index)?;
        // SAFETY: as in `buffer`; &mut self keeps the engine from issuing meanwhile.
        Some(unsafe { std::slice::from_raw_parts_mut(b.ptr(), b.len()) })
    }

    /// Take the completions posted to the application so far.
    pub fn take_completions(&mut self) -> Vec<AppCompletion> {
        self.completions.drain(..).collect()
    }

    /// Move the completions posted so far to the end of `out`: a caller
    /// that keeps `out` allocates nothing per call (as
    /// [`Engine::take_completions`] does for every call that finds some).
    pub fn take_completions_into(&mut self, out: &mut Vec<AppCompletion>) {
        out.extend(self.completions.drain(..));
    }

    /// Take the chains that finished so far (whatever their notify policy).
    pub fn take_finished(&mut self) -> Vec<ChainEnd> {
        std::mem::take(&mut self.finished)
    }

    /// [`Engine::take_finished`] into `out` (cleared first), whose buffer
    /// the engine keeps in exchange: the engine's list and the caller's
    /// keep their room, so a loop that takes chain ends after every
    /// [`Engine::run`] allocates nothing for them. (`take_finished` leaves
    /// the engine an empty list, and the next chain to end allocates one.)
    pub fn take_finished_into(&mut self, out: &mut Vec<ChainEnd>) {
        out.clear();
        std::mem::swap(&mut self.finished, out);
    }

    /// Pop one completion posted to the application.
    pub fn pop_completion(&mut self) -> Option<AppCompletion> {
        self.completions.pop_front()
    }

    fn check_template(&self, sqe: &RsSqe) -> Result<(), StepProblem> {
        if !op::allowed(sqe.opcode) {
            return Err(StepProblem::Opcode {
                opcode: sqe.opcode,
                name: op::name(sqe.opcode),
            });
        }
        if op::needs_file(sqe.opcode) && (sqe.fd < 0 || sqe.fd as u32 >= self.regs.files) {
            return Err(StepProblem::File {
                fd: sqe.fd,
                files: self.regs.files,
            });
        }
        if op::needs_buffer(sqe.opcode) {
            let Some(&size) = self.regs.buffers.get(sqe.buf_index as usize) else {
                return Err(StepProblem::Buffer(sqe.buf_index));
            };
            if sqe
                .buf_off
                .checked_add(sqe.len as u64)
                .is_none_or(|e| e > size)
            {
                return Err(StepProblem::Range {
                    off: sqe.buf_off,
                    len: sqe.len,
                    buf: sqe.buf_index,
                    size,
                });
            }
        }
        Ok(())
    }

    /// Submit a chain; returns its id. It starts at once unless a drain
    /// chain holds it back.
    pub fn submit_chain(&mut self, spec: ChainSpec) -> Result<u64, EngineError> {
        if self.shut {
            return Err(EngineError::ShuttingDown);
        }
        if spec.steps.is_empty() {
            return Err(EngineError::EmptyChain);
        }
        if spec.steps.len() as u32 > self.budgets.steps_per_chain {
            return Err(EngineError::TooManySteps {
                steps: spec.steps.len(),
                budget: self.budgets.steps_per_chain,
            });
        }
        for p in spec
            .program
            .iter()
            .chain(spec.steps.iter().filter_map(|s| s.program.as_ref()))
        {
            if self.registry.program(*p).is_none() {
                return Err(EngineError::NoProgram(p.0));
            }
        }
        for (i, s) in spec.steps.iter().enumerate() {
            match s.kind {
                StepKind::Io => self
                    .check_template(&s.sqe)
                    .map_err(|why| EngineError::BadStep { step: i, why })?,
                StepKind::Bpf => {
                    if s.program.is_none() {
                        return Err(EngineError::BadStep {
                            step: i,
                            why: StepProblem::BpfWithoutProgram,
                        });
                    }
                }
            }
        }
        let has_programs = spec.program.is_some() || spec.steps.iter().any(|s| s.program.is_some());
        let driver = match spec.link {
            LinkMode::Engine => Driver::Engine,
            LinkMode::Auto if has_programs || self.ring_program.is_some() => Driver::Engine,
            LinkMode::Auto | LinkMode::Kernel => Driver::Kernel { hard: false },
            LinkMode::KernelHard => Driver::Kernel { hard: true },
        };
        if let Driver::Kernel { .. } = driver {
            if has_programs {
                return Err(EngineError::NotKernelLinkable(KernelLinkProblem::Programs));
            }
            if spec.steps.iter().any(|s| s.kind == StepKind::Bpf) {
                return Err(EngineError::NotKernelLinkable(KernelLinkProblem::BpfSteps));
            }
            if spec.steps.len() as u32 > self.ring.sq_entries() {
                return Err(EngineError::NotKernelLinkable(KernelLinkProblem::TooLong {
                    steps: spec.steps.len(),
                    entries: self.ring.sq_entries(),
                }));
            }
        }
        let id = self.next_chain;
        self.next_chain += 1;
        let chain = Chain::new(id, &spec, driver);
        self.bus.emit(|| Event::ChainCreated {
            chain: id,
            user_data: spec.user_data,
            mode: spec.link,
            driven_by: driver.mode(),
            notify: spec.notify,
            drain: spec.drain,
            program: spec.program.map(|p| p.0),
            steps: spec
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| StepInfo {
                    index: i as u32,
                    kind: s.kind,
                    sqe: s.sqe,
                    program: s.program.map(|p| p.0),
                })
                .collect(),
        });
        if let Some(kl) = self.kernel.as_deref_mut() {
            kl.submit(id, &spec, driver, &self.registry, &self.budgets)?;
            return Ok(id);
        }
        let k = self.chains.insert(chain);
        self.queue.push_back(k);
        self.start_queued();
        Ok(id)
    }

    /// Submit what is queued, optionally wait for one completion, and handle
    /// every completion available. Returns how many were handled.
    pub fn run(&mut self, wait: bool) -> Result<usize, EngineError> {
        self.run_timeout(wait, None)
    }

    /// [`Engine::run`], waiting at most `timeout` (when waiting).
    pub fn run_timeout(
        &mut self,
        wait: bool,
        timeout: Option<Duration>,
    ) -> Result<usize, EngineError> {
        if let Some((k, cx)) = self.kernel_run() {
            return Ok(k.run(wait, timeout, cx)?);
        }
        let want = usize::from(wait && self.ring.inflight() > 0);
        self.ring
            .submit_timeout(want, timeout)
            .map_err(io_err(RingCall::Enter))?;
        let mut cqes = std::mem::take(&mut self.cqes);
        self.ring.reap(&mut cqes);
        let n = cqes.len();
        // The completions were reaped together: their events (and those of
        // the steps they issue) carry the time they were reaped at.
        self.bus.begin_batch();
        for cqe in cqes.drain(..) {
            self.on_cqe(cqe);
        }
        self.bus.end_batch();
        self.cqes = cqes;
        Ok(n)
    }

    /// Run until every chain has finished.
    pub fn run_until_idle(&mut self) -> Result<(), EngineError> {
        while self.kernel.as_ref().is_some_and(|k| k.active() > 0) {
            if let Some((k, cx)) = self.kernel_run() {
                k.run_until_idle(cx)?;
            }
        }
        while !self.chains.is_empty() {
            let n = self.run(true)?;
            if n == 0
                && self.ring.inflight() == 0
                && self.ring.queued() == 0
                && !self.chains.is_empty()
            {
                return Err(EngineError::Stuck {
                    chains: self.chains.len(),
                });
            }
        }
        Ok(())
    }

    /// Stop issuing, cancel what is pending, and reap every request in
    /// flight: nothing is left in the kernel and every chain ends with a
    /// reported outcome.
    pub fn shutdown(&mut self) -> Result<ShutdownReport, EngineError> {
        if self.shut {
            return Ok(ShutdownReport::default());
        }
        self.shut = true;
        if self.kernel.is_some() {
            let inflight_at_start = self.inflight();
            let finished_before = self.finished.len();
            let completed_before = self.stats().completed;
            if let Some((k, cx)) = self.kernel_run() {
                k.shutdown(cx)?;
            }
            return Ok(ShutdownReport {
                chains: self.finished[finished_before..]
                    .iter()
                    .map(|c| (c.chain, c.outcome.clone()))
                    .collect(),
                inflight_at_start,
                reaped: self.stats().completed - completed_before,
            });
        }
        self.shutdown_outcomes = Some(Vec::new());
        let inflight_at_start = self.ring.inflight();
        let nchains = self.chains.len() as u32;
        self.bus.emit(|| Event::Shutdown {
            chains: nchains,
            inflight: inflight_at_start,
        });
        // Queued chains never started: every step is cancelled.
        while let Some(k) = self.queue.pop_front() {
            self.cancel_pending(k);
        }
        for k in self.chains.keys() {
            self.cancel_pending(k);
        }
        let mut reaped = 0u64;
        if self.ring.inflight() > 0 {
            self.ring
                .cancel_all()
                .map_err(io_err(RingCall::ShutdownCancel))?;
            let mut last_cancel = Instant::now();
            while self.ring.inflight() > 0 {
                // Requests that cannot be cancelled (a regular file read under
                // way) complete on their own; re-ask now and then for the rest.
                if last_cancel.elapsed() > Duration::from_millis(200) {
                    self.ring
                        .cancel_all()
                        .map_err(io_err(RingCall::ShutdownCancel))?;
                    last_cancel = Instant::now();
                }
                reaped += self.run_timeout(true, Some(Duration::from_millis(50)))? as u64;
            }
        }
        // Flush our own cancel requests' completions.
        self.ring.submit(0).map_err(io_err(RingCall::Enter))?;
        let mut rest = Vec::new();
        self.ring.reap(&mut rest);
        for k in self.chains.keys() {
            self.finish_if_idle(k);
        }
        Ok(ShutdownReport {
            chains: self.shutdown_outcomes.take().unwrap_or_default(),
            inflight_at_start,
            reaped,
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The kernel may still write into our buffers: reap everything first.
        let _ = self.shutdown();
    }
}
