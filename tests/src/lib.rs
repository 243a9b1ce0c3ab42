//! Helpers shared by the end-to-end tests: find and run the `ringside`
//! binary, say loudly when a test cannot run here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `ringside` binary next to the test executables (scripts/test builds it).
pub fn ringside() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("ringside");
    assert!(
        p.exists(),
        "{} missing: build it first (scripts/test does: cargo build --workspace --all-targets)",
        p.display()
    );
    p
}

/// Run `ringside ARGS`, log what happened, return its output.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(ringside())
        .args(args)
        .output()
        .expect("run ringside");
    eprintln!(
        "$ ringside {}\n  exit {:?}\n  stderr: {}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Print a SKIP line that the test harness does not swallow.
pub fn skip(test: &str, why: &str) {
    let _ = std::io::stderr()
        .write_all(format!("\n######## SKIP {test}: {why} ########\n\n").as_bytes());
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::geteuid() == 0 }
}
