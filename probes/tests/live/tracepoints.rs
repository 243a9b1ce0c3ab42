//! Every tracepoint the probes attach fires and decodes on this kernel.

use super::*;

/// Every io_uring tracepoint the probes attach fires, and decodes, on this
/// kernel: each is made to happen on a ring of this process (a NOP storm
/// into a full CQ, a request with an undefined flag, a read that must poll, a forced
/// io-wq punt, a failing link). Prints the kinds seen (the VM matrix
/// collects the line for docs/kernels.md). short_write is not made to
/// happen: it needs a regular-file write cut short (RLIMIT_FSIZE), which
/// would hit every other test of this process.
#[test]
fn every_tracepoint_fires_and_decodes() {
    use io_uring::{opcode, squeue::Flags, types};
    use std::os::fd::AsRawFd;
    if !live("every_tracepoint_fires_and_decodes") {
        return;
    }
    let me = std::process::id();
    let mut p = Probes::attach(AttachOptions {
        pids: vec![me],
        ..Default::default()
    })
    .unwrap();
    assert!(p.skipped().is_empty(), "{:?}", p.skipped());

    // create; cqe_overflow: 16 NOPs into a ring whose CQ holds 8.
    let mut ring: io_uring::IoUring = io_uring::IoUring::builder()
        .setup_cqsize(8)
        .build(4)
        .unwrap();
    for round in 0..4u64 {
        for i in 0..4u64 {
            let nop = opcode::Nop::new().build().user_data(100 + round * 4 + i);
            // SAFETY: a NOP references no memory.
            unsafe { ring.submission().push(&nop).unwrap() };
        }
        ring.submit().unwrap();
    }
    let mut reaped = 0;
    while reaped < 16 {
        ring.submit_and_wait(1).unwrap();
        reaped += ring.completion().count();
    }

    // req_failed: an SQE flag no kernel defines (bit 7), refused at init.
    let mut buf = vec![0u8; 64];
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    let bad = opcode::Nop::new()
        .build()
        .flags(Flags::from_bits_retain(1 << 7))
        .user_data(200);
    // queue_async_work: a read forced to io-wq.
    let punted = opcode::Read::new(types::Fd(file.as_raw_fd()), buf.as_mut_ptr(), 64)
        .build()
        .flags(Flags::ASYNC)
        .user_data(201);
    // link + fail_link: a read of a closed fd, linked to a NOP.
    let broken = opcode::Read::new(types::Fd(-1), buf.as_mut_ptr(), 64)
        .build()
        .flags(Flags::IO_LINK)
        .user_data(202);
    let cancelled = opcode::Nop::new().build().user_data(203);
    // SAFETY: buf and file outlive the requests (waited for below).
    unsafe {
        let mut sq = ring.submission();
        sq.push(&bad).unwrap();
        sq.push(&punted).unwrap();
        sq.push(&broken).unwrap();
        sq.push(&cancelled).unwrap();
    }
    ring.submit().unwrap();
    let mut reaped = 0;
    while reaped < 4 {
        ring.submit_and_wait(1).unwrap();
        reaped += ring.completion().count();
    }

    // poll_arm + task_work_run: a read of an empty pipe, completed by a write.
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two fds.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) },
        0
    );
    let read = opcode::Read::new(types::Fd(fds[0]), buf.as_mut_ptr(), 64)
        .build()
        .user_data(300);
    // SAFETY: buf outlives the request.
    unsafe { ring.submission().push(&read).unwrap() };
    ring.submit().unwrap();
    // SAFETY: a valid fd and a 1-byte buffer.
    assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
    ring.submit_and_wait(1).unwrap();
    ring.completion().for_each(drop);
    // SAFETY: our fds.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }

    let want = [
        "create",
        "submit_req",
        "complete",
        "link",
        "fail_link",
        "req_failed",
        "cqe_overflow",
        "poll_arm",
        "queue_async_work",
        "task_work_run",
    ];
    let mut seen = std::collections::BTreeMap::<&str, ProbeEvent>::new();
    let t = Instant::now();
    while want.iter().any(|k| !seen.contains_key(k)) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "never seen: {:?}",
            want.iter()
                .filter(|k| !seen.contains_key(*k))
                .collect::<Vec<_>>()
        );
        p.poll(Duration::from_millis(20), |e| {
            seen.entry(e.kind()).or_insert(e);
        })
        .unwrap();
    }
    assert_eq!(p.lost().unwrap(), 0);

    let has_rw = p
        .tracefs()
        .format("io_uring", "io_uring_queue_async_work")
        .unwrap()
        .field("rw")
        .is_some();
    let ProbeEvent::QueueAsyncWork {
        user_data,
        rw,
        hashed,
        ..
    } = &seen["queue_async_work"]
    else {
        unreachable!()
    };
    assert_eq!(*user_data, 201);
    assert_eq!(rw.is_some(), has_rw, "rw present iff the kernel has it");
    assert!(hashed.is_some(), "hashed on every kernel");
    let ProbeEvent::ReqFailed {
        user_data, error, ..
    } = &seen["req_failed"]
    else {
        unreachable!()
    };
    assert_eq!((*user_data, *error), (200, -libc::EINVAL));
    assert!(
        matches!(
            seen["fail_link"],
            ProbeEvent::FailLink { user_data: 202, .. }
        ),
        "{:?}",
        seen["fail_link"]
    );
    let release = ringside_probes::session::kernel_release();
    let _ = std::io::stderr().write_all(
        format!(
            "\ntracepoints fired and decoded on {release}: {} (attached as: {})\nqueue_async_work on {release}: {}\n\n",
            seen.keys().copied().collect::<Vec<_>>().join(" "),
            p.tracepoints().join(" "),
            serde_json::to_string(&seen["queue_async_work"]).unwrap()
        )
        .as_bytes(),
    );
}
