//! An application that embeds the engine and serves it on a Unix socket, so
//! `ringside attach --socket PATH` can watch its chains and decisions live,
//! pause it, set breakpoints and step through decisions.
//!
//! ```text
//! cargo run -p ringside-engine --example embedded -- [--socket PATH] [--seconds N] [--interval-ms N]
//! ringside attach --socket /tmp/ringside-embedded.sock     # in another terminal
//! ```
//!
//! The application reads a stream from a pipe whose writer sends odd-sized
//! chunks: each request is a chain of three 4 KiB reads steered by the
//! built-in `read_exact` program, which resubmits short reads for the rest.
//! It runs for `--seconds` (default 60) or until Ctrl-C, then shuts down
//! cleanly; an attached ringside says the application exited and keeps the
//! history.

use ringside_engine::abi::{RsSqe, op};
use ringside_engine::event::{LinkMode, Notify};
use ringside_engine::program::LoadOptions;
use ringside_engine::remote::{RemoteServer, ServeOptions};
use ringside_engine::{ChainSpec, Engine, EngineConfig, StepSpec, progs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid out-array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = arg(&args, "--socket").unwrap_or_else(|| "/tmp/ringside-embedded.sock".into());
    let seconds: f64 = arg(&args, "--seconds").map_or(Ok(60.0), |s| s.parse())?;
    let interval =
        Duration::from_millis(arg(&args, "--interval-ms").map_or(Ok(150), |s| s.parse())?);
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }

    // The application's IO: a pipe, written in odd-sized chunks.
    let (r, w) = pipe()?;
    let mut engine = Engine::new(EngineConfig {
        entries: 64,
        files: vec![(r.as_raw_fd(), "stream (pipe)".into())],
        buffers: vec![3 * 4096],
        ..EngineConfig::default()
    })?;
    let obj = engine.load_object("read_exact.o", progs::READ_EXACT, &LoadOptions::default())?;
    let prog = obj.programs[0].1;

    // Serve before the first chain, so a client sees everything from here on.
    let server = RemoteServer::serve(
        &mut engine,
        &path,
        ServeOptions {
            app: "embedded example".into(),
            ..ServeOptions::default()
        },
    )?;
    eprintln!("embedded: serving on {path}; attach with: ringside attach --socket {path}");

    let writer_stop = Arc::new(AtomicBool::new(false));
    let ws = writer_stop.clone();
    let writer = std::thread::spawn(move || {
        let chunks = [3000usize, 5000, 1500, 7000, 700];
        let data = vec![0x5au8; 8000];
        let mut k = 0;
        while !ws.load(Ordering::Relaxed) {
            let n = chunks[k % chunks.len()];
            k += 1;
            // SAFETY: valid buffer; a full pipe blocks until the engine reads.
            let wr = unsafe { libc::write(w.as_raw_fd(), data.as_ptr() as *const _, n) };
            if wr < 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(15));
        }
    });

    let start = Instant::now();
    let mut next_chain = Instant::now();
    let mut submitted = 0u64;
    let mut finished = 0u64;
    while !STOP.load(Ordering::Relaxed) && start.elapsed().as_secs_f64() < seconds {
        if Instant::now() >= next_chain && engine.active_chains() < 4 {
            submitted += 1;
            let steps = (0..3u64)
                .map(|i| {
                    StepSpec::io(RsSqe {
                        opcode: op::READ,
                        fd: 0,
                        buf_index: 0,
                        buf_off: i * 4096,
                        len: 4096,
                        user_data: submitted,
                        ..RsSqe::default()
                    })
                })
                .collect();
            engine.submit_chain(ChainSpec {
                user_data: submitted,
                steps,
                program: Some(prog),
                notify: Notify::Final,
                drain: false,
                link: LinkMode::Auto,
            })?;
            next_chain = Instant::now() + interval;
        }
        engine.run_timeout(true, Some(Duration::from_millis(20)))?;
        for end in engine.take_finished() {
            finished += 1;
            if finished.is_multiple_of(20) {
                eprintln!(
                    "embedded: {finished} chains done (last: {:?}, res {}), {} client(s)",
                    end.outcome,
                    end.res,
                    server.clients()
                );
            }
        }
        let _ = engine.take_completions();
    }
    eprintln!("embedded: shutting down after {finished} chains");
    writer_stop.store(true, Ordering::Relaxed);
    engine.shutdown()?;
    drop(engine); // the server's event stream ends: clients get "bye"
    drop(server);
    drop(r);
    let _ = writer.join();
    Ok(())
}
