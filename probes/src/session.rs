//! The probe session: load the BPF object, attach it to the io_uring
//! tracepoints, filter by tgid in the kernel, and read typed events.

use crate::counters::{Counters, Counts, OTHER_RINGS, RawCounts, RawKey, RingCounts, SetupSeen};
use crate::discover::{CreateInfo, RingSetup, RingWhen};
use crate::error::ProbeError;
use crate::event::{ProbeEvent, Ptr, wire};
use crate::kinds::KindSet;
use crate::tracefs::{self, Tracefs};
use aya::maps::{
    Array, HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf,
};
use aya::programs::TracePoint;
use aya::{Ebpf, EbpfLoader};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The compiled BPF object (bpf/probes.bpf.o, rebuilt by bpf/Makefile).
pub static BPF_OBJECT: &[u8] = include_bytes!("../bpf/probes.bpf.o");

/// Default ring buffer size: 32 MiB holds ~460k events, about a quarter
/// second of a NOP storm, so a consumer that is descheduled for a moment on
/// a busy 2-core machine loses nothing.
pub const DEFAULT_RING_BUFFER_BYTES: u32 = 32 << 20;

/// Most events handed to the callback per [`Probes::poll`] call, so that a
/// caller's loop gets control back under a flood.
pub const MAX_BATCH: usize = 65536;

/// What to trace.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// Processes to trace (all their threads, io-wq and SQPOLL workers
    /// included: they share the tgid). May be empty, then add pids later
    /// with [`Probes::add_pid`]. Use `std::process::id()` to trace yourself.
    pub pids: Vec<u32>,
    /// Only this ring (a ctx pointer as shown in events), when set.
    pub ring: Option<u64>,
    /// Trace child processes of traced processes (fio forks one process
    /// per job): those that exist at attach time (found in /proc) and
    /// those forked later (`task:task_newtask`, attached too).
    pub follow_forks: bool,
    /// Also report completions that other tasks post on rings of traced
    /// processes (ring teardown in a kworker, MSG_RING from another
    /// process). Costs an extra read and lookup on those tracepoints in
    /// untraced tasks.
    pub follow_rings: bool,
    /// BPF ring buffer size in bytes (a power of two, at least a page).
    pub ring_buffer_bytes: u32,
    /// Wake the consumer when this many bytes wait; `None`: 1/16 of the
    /// buffer. Below that, [`Probes::poll`] finds the data at its timeout:
    /// batching wakeups keeps the traced process from paying an irq_work
    /// per event.
    pub wakeup_bytes: Option<u32>,
    /// Mount tracefs at /sys/kernel/tracing when it is missing.
    pub mount_tracefs: bool,
    /// Benchmarking only: every program returns at once and emits nothing,
    /// to measure what the tracepoints cost by themselves (the floor under
    /// any tracepoint-based probe).
    pub floor_only: bool,
    /// Event kinds delivered (filtered in the kernel; every kind is still
    /// counted in [`Probes::counters`]). Default: everything except
    /// count-0 `task_work_run` (an SQPOLL thread's idle loop).
    pub kinds: KindSet,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            pids: Vec::new(),
            ring: None,
            follow_forks: false,
            follow_rings: false,
            ring_buffer_bytes: DEFAULT_RING_BUFFER_BYTES,
            wakeup_bytes: None,
            mount_tracefs: true,
            floor_only: false,
            kinds: KindSet::default(),
        }
    }
}

pub use crate::tracefs::Skipped;

/// An attached probe session. Dropping it detaches every program and frees
/// the maps; nothing is pinned, so the kernel also frees them when the
/// process dies in any other way (SIGKILL included).
pub struct Probes {
    // Field order matters for Drop: the maps and programs go with `ebpf`.
    events: RingBuf<MapData>,
    tgids: BpfHashMap<MapData, u32, u8>,
    rings: BpfHashMap<MapData, u64, u8>,
    lost: PerCpuArray<MapData, u64>,
    counts: PerCpuHashMap<MapData, RawKey, RawCounts>,
    ctx_off_map: Array<MapData, u32>,
    ebpf: Ebpf,
    pids: BTreeSet<u32>,
    kinds: KindSet,
    /// Some pid was traced at some point (an empty session never "exits").
    traced_any: bool,
    exited_ns: Option<u64>,
    last_exit_check: Instant,
    known_rings: HashSet<u64>,
    auto_rings: bool,
    attached: Vec<String>,
    skipped: Vec<Skipped>,
    program_ids: Vec<u32>,
    tracefs: Tracefs,
    ring_buffer_bytes: u32,
    /// `ring` records waiting to be handed out (those found at attach).
    pending: VecDeque<ProbeEvent>,
    /// The last `ring` record handed out per (pid, fd).
    ring_setups: HashMap<(u32, i32), RingSetup>,
    /// What create events said, per (pid, fd).
    created: HashMap<(u32, i32), CreateInfo>,
    last_ring_scan: Instant,
    /// Where the offset of `io_ring_ctx.flags` stands.
    ctx_off: CtxOff,
    /// Rings whose setup read from the ring was handed out as a `ring`
    /// record.
    setups_noted: HashSet<u64>,
    /// Final counts of rings that were freed (an older generation at an
    /// address that has a newer one), taken out of the BPF map so it has
    /// room for the rings that are alive; at most [`RETIRED_KEPT`], the
    /// rest summed in `retired_other`.
    retired: BTreeMap<RawKey, (Counts, Option<SetupSeen>)>,
    retired_other: Counts,
}

/// Freed rings whose counts a session keeps one by one (about 200 bytes
/// each); beyond, they are summed under [`OTHER_RINGS`].
pub const RETIRED_KEPT: usize = 16384;

/// Where the lookup of `io_ring_ctx.flags`' offset stands: needed only
/// once a ring older than the session is seen ([`crate::btf`]).
enum CtxOff {
    /// No ring older than the session yet.
    NotNeeded,
    /// The BTF lookup runs in the background until a ring scan takes its
    /// result.
    Looking(std::thread::JoinHandle<Result<u32, crate::btf::BtfError>>),
    /// The offset is in `rs_ctx_off`: the BPF side reads flags from now on.
    Set,
    /// Setup flags of rings created before attach stay unknown.
    Unavailable(SetupFlagsError),
}

/// Why the setup flags of rings created before attach cannot be read from
/// the rings ([`Probes::setup_flags_unavailable`]).
#[derive(Debug, thiserror::Error)]
pub enum SetupFlagsError {
    /// The kernel's BTF does not say where `io_ring_ctx.flags` is.
    #[error(transparent)]
    Btf(#[from] crate::btf::BtfError),
    /// The BTF lookup's thread panicked.
    #[error("the lookup of io_ring_ctx.flags in {path} panicked", path = crate::btf::VMLINUX_BTF)]
    Panicked,
    /// The offset was found but the BPF map that hands it over refused it.
    #[error("cannot write the offset of io_ring_ctx.flags to the rs_ctx_off map: {0}")]
    Map(#[source] aya::maps::MapError),
}

/// How often the session re-reads the traced processes' fdinfo for
/// `ring` records (registrations, SQPOLL thread, fill). There is no probe
/// on `io_uring_register`: this re-read sees its effect within the period.
pub const RING_SCAN_PERIOD: Duration = Duration::from_millis(500);

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes")
            .field("pids", &self.pids)
            .field("attached", &self.attached)
            .field("skipped", &self.skipped)
            .field("program_ids", &self.program_ids)
            .finish_non_exhaustive()
    }
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Checks that this process may load tracing BPF programs: root, or
/// CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN) in the effective set.
pub fn check_privileges() -> Result<(), ProbeError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| ProbeError::Io {
        what: "reading /proc/self/status".into(),
        error: e,
    })?;
    let capeff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |c: u32| capeff & (1u64 << c) != 0;
    if (has(CAP_BPF) && has(CAP_PERFMON)) || has(CAP_SYS_ADMIN) {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    Err(ProbeError::NotPrivileged {
        have: format!(
            "euid {euid}, CAP_BPF {}, CAP_PERFMON {}, CAP_SYS_ADMIN {}",
            yes(has(CAP_BPF)),
            yes(has(CAP_PERFMON)),
            yes(has(CAP_SYS_ADMIN))
        ),
    })
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Fails when `kernel.io_uring_disabled` is 2 (io_uring off for everyone).
/// 1 (only privileged processes or `io_uring_group`) is fine: rings can
/// still exist.
pub fn check_io_uring_enabled() -> Result<(), ProbeError> {
    match std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        Ok(s) => match s.trim().parse::<u32>() {
            Ok(v) if v >= 2 => Err(ProbeError::IoUringDisabled { value: v }),
            _ => Ok(()),
        },
        // Kernels before 6.6 have no such sysctl.
        Err(_) => Ok(()),
    }
}

/// `uname -r` of the running kernel, for messages ("unknown" if unreadable).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn bpf_err(e: impl std::fmt::Display) -> ProbeError {
    ProbeError::Bpf(one_line(&e))
}

/// Error chains from aya span several sources; keep the message one line.
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().replace('\n', "; ")
}

fn full_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s.replace('\n', "; ")
}

impl Probes {
    /// Checks privileges and the kernel, reads the tracepoint layouts, loads
    /// the programs and attaches them. Every pid must exist.
    pub fn attach(opts: AttachOptions) -> Result<Probes, ProbeError> {
        // Bad options first: they are wrong whoever runs them.
        if !opts.ring_buffer_bytes.is_power_of_two() || opts.ring_buffer_bytes < 4096 {
            return Err(ProbeError::Bpf(format!(
                "ring buffer size {} is not a power of two of at least 4096 bytes",
                opts.ring_buffer_bytes
            )));
        }
        check_privileges()?;
        check_io_uring_enabled()?;
        for &pid in &opts.pids {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(ProbeError::NoSuchPid { pid });
            }
        }
        let tracefs = tracefs::find_tracefs(opts.mount_tracefs)?;
        if !tracefs.has_io_uring() {
            return Err(ProbeError::NoIoUringTracepoints {
                path: tracefs.root.join("events/io_uring").display().to_string(),
            });
        }

        let tracefs::Plan {
            mut cfg,
            attach: use_specs,
            skipped,
        } = tracefs::plan(&tracefs, opts.follow_forks, &kernel_release())?;
        if opts.ring.is_some() {
            cfg.flags |= tracefs::CFG_RING_FILTER;
        }
        if opts.follow_rings {
            cfg.flags |= tracefs::CFG_FOLLOW_RINGS;
        }
        if opts.follow_forks {
            cfg.flags |= tracefs::CFG_FOLLOW_FORKS;
        }
        if opts.floor_only {
            cfg.flags |= tracefs::CFG_FLOOR;
        }
        cfg.kinds = opts.kinds.mask();
        cfg.wakeup_bytes = opts
            .wakeup_bytes
            .unwrap_or(opts.ring_buffer_bytes / 16)
            .clamp(1, opts.ring_buffer_bytes);
        let cfg_bytes = cfg.to_bytes();

        let mut ebpf = EbpfLoader::new()
            // No BTF needed: the object uses legacy maps and no CO-RE.
            .btf(None)
            .override_global("rs_cfg", &cfg_bytes, true)
            .map_max_entries("rs_events", opts.ring_buffer_bytes)
            .load(BPF_OBJECT)
            .map_err(|e| bpf_err(full_chain(&e)))?;

        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| ProbeError::Bpf(format!("map {name} missing from the object")))
        };
        let events = RingBuf::try_from(take(&mut ebpf, "rs_events")?).map_err(bpf_err)?;
        let mut tgids: BpfHashMap<MapData, u32, u8> =
            BpfHashMap::try_from(take(&mut ebpf, "rs_tgids")?).map_err(bpf_err)?;
        let mut rings: BpfHashMap<MapData, u64, u8> =
            BpfHashMap::try_from(take(&mut ebpf, "rs_rings")?).map_err(bpf_err)?;
        let lost: PerCpuArray<MapData, u64> =
            PerCpuArray::try_from(take(&mut ebpf, "rs_lost")?).map_err(bpf_err)?;
        let mut counts: PerCpuHashMap<MapData, RawKey, RawCounts> =
            PerCpuHashMap::try_from(take(&mut ebpf, "rs_counts")?).map_err(bpf_err)?;
        let ctx_off_map: Array<MapData, u32> =
            Array::try_from(take(&mut ebpf, "rs_ctx_off")?).map_err(bpf_err)?;
        // Where the BPF side counts rings once its map is full.
        let ncpus = aya::util::nr_cpus().map_err(|(what, e)| bpf_err(format!("{what}: {e}")))?;
        let zeros = PerCpuValues::try_from(vec![RawCounts::default(); ncpus]).map_err(bpf_err)?;
        counts
            .insert(RawKey::new(OTHER_RINGS, 0), zeros, 0)
            .map_err(bpf_err)?;

        // The ring filter narrows what passes: set it before attaching.
        if let Some(r) = opts.ring {
            rings.insert(r, 1, 0).map_err(bpf_err)?;
        }

        let mut attached = Vec::new();
        let mut program_ids = Vec::new();
        for (spec, tracepoint) in use_specs {
            let prog: &mut TracePoint = ebpf
                .program_mut(spec.program)
                .ok_or_else(|| {
                    ProbeError::Bpf(format!("program {} missing from the object", spec.program))
                })?
                .try_into()
                .map_err(bpf_err)?;
            prog.load().map_err(|e| ProbeError::Attach {
                tracepoint: tracepoint.clone(),
                reason: full_chain(&e),
            })?;
            if let Ok(info) = prog.info() {
                program_ids.push(info.id());
            }
            prog.attach(spec.system, &tracepoint)
                .map_err(|e| ProbeError::Attach {
                    tracepoint: tracepoint.clone(),
                    reason: full_chain(&e),
                })?;
            attached.push(tracepoint);
        }

        // Only now open the tgid filter: the programs are attached one by
        // one, and a process traced meanwhile would show submissions whose
        // completions the not-yet-attached program misses.
        let mut pids: BTreeSet<u32> = opts.pids.iter().copied().collect();
        for &pid in &opts.pids {
            tgids.insert(pid, 1, 0).map_err(bpf_err)?;
        }
        if opts.follow_forks {
            // Children forked before now fired no task_newtask we saw
            // (fio's job process): trace them too. Forks from here on are
            // caught in the kernel, so a second look finds what a child
            // forked while the first one ran.
            for _ in 0..2 {
                for &pid in &opts.pids {
                    for c in crate::discover::descendants(pid) {
                        if pids.insert(c) {
                            tgids.insert(c, 1, 0).map_err(bpf_err)?;
                        }
                    }
                }
            }
        }

        Ok(Probes {
            events,
            tgids,
            rings,
            lost,
            counts,
            ctx_off_map,
            ebpf,
            pids,
            kinds: opts.kinds,
            traced_any: !opts.pids.is_empty(),
            exited_ns: None,
            last_exit_check: Instant::now(),
            known_rings: opts.ring.into_iter().collect(),
            // With a ring filter the rings map is the user's choice; else
            // it lists the traced rings for follow_rings.
            auto_rings: opts.follow_rings && opts.ring.is_none(),
            attached,
            skipped,
            program_ids,
            tracefs,
            ring_buffer_bytes: opts.ring_buffer_bytes,
            pending: VecDeque::new(),
            ring_setups: HashMap::new(),
            created: HashMap::new(),
            last_ring_scan: Instant::now(),
            ctx_off: CtxOff::NotNeeded,
            setups_noted: HashSet::new(),
            retired: BTreeMap::new(),
            retired_other: Counts::default(),
        }
        .with_attach_rings())
    }

    /// Queues a `ring` record for every ring the traced processes have now.
    fn with_attach_rings(mut self) -> Probes {
        if self.kinds.contains_bit(crate::kinds::RING) {
            for pid in self.pids() {
                // A process that went away meanwhile has no rings to show.
                if let Ok(fds) = crate::discover::discover(pid) {
                    for r in fds {
                        self.note_ring(RingWhen::Attach, pid, r.fd, Some(&r.info), true);
                    }
                }
            }
        }
        self
    }

    /// Makes the `ring` record of (pid, fd); queues it when it says
    /// something new (always with `force`).
    fn note_ring(
        &mut self,
        when: RingWhen,
        pid: u32,
        fd: i32,
        info: Option<&crate::discover::Fdinfo>,
        force: bool,
    ) {
        if when == RingWhen::Attach && matches!(self.ctx_off, CtxOff::NotNeeded) {
            // A ring older than the session: its flags will have to be
            // read from the ring, at the offset BTF gives.
            self.ctx_off = CtxOff::Looking(std::thread::spawn(
                crate::btf::running_kernel_ctx_flags_offset,
            ));
        }
        let created = self.created.get(&(pid, fd));
        let mut rec = RingSetup::new(
            crate::counters::monotonic_ns(),
            when,
            pid,
            Some(fd),
            info,
            created,
        );
        let prev = self.ring_setups.get(&(pid, fd));
        if info.is_some_and(|i| i.busy)
            && let Some(p) = prev
        {
            // The kernel printed no details this time: keep what we knew
            // rather than report it unknown.
            let (ts, when) = (rec.hdr.ts_ns, rec.when);
            rec = p.clone();
            rec.hdr.ts_ns = ts;
            rec.when = when;
        }
        if !force && prev.is_some_and(|p| p.same_state(&rec)) {
            return;
        }
        self.ring_setups.insert((pid, fd), rec.clone());
        self.pending.push_back(ProbeEvent::Ring(Box::new(rec)));
    }

    /// Re-reads the traced processes' fdinfo and queues a `ring` record
    /// for each ring that changed, and one for each ring whose setup flags
    /// the BPF side just read from the ring (those created before attach:
    /// the others had a create event).
    fn scan_rings(&mut self) {
        if matches!(&self.ctx_off, CtxOff::Looking(job) if job.is_finished()) {
            let CtxOff::Looking(job) = std::mem::replace(&mut self.ctx_off, CtxOff::Set) else {
                unreachable!("matched above")
            };
            self.ctx_off = match job.join() {
                Err(_) => CtxOff::Unavailable(SetupFlagsError::Panicked),
                Ok(Err(e)) => CtxOff::Unavailable(e.into()),
                Ok(Ok(off)) => match self.ctx_off_map.set(0, off + 1, 0) {
                    Ok(()) => CtxOff::Set,
                    Err(e) => CtxOff::Unavailable(SetupFlagsError::Map(e)),
                },
            };
        }
        // Read only once the BPF side can read flags: until then (and in
        // sessions that never need them) no ring has any. Rings of a later
        // generation had a create event, which said their flags.
        if matches!(self.ctx_off, CtxOff::Set)
            && let Ok(c) = self.counters()
        {
            for r in c.rings {
                let Some(seen) = r.setup else { continue };
                if r.ring.0 == 0
                    || r.ring.0 == OTHER_RINGS
                    || r.generation != 0
                    || !self.setups_noted.insert(r.ring.0)
                {
                    continue;
                }
                self.pending
                    .push_back(ProbeEvent::Ring(Box::new(RingSetup::seen(
                        crate::counters::monotonic_ns(),
                        r.ring,
                        seen,
                    ))));
            }
        }
        for pid in self.pids() {
            let Ok(fds) = crate::discover::discover_once(pid) else {
                continue;
            };
            for r in fds {
                self.note_ring(RingWhen::Changed, pid, r.fd, Some(&r.info), false);
            }
        }
    }

    /// Starts tracing one more process.
    pub fn add_pid(&mut self, pid: u32) -> Result<(), ProbeError> {
        self.tgids.insert(pid, 1, 0).map_err(bpf_err)?;
        self.pids.insert(pid);
        self.traced_any = true;
        self.exited_ns = None;
        Ok(())
    }

    /// Stops tracing a process (e.g. it exited: its pid may be reused).
    pub fn remove_pid(&mut self, pid: u32) -> Result<(), ProbeError> {
        self.pids.remove(&pid);
        match self.tgids.remove(&pid) {
            Ok(()) => Ok(()),
            // Not there (already removed): fine.
            Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(bpf_err(e)),
        }
    }

    /// The traced pids (grows with `follow_forks`).
    pub fn pids(&self) -> Vec<u32> {
        self.pids.iter().copied().collect()
    }

    /// Drops exited processes from the filter so that a new process that
    /// gets the same pid is not traced. Returns the pids removed.
    pub fn prune_exited(&mut self) -> Result<Vec<u32>, ProbeError> {
        let dead: Vec<u32> = self
            .pids
            .iter()
            .copied()
            .filter(|&p| !crate::discover::pid_alive(p))
            .collect();
        for &p in &dead {
            self.remove_pid(p)?;
        }
        if self.traced_any && self.pids.is_empty() && self.exited_ns.is_none() {
            self.exited_ns = Some(crate::counters::monotonic_ns());
        }
        Ok(dead)
    }

    /// When the session found that every process it traced had exited
    /// (followed children included), CLOCK_MONOTONIC ns; `None` while one
    /// still runs (or none was traced yet). [`poll`](Self::poll) checks
    /// /proc every 100 ms (and [`prune_exited`](Self::prune_exited) does
    /// too), so it is at most that late. Events the kernel wrote before
    /// the exit may still be waiting: keep polling until it returns 0.
    pub fn exited(&self) -> Option<u64> {
        self.exited_ns
    }

    /// The event kinds this session delivers.
    pub fn kinds(&self) -> KindSet {
        self.kinds
    }

    /// Counts that saw every event (docs/probes.md, "Counters"): per
    /// ring and in total, by kind, finished requests, lost, and whether the
    /// traced processes exited. Taken in the BPF programs right after the
    /// tgid and ring filters, so they include events of kinds not
    /// delivered, events lost to a full ring buffer, and events a
    /// consumer's own queue drops. One map read per ring: cheap at a few
    /// Hz, not per event.
    ///
    /// Counts of freed rings (a generation older than the newest at its
    /// address) are final: they move from the BPF map to the session, so
    /// the map keeps room for live rings.
    pub fn counters(&mut self) -> Result<Counters, ProbeError> {
        let ts_ns = crate::counters::monotonic_ns();
        let mut live = BTreeMap::new();
        for item in self.counts.iter() {
            let (key, cpus) = item.map_err(bpf_err)?;
            let counts = Counts::from_cpus(cpus.iter());
            // The other-rings slot mixes rings; 0 is not a ring.
            let setup = if key.ctx == OTHER_RINGS || key.ctx == 0 {
                None
            } else {
                SetupSeen::from_cpus(cpus.iter())
            };
            live.insert(key, (counts, setup));
        }
        // Keys sort by (ctx, gen): a key followed by one with the same ctx
        // is a ring that was freed.
        let freed: Vec<RawKey> = live
            .keys()
            .zip(live.keys().skip(1))
            .filter(|(a, b)| a.ctx == b.ctx && a.ctx != 0 && a.ctx != OTHER_RINGS)
            .map(|(a, _)| *a)
            .collect();
        for key in freed {
            match self.counts.remove(&key) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(bpf_err(e)),
            }
            let v = live.remove(&key).expect("listed above");
            if self.retired.len() < RETIRED_KEPT {
                self.retired.insert(key, v);
            } else {
                self.retired_other.add_counts(&v.0);
            }
        }
        let mut rings = Vec::with_capacity(live.len() + self.retired.len());
        for (key, (counts, setup)) in live.iter().chain(self.retired.iter()) {
            let mut counts = *counts;
            if key.ctx == OTHER_RINGS {
                counts.add_counts(&self.retired_other);
                if counts == Counts::default() {
                    continue;
                }
            }
            rings.push(RingCounts {
                ring: Ptr(key.ctx),
                generation: key.generation,
                counts,
                setup: *setup,
            });
        }
        let mut c = Counters::new(ts_ns, rings, self.lost()?);
        c.exited_ns = self.exited_ns;
        Ok(c)
    }

    /// Why the setup flags of rings created before attach cannot be read
    /// from the rings (no kernel BTF, an unknown layout); `None` while the
    /// lookup runs or once it succeeded.
    pub fn setup_flags_unavailable(&self) -> Option<&SetupFlagsError> {
        match &self.ctx_off {
            CtxOff::Unavailable(e) => Some(e),
            _ => None,
        }
    }

    /// Tracepoints attached.
    pub fn tracepoints(&self) -> &[String] {
        &self.attached
    }

    /// Tracepoints not used on this kernel, and why.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Kernel ids of the loaded programs (as `bpftool prog show` lists them).
    pub fn program_ids(&self) -> &[u32] {
        &self.program_ids
    }

    /// Where tracefs is.
    pub fn tracefs(&self) -> &Tracefs {
        &self.tracefs
    }

    /// Ring buffer size in bytes.
    pub fn ring_buffer_bytes(&self) -> u32 {
        self.ring_buffer_bytes
    }

    /// Events dropped because the ring buffer was full, per CPU.
    pub fn lost_per_cpu(&self) -> Result<Vec<u64>, ProbeError> {
        let v = self.lost.get(&0, 0).map_err(bpf_err)?;
        Ok(v.iter().copied().collect())
    }

    /// Events dropped because the ring buffer was full, all CPUs.
    pub fn lost(&self) -> Result<u64, ProbeError> {
        Ok(self.lost_per_cpu()?.iter().sum())
    }

    /// Hands every waiting event to `f`; when none is waiting, waits up to
    /// `timeout` for some first. Returns how many were handed over (at most
    /// [`MAX_BATCH`]).
    ///
    /// Every 100 ms it also looks in /proc for traced processes that
    /// exited ([`exited`](Self::exited)).
    pub fn poll(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(ProbeEvent),
    ) -> Result<usize, ProbeError> {
        if self.last_exit_check.elapsed() >= Duration::from_millis(100) {
            self.last_exit_check = Instant::now();
            self.prune_exited()?;
        }
        if self.kinds.contains_bit(crate::kinds::RING)
            && self.last_ring_scan.elapsed() >= RING_SCAN_PERIOD
        {
            self.last_ring_scan = Instant::now();
            self.scan_rings();
        }
        let n = self.drain(&mut f)?;
        if n > 0 {
            return Ok(n);
        }
        let mut pfd = libc::pollfd {
            fd: self.events.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd. EINTR (a signal) just ends the wait.
        unsafe { libc::poll(&mut pfd, 1, ms) };
        self.drain(&mut f)
    }

    /// [`poll`](Self::poll) into a Vec.
    pub fn poll_vec(&mut self, timeout: Duration) -> Result<Vec<ProbeEvent>, ProbeError> {
        let mut v = Vec::new();
        self.poll(timeout, |e| v.push(e))?;
        Ok(v)
    }

    fn drain(&mut self, f: &mut impl FnMut(ProbeEvent)) -> Result<usize, ProbeError> {
        let mut n = 0;
        while let Some(ev) = self.pending.pop_front() {
            n += 1;
            f(ev);
        }
        while n < MAX_BATCH {
            let Some(item) = self.events.next() else {
                break;
            };
            let ev = wire::decode(&item)?;
            drop(item);
            self.learn(&ev)?;
            // new_task is always sent (the traced set grows by it); the
            // other kinds are filtered in the kernel already.
            if matches!(ev, ProbeEvent::NewTask { .. }) && !self.kinds.contains(&ev) {
                continue;
            }
            let create = match ev {
                ProbeEvent::Create {
                    hdr,
                    ring,
                    fd,
                    sq_entries,
                    cq_entries,
                    flags,
                    ..
                } if fd >= 0 && self.kinds.contains_bit(crate::kinds::RING) => Some((
                    hdr.tgid,
                    fd,
                    CreateInfo {
                        ring,
                        tid: hdr.tid,
                        flags,
                        sq_entries,
                        cq_entries,
                    },
                )),
                _ => None,
            };
            n += 1;
            f(ev);
            if let Some((pid, fd, info)) = create {
                // The fd is installed before the tracepoint fires: its
                // fdinfo is there (registrations come later, and show in
                // a re-read).
                self.created.insert((pid, fd), info);
                let path = format!("/proc/{pid}/fdinfo/{fd}");
                let fdinfo = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| crate::discover::Fdinfo::parse(&path, &t).ok());
                self.note_ring(RingWhen::Create, pid, fd, fdinfo.as_ref(), true);
                while let Some(ev) = self.pending.pop_front() {
                    n += 1;
                    f(ev);
                }
            }
        }
        Ok(n)
    }

    fn learn(&mut self, ev: &ProbeEvent) -> Result<(), ProbeError> {
        if let ProbeEvent::NewTask { child, .. } = ev {
            // The BPF side already traces it; keep our set in sync.
            self.pids.insert(*child);
            self.traced_any = true;
            self.exited_ns = None;
        }
        if self.auto_rings
            && let Some(r) = ev.ring()
            && !r.is_null()
            && self.known_rings.insert(r.0)
        {
            // A full map only means we stop following new rings.
            let _ = self.rings.insert(r.0, 1, 0);
        }
        Ok(())
    }

    /// Detaches everything now (same as dropping) and returns the final
    /// lost count.
    pub fn detach(self) -> Result<u64, ProbeError> {
        let lost = self.lost()?;
        drop(self);
        Ok(lost)
    }

    /// The underlying aya object (advanced use).
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CLI moves the session into a collector thread.
    #[test]
    fn probes_is_send() {
        fn send<T: Send>() {}
        send::<Probes>();
    }

    #[test]
    fn bad_buffer_size_is_refused_before_loading() {
        let e = Probes::attach(AttachOptions {
            ring_buffer_bytes: 5000,
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("power of two"), "{e}");
    }
}
