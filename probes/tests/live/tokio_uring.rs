//! tokio-uring (a Rust runtime's own ring, with up to eight reads in
//! flight) traced by pid: examples/tokio_uring_reads.rs is the client.

use super::*;

/// The client, built beside this test binary (`cargo test` builds the
/// crate's examples; CI's guests run the binaries the host built).
fn client() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let examples = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("examples");
    let bin = examples.join("tokio_uring_reads");
    assert!(
        bin.is_file(),
        "{} is missing: cargo build -p ringside-probes --examples",
        bin.display()
    );
    bin
}

#[test]
fn tokio_uring_reads_traced_by_pid() {
    if !live("tokio_uring_reads_traced_by_pid") {
        return;
    }
    const READS: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let file = fio_data(dir.path());
    let mut child = Command::new(client())
        .arg(&file)
        .arg(READS.to_string())
        .arg("8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let pid = child.id();
    assert_eq!(line.trim(), format!("ready {pid}"));
    // Its ring exists (the runtime made it, and opened the file through
    // it); nothing more is submitted until the line below.
    let h = start_headless(trace_pid(pid));
    h.out.wait_for_kind("attached");
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let (summary, lines) = h.finish();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), format!("done {READS} {}", READS * 4096));
    assert!(child.wait().unwrap().success());

    let evs = events_of(&lines);
    let (reads, full) = reads_and_full_pages(&evs);
    assert_eq!(reads, READS, "READ submissions traced");
    assert_eq!(full, READS, "4 KiB completions traced");
    for e in &evs {
        assert_eq!(e.header().tgid, pid, "{e:?}");
    }
    assert_eq!(summary.lost, 0);
    assert_eq!(summary.rings.len(), 1, "{:?}", summary.rings);
    assert_eq!(summary.stopped, ringside_probes::trace::StopReason::Exited);
    assert!(summary.requests.completed as usize >= READS, "{summary:?}");
    assert_eq!(summary.requests.failed, 0, "{summary:?}");
    assert_eq!(summary.requests.unobserved, 0, "{summary:?}");
}
