//! Live tests against the running kernel: real tracepoints, real clients
//! (a liburing C program built here, fio, tokio-uring). They need root (or CAP_BPF +
//! CAP_PERFMON) and tracefs; without them each test prints a loud SKIP line
//! to stderr. With them, a missing tool (cc, liburing-dev, fio, bpftool)
//! is a failure, not a skip: CI must install them.
//!
//! No assertion is about wall-clock time; the bounded waits only turn a
//! hang into a failure.

use ringside_probes::event::{ECANCELED, sqe_flags};
use ringside_probes::graph::{KernelCause, ReqState, RequestGraph};
use ringside_probes::session::check_privileges;
use ringside_probes::trace::{Summary, TraceLine, TraceOptions, TraceSink, trace};
use ringside_probes::{AttachOptions, ProbeEvent, Probes, Ptr};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// True when the kernel probes can run here; else prints a loud SKIP.
fn live(test: &str) -> bool {
    let why = match check_privileges() {
        Err(e) => Some(e.to_string()),
        Ok(()) => match ringside_probes::tracefs::find_tracefs(true) {
            Err(e) => Some(e.to_string()),
            Ok(t) if !t.has_io_uring() => Some("kernel has no io_uring tracepoints".into()),
            Ok(_) => None,
        },
    };
    if let Some(why) = why {
        // Straight to fd 2: libtest captures eprintln! of passing tests.
        let _ = std::io::stderr()
            .write_all(format!("\n######## SKIP {test}: {why} ########\n\n").as_bytes());
        return false;
    }
    true
}

fn tool(name: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} is not installed: apt-get install {}",
        match name {
            "fio" => "fio",
            "bpftool" => "bpftool",
            _ => "build-essential",
        }
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Builds tests/c/chain.c with liburing into `dir`, or takes the one
/// `RINGSIDE_TEST_CHAIN` names: the VM matrix builds it once on the host,
/// since a compile in a TCG guest costs half a minute per test.
fn build_chain(dir: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("RINGSIDE_TEST_CHAIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "RINGSIDE_TEST_CHAIN={} is not a file",
            p.display()
        );
        return p;
    }
    tool("cc");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/chain.c");
    let exe = dir.join("chain");
    let out = Command::new("cc")
        .arg("-O2")
        .arg("-Wall")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .arg("-luring")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building {} failed (apt-get install liburing-dev): {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// A shared buffer the trace writes its lines into as JSON Lines (as
/// `attach --headless` prints them), readable meanwhile.
#[derive(Clone, Default)]
struct SharedOut(Arc<Mutex<Vec<u8>>>);

impl TraceSink for SharedOut {
    fn line(&mut self, line: &TraceLine<'_>) -> std::io::Result<()> {
        let mut b = self.0.lock().unwrap();
        serde_json::to_writer(&mut *b, line)?;
        b.push(b'\n');
        Ok(())
    }
}

impl SharedOut {
    fn lines(&self) -> Vec<Value> {
        let b = self.0.lock().unwrap();
        String::from_utf8_lossy(&b)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect()
    }
    fn wait_for_kind(&self, kind: &str) -> Value {
        let t = Instant::now();
        loop {
            if let Some(v) = self.lines().into_iter().find(|v| v["kind"] == kind) {
                return v;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no {kind:?} line from the trace"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

struct Headless {
    out: SharedOut,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Result<Summary, ringside_probes::ProbeError>>,
}

/// A trace of `pid` (and, as by default, its children), the rest default.
fn trace_pid(pid: u32) -> TraceOptions {
    TraceOptions {
        attach: AttachOptions {
            pids: vec![pid],
            ..TraceOptions::default().attach
        },
        ..TraceOptions::default()
    }
}

fn start_headless(mut opts: TraceOptions) -> Headless {
    let out = SharedOut::default();
    let stop = Arc::new(AtomicBool::new(false));
    opts.stop = Some(Arc::clone(&stop));
    let mut w = out.clone();
    let handle = std::thread::spawn(move || trace(&opts, &mut w));
    Headless { out, stop, handle }
}

impl Headless {
    /// Waits for the runner to end by itself (bounded: then it is stopped
    /// and the test fails).
    fn finish(self) -> (Summary, Vec<Value>) {
        let t = Instant::now();
        while !self.handle.is_finished() {
            if t.elapsed() > Duration::from_secs(60) {
                self.stop.store(true, Ordering::Relaxed);
                let _ = self.handle.join();
                panic!("the trace did not stop when the traced process exited");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let summary = self.handle.join().unwrap().expect("trace");
        (summary, self.out.lines())
    }
}

struct ChainProc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: u32,
    ring_fd: Option<i32>,
}

fn spawn_chain(exe: &Path, file: &Path, mode: &str) -> ChainProc {
    let mut child = Command::new(exe)
        .arg(file)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ring_fd = None;
    let pid;
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "chain exited early"
        );
        if let Some(fd) = line.strip_prefix("ring ") {
            ring_fd = Some(fd.trim().parse().unwrap());
        } else if let Some(p) = line.strip_prefix("ready ") {
            pid = p.trim().parse().unwrap();
            break;
        }
    }
    assert_eq!(pid, child.id());
    ChainProc {
        child,
        stdin,
        stdout,
        pid,
        ring_fd,
    }
}

impl ChainProc {
    /// Lets it submit, waits for its exit, returns (user_data, res) per CQE
    /// and the ring fd.
    fn go(mut self) -> (Vec<(u64, i32)>, i32) {
        self.stdin.write_all(b"go\n").unwrap();
        self.stdin.flush().unwrap();
        let mut cqes = Vec::new();
        let mut ring_fd = self.ring_fd;
        for line in self.stdout.lines() {
            let line = line.unwrap();
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["cqe", ud, res] => cqes.push((ud.parse().unwrap(), res.parse().unwrap())),
                ["ring", fd] => ring_fd = Some(fd.parse().unwrap()),
                _ => panic!("chain printed {line:?}"),
            }
        }
        assert!(self.child.wait().unwrap().success());
        (cqes, ring_fd.expect("ring fd"))
    }
}

fn events_of(lines: &[Value]) -> Vec<ProbeEvent> {
    lines
        .iter()
        .filter(|v| !["attached", "exited", "summary"].contains(&v["kind"].as_str().unwrap_or("")))
        .map(|v| serde_json::from_value(v.clone()).expect("a ProbeEvent"))
        .collect()
}

/// READ submissions and 4 KiB completions among `evs` (the page-sized
/// reads fio and the tokio-uring client issue).
fn reads_and_full_pages(evs: &[ProbeEvent]) -> (usize, usize) {
    let submits = evs
        .iter()
        .filter(|e| matches!(e, ProbeEvent::SubmitReq { opcode: 22, .. }))
        .count();
    let full = evs
        .iter()
        .filter(|e| matches!(e, ProbeEvent::Complete { res: 4096, .. }))
        .count();
    (submits, full)
}

/// fio's command line: random 4 KiB reads of `file` for `runtime`
/// seconds, or else 16 MiB of them; `json_out`: write its JSON report
/// there (else no report).
fn fio_cmd(file: &Path, runtime: Option<&str>, json_out: Option<&Path>) -> Vec<String> {
    [
        "--name=probe",
        "--ioengine=io_uring",
        "--rw=randread",
        "--bs=4k",
        "--size=4M",
        "--iodepth=8",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(match runtime {
        Some(r) => vec!["--time_based".to_string(), format!("--runtime={r}")],
        None => vec!["--io_size=16M".to_string()],
    })
    .chain([format!("--filename={}", file.display())])
    .chain(match json_out {
        Some(p) => vec![
            "--output-format=json".to_string(),
            format!("--output={}", p.display()),
        ],
        None => vec!["--output=/dev/null".to_string()],
    })
    .collect()
}

/// The reads fio says it completed (`read.total_ios` over its jobs).
fn fio_total_reads(json: &Path) -> u64 {
    let text = std::fs::read_to_string(json).unwrap();
    // fio may print notes before the JSON object.
    let v: Value = serde_json::from_str(&text[text.find('{').expect("fio JSON")..]).unwrap();
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["read"]["total_ios"].as_u64().unwrap())
        .sum()
}

/// The 4 MiB file fio reads, in `dir`.
fn fio_data(dir: &Path) -> PathBuf {
    let file = dir.join("fio.dat");
    std::fs::write(&file, vec![1u8; 4 << 20]).unwrap();
    file
}

mod chain;
mod fio;
mod kinds;
mod lifecycle;
mod rings;
mod tokio_uring;
mod tracepoints;
