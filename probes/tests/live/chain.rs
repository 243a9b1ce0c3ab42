//! The liburing short-read link chain, attached before and after the ring exists.

use super::*;

/// The chain test, attaching before the ring exists ("ring-later") or
/// after ("ring-first"), with an untraced copy running at the same time.
fn chain_case(test: &str, mode: &str) {
    if !live(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = build_chain(dir.path());
    let file = dir.path().join("data");
    std::fs::write(&file, vec![7u8; 4096 + 100]).unwrap();

    let traced = spawn_chain(&exe, &file, mode);
    let other = spawn_chain(&exe, &file, mode);
    let (tpid, opid) = (traced.pid, other.pid);

    let h = start_headless(TraceOptions {
        wait_for_rings: mode == "ring-later",
        ..trace_pid(tpid)
    });
    let attached = h.out.wait_for_kind("attached");
    let ids = attached["program_ids"].as_array().unwrap().len();
    assert!(ids >= 5, "{attached}");

    // Both run their chain at the same time; only one is traced.
    let other_t = std::thread::spawn(move || other.go());
    let (cqes, ring_fd) = traced.go();
    let (other_cqes, _) = other_t.join().unwrap();
    let expect = vec![(1, 4096), (2, 100), (3, ECANCELED)];
    assert_eq!(cqes, expect, "the client itself saw the short read");
    assert_eq!(other_cqes, expect);

    let (summary, lines) = h.finish();
    let evs = events_of(&lines);

    // Nothing from the other process.
    for e in &evs {
        assert_eq!(
            e.header().tgid,
            tpid,
            "event from an untraced process: {e:?}"
        );
        assert_ne!(e.header().tgid, opid);
    }
    assert_eq!(summary.lost, 0, "events lost");
    assert_eq!(summary.pids, vec![tpid]);

    // The submit of each step, with the link flags.
    let mut req_of = std::collections::HashMap::new();
    let mut ring = Ptr::NULL;
    for ud in 1..=3u64 {
        let sub = evs
            .iter()
            .find(|e| matches!(e, ProbeEvent::SubmitReq { user_data, .. } if *user_data == ud))
            .unwrap_or_else(|| panic!("no submit_req for step {ud}: {evs:#?}"));
        let ProbeEvent::SubmitReq {
            req,
            opcode,
            ring: r,
            ..
        } = sub
        else {
            unreachable!()
        };
        assert_eq!(*opcode, 22, "IORING_OP_READ");
        let linked = sub.sqe_flags().unwrap() & sqe_flags::IO_LINK != 0;
        assert_eq!(linked, ud < 3, "IO_LINK on steps 1 and 2 only");
        req_of.insert(ud, *req);
        ring = *r;
    }
    // The links: 2 after 1, 3 after 2. Kernels up to 6.1 at least name
    // the chain's head as the target (3 after 1); later ones the previous
    // request.
    for (a, b) in [(2u64, 1u64), (3, 2)] {
        assert!(
            evs.iter().any(|e| matches!(e,
                ProbeEvent::Link { req, target, .. }
                    if *req == req_of[&a] && (*target == req_of[&b] || *target == req_of[&1]))),
            "no link {a}->{b} (or {a}->1): {evs:#?}"
        );
    }
    // The short read, the fail_link, the -ECANCELED.
    let completes: Vec<(u64, i32)> = evs
        .iter()
        .filter_map(|e| match e {
            ProbeEvent::Complete { user_data, res, .. } => Some((*user_data, *res)),
            _ => None,
        })
        .collect();
    assert_eq!(completes, expect);
    assert!(
        evs.iter().any(|e| matches!(e,
            ProbeEvent::FailLink { req, link, user_data: 2, .. }
                if *req == req_of[&2] && *link == req_of[&3])),
        "no fail_link 2->3: {evs:#?}"
    );

    // The graph tells the same story.
    let mut g = RequestGraph::new();
    for e in &evs {
        g.push(e);
    }
    let by_ud = |ud| {
        g.requests()
            .into_iter()
            .find(|r| r.user_data == ud && r.submitted_ns.is_some())
            .unwrap()
            .clone()
    };
    assert_eq!(by_ud(1).state, ReqState::Completed);
    assert_eq!(by_ud(2).state, ReqState::Short);
    assert_eq!(by_ud(3).state, ReqState::Cancelled);
    assert_eq!(by_ud(3).cancelled_by, Some(by_ud(2).id));
    let c = g.cancellations().next().unwrap();
    assert_eq!(c.cause, Some(KernelCause::LinkShort));

    // The summary counts.
    assert_eq!(summary.requests.short, 1);
    assert_eq!(summary.requests.cancelled, 1);
    assert_eq!(summary.chains.total, 1);
    assert_eq!(summary.chains.broken, 1);
    assert_eq!(summary.chains.max_len, 3);
    assert_eq!(summary.cancellations.by_cause.get("link_short"), Some(&1));
    let r = summary
        .rings
        .iter()
        .find(|r| r.ring == ring)
        .expect("ring in summary");
    assert_eq!(r.fd, Some(ring_fd), "{r:?}");
    assert_eq!(r.pid, tpid);

    match mode {
        "ring-later" => {
            // Attached first: the create event names the ring and its fd.
            assert!(
                evs.iter().any(|e| matches!(e,
                    ProbeEvent::Create { ring: r, fd, sq_entries: 8, .. }
                        if *r == ring && *fd == ring_fd)),
                "no create event: {evs:#?}"
            );
            assert_eq!(attached["rings"].as_array().unwrap().len(), 0);
            let notes = attached["notes"].to_string();
            assert!(notes.contains("has no io_uring rings yet"), "{notes}");
        }
        _ => {
            // Attached to an existing ring: discovery found it in /proc.
            let rings = attached["rings"].as_array().unwrap();
            assert_eq!(rings.len(), 1, "{attached}");
            assert_eq!(rings[0]["fd"], ring_fd);
            assert_eq!(rings[0]["info"]["sq_entries"], 8);
            assert!(!evs.iter().any(|e| matches!(e, ProbeEvent::Create { .. })));
            assert_eq!(r.source, ringside_probes::discover::RingSource::OnlyRing);
        }
    }
}

#[test]
fn liburing_chain_short_read_attach_before_ring() {
    chain_case("liburing_chain_short_read_attach_before_ring", "ring-later");
}

#[test]
fn liburing_chain_short_read_attach_after_ring() {
    chain_case("liburing_chain_short_read_attach_after_ring", "ring-first");
}
