//! Attach and detach: programs gone after drop, SIGTERM and SIGKILL; clear errors for bad pids.

use super::*;

fn bpftool_prog_ids() -> Vec<u32> {
    let out = Command::new(tool("bpftool"))
        .args(["-j", "prog", "show"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_u64().map(|i| i as u32))
        .collect()
}

/// Program release is deferred in the kernel (RCU): wait for it, bounded.
fn wait_gone(ids: &[u32]) {
    let t = Instant::now();
    loop {
        let live = bpftool_prog_ids();
        let left: Vec<u32> = ids.iter().copied().filter(|i| live.contains(i)).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "programs {left:?} still loaded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Traces this very process (as `ringside demo` does): NOP submissions and
/// completions arrive, then dropping the session unloads every program.
#[test]
fn self_trace_then_drop_detaches() {
    if !live("self_trace_then_drop_detaches") {
        return;
    }
    let mut p = Probes::attach(AttachOptions {
        pids: vec![std::process::id()],
        ..Default::default()
    })
    .unwrap();
    let ids = p.program_ids().to_vec();
    assert!(ids.len() >= 5);
    let loaded = bpftool_prog_ids();
    assert!(
        ids.iter().all(|i| loaded.contains(i)),
        "ours are listed while attached"
    );

    let mut ring = io_uring::IoUring::new(64).unwrap();
    for i in 0..32u64 {
        let nop = io_uring::opcode::Nop::new().build().user_data(1000 + i);
        // SAFETY: a NOP references no memory.
        unsafe { ring.submission().push(&nop).unwrap() };
    }
    ring.submit_and_wait(32).unwrap();
    ring.completion().for_each(drop);
    let mut got = Vec::new();
    let t = Instant::now();
    while got
        .iter()
        .filter(|e| matches!(e, ProbeEvent::Complete { user_data, .. } if *user_data >= 1000))
        .count()
        < 32
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "events missing: {got:?}"
        );
        p.poll(Duration::from_millis(20), |e| got.push(e)).unwrap();
    }
    let me = std::process::id();
    assert!(got.iter().all(|e| e.header().tgid == me));
    let subs = got
        .iter()
        .filter(|e| matches!(e, ProbeEvent::SubmitReq { user_data, opcode: 0, .. } if *user_data >= 1000))
        .count();
    assert_eq!(subs, 32);
    assert_eq!(p.lost().unwrap(), 0);
    drop(p);
    wait_gone(&ids);
}

/// The `attach` example (cargo builds examples before running tests).
fn example_attach() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/attach");
    assert!(
        p.exists(),
        "{} missing: run through cargo test",
        p.display()
    );
    p
}

fn spawn_child_headless(target: u32) -> (Child, BufReader<ChildStdout>, Vec<u32>) {
    let mut child = Command::new(example_attach())
        .args(["--pid", &target.to_string(), "--wait-for-rings"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let ids = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["kind"] == "attached"
        {
            break v["program_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as u32)
                .collect::<Vec<u32>>();
        }
    };
    (child, out, ids)
}

/// SIGTERM: the headless runner prints its summary and exits cleanly; its
/// programs are gone. SIGKILL: the kernel frees them anyway (not pinned).
#[test]
fn sigterm_and_sigkill_leave_no_programs() {
    if !live("sigterm_and_sigkill_leave_no_programs") {
        return;
    }
    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();

    let (mut child, out, ids) = spawn_child_headless(sleeper.id());
    assert!(!ids.is_empty());
    let loaded = bpftool_prog_ids();
    assert!(ids.iter().all(|i| loaded.contains(i)));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let rest: Vec<String> = out.lines().map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().success(), "exit after SIGTERM");
    let summary = rest
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["kind"] == "summary")
        .expect("a summary line after SIGTERM");
    assert_eq!(summary["stopped"], "signal");
    wait_gone(&ids);

    let (mut child, _out, ids) = spawn_child_headless(sleeper.id());
    child.kill().unwrap();
    child.wait().unwrap();
    wait_gone(&ids);

    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn clear_errors_for_bad_pids() {
    if !live("clear_errors_for_bad_pids") {
        return;
    }
    let mut opts = TraceOptions::default();
    opts.attach.pids = vec![u32::MAX - 7];
    let e = trace(&opts, &mut SharedOut::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("process {} does not exist", u32::MAX - 7)
    );

    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
    opts.attach.pids = vec![sleeper.id()];
    let e = trace(&opts, &mut SharedOut::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("has no io_uring rings"), "{msg}");
    assert!(!msg.contains('\n'));
    let pe: &ringside_probes::ProbeError = &e;
    assert_eq!(pe.exit_code(), 3);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}
