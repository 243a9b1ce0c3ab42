//! Shared by the recordings tests: a demo recording made in memory.

#![allow(dead_code)]

use ringside_engine::event::{Detail, Overflow};
use ringside_recordings::{Header, Item, Writer};
use ringside_workload::{self as workload, PrepareOptions};
use std::sync::atomic::AtomicBool;

/// The demo's engine events as items.
pub fn demo_items() -> Vec<Item> {
    demo_items_with(Detail::Full)
}

/// The demo's engine events as items, decisions inputs-only (as the UI and
/// `ringside record` get them).
pub fn demo_items_inputs_only() -> Vec<Item> {
    demo_items_with(Detail::Inputs)
}

fn demo_items_with(detail: Detail) -> Vec<Item> {
    let mut p = workload::prepare_demo(&PrepareOptions::default()).expect("demo");
    let sub = p.engine().subscribe_with(1 << 20, Overflow::Block, detail);
    let stop = AtomicBool::new(false);
    let (_report, engine) = p.run(&stop).expect("demo run");
    drop(engine);
    sub.try_iter().map(Item::Engine).collect()
}

/// Encode items into a complete recording.
pub fn record(items: &[Item]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), &Header::keeping_pointers("test")).unwrap();
    for it in items {
        w.write_item(it).unwrap();
    }
    w.finish(0).unwrap();
    w.into_inner()
}

use ringside_engine::event::Event;
use ringside_probes::{Header as PHeader, ProbeEvent, Ptr};

/// Probe events of several kinds, as the kernel would send them.
pub fn probe_items(n: u64) -> Vec<Item> {
    let mut v = Vec::new();
    for i in 0..n {
        let hdr = PHeader {
            ts_ns: 1_000_000_000 + i * 1733,
            cpu: (i % 2) as u16,
            tgid: 4242,
            tid: 4242 + (i % 3) as u32,
        };
        let ring = Ptr(0xffff_8881_0a2b_c000);
        let req = Ptr(0xffff_8881_1000_0000 + (i % 17) * 0x100);
        v.push(Item::Probe(match i % 5 {
            0 => ProbeEvent::SubmitReq {
                hdr,
                ring,
                req,
                user_data: 100 + i,
                opcode: 22,
                flags: 0x4 | (1 << 40),
                sq_thread: false,
            },
            1 => ProbeEvent::Complete {
                hdr,
                ring,
                req,
                user_data: 100 + i,
                res: if i % 3 == 0 { -125 } else { 4096 },
                cflags: 0,
                extra1: 0,
                extra2: 0,
            },
            2 => ProbeEvent::Link {
                hdr,
                ring,
                req,
                target: Ptr(req.0 - 0x100),
            },
            3 => ProbeEvent::FailLink {
                hdr,
                ring,
                req,
                user_data: 7,
                opcode: 22,
                link: Ptr(req.0 + 0x100),
            },
            _ => ProbeEvent::TaskWorkRun {
                hdr,
                tctx: Ptr(0xffff_8881_2000_0000),
                count: 3,
            },
        }));
    }
    v
}

/// `ring` records: one with every field (a created DEFER_TASKRUN ring
/// with registered files and buffers), one of a ring found at attach (no
/// ctx, SQPOLL from fdinfo), one with nothing known but the owner, and
/// extremes.
pub fn ring_items() -> Vec<Item> {
    use ringside_probes::discover::{RegisteredBuffer, RegisteredFile, RingSetup, RingWhen};
    use ringside_probes::event::setup_flags as sf;
    let full = RingSetup {
        hdr: PHeader {
            ts_ns: 1_000_000,
            cpu: 0,
            tgid: 4242,
            tid: 0,
        },
        when: RingWhen::Create,
        ring: Ptr(0xffff_8881_0bad_c0de),
        fd: Some(7),
        owner_tid: Some(4243),
        setup_flags: Some(sf::SINGLE_ISSUER | sf::DEFER_TASKRUN),
        sq_entries: Some(64),
        cq_entries: Some(128),
        sq_thread: None,
        sq_thread_cpu: None,
        file_slots: Some(3),
        files: vec![
            RegisteredFile {
                index: 0,
                path: "/tmp/data".into(),
            },
            RegisteredFile {
                index: 2,
                path: "/tmp/ünïcode file".into(),
            },
        ],
        buffer_slots: Some(2),
        buffers: vec![RegisteredBuffer {
            index: 1,
            addr: 0x5600_e6db_6620,
            len: 65536,
        }],
        sq_pending: Some(3),
        cq_pending: Some(1),
        cq_overflow: Some(0),
    };
    let attach = RingSetup {
        when: RingWhen::Attach,
        ring: Ptr::NULL,
        owner_tid: None,
        setup_flags: None,
        sq_thread: Some(4250),
        sq_thread_cpu: Some(-1),
        files: Vec::new(),
        buffers: Vec::new(),
        ..full.clone()
    };
    let bare = RingSetup {
        when: RingWhen::Changed,
        fd: Some(-1),
        sq_entries: None,
        cq_entries: None,
        sq_thread: None,
        sq_thread_cpu: None,
        file_slots: None,
        buffer_slots: None,
        sq_pending: None,
        cq_pending: None,
        cq_overflow: None,
        ..attach.clone()
    };
    let extreme = RingSetup {
        hdr: PHeader {
            ts_ns: u64::MAX,
            cpu: u16::MAX,
            tgid: u32::MAX,
            tid: u32::MAX,
        },
        ring: Ptr(u64::MAX),
        fd: Some(i32::MIN),
        setup_flags: Some(u32::MAX),
        sq_thread_cpu: Some(i32::MAX),
        sq_pending: Some(u32::MAX),
        ..full.clone()
    };
    [full, attach, bare, extreme]
        .into_iter()
        .map(|r| Item::Probe(ProbeEvent::Ring(Box::new(r))))
        .collect()
}

/// A small recording with every record type: setup, one program, a few of
/// each hot engine kind, probe events, a lost marker.
pub fn small_items(demo: &[Item]) -> Vec<Item> {
    let mut out = Vec::new();
    let mut counts = std::collections::HashMap::<String, usize>::new();
    let mut first_prog = None;
    for it in demo {
        let Item::Engine(r) = it else { continue };
        let kind = r.to_json()["kind"].as_str().unwrap_or("").to_string();
        let keep = match &r.event {
            Event::ProgramLoaded(p) => {
                if first_prog.is_none() {
                    first_prog = Some(p.prog);
                    true
                } else {
                    false
                }
            }
            Event::Decision(d) => {
                Some(d.prog) == first_prog && counts.get(&kind).copied().unwrap_or(0) < 2
            }
            _ => counts.get(&kind).copied().unwrap_or(0) < 2,
        };
        if keep {
            *counts.entry(kind).or_default() += 1;
            out.push(it.clone());
        }
    }
    // The demo never unlinks: one synthetic unlink.
    let last = out
        .iter()
        .rev()
        .find_map(|i| match i {
            Item::Engine(r) => Some((r.seq, r.t_ns)),
            _ => None,
        })
        .unwrap_or((0, 0));
    out.push(Item::Engine(std::sync::Arc::new(
        ringside_engine::event::EventRecord {
            seq: last.0 + 1,
            t_ns: last.1 + 10,
            event: Event::Unlinked {
                chain: 3,
                step: 1,
                decision: 0,
            },
        },
    )));
    let mut probes = probe_items(12);
    probes.splice(3..3, ring_items());
    let mid = out.len() / 2;
    out.splice(mid..mid, probes);
    out.push(Item::Lost {
        queue: "engine".into(),
        count: 3,
    });
    out
}

/// Frames of a recording: (start, end, type), walked independently of the reader.
pub fn frames(bytes: &[u8]) -> Vec<(usize, usize, u8)> {
    let hlen = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut at = 16 + hlen + 4;
    let mut v = Vec::new();
    while at < bytes.len() {
        let mut len = 0usize;
        let mut n = 0;
        loop {
            let b = bytes[at + n];
            len |= ((b & 0x7f) as usize) << (7 * n);
            n += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let end = at + n + 1 + len + 4;
        v.push((at, end, bytes[at + n]));
        at = end;
    }
    v
}
