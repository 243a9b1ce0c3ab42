//! Embedding the engine: read 64 KiB exactly from a pipe whose writer writes
//! in odd-sized chunks. A kernel link would cancel on the first short read;
//! under `read_exact` the engine resubmits the remainder and the application
//! gets one completion with every byte.
//!
//! ```sh
//! cargo run -p ringside-engine --example read_exact
//! ```

use ringside_engine::abi::{RsSqe, op};
use ringside_engine::event::{Event, LinkMode, Notify, Overflow};
use ringside_engine::program::LoadOptions;
use ringside_engine::{ChainSpec, Engine, EngineConfig, StepSpec, progs};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A pipe; the engine registers its read end as file 0.
    let mut fds = [0; 2];
    // SAFETY: valid out-array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: fresh fds we own.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    // The ring, its registrations, and the program.
    let mut engine = Engine::new(EngineConfig {
        files: vec![(r.as_raw_fd(), "pipe".into())],
        buffers: vec![64 * 1024],
        ..Default::default()
    })?;
    let prog = engine
        .load_object("read_exact.o", progs::READ_EXACT, &LoadOptions::default())?
        .programs[0]
        .1;

    // Watch the decisions as they happen.
    let events = engine.subscribe(4096, Overflow::Drop);

    // Four 16 KiB reads as one chain, driven by the engine.
    let steps = (0..4)
        .map(|i| {
            StepSpec::io(RsSqe {
                opcode: op::READ,
                fd: 0,
                buf_index: 0,
                buf_off: i * 16384,
                len: 16384,
                user_data: 100 + i,
                ..Default::default()
            })
        })
        .collect();
    engine.submit_chain(ChainSpec {
        user_data: 1,
        steps,
        program: Some(prog),
        notify: Notify::Final,
        drain: false,
        link: LinkMode::Auto,
    })?;

    // A writer that writes in chunks that never line up with the reads.
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::File::from(w);
        let data: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        for chunk in data.chunks(5000) {
            f.write_all(chunk).expect("write");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });

    engine.run_until_idle()?;
    writer.join().expect("writer");

    for c in engine.take_completions() {
        println!(
            "completion: user_data {} res {} ({:?})",
            c.user_data, c.res, c.kind
        );
    }
    let short = events
        .try_iter()
        .filter(|e| matches!(&e.event, Event::Decision(d) if d.ctx.res >= 0 && (d.ctx.res as u32) < d.ctx.len))
        .count();
    println!("{short} short reads were resubmitted by read_exact");
    let ok = engine
        .buffer(0)
        .expect("buffer")
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i as u32 % 251) as u8);
    println!("buffer holds every byte in order: {ok}");
    engine.shutdown()?;
    Ok(())
}
