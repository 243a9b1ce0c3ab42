//! `ring` records: setup flags, registered files, rings created before attach.

use super::*;

/// Probes on `pid` (this test process), with the default options.
fn attach_to(pid: u32) -> Probes {
    Probes::attach(AttachOptions {
        pids: vec![pid],
        ..Default::default()
    })
    .expect("attach to ourselves")
}

/// A ring created while attached (SINGLE_ISSUER | DEFER_TASKRUN) gets a
/// `ring` record with its ctx, owner thread and setup flags right after
/// its create event; registering a file shows in a later record (the
/// session's fdinfo re-read), with the file's path.
#[test]
fn ring_records_carry_setup_flags_and_registered_files() {
    use ringside_probes::discover::RingWhen;
    use ringside_probes::event::setup_flags as sf;
    use std::os::fd::AsRawFd;
    if !live("ring_records_carry_setup_flags_and_registered_files") {
        return;
    }
    let me = std::process::id();
    let mut probes = attach_to(me);
    let ring: io_uring::IoUring = io_uring::IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(8)
        .expect("a DEFER_TASKRUN ring (6.1+)");
    let fd = ring.as_raw_fd();
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut records = Vec::new();
    let mut registered = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        probes
            .poll(Duration::from_millis(100), |ev| {
                if let ProbeEvent::Ring(r) = ev
                    && r.hdr.tgid == me
                    && r.fd == Some(fd)
                {
                    records.push(*r);
                }
            })
            .unwrap();
        if !registered && !records.is_empty() {
            ring.submitter()
                .register_files(&[file.as_file().as_raw_fd()])
                .expect("register a file");
            registered = true;
        }
        if records.iter().any(|r| r.file_slots == Some(1)) {
            break;
        }
    }
    let created = records
        .iter()
        .find(|r| r.when == RingWhen::Create)
        .unwrap_or_else(|| panic!("no create record for fd {fd}: {records:?}"));
    assert!(!created.ring.is_null(), "the create event names the ctx");
    assert_eq!(created.owner_tid, Some(tid));
    let flags = created.setup_flags.unwrap();
    assert_eq!(
        flags & (sf::SINGLE_ISSUER | sf::DEFER_TASKRUN),
        sf::SINGLE_ISSUER | sf::DEFER_TASKRUN,
        "{}",
        sf::names(flags)
    );
    assert_eq!(created.sq_entries, Some(8));
    let changed = records
        .iter()
        .find(|r| r.file_slots == Some(1))
        .unwrap_or_else(|| panic!("no record showed the registered file: {records:?}"));
    assert_eq!(changed.when, RingWhen::Changed);
    assert_eq!(changed.ring, created.ring, "later records keep the ctx");
    assert_eq!(changed.setup_flags, created.setup_flags);
    // 6.12 and later print a registered file's path in fdinfo; 6.1 only its
    // last component (the dentry's name).
    let shown = changed
        .files
        .first()
        .map(|f| f.path.clone())
        .unwrap_or_default();
    let full = file.path().to_str().unwrap();
    let name = file.path().file_name().unwrap().to_str().unwrap();
    assert!(
        shown == full || shown == name,
        "the registered file shows as {shown:?}, not {full:?} (or {name:?} on 6.1)"
    );
}

/// A ring created before the probes attached fired no create event, and
/// fdinfo prints no setup flags: its flags come from the ring itself (the
/// BPF side reads `io_ring_ctx.flags` at the offset the kernel's BTF
/// gives), in a `ring` record naming it by ctx, once it submits.
#[test]
fn flags_of_a_ring_created_before_attach() {
    use ringside_probes::event::setup_flags as sf;
    if !live("flags_of_a_ring_created_before_attach") {
        return;
    }
    if !Path::new(ringside_probes::btf::VMLINUX_BTF).exists() {
        eprintln!(
            "SKIP flags_of_a_ring_created_before_attach: no {} (a kernel without BTF)",
            ringside_probes::btf::VMLINUX_BTF
        );
        return;
    }
    let me = std::process::id();
    let mut ring: io_uring::IoUring = io_uring::IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(8)
        .expect("a DEFER_TASKRUN ring (6.1+)");
    let mut probes = attach_to(me);
    const MARK: u64 = 0x5e7_f1a6;
    let mut ctx = None;
    let mut seen = None;
    // Generous: the BTF parse takes tens of seconds in an emulated guest.
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.is_none() && Instant::now() < deadline {
        let nop = io_uring::opcode::Nop::new().build().user_data(MARK);
        // SAFETY: a NOP references no memory.
        unsafe { ring.submission().push(&nop).unwrap() };
        ring.submit_and_wait(1).unwrap();
        ring.completion().for_each(drop);
        probes
            .poll(Duration::from_millis(100), |ev| match ev {
                ProbeEvent::SubmitReq {
                    ring, user_data, ..
                } if user_data == MARK => ctx = Some(ring),
                ProbeEvent::Ring(r) if r.hdr.tgid == me && !r.ring.is_null() && r.fd.is_none() => {
                    seen = Some(*r)
                }
                _ => {}
            })
            .unwrap();
    }
    if let Some(e) = probes.setup_flags_unavailable() {
        panic!("the offset lookup failed: {e}");
    }
    let seen = seen.expect("no ring record with the flags read from the ring within 120 s");
    assert_eq!(
        Some(seen.ring),
        ctx,
        "the record names the ring the NOPs went to"
    );
    let flags = seen.setup_flags.expect("the record carries the flags");
    assert_eq!(
        flags & (sf::SINGLE_ISSUER | sf::DEFER_TASKRUN | sf::SQPOLL),
        sf::SINGLE_ISSUER | sf::DEFER_TASKRUN,
        "{}",
        sf::names(flags)
    );
}

/// The kernel gives a freed ring's ctx address to a ring created after it.
/// Each create starts a new generation at its address, and counters are
/// per generation: the second ring's counts start from zero, the first
/// ring's stay what it did (they are final; the session keeps them after
/// taking them out of the BPF map).
#[test]
fn a_ring_at_a_freed_rings_address_counts_from_zero() {
    use std::collections::HashMap;
    if !live("a_ring_at_a_freed_rings_address_counts_from_zero") {
        return;
    }
    let me = std::process::id();
    let mut probes = attach_to(me);
    // Per address, (generation, NOPs submitted) of each ring created there.
    let mut made: HashMap<Ptr, Vec<(u32, u64)>> = HashMap::new();
    let mut reused = None;
    for round in 0..60u64 {
        let nops = 3 + round % 7;
        let mut ring = io_uring::IoUring::new(8).unwrap();
        for _ in 0..nops {
            let nop = io_uring::opcode::Nop::new().build();
            // SAFETY: a NOP references no memory.
            unsafe { ring.submission().push(&nop).unwrap() };
            ring.submit_and_wait(1).unwrap();
            ring.completion().for_each(drop);
        }
        drop(ring);
        let mut created = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while created.is_none() && Instant::now() < deadline {
            probes
                .poll(Duration::from_millis(50), |ev| {
                    if let ProbeEvent::Create {
                        hdr,
                        ring,
                        generation,
                        ..
                    } = ev
                        && hdr.tgid == me
                    {
                        created = Some((ring, generation));
                    }
                })
                .unwrap();
        }
        let (ptr, generation) = created.expect("a create event for each ring");
        let v = made.entry(ptr).or_default();
        assert_eq!(
            generation as usize,
            v.len() + 1,
            "the n-th ring at {ptr} is generation n: {v:?}"
        );
        v.push((generation, nops));
        if v.len() >= 2 {
            reused = Some(ptr);
            break;
        }
        // The ctx is freed by a work item after the last reference goes.
        std::thread::sleep(Duration::from_millis(30));
    }
    let Some(ptr) = reused else {
        eprintln!(
            "SKIP a_ring_at_a_freed_rings_address_counts_from_zero: 60 rings got 60 addresses ({} distinct); nothing to check",
            made.len()
        );
        return;
    };
    // Twice: the first read moves the freed ring's counts out of the map.
    for read in 0..2 {
        let c = probes.counters().unwrap();
        for &(generation, nops) in &made[&ptr] {
            let n = c.ring(ptr, generation).unwrap_or_else(|| {
                panic!("read {read}: no counts for {ptr} generation {generation}: {c:?}")
            });
            assert_eq!(
                (n.submitted(), n.finished),
                (nops, nops),
                "read {read}: {ptr} generation {generation} did {nops} NOPs"
            );
        }
    }
}
