//! Runs `ringside_probes::attach::run_headless` until the CLI is wired:
//!
//! ```text
//! cargo run -p ringside-probes --example attach -- --pid PID [--pid PID2]
//!     [--ring 0xCTX] [--duration-ms N] [--wait-for-rings] [--no-events]
//!     [--no-follow-forks] [--follow-rings]
//! ```
//!
//! Errors print one line (`attach: <message>`) and exit with
//! `ProbeError::exit_code()`.

use ringside_probes::ProbeError;
use ringside_probes::attach::{HeadlessOptions, run_headless};
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: attach --pid PID [--pid PID]... [--ring 0xCTX] [--duration-ms N] [--wait-for-rings] [--no-events] [--no-follow-forks] [--follow-rings]"
    );
    std::process::exit(64);
}

fn main() {
    let mut opts = HeadlessOptions::default();
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
            "--no-events" => opts.print_events = false,
            "--no-follow-forks" => opts.attach.follow_forks = false,
            "--follow-rings" => opts.attach.follow_rings = true,
            _ => usage(),
        }
    }
    if opts.attach.pids.is_empty() {
        usage();
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Err(e) = run_headless(&opts, &mut out) {
        let code = e
            .downcast_ref::<ProbeError>()
            .map_or(1, ProbeError::exit_code);
        eprintln!("attach: {e}");
        std::process::exit(code);
    }
}
