//! The engine: chains on a real ring, steered by programs.
//!
//! One thread drives it: [`Engine::run`] submits what is queued, waits for
//! completions, and handles each one: the step's program (or the chain's, or
//! the ring's) decides, its actions are applied, the next step is issued.
//! Chains without programs go to the kernel as `IOSQE_IO_LINK` chains in one
//! submission. Many chains run at once; their requests share each
//! `io_uring_enter`.

pub use crate::run::error::{EngineError, KernelLinkProblem, StepProblem};
use crate::run::error::io_err;

use crate::abi::{self, RsCtx, RsSqe, Verdict, Where, op};
use crate::chain::{Chain, ChainKey, ChainSpec, ChainState, ChainTable, Driver, StepState};
use crate::debug::Debugger;
use crate::decision::{
    self, Action, Budgets, DecisionRecord, DecisionRequest, DecisionResult, InputSource,
    Registrations,
};
use crate::event::{
    AppCompletion, AppKind, CancelCause, Event, EventBus, EventRecord, FINAL_FAILED, FileInfo,
    LinkMode, MapInfo, MapWriter, Notify, Outcome, Overflow, ProgramInfo, RingInfo, StepInfo,
    StepKind, Subscription,
};
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            entries: 256,
            files: Vec::new(),
            buffers: Vec::new(),
            budgets: Budgets::default(),
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
    /// Buffers of the last decision recorded but not sent out (debugger,
    /// counting), reused by the next.
    scratch: DecisionRecord,
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
        let fds: Vec<RawFd> = config.files.iter().map(|(fd, _)| *fd).collect();
        let ring = Ring::new(config.entries, &fds, &config.buffers)
            .map_err(io_err("setting up the io_uring"))?;
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
            scratch: DecisionRecord::default(),
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
        };
        e.emit_setup(Event::RingSetup(info));
        Ok(e)
    }

    /// Setup events are kept and replayed to late subscribers.
    fn emit_setup(&mut self, ev: Event) {
        let rec = self.bus.emit_always(ev);
        self.prelude.push(rec);
    }

    /// Listen to events. The subscriber first gets the setup events (ring,
    /// programs, the application's map writes) it may have missed.
    pub fn subscribe(&mut self, capacity: usize, overflow: Overflow) -> Subscription {
        self.bus.subscribe(capacity, overflow, &self.prelude)
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
        Stats {
            enter_calls: self.ring.enter_calls,
            ..self.stats
        }
    }

    /// The ring fd.
    pub fn ring_fd(&self) -> RawFd {
        self.ring.fd()
    }

    /// Requests in the kernel.
    pub fn inflight(&self) -> u32 {
        self.ring.inflight()
    }

    /// Chains queued or running.
    pub fn active_chains(&self) -> usize {
        self.chains.len()
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
            self.emit_setup(Event::ProgramLoaded(info));
        }
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
        let m = self
            .registry
            .map(map)
            .ok_or(EngineError::NoMap(map.0))?;
        Ok(m.get(key)?)
    }

    /// Every entry of a map.
    pub fn map_entries(&self, map: MapId) -> Result<crate::program::maps::Entries, EngineError> {
        let m = self
            .registry
            .map(map)
            .ok_or(EngineError::NoMap(map.0))?;
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

    /// Take the chains that finished so far (whatever their notify policy).
    pub fn take_finished(&mut self) -> Vec<ChainEnd> {
        std::mem::take(&mut self.finished)
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
        let k = self.chains.insert(chain);
        self.queue.push_back(k);
        self.start_queued();
        Ok(id)
    }

    /// Start queued chains in order, honouring drain barriers.
    fn start_queued(&mut self) {
        while let Some(&k) = self.queue.front() {
            if self.barrier.is_some() {
                return;
            }
            let drain = self.chains.get(k).is_some_and(|c| c.drain);
            if drain && self.running > 0 {
                return;
            }
            self.queue.pop_front();
            if drain {
                self.barrier = Some(k);
            }
            self.start_chain(k);
        }
    }

    fn start_chain(&mut self, k: ChainKey) {
        self.running += 1;
        let Some(c) = self.chains.get_mut(k) else {
            return;
        };
        c.state = ChainState::Running;
        let (driver, id) = (c.driver, c.id);
        self.bus.emit(|| Event::ChainStarted { chain: id });
        match driver {
            Driver::Engine => self.advance(k, None),
            Driver::Kernel { hard } => self.issue_kernel_link(k, hard),
        }
    }

    fn issue_kernel_link(&mut self, k: ChainKey, hard: bool) {
        let n = self.chains[k].steps.len();
        if self.ring.sq_space() < n {
            // A link must be in one submission: make room first.
            if let Err(e) = self.ring.submit(0) {
                self.fail_submit(k, 0, e);
                return;
            }
        }
        for pos in 0..n {
            let flags = if pos + 1 < n {
                if hard {
                    squeue::Flags::IO_HARDLINK
                } else {
                    squeue::Flags::IO_LINK
                }
            } else {
                squeue::Flags::empty()
            };
            if let Err(e) = self.issue(k, pos, flags) {
                self.fail_submit(k, pos as u32, e);
                return;
            }
        }
    }

    /// Put one step in the SQ.
    fn issue(&mut self, k: ChainKey, pos: usize, flags: squeue::Flags) -> std::io::Result<()> {
        let now = if self.bus.active() {
            self.bus.now_ns()
        } else {
            0
        };
        let c = self.chains.get_mut(k).expect("chain");
        let step = &mut c.steps[pos];
        let ud = self.ring.alloc_slot(Owner {
            chain: k,
            uid: step.uid,
        });
        let entry = self.ring.build(&step.sqe, ud, flags);
        step.state = StepState::Inflight;
        step.submitted_ns = now;
        c.inflight += 1;
        let (id, index, sqe, attempt) = (c.id, c.base + pos as u32, step.sqe, step.attempt);
        self.stats.submitted += 1;
        self.bus.emit(|| Event::Submitted {
            chain: id,
            step: index,
            sqe,
            sqe_flags: flags.bits(),
            ring_user_data: ud,
            attempt,
        });
        if let Err(e) = self.ring.push(entry) {
            let _ = self.ring.release(ud);
            return Err(e);
        }
        Ok(())
    }

    fn fail_submit(&mut self, k: ChainKey, step: u32, e: std::io::Error) {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        if let Some(c) = self.chains.get_mut(k)
            && let Some(pos) = c.pos(step)
        {
            let s = &mut c.steps[pos];
            if s.state == StepState::Inflight {
                s.state = StepState::Pending;
                c.inflight -= 1;
            }
        }
        self.fail(k, step, -errno, CancelCause::SubmitFailed { errno });
    }

    /// Issue the next in-order step after `after`, running `bpf` steps inline.
    fn advance(&mut self, k: ChainKey, after: Option<u32>) {
        let mut after = after;
        loop {
            let Some(c) = self.chains.get(k) else {
                return;
            };
            if c.state != ChainState::Running || self.shut {
                self.finish_if_idle(k);
                return;
            }
            let Some(pos) = c.next_pending(after) else {
                self.chains.get_mut(k).expect("chain").state = ChainState::Finishing;
                self.finish_if_idle(k);
                return;
            };
            let index = c.index(pos);
            if c.steps[pos].kind == StepKind::Bpf {
                let prog = c.steps[pos].program.expect("checked at submit");
                let res = c.last_res;
                let ctx = self.context(k, pos, res, 0);
                let c = self.chains.get_mut(k).expect("chain");
                c.steps[pos].state = StepState::Done;
                c.steps[pos].res = res;
                c.current = Some(index);
                if !self.decide(k, pos, prog, ctx) {
                    return;
                }
                after = Some(index);
                continue;
            }
            if let Err(e) = self.issue(k, pos, squeue::Flags::empty()) {
                self.fail_submit(k, index, e);
            }
            return;
        }
    }

    fn context(&self, k: ChainKey, pos: usize, res: i32, cqe_flags: u32) -> RsCtx {
        let c = &self.chains[k];
        let s = &c.steps[pos];
        let index = c.index(pos);
        let last = c.next_pending(Some(index)).is_none();
        RsCtx {
            user_data: s.sqe.user_data,
            res,
            cqe_flags,
            chain_id: c.id,
            step: index,
            nsteps: c.nsteps(),
            opcode: if s.kind == StepKind::Bpf {
                abi::OP_BPF
            } else {
                s.sqe.opcode
            },
            attempt: s.attempt,
            ctx_flags: if last { abi::CTX_LAST_STEP } else { 0 },
            fd: s.sqe.fd,
            off: s.sqe.off,
            len: s.sqe.len,
            buf_index: s.sqe.buf_index,
            _pad: 0,
            buf_off: s.sqe.buf_off,
        }
    }

    /// Run a decision and apply it. Returns true when the chain goes on.
    fn decide(&mut self, k: ChainKey, pos: usize, prog: ProgId, ctx: RsCtx) -> bool {
        let seq = self.stats.decisions;
        self.stats.decisions += 1;
        let step = ctx.step;
        let (p, maps) = self
            .registry
            .program_and_maps(prog)
            .expect("program exists");
        let quiet = !self.bus.active()
            && self.debugger.is_none()
            && !decision::needs_count(p, &self.budgets);
        let result = if quiet {
            // Nobody looks at this decision: no record, no event.
            self.chains[k].view_into(pos, &mut self.quick.view);
            let mut source = LiveSource {
                bufs: self.ring.buffers(),
            };
            // Two clock reads cost more than a short program's run: time one
            // decision in TIME_EVERY and count it for all of them.
            let (result, ns) = decision::execute_unrecorded(
                p,
                maps,
                &ctx,
                &self.regs,
                &self.budgets,
                &mut source,
                &mut self.quick,
                seq.is_multiple_of(TIME_EVERY),
            );
            if let Some(ns) = ns {
                self.stats.decision_ns += ns * TIME_EVERY;
            }
            if result.verdict().is_some() {
                let mut actions = std::mem::take(&mut self.quick.actions);
                for a in actions.drain(..) {
                    self.apply(k, seq, a);
                }
                self.quick.actions = actions;
            }
            result
        } else {
            self.decide_recorded(k, pos, prog, seq, ctx)
        };
        self.conclude(k, seq, step, result)
    }

    /// [`Engine::decide`] with the decision recorded: sent as an event, seen by
    /// the debugger, its instructions counted. Applies the actions of a verdict.
    fn decide_recorded(
        &mut self,
        k: ChainKey,
        pos: usize,
        prog: ProgId,
        seq: u64,
        ctx: RsCtx,
    ) -> DecisionResult {
        // One record is reused for every decision that is not sent out.
        let mut view = std::mem::take(&mut self.scratch.view);
        self.chains[k].view_into(pos, &mut view);
        let record = self.bus.active();
        let req = DecisionRequest {
            seq,
            ctx,
            view,
            regs: &self.regs,
            budgets: &self.budgets,
            record,
            count_insns: record,
        };
        let (p, maps) = self
            .registry
            .program_and_maps(prog)
            .expect("program exists");
        let mut source = LiveSource {
            bufs: self.ring.buffers(),
        };
        decision::execute_into(p, maps, req, &mut source, &mut self.scratch);
        self.stats.decision_ns += self.scratch.duration_ns;
        let result = self.scratch.result.clone();
        let verdict = result.verdict().is_some();
        let (rec, actions) = if record {
            // The record goes out as an event; the next decision starts afresh.
            let rec = std::mem::take(&mut self.scratch);
            let actions = if verdict {
                rec.actions.clone()
            } else {
                Vec::new()
            };
            (Some(rec), actions)
        } else {
            let actions = if verdict {
                std::mem::take(&mut self.scratch.actions)
            } else {
                Vec::new()
            };
            (None, actions)
        };
        let stop = self
            .debugger
            .as_ref()
            .and_then(|d| d.should_stop(rec.as_ref().unwrap_or(&self.scratch)));
        if let Some(rec) = rec {
            self.bus.emit(|| Event::Decision(Box::new(rec)));
        }
        if let (Some(reason), Some(d)) = (stop, self.debugger.clone()) {
            // Stopped after the decision ran, before it takes effect.
            self.bus.emit(|| Event::Paused {
                reason,
                decision: Some(seq),
            });
            d.wait(&|| false);
            self.bus.emit(|| Event::Resumed);
        }
        let mut actions = actions;
        for a in actions.drain(..) {
            self.apply(k, seq, a);
        }
        if !record {
            self.scratch.actions = actions; // keep the allocation
        }
        result
    }

    /// Act on how a decision ended. Returns true when the chain goes on.
    fn conclude(&mut self, k: ChainKey, seq: u64, step: u32, result: DecisionResult) -> bool {
        match result {
            DecisionResult::Verdict {
                verdict: Verdict::Next,
            } => true,
            DecisionResult::Verdict {
                verdict: Verdict::Stop,
            } => {
                self.stop(k, seq, step);
                false
            }
            DecisionResult::Verdict {
                verdict: Verdict::Fail,
            } => {
                let res = self
                    .chains
                    .get(k)
                    .and_then(|c| c.pos(step).map(|p| c.steps[p].res))
                    .unwrap_or(0);
                self.fail(
                    k,
                    step,
                    res,
                    CancelCause::ProgramFail {
                        decision: seq,
                        step,
                    },
                );
                false
            }
            DecisionResult::BadReturn { ret } => {
                let reason =
                    format!("returned {ret}, which is not RS_NEXT (0), RS_STOP (1) or RS_FAIL (2)");
                self.fail(
                    k,
                    step,
                    -libc::EINVAL,
                    CancelCause::ProgramError {
                        decision: seq,
                        reason,
                    },
                );
                false
            }
            DecisionResult::VmError { message } => {
                self.fail(
                    k,
                    step,
                    -libc::EFAULT,
                    CancelCause::ProgramError {
                        decision: seq,
                        reason: message,
                    },
                );
                false
            }
            DecisionResult::Budget { violation } => {
                self.fail(
                    k,
                    step,
                    -libc::E2BIG,
                    CancelCause::Budget {
                        decision: seq,
                        violation,
                    },
                );
                false
            }
        }
    }

    fn apply(&mut self, k: ChainKey, decision: u64, action: Action) {
        match action {
            Action::Submit {
                index,
                place,
                sqe,
                attempt,
            } => {
                let c = self.chains.get_mut(k).expect("chain");
                let detached = place == Where::Detached;
                let pos = c.insert(index, sqe, attempt, detached);
                let (id, index) = (c.id, c.index(pos));
                self.bus.emit(|| Event::StepAdded {
                    chain: id,
                    step: index,
                    place,
                    sqe,
                    attempt,
                    decision,
                });
                if detached && let Err(e) = self.issue(k, pos, squeue::Flags::empty()) {
                    let c = self.chains.get_mut(k).expect("chain");
                    c.steps[pos].state = StepState::Cancelled;
                    let errno = e.raw_os_error().unwrap_or(libc::EIO);
                    self.cancelled(k, index, CancelCause::SubmitFailed { errno }, false, true);
                }
            }
            Action::Drop { step } => {
                let c = self.chains.get_mut(k).expect("chain");
                if let Some(p) = c.pos(step)
                    && c.steps[p].state == StepState::Pending
                {
                    c.steps[p].state = StepState::Dropped;
                    self.cancelled(k, step, CancelCause::Dropped { decision }, false, true);
                }
            }
            Action::Unlink { step } => {
                let c = self.chains.get_mut(k).expect("chain");
                let id = c.id;
                if let Some(p) = c.pos(step) {
                    c.steps[p].unlinked = true;
                    self.bus.emit(|| Event::Unlinked {
                        chain: id,
                        step,
                        decision,
                    });
                }
            }
            Action::Emit {
                user_data,
                res,
                flags,
            } => {
                let c = AppCompletion {
                    chain: self.chains[k].id,
                    step: None,
                    user_data,
                    res,
                    flags,
                    kind: AppKind::Emit,
                };
                self.post(c);
            }
            Action::SetRes { res } => {
                if let Some(c) = self.chains.get_mut(k) {
                    c.final_res = Some(res);
                }
            }
        }
    }

    fn post(&mut self, c: AppCompletion) {
        self.bus.emit(|| Event::AppCompletion(c));
        self.completions.push_back(c);
    }

    /// Report a cancelled step; `notify` posts it under notify = all.
    fn cancelled(
        &mut self,
        k: ChainKey,
        step: u32,
        cause: CancelCause,
        issued: bool,
        notify: bool,
    ) {
        let res = -libc::ECANCELED;
        // Only live chains have steps to cancel.
        let Some(c) = self.chains.get(k) else {
            return;
        };
        let (id, post, user_data) = (
            c.id,
            notify && c.notify == Notify::All,
            c.pos(step).map(|p| c.steps[p].sqe.user_data).unwrap_or(0),
        );
        self.bus.emit(|| Event::Cancelled {
            chain: id,
            step,
            cause,
            res,
            issued,
        });
        if post {
            self.post(AppCompletion {
                chain: id,
                step: Some(step),
                user_data,
                res,
                flags: 0,
                kind: AppKind::Cancelled,
            });
        }
    }

    /// Fail the chain at `step`: cancel every step not yet issued.
    fn fail(&mut self, k: ChainKey, step: u32, res: i32, cause: CancelCause) {
        let Some(c) = self.chains.get_mut(k) else {
            return;
        };
        if c.failure.is_none() {
            c.failure = Some((step, res, cause.clone()));
        }
        c.state = ChainState::Finishing;
        for i in c.end_pending(StepState::Cancelled) {
            self.cancelled(k, i, cause.clone(), false, true);
        }
        self.finish_if_idle(k);
    }

    /// Stop the chain successfully: drop the rest quietly.
    fn stop(&mut self, k: ChainKey, decision: u64, step: u32) {
        let Some(c) = self.chains.get_mut(k) else {
            return;
        };
        c.stopped = Some(decision);
        c.state = ChainState::Finishing;
        for i in c.end_pending(StepState::Dropped) {
            self.cancelled(
                k,
                i,
                CancelCause::ProgramStop { decision, step },
                false,
                false,
            );
        }
        self.finish_if_idle(k);
    }

    fn finish_if_idle(&mut self, k: ChainKey) {
        let Some(c) = self.chains.get(k) else {
            return;
        };
        if c.inflight > 0 || c.state == ChainState::Running && !self.shut {
            return;
        }
        let c = self.chains.remove(k).expect("chain");
        let id = c.id;
        let outcome = if let Some((step, _, cause)) = &c.failure {
            Outcome::Failed {
                step: *step,
                cause: cause.clone(),
            }
        } else if c.cancelled {
            Outcome::Cancelled
        } else if let Some(decision) = c.stopped {
            Outcome::Stopped { decision }
        } else {
            Outcome::Completed
        };
        let res = match (&c.failure, c.final_res) {
            (_, Some(r)) => r,
            (Some((_, r, _)), None) => *r,
            (None, None) if c.cancelled => -libc::ECANCELED,
            (None, None) => c.last_res,
        };
        let failed = !outcome.is_success();
        self.stats.chains_finished += 1;
        let steps = c.nsteps();
        self.bus.emit(|| Event::ChainFinished {
            chain: id,
            outcome: outcome.clone(),
            res,
            steps,
        });
        if let Some(v) = self.shutdown_outcomes.as_mut() {
            v.push((id, outcome.clone()));
        }
        self.finished.push(ChainEnd {
            chain: id,
            user_data: c.user_data,
            outcome,
            res,
        });
        if c.notify != Notify::None {
            self.post(AppCompletion {
                chain: id,
                step: None,
                user_data: c.user_data,
                res,
                flags: if failed { FINAL_FAILED } else { 0 },
                kind: AppKind::Final,
            });
        }
        if c.state != ChainState::Queued {
            self.running -= 1;
        }
        if self.barrier == Some(k) {
            self.barrier = None;
        }
        if !self.shut {
            self.start_queued();
        }
    }

    fn on_cqe(&mut self, cqe: Cqe) {
        if cqe.user_data == CANCEL_USER_DATA {
            return;
        }
        let Some(owner) = self.ring.release(cqe.user_data) else {
            return;
        };
        self.stats.completed += 1;
        let now = if self.bus.active() {
            self.bus.now_ns()
        } else {
            0
        };
        let k = owner.chain;
        let Some(c) = self.chains.get_mut(k) else {
            return;
        };
        let Some(pos) = c.pos_of_uid(owner.uid) else {
            return;
        };
        c.inflight -= 1;
        let index = c.index(pos);
        let step = &mut c.steps[pos];
        let latency = now.saturating_sub(step.submitted_ns);
        let (sqe, detached, unlinked, program) =
            (step.sqe, step.detached, step.unlinked, step.program);
        let id = c.id;
        let driver = c.driver;
        let res = cqe.res;

        // The kernel cancelled it: an earlier step of its link failed, or shutdown asked.
        let link_cancel = driver == (Driver::Kernel { hard: false }) && c.failure.is_some();
        if res == -libc::ECANCELED && (link_cancel || self.shut) {
            step.state = StepState::Cancelled;
            step.res = res;
            let cause = match &c.failure {
                Some((failed, _, _)) if link_cancel => CancelCause::KernelLink {
                    failed_step: *failed,
                },
                _ => CancelCause::Shutdown,
            };
            if c.inflight == 0 && c.state == ChainState::Running {
                c.state = ChainState::Finishing;
            }
            self.cancelled(k, index, cause, true, true);
            self.finish_if_idle(k);
            return;
        }
        step.state = StepState::Done;
        step.res = res;
        if !detached {
            c.last_res = res;
            c.current = Some(c.current.map_or(index, |cur| cur.max(index)));
        }
        let notify_all = c.notify == Notify::All;
        self.bus.emit(|| Event::Completed {
            chain: id,
            step: index,
            res,
            flags: cqe.flags,
            latency_ns: latency,
        });
        if notify_all {
            self.post(AppCompletion {
                chain: id,
                step: Some(index),
                user_data: sqe.user_data,
                res,
                flags: cqe.flags,
                kind: AppKind::Step,
            });
        }
        let link_failure = res < 0 || (op::short_is_failure(sqe.opcode) && (res as u32) < sqe.len);

        match driver {
            Driver::Kernel { hard } => {
                let c = self.chains.get_mut(k).expect("chain");
                if !hard && link_failure && c.failure.is_none() {
                    c.failure = Some((index, res, CancelCause::KernelLink { failed_step: index }));
                }
                if c.inflight == 0 {
                    c.state = ChainState::Finishing;
                }
                self.finish_if_idle(k);
            }
            Driver::Engine => {
                let c = self.chains.get(k).expect("chain");
                if detached || c.state != ChainState::Running || self.shut {
                    self.finish_if_idle(k);
                    return;
                }
                let prog = program.or(c.program).or(self.ring_program);
                let go_on = match prog {
                    Some(p) => {
                        let ctx = self.context(k, pos, res, cqe.flags);
                        self.decide(k, pos, p, ctx)
                    }
                    None if link_failure && !unlinked => {
                        self.fail(
                            k,
                            index,
                            res,
                            CancelCause::LinkFailed { failed_step: index },
                        );
                        false
                    }
                    None => true,
                };
                if go_on {
                    self.advance(k, Some(index));
                }
                if let Some(c) = self.chains.get_mut(k) {
                    c.compact();
                }
            }
        }
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
        let want = usize::from(wait && self.ring.inflight() > 0);
        self.ring
            .submit_timeout(want, timeout)
            .map_err(io_err("io_uring_enter"))?;
        let mut cqes = std::mem::take(&mut self.cqes);
        self.ring.reap(&mut cqes);
        let n = cqes.len();
        for cqe in cqes.drain(..) {
            self.on_cqe(cqe);
        }
        self.cqes = cqes;
        Ok(n)
    }

    /// Run until every chain has finished.
    pub fn run_until_idle(&mut self) -> Result<(), EngineError> {
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
                .map_err(io_err("queueing the shutdown cancel"))?;
            let mut last_cancel = Instant::now();
            while self.ring.inflight() > 0 {
                // Requests that cannot be cancelled (a regular file read under
                // way) complete on their own; re-ask now and then for the rest.
                if last_cancel.elapsed() > Duration::from_millis(200) {
                    self.ring
                        .cancel_all()
                        .map_err(io_err("queueing the shutdown cancel"))?;
                    last_cancel = Instant::now();
                }
                reaped += self.run_timeout(true, Some(Duration::from_millis(50)))? as u64;
            }
        }
        // Flush our own cancel requests' completions.
        self.ring.submit(0).map_err(io_err("io_uring_enter"))?;
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

    fn cancel_pending(&mut self, k: ChainKey) {
        let Some(c) = self.chains.get_mut(k) else {
            return;
        };
        if c.failure.is_none() && c.stopped.is_none() {
            c.cancelled = true;
        }
        if c.state == ChainState::Queued {
            // Never started: it never counted as running.
        } else {
            c.state = ChainState::Finishing;
        }
        for i in c.end_pending(StepState::Cancelled) {
            self.cancelled(k, i, CancelCause::Shutdown, false, true);
        }
        self.finish_if_idle(k);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The kernel may still write into our buffers: reap everything first.
        let _ = self.shutdown();
    }
}
