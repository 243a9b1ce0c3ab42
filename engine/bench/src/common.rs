//! What every table of the benchmark shares: pinning, CPU time, an
//! engine set up for one pattern program, one enter-and-reap step.

use io_uring::IoUring;
use ringside_engine::engine::{Engine, EngineConfig};
use ringside_engine::program::vm::ExecMode;
use ringside_engine::program::{LoadOptions, ProgId};
use ringside_engine::ring::{Enter, Tuning, build_tuned};

pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---- decision cost -------------------------------------------------------------

/// Pin the calling thread to `cpu` (when the machine has it); returns the
/// affinity it had, for [`unpin`].
pub(crate) fn pin_to(cpu: usize) -> Option<libc::cpu_set_t> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 || cpu >= cpus {
        return None;
    }
    // SAFETY: cpu_set_t is plain data; the calls get valid pointers and sizes.
    unsafe {
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut old) != 0 {
            return None;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        (libc::sched_setaffinity(0, size, &set) == 0).then_some(old)
    }
}

/// Give the calling thread back the affinity [`pin_to`] returned.
pub(crate) fn unpin(old: Option<libc::cpu_set_t>) {
    if let Some(old) = old {
        // SAFETY: as in pin_to.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &old) };
    }
}

/// A hand-written baseline's ring, set up as the engine's is (the same
/// setup features, enters through the registered fd), so a comparison
/// measures the engine and not the ring.
pub(crate) struct BenchRing {
    // Declared first: unregistered before the ring closes.
    enter: Enter,
    ring: IoUring,
}

impl BenchRing {
    /// Submit what is queued and wait for `want` completions, asking for
    /// events (which runs deferred task work) as the engine does.
    pub(crate) fn submit_and_wait(&mut self, want: usize) -> std::io::Result<usize> {
        let n = self.ring.submission().len() as u32;
        self.enter.enter(n, want as u32, true, None)
    }
}

impl std::ops::Deref for BenchRing {
    type Target = IoUring;
    fn deref(&self) -> &IoUring {
        &self.ring
    }
}

impl std::ops::DerefMut for BenchRing {
    fn deref_mut(&mut self) -> &mut IoUring {
        &mut self.ring
    }
}

/// What the engine's rings and the baselines' get of the kernel's
/// cheaper-enter features on this machine.
pub(crate) fn tuning() -> std::io::Result<Tuning> {
    Ok(tuned_ring(8, 32)?.1)
}

fn tuned_ring(entries: u32, cq: u32) -> std::io::Result<(BenchRing, Tuning)> {
    let (ring, mut tuning) = build_tuned(entries, cq)?;
    let (enter, registered) = Enter::new(&ring);
    match registered {
        Ok(()) => tuning.registered_fd = true,
        Err(why) => tuning.missing.push(why.to_string()),
    }
    Ok((BenchRing { enter, ring }, tuning))
}

/// One io_uring_enter that waits for a completion, then every completion
/// as (user_data, res): the inner loop of the hand-written baselines.
pub(crate) fn enter_and_reap(
    ring: &mut BenchRing,
    out: &mut Vec<(usize, i32)>,
) -> std::io::Result<()> {
    ring.submit_and_wait(1)?;
    out.extend(
        ring.completion()
            .map(|c| (c.user_data() as usize, c.result())),
    );
    Ok(())
}

/// An engine for a benchmark row, with one built-in program loaded.
pub(crate) fn bench_engine(
    config: EngineConfig,
    prog: &str,
    exec: ExecMode,
) -> std::io::Result<(Engine, ProgId)> {
    let mut e = Engine::new(config).map_err(std::io::Error::other)?;
    let bytes = ringside_engine::progs::builtin(prog)
        .ok_or_else(|| std::io::Error::other(format!("no program {prog}")))?;
    let loaded = e
        .load_object(
            &format!("{prog}.o"),
            bytes,
            &LoadOptions {
                exec,
                ..Default::default()
            },
        )
        .map_err(std::io::Error::other)?;
    // The kernel backend's link (the kernel's verifier) is setup, not a
    // step: outside every timed run.
    e.link_programs().map_err(std::io::Error::other)?;
    Ok((e, loaded.programs[0].1))
}
/// A baseline's ring: `entries` SQ entries and four times as many CQ
/// entries, as the engine's.
pub(crate) fn ring(entries: u32) -> std::io::Result<BenchRing> {
    Ok(tuned_ring(entries, entries * 4)?.0)
}

pub(crate) fn entries_for(chains: usize) -> u32 {
    ((chains * 2).next_power_of_two() as u32).max(256)
}
