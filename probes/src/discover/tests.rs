//! Tests of fdinfo parsing, ring records and the ring directory.

use super::*;
use crate::event::Header;

const SQPOLL: &str = "pos:\t0
flags:\t02000002
mnt_id:\t17
ino:\t12399
SqMask:\t0x7
SqHead:\t12042
SqTail:\t12044
CachedSqHead:\t12042
CqMask:\t0xf
CqHead:\t4294967295
CqTail:\t1
CachedCqTail:\t1
SQEs:\t2
    0: opcode:READ, fd:0, flags:1, off:0, addr:0x0, rw_flags:0x0, buf_index:0 user_data:7
    1: opcode:NOP, fd:0, flags:0, off:0, addr:0x0, rw_flags:0x0, buf_index:0 user_data:8
CQEs:\t0
SqThread:\t6664
SqThreadCpu:\t1
SqTotalTime:\t700215
SqWorkTime:\t248432
UserFiles:\t1
    0: /tmp/fiot
UserBufs:\t1
    0: 0x5600e6db6620/4096
PollList:
  op=6, task_works=0
CqOverflowList:
NAPI:\tdisabled
";

#[test]
fn parses_sqpoll_ring() {
    let f = Fdinfo::parse("t", SQPOLL).unwrap();
    assert_eq!(f.sq_entries, Some(8));
    assert_eq!(f.cq_entries, Some(16));
    assert_eq!(f.sq_pending, Some(2));
    assert_eq!(f.cq_pending, Some(2), "wrapping tail - head");
    assert_eq!(f.sqes.len(), 2);
    assert!(f.sqes[0].starts_with("0: opcode:READ"));
    assert_eq!(f.sq_thread, Some(6664));
    assert!(f.sqpoll());
    assert_eq!(f.sq_thread_cpu, Some(1));
    assert_eq!(
        f.registered_files,
        vec![RegisteredFile {
            index: 0,
            path: "/tmp/fiot".into()
        }]
    );
    assert_eq!(
        f.registered_buffers,
        vec![RegisteredBuffer {
            index: 0,
            addr: 0x5600e6db6620,
            len: 4096
        }]
    );
    assert_eq!(f.poll_list, vec!["op=6, task_works=0".to_string()]);
    assert_eq!(f.other.get("NAPI").map(String::as_str), Some("disabled"));
    assert_eq!(
        f.other.get("SqWorkTime").map(String::as_str),
        Some("248432")
    );
}

#[test]
fn sparse_tables_and_slot_counts() {
    // 6.1 lists empty file slots as <none>; 6.12+ does so for buffers.
    let t = SQPOLL
        .replace(
            "UserFiles:\t1\n    0: /tmp/fiot\n",
            "UserFiles:\t3\n    0: /tmp/fiot\n    1: <none>\n    2: /tmp/b c\n",
        )
        .replace("UserBufs:\t1\n", "UserBufs:\t2\n    1: <none>\n");
    let f = Fdinfo::parse("t", &t).unwrap();
    assert_eq!(f.file_slots, Some(3));
    assert_eq!(
        f.registered_files
            .iter()
            .map(|r| r.index)
            .collect::<Vec<_>>(),
        vec![0, 2]
    );
    assert_eq!(f.registered_files[1].path, "/tmp/b c");
    assert_eq!(f.buffer_slots, Some(2));
    assert_eq!(f.registered_buffers.len(), 1);
    assert!(Fdinfo::parse("t", "SqMask:\t0x3\nUserFiles:\t-1\n").is_err());
}

#[test]
fn ring_setup_joins_create_and_fdinfo() {
    let f = Fdinfo::parse("t", SQPOLL).unwrap();
    let c = CreateInfo {
        ring: Ptr(0xa),
        tid: 11,
        flags: crate::event::setup_flags::SQPOLL,
        sq_entries: 8,
        cq_entries: 16,
    };
    let r = RingSetup::new(5, RingWhen::Create, 10, Some(3), Some(&f), Some(&c));
    assert_eq!((r.ring, r.fd, r.owner_tid), (Ptr(0xa), Some(3), Some(11)));
    assert_eq!(r.setup_flags, Some(2));
    assert_eq!(
        (r.sq_thread, r.file_slots, r.buffer_slots),
        (Some(6664), Some(1), Some(1))
    );
    assert_eq!(r.files[0].path, "/tmp/fiot");
    assert_eq!(
        (r.sq_pending, r.cq_pending, r.cq_overflow),
        (Some(2), Some(2), Some(0))
    );
    assert!(r.sqpoll());
    // Created before attach: no ctx, no flags, but SQPOLL from fdinfo.
    let a = RingSetup::new(5, RingWhen::Attach, 10, Some(3), Some(&f), None);
    assert_eq!(
        (a.ring, a.setup_flags, a.owner_tid),
        (Ptr::NULL, None, None)
    );
    assert!(a.sqpoll());
    // Busy fdinfo: only what the create event said.
    let busy = Fdinfo::parse("t", "pos:\t0\nflags:\t02\n").unwrap();
    let b = RingSetup::new(5, RingWhen::Create, 10, Some(3), Some(&busy), Some(&c));
    assert_eq!(
        (b.sq_entries, b.file_slots, b.sq_pending),
        (Some(8), None, None)
    );
    let mut later = r.clone();
    later.hdr.ts_ns = 99;
    later.when = RingWhen::Changed;
    assert!(later.same_state(&r));
    later.cq_pending = Some(1);
    assert!(!later.same_state(&r));
}

#[test]
fn directory_learns_from_ring_records() {
    let f = Fdinfo::parse("t", SQPOLL).unwrap();
    let mut d = RingDirectory::new();
    let a = RingSetup::new(5, RingWhen::Attach, 10, Some(4), Some(&f), None);
    assert!(d.observe(&ProbeEvent::Ring(Box::new(a))).is_none());
    assert_eq!(d.discovered(10).len(), 1);
    // A submission from the SQPOLL thread ties its ctx to fd 4.
    let sub = ProbeEvent::SubmitReq {
        hdr: h(10, 6664),
        ring: Ptr(0xa),
        req: Ptr(1),
        user_data: 0,
        opcode: 0,
        flags: 0,
        sq_thread: true,
    };
    let id = d.observe(&sub).unwrap();
    assert_eq!(
        (id.fd, id.source, id.sq_entries),
        (Some(4), RingSource::SqThread, Some(8))
    );
    // A record that names its ctx ties it directly.
    let c = CreateInfo {
        ring: Ptr(0xb),
        tid: 10,
        flags: 0,
        sq_entries: 4,
        cq_entries: 8,
    };
    let r = RingSetup::new(6, RingWhen::Create, 10, Some(7), None, Some(&c));
    let id = d.observe(&ProbeEvent::Ring(Box::new(r))).unwrap();
    assert_eq!((id.ring, id.fd), (Ptr(0xb), Some(7)));
    assert_eq!(d.discovered(10).len(), 2);
}

#[test]
fn flags_read_from_a_ring_join_what_the_directory_knows() {
    use crate::counters::SetupSeen;
    let f = Fdinfo::parse("t", SQPOLL).unwrap();
    let seen = |ring| {
        ProbeEvent::Ring(Box::new(RingSetup::seen(
            9,
            Ptr(ring),
            SetupSeen {
                flags: 0x3000,
                tgid: 10,
            },
        )))
    };
    // Known from an event already: the flags are added, nothing new.
    let mut d = RingDirectory::new();
    d.add_discovered(
        10,
        vec![RingFd {
            pid: 10,
            fd: 4,
            info: f.clone(),
        }],
    );
    let sub = ProbeEvent::SubmitReq {
        hdr: h(10, 6664),
        ring: Ptr(0xa),
        req: Ptr(1),
        user_data: 0,
        opcode: 0,
        flags: 0,
        sq_thread: true,
    };
    assert!(d.observe(&sub).is_some());
    assert!(d.observe(&seen(0xa)).is_none());
    let id = d.get(Ptr(0xa)).unwrap();
    assert_eq!((id.fd, id.setup_flags), (Some(4), Some(0x3000)));
    // Before any event: placed as an event would be (the only ring),
    // not taken for a create event.
    let mut d = RingDirectory::new();
    d.add_discovered(
        10,
        vec![RingFd {
            pid: 10,
            fd: 4,
            info: f.clone(),
        }],
    );
    let id = d.observe(&seen(0xa)).unwrap();
    assert_eq!(
        (id.fd, id.source, id.setup_flags),
        (Some(4), RingSource::OnlyRing, Some(0x3000))
    );
    // Several rings: the fd stays unknown.
    let mut d = RingDirectory::new();
    d.add_discovered(
        10,
        vec![
            RingFd {
                pid: 10,
                fd: 4,
                info: f.clone(),
            },
            RingFd {
                pid: 10,
                fd: 5,
                info: f,
            },
        ],
    );
    let id = d.observe(&seen(0xa)).unwrap();
    assert_eq!((id.fd, id.source), (None, RingSource::Unknown));
}

#[test]
fn no_sqpoll_is_none() {
    let t = SQPOLL
        .replace("SqThread:\t6664", "SqThread:\t-1")
        .replace("SqThreadCpu:\t1", "SqThreadCpu:\t-1");
    let f = Fdinfo::parse("t", &t).unwrap();
    assert_eq!(f.sq_thread, None);
    assert_eq!(f.sq_thread_cpu, None);
}

#[test]
fn malformed_fdinfo_is_an_error_not_a_panic() {
    let busy = Fdinfo::parse("t", "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1\n").unwrap();
    assert!(busy.busy);
    assert_eq!(busy.sq_entries, None);
    assert!(!Fdinfo::parse("t", SQPOLL).unwrap().busy);
    for t in [
        "",
        "pos:\t0\n",
        "SqMask:\tzz\n",
        "SqHead:\t99999999999\n",
        "SqMask:\t0x3\nnonsense line\n",
        "SqMask:\t0x3\nUserFiles:\t1\n    garbage\n",
        "SqMask:\t0x3\nUserBufs:\t1\n    0: 0x10\n",
        "SqMask:\t0x3\nSqThread:\tabc\n",
    ] {
        let r = Fdinfo::parse("t", t);
        assert!(r.is_err(), "{t:?} -> {r:?}");
        let msg = r.unwrap_err().to_string();
        assert!(msg.starts_with("cannot parse t"), "{msg}");
    }
    // A huge mask does not overflow.
    let f = Fdinfo::parse("t", "SqMask:\t0xffffffff\n").unwrap();
    assert_eq!(f.sq_entries, None);
}

#[test]
fn discover_in_fake_proc() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("77");
    std::fs::create_dir_all(p.join("fd")).unwrap();
    std::fs::create_dir_all(p.join("fdinfo")).unwrap();
    std::os::unix::fs::symlink("anon_inode:[io_uring]", p.join("fd/5")).unwrap();
    std::os::unix::fs::symlink("/dev/null", p.join("fd/0")).unwrap();
    std::fs::write(p.join("fdinfo/5"), SQPOLL).unwrap();
    let rings = discover_in(dir.path(), 77).unwrap();
    assert_eq!(rings.len(), 1);
    assert_eq!(rings[0].fd, 5);
    assert_eq!(rings[0].info.sq_entries, Some(8));
    assert!(matches!(
        discover_in(dir.path(), 78),
        Err(ProbeError::NoSuchPid { pid: 78 })
    ));
    std::fs::write(p.join("fdinfo/5"), "garbage").unwrap();
    assert!(matches!(
        discover_in(dir.path(), 77),
        Err(ProbeError::Fdinfo { .. })
    ));
}

#[test]
fn descendants_in_fake_proc() {
    let dir = tempfile::tempdir().unwrap();
    // 10 -> 11 -> 13, 10 -> 12; 20 unrelated; a comm with ") 1 " in it.
    for (pid, ppid, comm) in [
        (10, 1, "fio"),
        (11, 10, "fio"),
        (12, 10, "a) S 20 x"),
        (13, 11, "w"),
        (20, 1, "other"),
    ] {
        let p = dir.path().join(pid.to_string());
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("stat"), format!("{pid} ({comm}) S {ppid} 0 0\n")).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("self")).unwrap();
    assert_eq!(descendants_in(dir.path(), 10), vec![11, 12, 13]);
    assert_eq!(descendants_in(dir.path(), 11), vec![13]);
    assert!(descendants_in(dir.path(), 20).is_empty());
    assert!(descendants_in(dir.path(), 99).is_empty());
}

#[test]
fn discover_self_finds_a_real_ring() {
    let ring = io_uring::IoUring::new(8).unwrap();
    let me = std::process::id();
    let rings = discover(me).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&ring);
    let r = rings.iter().find(|r| r.fd == fd).expect("our ring");
    assert_eq!(r.info.sq_entries, Some(8));
    assert_eq!(r.info.sq_pending, Some(0));
    assert!(pid_alive(me));
    assert!(matches!(
        discover(u32::MAX - 1),
        Err(ProbeError::NoSuchPid { .. })
    ));
}

fn h(tgid: u32, tid: u32) -> Header {
    Header {
        ts_ns: 1,
        cpu: 0,
        tgid,
        tid,
    }
}

#[test]
fn directory_ties_rings_to_fds() {
    let mut d = RingDirectory::new();
    let fdinfo = Fdinfo::parse("t", SQPOLL).unwrap();
    let mut plain = fdinfo.clone();
    plain.sq_thread = None;
    d.add_discovered(
        10,
        vec![
            RingFd {
                pid: 10,
                fd: 3,
                info: plain,
            },
            RingFd {
                pid: 10,
                fd: 4,
                info: fdinfo,
            },
        ],
    );
    let sub = |tid, ring| ProbeEvent::SubmitReq {
        hdr: h(10, tid),
        ring: Ptr(ring),
        req: Ptr(1),
        user_data: 0,
        opcode: 0,
        flags: 0,
        sq_thread: false,
    };
    let id = d.observe(&sub(6664, 0xa)).unwrap();
    assert_eq!((id.fd, id.source), (Some(4), RingSource::SqThread));
    let id = d.observe(&sub(10, 0xb)).unwrap();
    assert_eq!((id.fd, id.source), (None, RingSource::Unknown));
    assert!(d.observe(&sub(10, 0xb)).is_none(), "only the first time");
    let id = d
        .observe(&ProbeEvent::Create {
            hdr: h(10, 10),
            ring: Ptr(0xc),
            fd: 9,
            sq_entries: 4,
            cq_entries: 8,
            flags: 0,
            generation: 1,
        })
        .unwrap();
    assert_eq!((id.fd, id.source), (Some(9), RingSource::CreateEvent));
    assert_eq!(d.rings().count(), 3);
    // A single-ring process.
    d.add_discovered(
        20,
        vec![RingFd {
            pid: 20,
            fd: 7,
            info: Fdinfo::default(),
        }],
    );
    let mut e = sub(20, 0xd);
    if let ProbeEvent::SubmitReq { hdr, .. } = &mut e {
        *hdr = h(20, 20);
    }
    let id = d.observe(&e).unwrap();
    assert_eq!((id.fd, id.source), (Some(7), RingSource::OnlyRing));
}
