//! The kernel backend: the same programs deciding inside io_uring_enter, on
//! Linux 7.1+'s io_uring BPF loop (`struct io_uring_bpf_ops`).
//!
//! [`crate::Engine`] keeps its API; with [`Backend::Kernel`] it hands its
//! chains to a [`KernelLoop`]: ringside's loop program
//! (`engine/kernel/bpf/loop.bpf.c`) with every loaded program linked in
//! ([`link`]), attached to the engine's ring. The loop reaps completions,
//! runs the programs and applies their decisions with the engine's
//! semantics; the application's completions and finished chains come back
//! through the memory region both share ([`abi::KMem`]), and with a listener
//! every event and each decision's inputs through a BPF ring buffer, which
//! [`KernelLoop::run`] turns into the userspace engine's [`Event`]s. A
//! decision's record is rebuilt by running it again in userspace from the
//! kernel's inputs (context, view, ktime values, rs_read_buf bytes) against
//! the registry's maps, which follow the kernel's; the results the kernel saw
//! replace the re-run's, so `ringside check` compares the two.
//! docs/kernel-backend.md says what is supported and what differs.

pub mod abi;
mod events;
pub mod link;

use crate::abi::{RsCtx, RsSqe, Verdict, Where};
use crate::chain::{ChainSpec, Driver};
use crate::debug::Debugger;
use crate::decision::{
    self, BudgetKind, BudgetViolation, Budgets, ChainView, DecisionRecord, DecisionRequest,
    DecisionResult, InputSource, PendingStep, Registrations,
};
use crate::engine::ChainEnd;
use crate::event::{
    AppCompletion, AppKind, CancelCause, Event, EventBus, Notify, Outcome, StepKind,
};
use crate::program::elf::RelocTarget;
use crate::program::maps::MapKind;
use crate::program::mem::RegionKind;
use crate::program::{MapId, ProgId, Registry};
use abi::KMem;
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub use ringside_schema::exec::Backend;

/// How long one io_uring_enter keeps the loop waiting for completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    /// Not at all: one pass over what is there.
    NoWait,
    /// Until the application has a completion or a finished chain to read.
    AppHasSome,
    /// Until every chain finished.
    Idle,
}

/// Errors of the kernel backend.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The running kernel has no io_uring BPF loop (struct io_uring_bpf_ops).
    #[error(
        "--backend kernel needs Linux 7.1+'s io_uring BPF loop (struct io_uring_bpf_ops, CONFIG_IO_URING_BPF_OPS), which kernel {release} does not have; use --backend user"
    )]
    NoBpfOps {
        /// `uname -r`.
        release: String,
    },
    /// The running kernel's BTF, where the loop's ops would be, is missing.
    #[error(
        "--backend kernel needs the kernel's BTF to find its io_uring BPF loop, and kernel {release} has {why}; use --backend user"
    )]
    NoBtf {
        /// `uname -r`.
        release: String,
        /// What is missing.
        why: link::NoKernelBtf,
    },
    /// Something the kernel backend does not do (yet); docs/kernel-backend.md.
    #[error("the kernel backend does not support {0}")]
    Unsupported(Unsupported),
    /// The kernel's verifier refused the linked loop.
    #[error("the kernel's verifier refused {}: {message}", match (program, insn) {
        (Some(p), Some(i)) => format!("program {p} at its instruction {i}"),
        _ => "ringside's loop".to_string(),
    })]
    Verifier {
        /// The user program the verifier stopped in, if it did.
        program: Option<String>,
        /// Its instruction, in ringside's numbering.
        insn: Option<usize>,
        /// What the verifier said is wrong there (the line after the last
        /// instruction it walked), when it said it.
        reason: Option<String>,
        /// The end of the verifier's log, renumbered.
        message: String,
    },
    /// The loop object could not be prepared.
    #[error("ringside's kernel loop: {0}")]
    Object(ObjectProblem),
    /// The user's programs could not be linked into the loop.
    #[error("ringside's kernel loop: linking the programs into the loop: {0}")]
    Link(link::LinkError),
    /// Attaching the ops to the ring failed.
    #[error("attaching ringside's loop to the ring: {}", std::io::Error::from_raw_os_error(*errno))]
    Attach {
        /// errno.
        errno: i32,
    },
    /// A kernel map operation failed.
    #[error("{what}: {}", std::io::Error::from_raw_os_error(*errno))]
    Map {
        /// What.
        what: MapCall,
        /// errno.
        errno: i32,
    },
    /// A syscall on the ring failed.
    #[error("{what}: {source}")]
    Io {
        /// What.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The loop stopped itself.
    #[error("ringside's kernel loop stopped: {0}")]
    Loop(LoopStop),
}

/// What the kernel backend was doing with a BPF map when the kernel said
/// no ([`KernelError::Map`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapCall {
    /// Creating a map of the loop or of a program.
    #[error("creating map {name}")]
    Create {
        /// The map's name.
        name: String,
    },
    /// Opening the ring buffer the loop's decisions come through.
    #[error("opening the events ring buffer")]
    OpenEvents,
    /// Copying an application's map, with its entries, to the kernel.
    #[error("copying map {name} to the kernel")]
    Copy {
        /// The map's name.
        name: String,
    },
    /// Writing a program's read-only data.
    #[error("filling {prog}'s rodata")]
    FillRodata {
        /// The program.
        prog: String,
    },
    /// Freezing a program's read-only data.
    #[error("freezing {prog}'s rodata")]
    FreezeRodata {
        /// The program.
        prog: String,
    },
    /// Updating or deleting an entry of a map the loop shares.
    #[error("writing kernel map {map}")]
    Write {
        /// The map's id in the registry.
        map: u32,
    },
}

/// What the kernel backend does not do (yet), with the figures.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// More registered buffers than the loop takes.
    #[error("{count} registered buffers (at most {})", abi::MAX_BUFS)]
    Buffers {
        /// Buffers asked for.
        count: usize,
    },
    /// Loading programs once chains run (the loop is linked with them).
    #[error("loading programs while chains run")]
    LoadWhileRunning,
    /// More programs than the loop dispatches.
    #[error("more than {} programs", abi::MAX_PROGS)]
    Programs,
    /// A program that may run past the instruction budget (the kernel
    /// cannot count instructions).
    #[error(
        "program {program}: its longest path ({max_path} instructions) may exceed the instruction budget ({budget}), and the kernel cannot count instructions; raise insns_per_decision or run it with --backend user"
    )]
    LongestPath {
        /// The program.
        program: String,
        /// Its longest path.
        max_path: u32,
        /// `insns_per_decision`.
        budget: u64,
    },
    /// A program loaded as trusted: its memory accesses were not proved.
    /// In userspace the interpreter checks each of them as it runs; in the
    /// kernel only the kernel's verifier would, and it sees the program's
    /// context as part of the loop's own state (docs/kernel-backend.md), so
    /// such a program could reach past its context and rewrite what the loop
    /// has already validated.
    #[error(
        "program {program}: it was loaded as trusted (its memory accesses were not proved), and inside the kernel nothing checks them as it runs; load it verified or run it with --backend user"
    )]
    Trusted {
        /// The program.
        program: String,
    },
    /// A chain with bpf steps.
    #[error("bpf steps (a step that runs a program instead of IO)")]
    BpfSteps,
    /// A chain longer than the loop's window.
    #[error(
        "chains of more than {} steps ({steps} given): the loop holds {} unfinished steps per chain",
        abi::WIN,
        abi::WIN
    )]
    ChainSteps {
        /// Steps given.
        steps: usize,
    },
    /// More chains at once than the loop holds.
    #[error("more than {} chains at once", abi::MAX_CHAINS)]
    Chains,
}

/// What is wrong with the loop object, or with what it is linked with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectProblem {
    /// The ring's geometry is not what was asked.
    #[error("a ring of {sq_entries}/{cq_entries} entries reports {sq}/{cq}")]
    RingSize {
        /// SQ entries asked for.
        sq_entries: u32,
        /// CQ entries asked for.
        cq_entries: u32,
        /// SQ entries it has.
        sq: u32,
        /// CQ entries it has.
        cq: u32,
    },
    /// A program's map reference names no map of it.
    #[error("program {program}: no map {local}")]
    ProgramMap {
        /// The program.
        program: String,
        /// The object-local map number.
        local: usize,
    },
    /// A program's rodata reference names no rodata of it.
    #[error("program {program}: no rodata {region}")]
    ProgramRodata {
        /// The program.
        program: String,
        /// The rodata region.
        region: usize,
    },
    /// A map id the registry does not have.
    #[error("no map {0}")]
    NoMap(u32),
    /// The loop object has no `.rodata` DATASEC in its BTF.
    #[error("the loop object has no .rodata")]
    NoRodata,
    /// A value too large for its rodata variable.
    #[error("{name}: {len} bytes do not fit its {size}")]
    VarSize {
        /// The variable.
        name: String,
        /// Bytes given.
        len: usize,
        /// Its size.
        size: usize,
    },
    /// A rodata variable the loop object lacks.
    #[error("the loop object has no {0}")]
    NoVar(String),
    /// libbpf did not take ringside's section handler.
    #[error("libbpf_register_prog_handler: {0}")]
    RegisterHandler(i32),
    /// `RINGSIDE_KERNEL_LOOP_OBJECT` could not be read.
    #[error("RINGSIDE_KERNEL_LOOP_OBJECT={path}: {message}")]
    ObjectFile {
        /// The path.
        path: String,
        /// The read error's message.
        message: String,
    },
    /// libbpf could not open the object.
    #[error("bpf_object__open_mem: errno {0}")]
    Open(i32),
    /// The object lacks its rodata or its ops map.
    #[error("the loop object lacks .rodata or ringside_ops")]
    NoOpsOrRodata,
    /// A map of the object has no initial value to set.
    #[error("no {0} initial value")]
    NoInitialValue(&'static str),
    /// The object has no program.
    #[error("the loop object has no program")]
    NoProgram,
    /// libbpf could not load the object (no verifier log).
    #[error("bpf_object__load: {} (libbpf: {libbpf})", std::io::Error::from_raw_os_error(*errno))]
    Load {
        /// errno.
        errno: i32,
        /// libbpf's last lines.
        libbpf: String,
    },
    /// The object has no events ring buffer.
    #[error("the loop object has no events map")]
    NoEventsMap,
}

/// Why the kernel loop stopped itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoopStop {
    /// Requests outlived the shutdown.
    #[error("shutdown: {inflight} requests still in the kernel after 30 s")]
    Shutdown {
        /// Requests still in flight.
        inflight: u32,
    },
    /// A region of the ring was missing or too small (`KERR_REGION`).
    #[error("a region of the ring was missing or too small")]
    Region,
    /// Submitting failed (`KERR_SUBMIT`).
    #[error("bpf_io_uring_submit_sqes returned {0}")]
    Submit(i32),
    /// One step staged more than it may (`KERR_STAGE`).
    #[error("more requests in one step than it stages")]
    Stage,
    /// More requests in flight than slots (`KERR_SLOTS`).
    #[error("more than {} requests in flight", abi::MAX_SLOTS)]
    Slots,
    /// The application's completion ring overflowed (`KERR_COMP`).
    #[error("the application's completion ring overflowed")]
    Completions,
    /// An error code this version does not know.
    #[error("error {0}")]
    Other(u32),
}

fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "(unknown)".into())
}

/// Whether this kernel can run the backend: `Err` is one sentence naming
/// what is missing.
pub fn probe() -> Result<(), KernelError> {
    let r = release();
    match link::kernel_has_ops() {
        Ok(true) => Ok(()),
        Ok(false) => Err(KernelError::NoBpfOps { release: r }),
        Err(why) => Err(KernelError::NoBtf { release: r, why }),
    }
}

/// io_uring setup flags the loop needs (io_install_bpf refuses others).
pub const SETUP_FLAGS: &str = "IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER";

/// Smallest SQ the loop works with: one step stages up to this many SQEs.
pub const MIN_ENTRIES: u32 = abi::STAGE as u32;

/// The region's memory: page-aligned, zeroed, pinned by the kernel while
/// registered.
struct Region {
    ptr: *mut KMem,
    layout: std::alloc::Layout,
}

impl Region {
    fn new() -> Region {
        let size = std::mem::size_of::<KMem>().next_multiple_of(4096);
        let layout = std::alloc::Layout::from_size_align(size, 4096).expect("layout");
        // SAFETY: non-zero size; zeroed memory is a valid KMem (integers only).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut KMem;
        assert!(!ptr.is_null(), "out of memory for the kernel loop's region");
        Region { ptr, layout }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout. The loop runs only
        // inside io_uring_enter, which cannot run any more: the engine shut
        // it down and detached it first.
        unsafe { std::alloc::dealloc(self.ptr as *mut u8, self.layout) };
    }
}

/// What userspace remembers of a chain the loop runs.
#[derive(Clone, Copy, Debug)]
struct ChainMeta {
    user_data: u64,
}

/// A decision the ring buffer is delivering, until its end record.
#[derive(Default)]
struct Partial {
    dec: abi::KDec,
    calls: Vec<(u32, i64)>,
    reads: Vec<Vec<u8>>,
}

/// The kernel loop of one engine.
pub struct KernelLoop {
    // Drop order: the loop (link) first, then maps, then the region.
    loaded: Option<link::Loaded>,
    rb: Option<link::RingBuf>,
    kmaps: HashMap<MapId, OwnedFd>,
    rodata: Vec<OwnedFd>,
    region: Region,
    ring_fd: RawFd,
    cfg: link::LoopConfig,
    /// Program slot in the loop -> registry program.
    linked: Vec<ProgId>,
    chains: Vec<Option<ChainMeta>>,
    free: Vec<u32>,
    active: usize,
    partial: Option<Partial>,
    /// The registry's maps no longer follow the kernel's (an unrecorded run).
    mirror_stale: bool,
    /// Enter calls.
    pub enter_calls: u64,
}

impl std::fmt::Debug for KernelLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelLoop")
            .field("linked", &self.linked)
            .field("active", &self.active)
            .finish()
    }
}

// SAFETY: the region and libbpf objects are only used through &mut self by
// the thread that owns the engine (SINGLE_ISSUER makes that the ring's
// creator anyway).
unsafe impl Send for KernelLoop {}

/// The ring's offsets, as io_uring_setup reports them for these entries and
/// flags (the io-uring crate does not expose them): from a throwaway ring.
fn ring_offsets(entries: u32, cq_entries: u32) -> std::io::Result<(libc::c_uint, [u32; 4], u32)> {
    #[repr(C)]
    #[derive(Default)]
    struct Params {
        sq_entries: u32,
        cq_entries: u32,
        flags: u32,
        sq_thread_cpu: u32,
        sq_thread_idle: u32,
        features: u32,
        wq_fd: u32,
        resv: [u32; 3],
        sq_off: [u32; 10],
        cq_off: [u32; 10],
    }
    let mut p = Params {
        flags: (1 << 12) | (1 << 13) | (1 << 16) | (1 << 3), // SINGLE_ISSUER DEFER_TASKRUN NO_SQARRAY CQSIZE
        cq_entries,
        ..Default::default()
    };
    // SAFETY: io_uring_setup with a valid params struct.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, entries, &mut p as *mut Params) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the fd just returned.
    drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
    // sq_off: head tail ring_mask ring_entries flags dropped array resv1 user_addr
    // cq_off: head tail ring_mask ring_entries overflow cqes flags resv1 user_addr
    Ok((
        p.sq_entries,
        [p.sq_off[1], p.cq_off[0], p.cq_off[1], p.cq_off[5]],
        p.cq_entries,
    ))
}

impl KernelLoop {
    /// Set up the loop's side of `ring` (made with [`SETUP_FLAGS`]):
    /// register the memory region. The program is linked and attached at
    /// the first chain.
    pub fn new(
        ring_fd: RawFd,
        sq_entries: u32,
        cq_entries: u32,
        buffers: &[(u64, u64)],
        nfiles: u32,
    ) -> Result<KernelLoop, KernelError> {
        if buffers.len() > abi::MAX_BUFS {
            return Err(KernelError::Unsupported(Unsupported::Buffers {
                count: buffers.len(),
            }));
        }
        let region = Region::new();
        // SAFETY: the region is ours and zeroed.
        let mem = unsafe { &mut *region.ptr };
        mem.hdr.magic = abi::KMAGIC;
        mem.hdr.version = abi::KVERSION;
        for i in 0..abi::MAX_SLOTS {
            mem.free[i] = (abi::MAX_SLOTS - 1 - i) as u16;
        }
        mem.hdr.nfree = abi::MAX_SLOTS as u32;
        // IORING_REGISTER_MEM_REGION with the region as user memory.
        #[repr(C)]
        struct Desc {
            user_addr: u64,
            size: u64,
            flags: u32,
            id: u32,
            mmap_offset: u64,
            resv: [u64; 4],
        }
        #[repr(C)]
        struct Reg {
            region_uptr: u64,
            flags: u64,
            resv: [u64; 2],
        }
        let desc = Desc {
            user_addr: region.ptr as u64,
            size: region.layout.size() as u64,
            flags: 1, // IORING_MEM_REGION_TYPE_USER
            id: 0,
            mmap_offset: 0,
            resv: [0; 4],
        };
        let reg = Reg {
            region_uptr: &desc as *const Desc as u64,
            flags: 0,
            resv: [0; 2],
        };
        // SAFETY: io_uring_register(IORING_REGISTER_MEM_REGION = 34) with
        // valid structs; the region outlives the ring's use of it (the
        // engine drops the ring first).
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                ring_fd,
                34,
                &reg as *const Reg,
                1,
            )
        };
        if r < 0 {
            return Err(KernelError::Io {
                what: "registering the loop's memory region (IORING_REGISTER_MEM_REGION)",
                source: std::io::Error::last_os_error(),
            });
        }
        let (sq, offs, cq) =
            ring_offsets(sq_entries, cq_entries).map_err(|source| KernelError::Io {
                what: "reading the ring's offsets",
                source,
            })?;
        if sq != sq_entries || cq != cq_entries {
            return Err(KernelError::Object(ObjectProblem::RingSize {
                sq_entries,
                cq_entries,
                sq,
                cq,
            }));
        }
        let cfg = link::LoopConfig {
            sq_mask: sq_entries - 1,
            cq_mask: cq_entries - 1,
            sq_tail_off: offs[0],
            cq_head_off: offs[1],
            cq_tail_off: offs[2],
            cqes_off: offs[3],
            rings_size: offs[3] as u64 + cq_entries as u64 * 16,
            sqes_size: sq_entries as u64 * 64,
            mem_uaddr: region.ptr as u64,
            nfiles,
            buf_addr: buffers.iter().map(|b| b.0).collect(),
            buf_size: buffers.iter().map(|b| b.1).collect(),
        };
        Ok(KernelLoop {
            loaded: None,
            rb: None,
            kmaps: HashMap::new(),
            rodata: Vec::new(),
            region,
            ring_fd,
            cfg,
            linked: Vec::new(),
            chains: vec![None; abi::MAX_CHAINS],
            free: (0..abi::MAX_CHAINS as u32).rev().collect(),
            active: 0,
            partial: None,
            mirror_stale: false,
            enter_calls: 0,
        })
    }

    fn mem(&mut self) -> &mut KMem {
        // SAFETY: the region lives as long as self; the kernel writes it
        // only inside io_uring_enter, which takes &mut self.
        unsafe { &mut *self.region.ptr }
    }

    fn mem_ref(&self) -> &KMem {
        // SAFETY: as in `mem`.
        unsafe { &*self.region.ptr }
    }

    /// Chains queued or running.
    pub fn active(&self) -> usize {
        self.active
    }

    /// Requests in the kernel.
    pub fn inflight(&self) -> u32 {
        self.mem_ref().hdr.inflight
    }

    /// Counters: (submitted, completed, decisions, decision_ns, chains finished).
    pub fn counters(&self) -> (u64, u64, u64, u64, u64) {
        let h = &self.mem_ref().hdr;
        (
            h.submitted,
            h.completed,
            h.decisions,
            h.decision_ns,
            h.chains_finished,
        )
    }

    /// Link the loop with every program of `registry` unless it already is.
    pub(crate) fn ensure_linked(
        &mut self,
        registry: &Registry,
        budgets: &Budgets,
    ) -> Result<(), KernelError> {
        if self.loaded.is_none() || self.linked.len() != registry.programs().len() {
            self.link(registry, budgets)?;
        }
        Ok(())
    }

    /// Link every program of `registry` into the loop and attach it.
    fn link(&mut self, registry: &Registry, budgets: &Budgets) -> Result<(), KernelError> {
        if self.active > 0 {
            return Err(KernelError::Unsupported(Unsupported::LoadWhileRunning));
        }
        self.loaded = None;
        self.rb = None;
        let mut progs = Vec::new();
        self.linked.clear();
        if registry.programs().len() > abi::MAX_PROGS {
            return Err(KernelError::Unsupported(Unsupported::Programs));
        }
        for p in registry.programs() {
            if p.trusted {
                return Err(KernelError::Unsupported(Unsupported::Trusted {
                    program: p.name.clone(),
                }));
            }
            if decision::needs_count(p, budgets) {
                return Err(KernelError::Unsupported(Unsupported::LongestPath {
                    program: p.name.clone(),
                    max_path: p.report.max_path,
                    budget: budgets.insns_per_decision,
                }));
            }
            let mut relocs = Vec::new();
            let mut rodata_fds: HashMap<usize, RawFd> = HashMap::new();
            for r in &p.image.relocs {
                let t = match r.target {
                    RelocTarget::Map(local) => {
                        let id = *p.maps.get(local).ok_or_else(|| {
                            KernelError::Object(ObjectProblem::ProgramMap {
                                program: p.name.clone(),
                                local,
                            })
                        })?;
                        link::Target::Map(self.kernel_map(registry, id)?)
                    }
                    RelocTarget::Rodata { region, offset } => {
                        let fd = match rodata_fds.get(&region) {
                            Some(&fd) => fd,
                            None => {
                                let bytes = rodata_bytes(p, region).ok_or_else(|| {
                                    KernelError::Object(ObjectProblem::ProgramRodata {
                                        program: p.name.clone(),
                                        region,
                                    })
                                })?;
                                let fd = self.rodata_map(&p.name, &bytes)?;
                                rodata_fds.insert(region, fd);
                                fd
                            }
                        };
                        link::Target::Rodata(fd, offset)
                    }
                };
                relocs.push((r.insn, t));
            }
            progs.push(link::UserProg {
                name: p.name.clone(),
                code: p.image.code.clone(),
                relocs,
            });
            self.linked.push(p.id);
        }
        let loaded = link::load(&progs, &self.cfg, self.ring_fd)?;
        self.rb = Some(link::RingBuf::new(loaded.events_fd)?);
        self.loaded = Some(loaded);
        Ok(())
    }

    fn kernel_map(&mut self, registry: &Registry, id: MapId) -> Result<RawFd, KernelError> {
        if let Some(fd) = self.kmaps.get(&id) {
            return Ok(fd.as_raw_fd());
        }
        let m = registry
            .map(id)
            .ok_or(KernelError::Object(ObjectProblem::NoMap(id.0)))?;
        let d = m.def();
        let fd = link::create_map(
            &d.name,
            d.kind == MapKind::Hash,
            d.key_size,
            d.value_size,
            d.max_entries,
            0,
        )?;
        // SAFETY: a new fd we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // The application's pre-loaded entries.
        for (k, v) in m.entries() {
            link::map_update(fd, &k, &v, 0).map_err(|errno| KernelError::Map {
                what: MapCall::Copy {
                    name: d.name.clone(),
                },
                errno,
            })?;
        }
        self.kmaps.insert(id, owned);
        Ok(fd)
    }

    fn rodata_map(&mut self, prog: &str, bytes: &[u8]) -> Result<RawFd, KernelError> {
        let size = (bytes.len().max(1)).next_multiple_of(8) as u32;
        let fd = link::create_map(&format!("{prog}_ro"), false, 4, size, 1, 0x80)?; // BPF_F_RDONLY_PROG
        // SAFETY: a new fd we own.
        self.rodata.push(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut v = bytes.to_vec();
        v.resize(size as usize, 0);
        link::map_update(fd, &0u32.to_le_bytes(), &v, 0).map_err(|errno| KernelError::Map {
            what: MapCall::FillRodata { prog: prog.into() },
            errno,
        })?;
        link::freeze(fd).map_err(|errno| KernelError::Map {
            what: MapCall::FreezeRodata { prog: prog.into() },
            errno,
        })?;
        Ok(fd)
    }

    /// A kernel map's entry, when the kernel owns that map.
    pub fn map_lookup(
        &self,
        registry: &Registry,
        map: MapId,
        key: &[u8],
    ) -> Option<Option<Vec<u8>>> {
        let fd = self.kmaps.get(&map)?;
        let vs = registry.map(map)?.def().value_size as usize;
        Some(link::map_lookup(fd.as_raw_fd(), key, vs))
    }

    /// Every entry of a kernel map, when the kernel owns that map.
    pub fn map_entries(&self, registry: &Registry, map: MapId) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        let fd = self.kmaps.get(&map)?.as_raw_fd();
        let d = registry.map(map)?.def();
        let (ks, vs) = (d.key_size as usize, d.value_size as usize);
        let mut out = Vec::new();
        for k in link::map_keys(fd, ks) {
            if let Some(v) = link::map_lookup(fd, &k, vs) {
                out.push((k, v));
            }
        }
        Some(out)
    }

    /// The application wrote a map: the kernel's copy follows.
    pub fn map_write(
        &self,
        map: MapId,
        key: &[u8],
        value: Option<&[u8]>,
        flags: u64,
    ) -> Result<(), KernelError> {
        let Some(fd) = self.kmaps.get(&map) else {
            return Ok(());
        };
        let r = match value {
            Some(v) => link::map_update(fd.as_raw_fd(), key, v, flags),
            None => link::map_delete(fd.as_raw_fd(), key),
        };
        r.map_err(|errno| KernelError::Map {
            what: MapCall::Write { map: map.0 },
            errno,
        })
    }

    /// The registry's maps take the kernel's contents again.
    fn resync_mirror(&mut self, registry: &mut Registry) {
        let ids: Vec<MapId> = self.kmaps.keys().copied().collect();
        for id in ids {
            let Some(entries) = self.map_entries(registry, id) else {
                continue;
            };
            let Some(m) = registry.map_mut(id) else {
                continue;
            };
            if m.def().kind == MapKind::Hash {
                for (k, _) in m.entries() {
                    let _ = m.delete(&k);
                }
            }
            for (k, v) in entries {
                let _ = m.update(&k, &v, 0);
            }
        }
        self.mirror_stale = false;
    }

    /// Hand a chain to the loop (it starts at the loop's next step). The
    /// engine validated it as for its own chains.
    pub(crate) fn submit(
        &mut self,
        id: u64,
        spec: &ChainSpec,
        driver: Driver,
        registry: &Registry,
        budgets: &Budgets,
    ) -> Result<(), KernelError> {
        if spec.steps.iter().any(|s| s.kind == StepKind::Bpf) {
            return Err(KernelError::Unsupported(Unsupported::BpfSteps));
        }
        if spec.steps.len() > abi::WIN {
            return Err(KernelError::Unsupported(Unsupported::ChainSteps {
                steps: spec.steps.len(),
            }));
        }
        self.ensure_linked(registry, budgets)?;
        let slot_of = |p: Option<ProgId>| -> u16 {
            p.and_then(|p| self.linked.iter().position(|&q| q == p))
                .map_or(0, |s| s as u16 + 1)
        };
        let chain_prog = slot_of(spec.program);
        let steps: Vec<(RsSqe, u16)> = spec
            .steps
            .iter()
            .map(|s| (s.sqe, slot_of(s.program)))
            .collect();
        let Some(cs) = self.free.pop() else {
            return Err(KernelError::Unsupported(Unsupported::Chains));
        };
        let mem = self.mem();
        let c = &mut mem.chains[cs as usize];
        // SAFETY: KChain is integers only; all-zero is valid.
        *c = unsafe { std::mem::zeroed() };
        c.id = id;
        c.user_data = spec.user_data;
        c.nstored = steps.len() as u32;
        c.next_uid = steps.len() as u32;
        c.driver = match driver {
            Driver::Engine => abi::DRV_ENGINE,
            Driver::Kernel { hard: false } => abi::DRV_KERNEL,
            Driver::Kernel { hard: true } => abi::DRV_KERNEL_HARD,
        };
        c.notify = match spec.notify {
            Notify::All => abi::NOTIFY_ALL,
            Notify::Final => abi::NOTIFY_FINAL,
            Notify::None => abi::NOTIFY_NONE,
        };
        c.drain = spec.drain as u8;
        c.prog = chain_prog;
        c.current = -1;
        for (i, (sqe, prog)) in steps.iter().enumerate() {
            let s = &mut c.steps[i];
            s.sqe = sqe.to_bytes();
            s.uid = i as u32;
            s.attempt = 1;
            s.state = abi::ST_PENDING;
            s.prog = *prog;
        }
        c.state = abi::CH_QUEUED;
        let t = mem.hdr.sub_tail;
        mem.sub[t as usize % abi::SUB_RING] = cs;
        mem.hdr.sub_tail = t.wrapping_add(1);
        self.chains[cs as usize] = Some(ChainMeta {
            user_data: spec.user_data,
        });
        self.active += 1;
        Ok(())
    }

    /// One io_uring_enter: the loop runs until it has nothing to do (with
    /// `wait`: until the application has a completion or a finished chain
    /// to read, or `timeout`), then everything it reported is turned into
    /// events, completions and finished chains. [`crate::Engine::run`]'s
    /// "wait for one completion": not after every completion the loop
    /// handles (that the process does not wake for those is the point),
    /// but after one the application sees. Returns the completions the
    /// loop handled.
    pub fn run(
        &mut self,
        wait: bool,
        timeout: Option<Duration>,
        cx: RunCtx<'_>,
    ) -> Result<usize, KernelError> {
        let until = if wait {
            Until::AppHasSome
        } else {
            Until::NoWait
        };
        self.enter(until, timeout, false, cx)
    }

    /// One io_uring_enter that returns only when every chain finished (or
    /// the loop must hand something over: a full completion queue, a
    /// pause, an error): [`crate::Engine::run_until_idle`].
    pub fn run_until_idle(&mut self, cx: RunCtx<'_>) -> Result<usize, KernelError> {
        self.enter(Until::Idle, None, false, cx)
    }

    /// Shut down: the loop cancels what is pending and reaps what is in flight.
    pub fn shutdown(&mut self, mut cx: RunCtx<'_>) -> Result<(), KernelError> {
        if self.loaded.is_none() {
            // Nothing was ever attached: the queued chains never reached a kernel.
            return Ok(());
        }
        let start = std::time::Instant::now();
        loop {
            self.enter(
                Until::Idle,
                Some(Duration::from_millis(50)),
                true,
                cx.reborrow(),
            )?;
            let active = self.active;
            let h = &self.mem().hdr;
            if h.shut != 0 && h.inflight == 0 && h.cancels == 0 && h.timers == 0 && active == 0 {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(KernelError::Loop(LoopStop::Shutdown {
                    inflight: h.inflight,
                }));
            }
        }
    }

    fn enter(
        &mut self,
        until: Until,
        timeout: Option<Duration>,
        shut: bool,
        mut cx: RunCtx<'_>,
    ) -> Result<usize, KernelError> {
        if self.loaded.is_none() {
            if self.active == 0 {
                return Ok(0);
            }
            self.link(cx.registry, cx.budgets)?;
        }
        let record = cx.bus.active() || cx.debugger.is_some();
        if record && self.mirror_stale {
            self.resync_mirror(cx.registry);
        }
        if !record {
            self.mirror_stale = true;
        }
        let ring_prog = cx
            .ring_program
            .and_then(|p| self.linked.iter().position(|&q| q == p))
            .map_or(0, |s| s as u32 + 1);
        let before = self.mem().hdr.completed;
        {
            let b = *cx.budgets;
            let h = &mut self.mem().hdr;
            h.ctl = match until {
                Until::NoWait => 0,
                Until::AppHasSome => abi::CTL_WAIT | abi::CTL_WAIT_ONE,
                Until::Idle => abi::CTL_WAIT,
            } | if cx.debugger.is_some() {
                abi::CTL_PAUSE_EACH
            } else {
                0
            } | if shut { abi::CTL_SHUTDOWN } else { 0 };
            h.record = record as u32;
            h.deadline_ns = match timeout {
                Some(t) if until != Until::NoWait => monotonic_ns() + t.as_nanos() as u64,
                _ => 0,
            };
            h.submits_per_decision = b.submits_per_decision;
            h.steps_per_chain = b.steps_per_chain;
            h.attempts_per_step = b.attempts_per_step as u32;
            h.ring_prog = ring_prog;
        }
        self.enter_calls += 1;
        // SAFETY: io_uring_enter on our ring; with the ops attached it runs
        // the loop and ignores its arguments.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                self.ring_fd,
                0,
                0,
                0,
                std::ptr::null::<u8>(),
                0,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(KernelError::Io {
                    what: "io_uring_enter (the kernel loop)",
                    source: e,
                });
            }
        }
        self.collect(&mut cx)?;
        let h = self.mem().hdr;
        if h.error != 0 {
            return Err(KernelError::Loop(match h.error {
                abi::KERR_REGION => LoopStop::Region,
                abi::KERR_SUBMIT => LoopStop::Submit(h.err_arg),
                abi::KERR_STAGE => LoopStop::Stage,
                abi::KERR_SLOTS => LoopStop::Slots,
                abi::KERR_COMP => LoopStop::Completions,
                e => LoopStop::Other(e),
            }));
        }
        Ok((h.completed - before) as usize)
    }
}

impl Drop for KernelLoop {
    fn drop(&mut self) {
        // Detach first: the ring must not run the loop on a freed region.
        self.rb = None;
        self.loaded = None;
    }
}

/// What a run needs of the engine.
pub struct RunCtx<'a> {
    /// Programs and the maps that mirror the kernel's.
    pub registry: &'a mut Registry,
    /// Registrations.
    pub regs: &'a Registrations,
    /// Budgets.
    pub budgets: &'a Budgets,
    /// The ring program.
    pub ring_program: Option<ProgId>,
    /// Where events go.
    pub bus: &'a mut EventBus,
    /// The debugger, if one is attached.
    pub debugger: &'a Option<Debugger>,
    /// The application's completions.
    pub completions: &'a mut VecDeque<AppCompletion>,
    /// Finished chains.
    pub finished: &'a mut Vec<ChainEnd>,
}

impl RunCtx<'_> {
    fn reborrow(&mut self) -> RunCtx<'_> {
        RunCtx {
            registry: self.registry,
            regs: self.regs,
            budgets: self.budgets,
            ring_program: self.ring_program,
            bus: self.bus,
            debugger: self.debugger,
            completions: self.completions,
            finished: self.finished,
        }
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A program's rodata region `region`, as it was loaded.
fn rodata_bytes(p: &crate::program::LoadedProgram, region: usize) -> Option<Vec<u8>> {
    p.regions()
        .iter()
        .find(|r| matches!(r.kind, RegionKind::Rodata(i) if i as usize == region))
        // SAFETY: a region of the program, alive as long as the program.
        .map(|r| unsafe { std::slice::from_raw_parts(r.ptr, r.len) }.to_vec())
}
