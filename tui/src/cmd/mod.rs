//! The subcommands: each file one family, all of them glue between the
//! command line, the sources and the terminal (the work is in the library
//! crates).

pub mod attach;
pub mod headless;
pub mod interactive;
pub mod record;
pub mod recording;

use crate::cli::{self, Cli, Command};
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Ctrl-C, SIGTERM and SIGHUP (the terminal went away) set this; live
/// loops poll it and shut down cleanly, which also restores the terminal.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let mut signals = vec![signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];
    // Under nohup SIGHUP is ignored on purpose: keep it so.
    if !ignored(signal_hook::consts::SIGHUP) {
        signals.push(signal_hook::consts::SIGHUP);
    }
    for sig in signals {
        signal_hook::flag::register(sig, flag.clone()).context("installing signal handlers")?;
    }
    Ok(flag)
}

/// Whether `sig` is ignored (SIG_IGN) in this process now.
fn ignored(sig: libc::c_int) -> bool {
    // SAFETY: sigaction with no new action only reads the current one.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// A closed stdout (`| head`) ends the output quietly.
fn quiet_pipe(r: std::io::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
        Ok(c) => Ok(c),
    }
}

/// Exit code for a read error: 2 (damaged or unreadable), message on stderr.
fn unreadable(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("ringside: {e}");
    ExitCode::from(2)
}

/// `ringside bench engine`: the tables of docs/bench.md.
fn bench_engine(
    nops: u64,
    chains: u64,
    backend: Option<cli::BackendArg>,
) -> anyhow::Result<ExitCode> {
    let kernel_only = backend == Some(cli::BackendArg::Kernel);
    if kernel_only {
        ringside_engine::kernel::probe()?;
    }
    let opts = ringside_bench::Options {
        nops,
        chains,
        kernel_only,
        ..Default::default()
    };
    ringside_bench::run(&opts, &mut std::io::stdout())?;
    Ok(ExitCode::SUCCESS)
}

/// `--backend kernel` on a kernel without the feature ends here, with the
/// one sentence that names what is missing, before anything is set up.
fn check_backend(live: &cli::LiveOpts) -> anyhow::Result<()> {
    if live.backend == cli::BackendArg::Kernel {
        ringside_engine::kernel::probe()?;
    }
    Ok(())
}

/// Run the command `cli` names; its exit status.
pub fn run(cli: Cli) -> ExitCode {
    let backend = match &cli.command {
        Some(Command::Demo { opts }) | Some(Command::Run { opts, .. }) => {
            check_backend(&opts.live())
        }
        Some(Command::Record { what, .. }) => check_backend(&what.live()),
        _ => Ok(()),
    };
    let result = match cli.command {
        _ if backend.is_err() => backend.map(|()| ExitCode::SUCCESS),
        None => interactive::demo(&cli::LiveOpts::default()),
        Some(Command::Demo { opts }) => interactive::demo(&opts.live()),
        Some(Command::Run { spec, opts }) => interactive::run(&spec, &opts.live()),
        Some(Command::Attach(a)) => interactive::attach(&a, &a.live()),
        Some(Command::Replay {
            file,
            headless: false,
            history,
            paused,
        }) => interactive::replay(&file, history, paused),
        Some(Command::Bench {
            what:
                cli::BenchWhat::Engine {
                    nops,
                    chains,
                    backend,
                },
        }) => bench_engine(nops, chains, backend),
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "ringside", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Manpage) => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map(|()| ExitCode::SUCCESS)
                .map_err(anyhow::Error::from)
        }
        Some(Command::Record { output, what }) => {
            if what.live().headless {
                record::record_command(&output, &what)
            } else {
                interactive::record_ui(&output, &what)
            }
        }
        Some(Command::Replay {
            file,
            headless: true,
            ..
        }) => recording::replay_headless(&file),
        Some(Command::Check { file }) => recording::check(&file),
        Some(Command::Export {
            file,
            format,
            output,
            keep_kernel_pointers,
        }) => recording::export(
            &file,
            matches!(format, cli::ExportFormat::Chrome),
            output.as_deref(),
            &ringside_recordings::export::ExportOptions {
                keep_kernel_pointers,
            },
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Not eprintln!: it panics when stderr is a terminal that hung up.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "ringside: {}", render(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes, each fact once. `{:#}` prints every cause after
/// the error, so a cause whose text the error already ends with (an error
/// type that prints its source and also returns it from `source()`) would
/// be said twice.
fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let m = cause.to_string();
        if m.is_empty() || out.ends_with(&m) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;
    use anyhow::Context;
    use ringside_engine::engine::EngineError;
    use ringside_workload::{PrepareOptions, prepare_text};
    use std::path::Path;

    fn enoent() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::ENOENT)
    }

    #[test]
    fn every_fact_is_printed_once() {
        // A spec error: it was `ringside: X: X`.
        let e = prepare_text(
            "w.toml",
            "[[chain]]\nrepeat = 0\nstep = [{ op = \"nop\" }]\n",
            Path::new("."),
            &PrepareOptions::default(),
        )
        .err()
        .unwrap();
        let once =
            "w.toml:2:10: repeat = 0: a chain runs at least once (leave `repeat` out for one copy)";
        assert_eq!(render(&anyhow::Error::from(e)), once);
        // Error types that print their source and return it too.
        let io = EngineError::Io {
            what: ringside_engine::engine::RingCall::Setup,
            error: enoent(),
        };
        assert_eq!(
            render(&anyhow::Error::from(io)),
            "setting up the io_uring: No such file or directory (os error 2)"
        );
        let probe = ringside_probes::ProbeError::Io {
            what: "reading /proc/1/fdinfo".into(),
            error: enoent(),
        };
        assert_eq!(
            render(&anyhow::Error::from(probe)),
            "reading /proc/1/fdinfo: No such file or directory (os error 2)"
        );
        // Context still adds what it adds.
        let r: anyhow::Result<()> = Err(enoent()).context("reading x.rsrec");
        assert_eq!(
            render(&r.unwrap_err()),
            "reading x.rsrec: No such file or directory (os error 2)"
        );
    }
}
