//! The probes against every kernel whose tracepoint formats are committed
//! (tests/formats/<uname -r>/events/..., copied from tracefs of Debian's
//! 6.1, 6.12, 7.x and the 6.18 host): each format file parses, the probes
//! plan to attach every tracepoint, and a synthetic record of each kind,
//! laid out as that kernel lays it out, decodes to the event with the
//! kernel's values, with fields the kernel lacks absent.
//!
//! The BPF side's field extraction is modelled here by `bpf_emit`, which
//! mirrors the switch in bpf/probes.bpf.c; the real programs are checked
//! against real kernels by tests/live/, in the VM matrix
//! (scripts/test-kernels, docs/kernels.md).

use ringside_probes::event::wire::{self, EVENT_SIZE};
use ringside_probes::tracefs::{self, BpfConfig, Format, Tracefs};
use ringside_probes::{Header, ProbeError, ProbeEvent, Ptr};
use std::path::{Path, PathBuf};

fn formats_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/formats")
}

/// Every committed kernel: (release, fake tracefs root).
fn kernels() -> Vec<(String, Tracefs)> {
    let mut v: Vec<(String, Tracefs)> = std::fs::read_dir(formats_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                Tracefs {
                    root: p,
                    mounted_by_us: false,
                },
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn major_minor(release: &str) -> (u32, u32) {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let maj = it.next().unwrap().parse().unwrap();
    let min = it.next().unwrap().parse().unwrap();
    (maj, min)
}

/// The format files of one kernel: (system, tracepoint, parsed).
fn all_formats(t: &Tracefs) -> Vec<(String, String, Format)> {
    let mut v = Vec::new();
    for sys in std::fs::read_dir(t.root.join("events")).unwrap() {
        let sys = sys.unwrap().path();
        for tp in std::fs::read_dir(&sys).unwrap() {
            let p = tp.unwrap().path().join("format");
            let text = std::fs::read_to_string(&p).unwrap();
            let f = Format::parse(&p.display().to_string(), &text)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            v.push((
                sys.file_name().unwrap().to_string_lossy().into_owned(),
                p.parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                f,
            ));
        }
    }
    v
}

#[test]
fn the_matrix_kernels_are_all_committed() {
    let rel: Vec<(u32, u32)> = kernels().iter().map(|(r, _)| major_minor(r)).collect();
    for want in [(6, 1), (6, 12), (6, 18)] {
        assert!(rel.contains(&want), "no formats for {want:?}: {rel:?}");
    }
    assert!(
        rel.iter()
            .any(|&(maj, min)| maj >= 7 && (maj > 7 || min >= 1)),
        "no formats for a kernel >= 7.1: {rel:?}"
    );
}

#[test]
fn every_committed_format_file_parses() {
    for (release, t) in kernels() {
        let fs = all_formats(&t);
        let io_uring = fs.iter().filter(|(s, _, _)| s == "io_uring").count();
        assert!(
            io_uring >= 17,
            "{release}: only {io_uring} io_uring formats"
        );
        assert!(has_newtask(&t), "{release}: no task/task_newtask format");
        for (_, tp, f) in &fs {
            assert_eq!(&f.name, tp, "{release}");
            assert!(f.field("common_type").is_some(), "{release} {tp}");
        }
    }
}

/// What differs between the kernels, as the probes see it.
#[test]
fn each_kernel_gets_its_own_names_widths_and_fields() {
    for (release, t) in kernels() {
        let plan = tracefs::plan(&t, has_newtask(&t), &release)
            .unwrap_or_else(|e| panic!("{release}: {e}"));
        assert!(plan.skipped.is_empty(), "{release}: {:?}", plan.skipped);
        assert_eq!(
            plan.attach.len(),
            tracefs::TRACEPOINTS.len() + has_newtask(&t) as usize,
            "{release}"
        );
        let name_of = |kind: u8| {
            plan.attach
                .iter()
                .find(|(s, _)| s.kind == kind)
                .map(|(_, n)| n.as_str())
                .unwrap()
        };
        let k = wire::KIND_SUBMIT_REQ as usize;
        let q = wire::KIND_QUEUE_ASYNC_WORK as usize;
        let old = major_minor(&release) == (6, 1);
        if old {
            assert_eq!(name_of(wire::KIND_SUBMIT_REQ), "io_uring_submit_sqe");
            assert_eq!(plan.cfg.size[k][4], 4, "{release}: flags is a u32");
            assert_eq!(plan.cfg.size[q][4], 4, "{release}: flags is a u32");
        } else {
            assert_eq!(name_of(wire::KIND_SUBMIT_REQ), "io_uring_submit_req");
            assert_eq!(plan.cfg.size[k][4], 8, "{release}: flags is a u64");
            assert_eq!(plan.cfg.size[q][4], 8, "{release}: flags is a u64");
        }
        let rw = t
            .format("io_uring", "io_uring_queue_async_work")
            .unwrap()
            .field("rw")
            .is_some();
        assert_eq!(rw, major_minor(&release) < (7, 0), "{release}");
        assert_eq!(
            plan.cfg.absent[q],
            if rw {
                0
            } else {
                wire::absent::QUEUE_ASYNC_WORK_RW
            },
            "{release}"
        );
    }
}

fn has_newtask(t: &Tracefs) -> bool {
    t.format_path("task", "task_newtask").exists()
}

/// The value a synthetic record holds in the field called `name`: distinct
/// per field, with bits above 32 set where a field may be 32 or 64 bits
/// wide, so a wrong width shows.
fn value_of(name: &str) -> u64 {
    match name {
        "ctx" => 0xffff_8881_0000_1000,
        "req" => 0xffff_8881_0000_2000,
        "target_req" => 0xffff_8881_0000_3000,
        "link" => 0xffff_8881_0000_4000,
        "work" => 0xffff_8881_0000_5000,
        "ocqe" => 0xffff_8881_0000_6000,
        "tctx" => 0xffff_8881_0000_7000,
        "user_data" => 0x1122_3344_5566_7788,
        "opcode" => 22,
        "flags" => 0x0000_0001_0000_0004,
        "sq_thread" => 1,
        "force_nonblock" => 1,
        "fd" => 5,
        "sq_entries" => 8,
        "cq_entries" => 16,
        "res" => (-11i32) as u32 as u64,
        "error" => (-22i32) as u32 as u64,
        "cflags" => 2,
        "extra1" => 0x7_0000_0007,
        "extra2" => 0x8_0000_0008,
        "off" => 0x1_0000_1000,
        "addr" => 0x7fff_dead_beef,
        "len" => 512,
        "buf_index" => 3,
        "fpos" => 100,
        "wanted" => 200,
        "got" => 150,
        "mask" => 0x41,
        "events" => 0x1,
        "rw" => 1,
        "hashed" => 1,
        "count" => 9,
        "loops" => 2,
        "pid" => 4242,
        "clone_flags" => 0x1_0000_0011,
        _ => 0x5a5a_5a5a_5a5a_5a5a,
    }
}

fn truncate(v: u64, size: usize) -> u64 {
    if size >= 8 {
        v
    } else {
        v & ((1u64 << (size * 8)) - 1)
    }
}

/// A raw record of `f`'s layout with `value_of` in every field.
fn synthetic_record(f: &Format) -> Vec<u8> {
    let end = f.fields.iter().map(|x| x.offset + x.size).max().unwrap();
    let mut raw = vec![0xeeu8; end];
    for x in &f.fields {
        if x.ty.starts_with("__data_loc") || x.ty.contains("char") && x.size > 8 {
            continue;
        }
        let v = truncate(value_of(&x.name), x.size).to_le_bytes();
        raw[x.offset..x.offset + x.size.min(8)].copy_from_slice(&v[..x.size.min(8)]);
    }
    raw
}

/// `emit()` of bpf/probes.bpf.c: reads each slot at its configured offset
/// and size, zero-extended, and stores it in the kind's wire slots.
fn bpf_emit(cfg: &BpfConfig, kind: u8, raw: &[u8], hdr: Header) -> [u8; EVENT_SIZE] {
    let k = kind as usize;
    let len = (cfg.len[k] as usize).min(tracefs::MAX_RECORD);
    let mut buf = [0u8; tracefs::MAX_RECORD + 8];
    buf[..len.min(raw.len())].copy_from_slice(&raw[..len.min(raw.len())]);
    let rd = |slot: usize| -> u64 {
        let off = cfg.off[k][slot] as usize;
        if off == 0 {
            return 0;
        }
        let off = off & (tracefs::MAX_RECORD - 1);
        let size = match cfg.size[k][slot] {
            1 => 1,
            2 => 2,
            4 => 4,
            _ => 8,
        };
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(&buf[off..off + size]);
        u64::from_le_bytes(b)
    };
    let (mut ring, mut req, mut ud, mut a, mut bb) = (rd(0), 0u64, 0u64, 0u64, 0u64);
    let (mut res, mut c, mut d, mut op) = (0u32, 0u32, 0u32, 0u8);
    match kind {
        wire::KIND_CREATE => {
            ring = rd(1);
            res = rd(0) as u32;
            c = rd(2) as u32;
            d = rd(3) as u32;
            a = rd(4);
        }
        wire::KIND_SUBMIT_REQ => {
            req = rd(1);
            ud = rd(2);
            op = rd(3) as u8;
            a = rd(4);
            c = rd(5) as u32;
        }
        wire::KIND_COMPLETE => {
            req = rd(1);
            ud = rd(2);
            res = rd(3) as u32;
            c = rd(4) as u32;
            a = rd(5);
            bb = rd(6);
        }
        wire::KIND_LINK => {
            req = rd(1);
            a = rd(2);
        }
        wire::KIND_FAIL_LINK => {
            req = rd(1);
            ud = rd(2);
            op = rd(3) as u8;
            a = rd(4);
        }
        wire::KIND_REQ_FAILED => {
            req = rd(1);
            ud = rd(2);
            op = rd(3) as u8;
            c = rd(4) as u32 | (rd(9) as u32) << 16;
            a = rd(5);
            d = rd(6) as u32;
            res = rd(7) as u32;
            bb = rd(8);
        }
        wire::KIND_CQE_OVERFLOW => {
            ud = rd(2);
            res = rd(3) as u32;
            c = rd(4) as u32;
            a = rd(5);
        }
        wire::KIND_SHORT_WRITE => {
            a = rd(1);
            bb = rd(2);
            ud = rd(3);
        }
        wire::KIND_POLL_ARM => {
            req = rd(1);
            ud = rd(2);
            op = rd(3) as u8;
            c = rd(4) as u32;
            d = rd(5) as u32;
        }
        wire::KIND_QUEUE_ASYNC_WORK => {
            req = rd(1);
            ud = rd(2);
            op = rd(3) as u8;
            a = rd(4);
            bb = rd(5);
            c = rd(6) as u32;
        }
        wire::KIND_TASK_WORK_RUN => {
            c = rd(1) as u32;
        }
        wire::KIND_NEWTASK => {
            // rs_newtask: its own program, no ring.
            ring = 0;
            c = rd(0) as u32;
            a = rd(1);
        }
        _ => unreachable!("kind {kind}"),
    }
    let mut w = [0u8; EVENT_SIZE];
    w[0..8].copy_from_slice(&hdr.ts_ns.to_le_bytes());
    w[8..16].copy_from_slice(&ring.to_le_bytes());
    w[16..24].copy_from_slice(&req.to_le_bytes());
    w[24..32].copy_from_slice(&ud.to_le_bytes());
    w[32..40].copy_from_slice(&a.to_le_bytes());
    w[40..48].copy_from_slice(&bb.to_le_bytes());
    w[48..52].copy_from_slice(&hdr.tgid.to_le_bytes());
    w[52..56].copy_from_slice(&hdr.tid.to_le_bytes());
    w[56..60].copy_from_slice(&res.to_le_bytes());
    w[60..64].copy_from_slice(&c.to_le_bytes());
    w[64..68].copy_from_slice(&d.to_le_bytes());
    w[68..70].copy_from_slice(&hdr.cpu.to_le_bytes());
    w[70] = kind;
    w[71] = op;
    let absent = if kind == wire::KIND_NEWTASK {
        0
    } else {
        cfg.absent[k]
    };
    w[72..76].copy_from_slice(&absent.to_le_bytes());
    w
}

/// The event a kernel with format `f` reports for the synthetic record:
/// each field is the kernel field's value at the kernel field's width;
/// a field the kernel does not have is `None`.
fn expected(kind: u8, f: &Format, hdr: Header) -> ProbeEvent {
    let get = |n: &str| f.field(n).map(|x| truncate(value_of(n), x.size));
    let v = |n: &str| get(n).unwrap_or_else(|| panic!("{}: no field {n}", f.name));
    let p = |n: &str| Ptr(v(n));
    match kind {
        wire::KIND_CREATE => ProbeEvent::Create {
            hdr,
            ring: p("ctx"),
            fd: v("fd") as u32 as i32,
            sq_entries: v("sq_entries") as u32,
            cq_entries: v("cq_entries") as u32,
            flags: v("flags") as u32,
            // rs_gen is not modelled here: the live tests check it.
            generation: 0,
        },
        wire::KIND_SUBMIT_REQ => ProbeEvent::SubmitReq {
            hdr,
            ring: p("ctx"),
            req: p("req"),
            user_data: v("user_data"),
            opcode: v("opcode") as u8,
            flags: v("flags"),
            sq_thread: v("sq_thread") != 0,
        },
        wire::KIND_COMPLETE => ProbeEvent::Complete {
            hdr,
            ring: p("ctx"),
            req: p("req"),
            user_data: v("user_data"),
            res: v("res") as u32 as i32,
            cflags: v("cflags") as u32,
            extra1: v("extra1"),
            extra2: v("extra2"),
        },
        wire::KIND_LINK => ProbeEvent::Link {
            hdr,
            ring: p("ctx"),
            req: p("req"),
            target: p("target_req"),
        },
        wire::KIND_FAIL_LINK => ProbeEvent::FailLink {
            hdr,
            ring: p("ctx"),
            req: p("req"),
            user_data: v("user_data"),
            opcode: v("opcode") as u8,
            link: p("link"),
        },
        wire::KIND_REQ_FAILED => ProbeEvent::ReqFailed {
            hdr,
            ring: p("ctx"),
            req: p("req"),
            user_data: v("user_data"),
            opcode: v("opcode") as u8,
            sqe_flags: v("flags") as u8,
            off: v("off"),
            addr: v("addr"),
            len: v("len") as u32,
            buf_index: v("buf_index") as u16,
            error: v("error") as u32 as i32,
        },
        wire::KIND_CQE_OVERFLOW => ProbeEvent::CqeOverflow {
            hdr,
            ring: p("ctx"),
            user_data: v("user_data"),
            res: v("res") as u32 as i32,
            cflags: v("cflags") as u32,
            ocqe: p("ocqe"),
        },
        wire::KIND_SHORT_WRITE => ProbeEvent::ShortWrite {
            hdr,
            ring: p("ctx"),
            fpos: v("fpos"),
            wanted: v("wanted"),
            got: v("got"),
        },
        wire::KIND_POLL_ARM => ProbeEvent::PollArm {
            hdr,
            ring: p("ctx"),
            req: p("req"),
            user_data: v("user_data"),
            opcode: v("opcode") as u8,
            mask: v("mask") as u32,
            events: v("events") as u32,
        },
        wire::KIND_QUEUE_ASYNC_WORK => ProbeEvent::QueueAsyncWork {
            hdr,
            ring: p("ctx"),
            req: p("req"),
            user_data: v("user_data"),
            opcode: v("opcode") as u8,
            flags: v("flags"),
            work: p("work"),
            rw: get("rw").map(|x| x as u32),
            hashed: get("hashed").or(get("rw")).map(|x| x != 0),
        },
        wire::KIND_TASK_WORK_RUN => ProbeEvent::TaskWorkRun {
            hdr,
            tctx: p("tctx"),
            count: v("count") as u32,
        },
        wire::KIND_NEWTASK => ProbeEvent::NewTask {
            hdr,
            child: v("pid") as u32,
            clone_flags: v("clone_flags"),
        },
        _ => unreachable!(),
    }
}

#[test]
fn a_synthetic_record_of_each_kind_decodes_on_each_kernel() {
    let hdr = Header {
        ts_ns: 123_456,
        cpu: 1,
        tgid: 42,
        tid: 43,
    };
    for (release, t) in kernels() {
        let plan = tracefs::plan(&t, has_newtask(&t), &release).unwrap();
        for (spec, tp) in &plan.attach {
            let f = t.format(spec.system, tp).unwrap();
            let raw = synthetic_record(&f);
            let w = bpf_emit(&plan.cfg, spec.kind, &raw, hdr);
            let got = wire::decode(&w).unwrap_or_else(|e| panic!("{release} {tp}: {e}"));
            let want = expected(spec.kind, &f, hdr);
            assert_eq!(got, want, "{release} {tp}");
            // The wire form (what recordings store) round-trips, absent
            // fields included.
            assert_eq!(wire::encode(&got), Some(w), "{release} {tp}");
            // A field the kernel lacks is not in the JSON.
            let json = serde_json::to_value(&got).unwrap();
            if let ProbeEvent::QueueAsyncWork { rw, hashed, .. } = &got {
                assert_eq!(json.get("rw").is_some(), rw.is_some(), "{release} {json}");
                assert!(hashed.is_some(), "{release}: hashed on every kernel");
                assert_eq!(json["hashed"], true, "{release}");
            }
        }
    }
}

/// A kernel older than the supported ones (here: 6.1 with the fields of
/// 5.x's tracepoints taken away) gets one sentence naming what is missing.
#[test]
fn an_older_kernel_is_told_what_it_lacks_in_one_sentence() {
    let (release, six_one) = kernels()
        .into_iter()
        .find(|(r, _)| major_minor(r) == (6, 1))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&six_one.root, dir.path());
    let tp = |n: &str| dir.path().join("events/io_uring").join(n).join("format");
    // No io_uring_link at all, and a complete without `req` (as before
    // 5.19: the request pointer came later).
    std::fs::remove_dir_all(tp("io_uring_link").parent().unwrap()).unwrap();
    let c = std::fs::read_to_string(tp("io_uring_complete")).unwrap();
    std::fs::write(
        tp("io_uring_complete"),
        c.replace("field:void * req;", "field:void * request;"),
    )
    .unwrap();
    // A non-essential tracepoint missing is only skipped.
    std::fs::remove_dir_all(tp("io_uring_short_write").parent().unwrap()).unwrap();
    let old = Tracefs {
        root: dir.path().to_path_buf(),
        mounted_by_us: false,
    };
    let e = tracefs::plan(&old, false, "5.15.0-old").unwrap_err();
    assert!(matches!(e, ProbeError::UnsupportedKernel { .. }), "{e:?}");
    assert_eq!(e.exit_code(), 2);
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.starts_with("kernel 5.15.0-old lacks"), "{msg}");
    assert!(msg.contains("6.1 and newer"), "{msg}");
    assert!(
        msg.contains("no tracepoint io_uring:io_uring_link"),
        "{msg}"
    );
    assert!(
        msg.contains("io_uring_complete: field req is missing"),
        "{msg}"
    );
    assert!(!msg.contains("short_write"), "{msg}");

    // Without those two, it plans, skipping short_write.
    copy_tree(&six_one.root, dir.path());
    std::fs::remove_dir_all(tp("io_uring_short_write").parent().unwrap()).unwrap();
    let p = tracefs::plan(&old, false, &release).unwrap();
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].tracepoint, "io_uring_short_write");
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}
