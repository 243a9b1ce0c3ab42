//! Probe events: wire decoding, JSON shapes, pointer ids.

use super::*;

fn hdr() -> Header {
    Header {
        ts_ns: 123,
        cpu: 1,
        tgid: 42,
        tid: 43,
    }
}

fn samples() -> Vec<ProbeEvent> {
    let h = hdr();
    vec![
        ProbeEvent::Create {
            hdr: h,
            ring: Ptr(0xffff_8881_0000_1000),
            fd: 5,
            sq_entries: 8,
            cq_entries: 16,
            flags: 2,
            generation: 3,
        },
        ProbeEvent::SubmitReq {
            hdr: h,
            ring: Ptr(1),
            req: Ptr(2),
            user_data: 3,
            opcode: 22,
            flags: 0x4 | (1 << 40),
            sq_thread: true,
        },
        ProbeEvent::Complete {
            hdr: h,
            ring: Ptr(1),
            req: Ptr(2),
            user_data: 3,
            res: -125,
            cflags: 2,
            extra1: 7,
            extra2: 8,
        },
        ProbeEvent::Link {
            hdr: h,
            ring: Ptr(1),
            req: Ptr(2),
            target: Ptr(9),
        },
        ProbeEvent::FailLink {
            hdr: h,
            ring: Ptr(1),
            req: Ptr(2),
            user_data: 3,
            opcode: 22,
            link: Ptr(4),
        },
        ProbeEvent::ReqFailed {
            hdr: h,
            ring: Ptr(1),
            req: Ptr(2),
            user_data: 3,
            opcode: 22,
            sqe_flags: 4,
            off: 10,
            addr: 11,
            len: 12,
            buf_index: 13,
            error: -22,
        },
        ProbeEvent::CqeOverflow {
            hdr: h,
            ring: Ptr(1),
            user_data: 3,
            res: 1,
            cflags: 0,
            ocqe: Ptr(5),
        },
        ProbeEvent::ShortWrite {
            hdr: h,
            ring: Ptr(1),
            fpos: 1,
            wanted: 2,
            got: 1,
        },
        ProbeEvent::PollArm {
            hdr: h,
            ring: Ptr(1),
            req: Ptr(2),
            user_data: 3,
            opcode: 6,
            mask: 1,
            events: 1,
        },
        ProbeEvent::QueueAsyncWork {
            hdr: h,
            ring: Ptr(1),
            req: Ptr(2),
            user_data: 3,
            opcode: 22,
            flags: 16,
            work: Ptr(6),
            rw: Some(1),
            hashed: Some(true),
        },
        // 7.x: `bool hashed`, no `rw`.
        ProbeEvent::QueueAsyncWork {
            hdr: h,
            ring: Ptr(1),
            req: Ptr(2),
            user_data: 3,
            opcode: 22,
            flags: 16,
            work: Ptr(6),
            rw: None,
            hashed: Some(false),
        },
        ProbeEvent::TaskWorkRun {
            hdr: h,
            tctx: Ptr(7),
            count: 3,
        },
        ProbeEvent::NewTask {
            hdr: h,
            child: 99,
            clone_flags: 17,
        },
        ProbeEvent::Ring(Box::new(sample_ring(h))),
    ]
}

fn sample_ring(h: Header) -> RingSetup {
    use crate::discover::{RegisteredBuffer, RegisteredFile, RingWhen};
    RingSetup {
        hdr: h,
        when: RingWhen::Create,
        ring: Ptr(0xffff_8881_0000_1000),
        fd: Some(5),
        owner_tid: Some(43),
        setup_flags: Some(setup_flags::SINGLE_ISSUER | setup_flags::DEFER_TASKRUN),
        sq_entries: Some(8),
        cq_entries: Some(16),
        sq_thread: None,
        sq_thread_cpu: None,
        file_slots: Some(4),
        files: vec![RegisteredFile {
            index: 2,
            path: "/tmp/x".into(),
        }],
        buffer_slots: Some(1),
        buffers: vec![RegisteredBuffer {
            index: 0,
            addr: 0x1000,
            len: 4096,
        }],
        sq_pending: Some(1),
        cq_pending: Some(0),
        cq_overflow: Some(0),
    }
}

#[test]
fn ring_record_json_shape() {
    let ev = ProbeEvent::Ring(Box::new(sample_ring(hdr())));
    let v: serde_json::Value = serde_json::to_value(&ev).unwrap();
    assert_eq!(v["kind"], "ring");
    assert_eq!(v["when"], "create");
    assert_eq!(v["ring"], "0xffff888100001000");
    assert_eq!(v["setup_flags"], 0x3000);
    assert_eq!(v["files"][0]["path"], "/tmp/x");
    assert_eq!(v["buffers"][0]["len"], 4096);
    assert_eq!(ev.ring(), Some(Ptr(0xffff_8881_0000_1000)));
    let mut ids = PtrIds::new();
    let mut e2 = ev.clone();
    ids.apply(&mut e2);
    assert_eq!(e2.ring(), Some(Ptr(1)), "the ctx becomes an id too");
    assert_eq!(
        setup_flags::names(0x3002),
        "SQPOLL SINGLE_ISSUER DEFER_TASKRUN"
    );
    assert_eq!(setup_flags::names(1 << 30), "0x40000000");
    assert_eq!(setup_flags::names(0), "");
}

#[test]
fn wire_roundtrip_every_kind() {
    for ev in samples() {
        let Some(b) = wire::encode(&ev) else {
            assert_eq!(ev.kind(), "ring", "only ring records have no wire form");
            continue;
        };
        assert_eq!(wire::decode(&b).unwrap(), ev, "{}", ev.kind());
    }
}

#[test]
fn wire_rejects_bad_records() {
    assert_eq!(wire::decode(&[0; 10]), Err(wire::DecodeError::Size(10)));
    let mut b = [0u8; wire::EVENT_SIZE];
    b[70] = 200;
    assert_eq!(wire::decode(&b), Err(wire::DecodeError::Kind(200)));
    b[70] = 0;
    assert_eq!(wire::decode(&b), Err(wire::DecodeError::Kind(0)));
}

#[test]
fn json_roundtrip_and_shape() {
    for ev in samples() {
        let s = serde_json::to_string(&ev).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["kind"], ev.kind(), "{s}");
        assert_eq!(v["ts_ns"], 123, "{s}");
        assert_eq!(v["tgid"], 42, "{s}");
        let back: ProbeEvent = serde_json::from_str(&s).unwrap();
        assert_eq!(back, ev);
    }
    let s = serde_json::to_string(&samples()[0]).unwrap();
    assert!(s.contains(r#""ring":"0xffff888100001000""#), "{s}");
}

#[test]
fn ptr_accepts_numbers_and_rejects_garbage() {
    let p: Ptr = serde_json::from_str("255").unwrap();
    assert_eq!(p, Ptr(255));
    let p: Ptr = serde_json::from_str("\"0xff\"").unwrap();
    assert_eq!(p, Ptr(255));
    assert!(serde_json::from_str::<Ptr>("\"ff\"").is_err());
    assert!(serde_json::from_str::<Ptr>("\"0xzz\"").is_err());
}

#[test]
fn flag_names_and_opcodes() {
    assert_eq!(
        sqe_flags::names(sqe_flags::IO_LINK | sqe_flags::ASYNC),
        "IO_LINK|ASYNC"
    );
    assert_eq!(opcode_name(0), "NOP");
    assert_eq!(opcode_name(22), "READ");
    assert_eq!(opcode_name(255), "?");
}

#[test]
fn kernel_pointers_become_stable_ids() {
    let hdr = Header::default();
    let submit = |req| ProbeEvent::SubmitReq {
        hdr,
        ring: Ptr(0xffff_8881_0000_1000),
        req: Ptr(req),
        user_data: 1,
        opcode: 22,
        flags: 0,
        sq_thread: false,
    };
    let mut ids = PtrIds::new();
    let mut a = submit(0xffff_8881_2222_0000);
    let mut b = submit(0xffff_8881_3333_0000);
    let mut c = submit(0xffff_8881_2222_0000);
    let mut none = submit(0);
    for e in [&mut a, &mut b, &mut c, &mut none] {
        ids.apply(e);
    }
    assert_eq!((a.ring(), a.req()), (Some(Ptr(1)), Some(Ptr(2))));
    assert_eq!(b.req(), Some(Ptr(3)));
    assert_eq!(c.req(), a.req(), "the same pointer, the same id");
    assert_eq!(none.req(), Some(Ptr::NULL), "null stays null");
}
