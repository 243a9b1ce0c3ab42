//! fio's io_uring engine traced by pid, through a fork, and by its parent's pid.

use super::*;

fn children_of(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                v.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    v
}

/// Paces a job started for [`stopped_fio_job`]: unpaced, its 4096 reads of a
/// page-cached file take about 10 ms on the host, and a job that ends
/// between two polls is never seen (a CI run waited 60 s for it). At 4000
/// IOPS it lasts a second; the amount of I/O is the same.
const PACED: &str = "--rate_iops=4000";

/// fio forks one process per job: waits for the one that owns a ring,
/// stops it (SIGSTOP) and returns its pid.
fn stopped_fio_job(main: &mut Child) -> u32 {
    let t = Instant::now();
    let job = loop {
        if let Ok(Some(status)) = main.try_wait() {
            panic!("fio ended ({status}) before its job's ring was seen");
        }
        let found = children_of(main.id()).into_iter().find(|&c| {
            ringside_probes::discover(c)
                .map(|r| !r.is_empty())
                .unwrap_or(false)
        });
        if let Some(j) = found {
            break j;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "fio job never made a ring"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    // SAFETY: plain kill(2) on fio's job, our grandchild.
    unsafe { libc::kill(job as i32, libc::SIGSTOP) };
    job
}

/// fio (forked job process) traced by the pid of the job that owns the ring.
#[test]
fn fio_io_uring_traced_by_pid() {
    if !live("fio_io_uring_traced_by_pid") {
        return;
    }
    let fio = tool("fio");
    let dir = tempfile::tempdir().unwrap();
    let file = fio_data(dir.path());
    let mut main = Command::new(&fio)
        .args(fio_cmd(&file, None, None))
        .arg(PACED)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Stopped while the probes load: loading takes longer than the whole
    // job in a TCG guest. fio counts a fixed amount of I/O (no
    // --time_based), so the time stopped costs it nothing.
    let job = stopped_fio_job(&mut main);
    let h = start_headless(trace_pid(job));
    h.out.wait_for_kind("attached");
    // SAFETY: as above.
    unsafe { libc::kill(job as i32, libc::SIGCONT) };
    let (summary, lines) = h.finish();
    assert!(main.wait().unwrap().success());
    let evs = events_of(&lines);
    let (subs, full_reads) = reads_and_full_pages(&evs);
    assert!(subs > 100, "only {subs} READ submissions traced");
    assert!(
        full_reads > 100,
        "only {full_reads} 4 KiB completions traced"
    );
    for e in &evs {
        assert_eq!(e.header().tgid, job, "{e:?}");
    }
    assert_eq!(summary.lost, 0);
    assert_eq!(summary.rings.len(), 1, "{:?}", summary.rings);
    assert_eq!(summary.stopped, ringside_probes::trace::StopReason::Exited);
    assert!(summary.requests.completed as usize >= full_reads - 8);
    assert_eq!(summary.requests.failed, 0);
    assert_eq!(summary.requests.unobserved, 0, "{summary:?}");
}

/// Attach to a process before it execs fio: follow_forks picks up the job
/// process fio forks, and its ring (created after attach) is seen.
#[test]
fn fio_followed_through_fork() {
    if !live("fio_followed_through_fork") {
        return;
    }
    let fio = tool("fio");
    let dir = tempfile::tempdir().unwrap();
    let file = fio_data(dir.path());
    let report = dir.path().join("fio.json");
    let script = format!(
        "read go; exec {} {}",
        fio.display(),
        fio_cmd(&file, Some("1"), Some(&report)).join(" ")
    );
    let mut sh = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let h = start_headless(TraceOptions {
        wait_for_rings: true,
        ..trace_pid(sh.id())
    });
    h.out.wait_for_kind("attached");
    sh.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let (summary, lines) = h.finish();
    assert!(sh.wait().unwrap().success());
    let evs = events_of(&lines);
    let forks: Vec<u32> = evs
        .iter()
        .filter_map(|e| match e {
            ProbeEvent::NewTask { child, .. } => Some(*child),
            _ => None,
        })
        .collect();
    assert!(!forks.is_empty(), "no fork seen");
    let creates: Vec<&ProbeEvent> = evs
        .iter()
        .filter(|e| matches!(e, ProbeEvent::Create { .. }))
        .collect();
    assert!(!creates.is_empty(), "the job's ring creation was not seen");
    assert!(
        creates.iter().all(|c| forks.contains(&c.header().tgid)),
        "rings made by a forked job: {creates:?} forks {forks:?}"
    );
    assert!(summary.requests.completed > 100, "{summary:?}");
    assert_eq!(summary.lost, 0);
    assert!(summary.pids.len() >= 2, "{:?}", summary.pids);
    // Traced from before its first request: every read fio counted was
    // seen, submitted and completed (within 1%: fio's count and ours are
    // taken at slightly different moments of its shutdown).
    let total = fio_total_reads(&report);
    let (submits, reads) = reads_and_full_pages(&evs);
    for (what, n) in [("READ submits", submits), ("4 KiB completions", reads)] {
        let n = n as u64;
        assert!(
            n.abs_diff(total) * 100 <= total,
            "{what}: {n} traced, fio counted {total} reads"
        );
    }
}

/// fio runs its job in a child of the pid you name: attached by the
/// parent's pid after the child exists, the child is traced (found in
/// /proc at attach time), the count matches fio's, and the headless
/// output says the processes exited. Without follow_forks the parent has
/// no rings: refused.
#[test]
fn fio_parent_pid_traces_its_existing_job() {
    if !live("fio_parent_pid_traces_its_existing_job") {
        return;
    }
    let fio = tool("fio");
    let dir = tempfile::tempdir().unwrap();
    let file = fio_data(dir.path());
    let report = dir.path().join("fio.json");
    let mut main = Command::new(&fio)
        .args(fio_cmd(&file, None, Some(&report)))
        .arg(PACED)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Stopped while the probes load (as in fio_io_uring_traced_by_pid):
    // fio counts a fixed amount of I/O, so we see all of it but what it
    // did before the stop.
    let job = stopped_fio_job(&mut main);
    let before = ringside_probes::discover(job).unwrap()[0]
        .info
        .sq_tail
        .unwrap_or(0) as u64;
    let mut opts = TraceOptions::default();
    opts.attach.pids = vec![main.id()];
    opts.attach.follow_forks = false;
    opts.stop = Some(Arc::new(AtomicBool::new(false)));
    let err = trace(&opts, &mut SharedOut::default()).unwrap_err();
    assert!(err.to_string().contains("has no io_uring rings"), "{err}");
    opts.attach.follow_forks = true;
    let h = start_headless(opts);
    let attached = h.out.wait_for_kind("attached");
    assert!(
        attached["pids"]
            .as_array()
            .unwrap()
            .contains(&Value::from(job)),
        "{attached}"
    );
    // SAFETY: as above.
    unsafe { libc::kill(job as i32, libc::SIGCONT) };
    let (summary, lines) = h.finish();
    assert!(main.wait().unwrap().success());
    let total = fio_total_reads(&report);
    let evs = events_of(&lines);
    let submits = reads_and_full_pages(&evs).0 as u64;
    assert_eq!(summary.lost, 0);
    // The reads before the SIGSTOP were not seen: at most `before` (the
    // SQ tail then) of them, plus 1% for fio's and our moments of counting.
    assert!(
        (submits + before).abs_diff(total) * 100 <= total,
        "{submits} READ submits traced + {before} before attach, fio counted {total}"
    );
    // How much fio did before the stop depends on the machine's load (a CI
    // run saw 2024 of 4096 after attach): the sum above is the check.
    assert!(submits > 0, "{submits} of {total}");
    assert_eq!(summary.counters.total.submitted(), submits);
    assert_eq!(summary.stopped, ringside_probes::trace::StopReason::Exited);
    let exited = lines
        .iter()
        .find(|v| v["kind"] == "exited")
        .expect("an exited line");
    assert!(exited["ts_ns"].as_u64().unwrap() > 0);
    assert!(summary.pids.contains(&job) && summary.pids.contains(&main.id()));
}
