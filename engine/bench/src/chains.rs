//! `read_exact` chains over pipes that always hold half of what is asked:
//! the engine next to a hand-written io_uring loop and the naive way.

use crate::common::*;
use io_uring::{opcode, types};
use ringside_engine::Backend;
use ringside_engine::abi::{RsSqe, op};
use ringside_engine::chain::{ChainSpec, StepSpec};
use ringside_engine::decision::Budgets;
use ringside_engine::engine::EngineConfig;
use ringside_engine::event::{LinkMode, Notify};
use ringside_engine::program::vm::ExecMode;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Read size and pipe size of a chain table: pipes hold half a read, so every
/// read comes back short at least once (the forced short read of every chain).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub(crate) read: u32,
}

impl Shape {
    fn pipe_size(self) -> i32 {
        (self.read / 2) as i32
    }
}

struct Feed {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `n` pipes of PIPE_SIZE bytes; one writer thread keeps them full.
fn pipes(n: usize, shape: Shape) -> std::io::Result<(Vec<OwnedFd>, Feed)> {
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..n {
        let mut fds = [0; 2];
        // SAFETY: valid out-array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fresh fds.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on our fds.
        unsafe {
            libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, shape.pipe_size());
            let fl = libc::fcntl(w.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(w.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        readers.push(r);
        writers.push(w);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        // The ring thread has CPU 0 (see `chain_table`); the feeder the next.
        pin_to(1);
        let data = vec![0x5au8; shape.read as usize];
        let mut pfds: Vec<libc::pollfd> = writers
            .iter()
            .map(|w| libc::pollfd {
                fd: w.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            })
            .collect();
        while !s.load(Ordering::Relaxed) {
            // SAFETY: valid pollfd array.
            unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 50) };
            for p in pfds.iter_mut() {
                if p.revents & libc::POLLOUT != 0 {
                    // SAFETY: valid buffer; non-blocking write.
                    unsafe { libc::write(p.fd, data.as_ptr() as *const _, data.len()) };
                }
            }
        }
    });
    Ok((
        readers,
        Feed {
            stop,
            thread: Some(thread),
        },
    ))
}

struct ChainRow {
    name: &'static str,
    chains: u64,
    secs: f64,
    enters: u64,
    cpu_ns: u64,
    reads: u64,
}

impl ChainRow {
    fn rate(&self) -> f64 {
        self.chains as f64 / self.secs
    }
}

/// Rounds of each read_exact chain table (see `chain_table`).
const ROUNDS: usize = 3;

fn engine_chains(
    n: u64,
    c: usize,
    exec: ExecMode,
    backend: Backend,
    shape: Shape,
) -> std::io::Result<ChainRow> {
    let (readers, _feed) = pipes(c, shape)?;
    let read = shape.read;
    let config = EngineConfig {
        backend,
        entries: 256,
        files: readers
            .iter()
            .map(|r| (r.as_raw_fd(), "pipe".to_string()))
            .collect(),
        buffers: vec![read as usize * c],
        budgets: Budgets {
            steps_per_chain: u32::MAX,
            ..Budgets::default()
        },
    };
    let (mut e, prog) = bench_engine(config, "read_exact", exec)?;
    let chain = |slot: usize| ChainSpec {
        user_data: slot as u64,
        steps: vec![StepSpec::io(RsSqe {
            opcode: op::READ,
            fd: slot as i32,
            buf_index: 0,
            buf_off: slot as u64 * read as u64,
            len: read,
            user_data: slot as u64,
            ..Default::default()
        })],
        program: Some(prog),
        notify: Notify::Final,
        drain: false,
        link: LinkMode::Engine,
    };
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    let mut submitted = 0;
    let mut done = 0;
    for slot in 0..c {
        e.submit_chain(chain(slot)).map_err(std::io::Error::other)?;
        submitted += 1;
    }
    while done < n {
        e.run(true).map_err(std::io::Error::other)?;
        for end in e.take_finished() {
            done += 1;
            if submitted < n {
                e.submit_chain(chain(end.user_data as usize))
                    .map_err(std::io::Error::other)?;
                submitted += 1;
            }
        }
        e.take_completions();
    }
    let s = e.stats();
    Ok(ChainRow {
        name: match (backend, exec) {
            (Backend::Kernel, _) => "engine + read_exact (--backend kernel: inside io_uring_enter)",
            (_, ExecMode::Compiled) => "engine + read_exact (compiled)",
            _ => "engine + read_exact (interpreter)",
        },
        chains: n,
        secs: start.elapsed().as_secs_f64(),
        enters: s.enter_calls,
        cpu_ns: thread_cpu_ns() - cpu0,
        reads: s.completed,
    })
}

fn hand_written(n: u64, c: usize, shape: Shape) -> std::io::Result<ChainRow> {
    let (readers, _feed) = pipes(c, shape)?;
    let read = shape.read;
    let mut ring = ring(256)?;
    let fds: Vec<RawFd> = readers.iter().map(|r| r.as_raw_fd()).collect();
    ring.submitter().register_files(&fds)?;
    let mut bufs = vec![0u8; read as usize * c];
    let mut got = vec![0u32; c];
    let mut enters = 0u64;
    let mut reads = 0u64;
    let push = |ring: &mut BenchRing, bufs: &mut [u8], slot: usize, got: u32| {
        let p = bufs[slot * read as usize + got as usize..].as_mut_ptr();
        let e = opcode::Read::new(types::Fixed(slot as u32), p, read - got)
            .build()
            .user_data(slot as u64);
        // SAFETY: the buffer outlives the request (we reap all before returning).
        while unsafe { ring.submission().push(&e) }.is_err() {
            ring.submit_and_wait(0).expect("submit");
        }
    };
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    let (mut started, mut done) = (0u64, 0u64);
    for slot in 0..c {
        push(&mut ring, &mut bufs, slot, 0);
        started += 1;
    }
    let mut cqes = Vec::with_capacity(256);
    while done < n {
        enter_and_reap(&mut ring, &mut cqes)?;
        enters += 1;
        for (slot, res) in cqes.drain(..) {
            reads += 1;
            if res <= 0 {
                return Err(std::io::Error::other(format!("read failed: {res}")));
            }
            got[slot] += res as u32;
            if got[slot] < read {
                push(&mut ring, &mut bufs, slot, got[slot]); // the same recovery as read_exact
                continue;
            }
            done += 1;
            got[slot] = 0;
            if started < n {
                push(&mut ring, &mut bufs, slot, 0);
                started += 1;
            }
        }
    }
    // Reap what is still in flight before the buffers go.
    let left = started - done;
    let mut reaped = 0;
    drop(_feed);
    while reaped < left {
        let _ = enter_and_reap(&mut ring, &mut cqes);
        for (slot, res) in cqes.drain(..) {
            if res > 0 {
                got[slot] += res as u32;
            }
            if res <= 0 || got[slot] >= read {
                reaped += 1;
            } else {
                push(&mut ring, &mut bufs, slot, got[slot]);
            }
        }
    }
    Ok(ChainRow {
        name: "hand-written io_uring loop",
        chains: n,
        secs: start.elapsed().as_secs_f64(),
        enters,
        cpu_ns: thread_cpu_ns() - cpu0,
        reads,
    })
}

fn naive(n: u64, c: usize, shape: Shape) -> std::io::Result<ChainRow> {
    let (readers, _feed) = pipes(c, shape)?;
    let read = shape.read;
    let mut ring = ring(8)?;
    let mut buf = vec![0u8; read as usize];
    let (mut enters, mut reads) = (0u64, 0u64);
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    for i in 0..n {
        let fd = readers[i as usize % c].as_raw_fd();
        let mut got = 0u32;
        while got < read {
            let e = opcode::Read::new(types::Fd(fd), buf[got as usize..].as_mut_ptr(), read - got)
                .build();
            // SAFETY: buf outlives the request: we wait for it right here.
            unsafe { ring.submission().push(&e) }.map_err(std::io::Error::other)?;
            ring.submit_and_wait(1)?;
            enters += 1;
            let res = ring.completion().next().map(|c| c.result()).unwrap_or(-1);
            reads += 1;
            if res <= 0 {
                return Err(std::io::Error::other(format!("read failed: {res}")));
            }
            got += res as u32;
        }
    }
    Ok(ChainRow {
        name: "naive: submit, wait, inspect, resubmit",
        chains: n,
        secs: start.elapsed().as_secs_f64(),
        enters,
        cpu_ns: thread_cpu_ns() - cpu0,
        reads,
    })
}

pub(crate) fn chain_table(
    out: &mut dyn Write,
    n: u64,
    c: usize,
    shape: Shape,
) -> std::io::Result<()> {
    writeln!(
        out,
        "read_exact chains: one {} KiB read per chain from a pipe that holds {} KiB (a short read in every chain), {c} in flight, {n} chains per row, the median of {ROUNDS} interleaved rounds",
        shape.read / 1024,
        shape.pipe_size() / 1024
    )?;
    writeln!(out)?;
    // The kernel backend's row where the kernel has the io_uring BPF loop;
    // elsewhere a line says why it is missing.
    let kernel = match ringside_engine::kernel::probe() {
        Ok(()) => true,
        Err(e) => {
            writeln!(out, "No kernel backend row: {e}")?;
            writeln!(out)?;
            false
        }
    };
    // A feeder thread fills the pipes. Left to the scheduler, it and the
    // ring thread sometimes share a CPU and a row falls to 0.4x of its usual
    // rate; pinned to CPUs of their own, rounds of every variant in turn,
    // and each variant's median round.
    let pinned = pin_to(0);
    let mut rounds: [Vec<ChainRow>; 5] = Default::default();
    let user = Backend::User;
    let result = (|| {
        for _ in 0..ROUNDS {
            rounds[0].push(engine_chains(n, c, ExecMode::Interpreter, user, shape)?);
            rounds[1].push(engine_chains(n, c, ExecMode::Compiled, user, shape)?);
            rounds[2].push(hand_written(n, c, shape)?);
            rounds[3].push(naive(n, c, shape)?);
            if kernel {
                let k = Backend::Kernel;
                rounds[4].push(engine_chains(n, c, ExecMode::Compiled, k, shape)?);
            }
        }
        Ok::<(), std::io::Error>(())
    })();
    unpin(pinned);
    result?;
    let rows: Vec<ChainRow> = rounds
        .into_iter()
        .filter(|v| !v.is_empty())
        .map(|mut v| {
            v.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
            v.swap_remove(v.len() / 2)
        })
        .collect();
    let hand = rows[2].rate();
    let hand_cpu = rows[2].cpu_ns as f64 / rows[2].chains as f64;
    writeln!(
        out,
        "| variant | chains/s | reads/chain | io_uring_enter/chain | CPU us/chain (ring thread) | chains/s vs hand-written | CPU vs hand-written |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    for r in &rows {
        let rate = r.rate();
        let cpu = r.cpu_ns as f64 / r.chains as f64;
        writeln!(
            out,
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2}x | {:.2}x |",
            r.name,
            rate,
            r.reads as f64 / r.chains as f64,
            r.enters as f64 / r.chains as f64,
            cpu / 1000.0,
            rate / hand,
            cpu / hand_cpu
        )?;
    }
    writeln!(out)
}
