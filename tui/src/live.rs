//! Live modes: demo and run.

use crate::cli::LiveOpts;
use crate::headless;
use anyhow::Context;
use ringside_engine::event::Overflow;
use ringside_engine::workload::{self, PrepareOptions, Prepared};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Ctrl-C and SIGTERM set this; live loops poll it and shut down cleanly.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone()).context("installing signal handlers")?;
    }
    Ok(flag)
}

/// `ringside demo`
pub fn demo(opts: &LiveOpts) -> anyhow::Result<ExitCode> {
    let prepared = workload::prepare_demo(&PrepareOptions { jit: opts.jit })?;
    drive(prepared, opts)
}

/// `ringside run SPEC`
pub fn run(spec: &Path, opts: &LiveOpts) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(spec).with_context(|| format!("reading {}", spec.display()))?;
    let base = spec.parent().unwrap_or(Path::new("."));
    let prepared = workload::prepare_text(
        &spec.display().to_string(),
        &text,
        base,
        &PrepareOptions { jit: opts.jit },
    )?;
    drive(prepared, opts)
}

fn drive(mut prepared: Prepared, opts: &LiveOpts) -> anyhow::Result<ExitCode> {
    let stop = stop_flag()?;
    let sub = prepared.engine().subscribe(1 << 16, Overflow::Block);
    let printer = if opts.headless {
        headless::spawn_printer(sub)
    } else {
        headless::spawn_plain(sub)
    };
    let (report, engine) = prepared.run(&stop)?;
    drop(engine); // closes the event stream
    printer
        .join()
        .map_err(|_| anyhow::anyhow!("printer thread panicked"))??;
    if opts.headless {
        let summary = serde_json::json!({"kind": "summary", "report": report});
        println!("{summary}");
    } else {
        println!(
            "{} chains: {} completed, {} stopped by a program, {} failed, {} cancelled; {} requests, {} decisions, {} io_uring_enter calls in {:.3} s",
            report.chains,
            report.completed,
            report.stopped,
            report.failed,
            report.cancelled,
            report.submitted,
            report.decisions,
            report.enter_calls,
            report.elapsed_s
        );
    }
    Ok(
        if report.failed > 0 && report.completed + report.stopped == 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// `ringside attach --pid PID`
pub fn attach_pid(pid: u32, duration: Option<f64>, opts: &LiveOpts) -> anyhow::Result<ExitCode> {
    use ringside_probes::attach::{HeadlessOptions, run_headless};
    use ringside_probes::{AttachOptions, ProbeError};
    if !opts.headless {
        anyhow::bail!("the terminal UI for attach is not built yet: use --headless");
    }
    let stop = stop_flag()?;
    let hopts = HeadlessOptions {
        attach: AttachOptions {
            pids: vec![pid],
            follow_forks: true,
            ..AttachOptions::default()
        },
        duration: duration.map(std::time::Duration::from_secs_f64),
        stop: Some(stop),
        ..HeadlessOptions::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match run_headless(&hopts, &mut out) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            // A typed probe error has its own exit code and one-line message.
            if let Some(pe) = e.downcast_ref::<ProbeError>() {
                use std::io::Write;
                let _ = out.flush();
                eprintln!("ringside: {pe}");
                return Ok(ExitCode::from(pe.exit_code() as u8));
            }
            Err(e)
        }
    }
}
