//! A whole probe trace ([`ringside_probes::trace`]) as JSON Lines, with
//! nothing but this crate: the live tests run it as a child process (a
//! signal must reach a process of its own). `ringside attach --pid PID
//! --headless` is the same trace for users.
//!
//! ```text
//! cargo run -p ringside-probes --example attach -- --pid PID [--pid PID2]
//!     [--ring 0xCTX] [--duration-ms N] [--wait-for-rings] [--quiet]
//!     [--events KIND,...] [--no-events KIND,...] [--no-follow-forks]
//!     [--follow-rings]
//! ```
//!
//! Errors print one line (`attach: <message>`) and exit with
//! `ProbeError::exit_code()`.

use ringside_probes::KindSet;
use ringside_probes::trace::{TraceLine, TraceOptions, TraceSink, trace};
use std::io::Write;
use std::time::Duration;

/// JSON Lines on stdout.
struct Lines<W: Write>(W);

impl<W: Write> TraceSink for Lines<W> {
    fn line(&mut self, line: &TraceLine<'_>) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.0, line)?;
        self.0.write_all(b"\n")
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: attach --pid PID [--pid PID]... [--ring 0xCTX] [--duration-ms N] [--wait-for-rings] [--quiet] [--events KIND,...] [--no-events KIND,...] [--no-follow-forks] [--follow-rings]"
    );
    std::process::exit(64);
}

fn kinds(v: &str) -> KindSet {
    v.parse().unwrap_or_else(|e| {
        eprintln!("attach: {e}");
        std::process::exit(64)
    })
}

fn main() {
    let mut opts = TraceOptions::default();
    let (mut events, mut no_events) = (Vec::new(), Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--pid" => opts
                .attach
                .pids
                .push(val().parse().unwrap_or_else(|_| usage())),
            "--ring" => {
                let v = val();
                let hex = v.trim_start_matches("0x");
                opts.attach.ring = Some(u64::from_str_radix(hex, 16).unwrap_or_else(|_| usage()));
            }
            "--duration-ms" => {
                opts.duration = Some(Duration::from_millis(
                    val().parse().unwrap_or_else(|_| usage()),
                ))
            }
            "--wait-for-rings" => opts.wait_for_rings = true,
            "--quiet" => opts.print_events = false,
            "--events" => events.push(kinds(&val())),
            "--no-events" => no_events.push(kinds(&val())),
            "--no-follow-forks" => opts.attach.follow_forks = false,
            "--follow-rings" => opts.attach.follow_rings = true,
            _ => usage(),
        }
    }
    if opts.attach.pids.is_empty() {
        usage();
    }
    opts.attach.kinds = KindSet::select(&events, &no_events);
    let mut out = Lines(std::io::BufWriter::new(std::io::stdout().lock()));
    if let Err(e) = trace(&opts, &mut out) {
        let _ = out.flush();
        eprintln!("attach: {e}");
        std::process::exit(e.exit_code());
    }
}
