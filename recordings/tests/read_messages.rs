//! The exact text of every read error the reader, the record decoder and
//! the field cursor can give: tests across the workspace (and people's
//! scripts) match on these, so a change of wording must be deliberate.

use ringside_recordings::codec::{Dec, Enc};
use ringside_recordings::decode::decode_record;
use ringside_recordings::encode::State;
use ringside_recordings::format::{self, Header, KernelInfo, KernelPointers, rtype};
use ringside_recordings::reader::{ReadOptions, Reader, Stop, read_all};
use ringside_recordings::{Item, ReadError, Replay, Writer};

/// A header whose bytes are the same on every machine and run.
fn header() -> Header {
    Header {
        format_version: format::FORMAT_VERSION,
        tool: "ringside".into(),
        tool_version: "0.0.0".into(),
        kernel: KernelInfo {
            sysname: "Linux".into(),
            release: "6.1.0".into(),
            version: "#1".into(),
            machine: "x86_64".into(),
        },
        wall_time_ns: 0,
        wall_time: format::rfc3339(0),
        mono_start_ns: 0,
        command_line: Vec::new(),
        source: "pin".into(),
        notes: Vec::new(),
        kernel_pointers: KernelPointers::Ids,
        extra: Default::default(),
    }
}

fn lost(n: u64) -> Item {
    Item::Lost {
        queue: "engine".into(),
        count: n,
    }
}

/// A complete recording of three items.
fn good() -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    for i in 0..3 {
        w.write_item(&lost(i)).unwrap();
    }
    w.finish(0).unwrap();
    w.into_inner()
}

fn header_only() -> Vec<u8> {
    format::header_bytes(&header())
}

/// A read error's class and text.
fn show(e: &ReadError) -> String {
    format!("{:?}: {e}", e.kind())
}

/// The error a strict read of `b` stops at.
fn strict(b: &[u8]) -> String {
    match read_all(b, ReadOptions::default()).1 {
        Err(e) => show(&e),
        Ok(Stop::Error(e)) => show(&e),
        Ok(Stop::End { .. }) => "<clean>".into(),
    }
}

fn with_frame(rt: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = header_only();
    format::put_frame(&mut b, rt, payload);
    b
}

fn enc(f: impl FnOnce(&mut Enc)) -> Vec<u8> {
    let mut e = Enc::default();
    f(&mut e);
    e.buf
}

/// The field error `decode_record` gives for `payload` as type `rt`.
fn field(rt: u8, payload: &[u8]) -> String {
    match decode_record(&mut State::default(), rt, payload) {
        Ok(r) => format!("<decoded {r:?}>"),
        Err(e) => e.to_string(),
    }
}

/// An engine event payload: `seq`, `t_ns`, then `rest`.
fn event(rest: impl FnOnce(&mut Enc)) -> Vec<u8> {
    enc(|e| {
        e.zz(0);
        e.zz(0);
        rest(e);
    })
}

/// A decision payload up to (not including) `decision.chain`: all zero.
fn decision_ctx(e: &mut Enc) {
    e.zz(0); // decision.seq
    e.var(0); // decision.prog
    e.var(0); // prog_name: a new string
    e.str("p");
    // ctx: user_data res cqe_flags chain_id step nsteps opcode attempt
    // ctx_flags fd off len buf_index _pad buf_off
    for _ in 0..6 {
        e.var(0);
    }
    e.u8(0);
    e.u8(0);
    for _ in 0..7 {
        e.var(0);
    }
}

/// A decision payload up to (not including) `decision.touched`: all zero,
/// with `view.fd`'s delta and one pending step given.
fn decision_head(e: &mut Enc, fd_delta: i64, pending: Option<u64>) {
    decision_ctx(e);
    e.zz(0); // decision.chain
    e.zz(0); // decision.step
    e.zz(0); // view.chain
    e.zz(0); // view.step
    e.zz(0); // view.nsteps
    e.u8(0); // view.opcode
    e.zz(fd_delta); // view.fd
    e.u8(0); // view.attempt
    match pending {
        None => e.var(0),
        Some(v) => {
            e.var(1);
            e.var(v);
        }
    }
}

/// A decision payload with no touched maps, calls or writes, `actions`
/// written by `act`, return 0 and then `tail` (the result onwards).
fn decision(act: impl FnOnce(&mut Enc), tail: impl FnOnce(&mut Enc)) -> Vec<u8> {
    event(|e| {
        decision_head(e, 0, None);
        e.var(0); // touched
        e.var(0); // calls
        e.var(0); // map_writes
        act(e);
        e.var(0); // ret
        tail(e);
    })
}

struct Broken;

impl std::io::Read for Broken {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("the disk is on fire"))
    }
}

fn reader_cases() -> Vec<(&'static str, String)> {
    let g = good();
    let h = header_only();
    let ds = h.len();
    let mut v: Vec<(&'static str, String)> = vec![
        ("empty", strict(b"")),
        ("jsonl", strict(b"{\"kind\":\"ring_setup\"}\n")),
        ("text", strict(b"hello, world, this is text")),
        ("magic prefix", strict(&format::MAGIC[..5])),
        ("fixed part cut", strict(&g[..12])),
    ];
    let mut b = g.clone();
    b[8] = 9;
    v.push(("newer version", strict(&b)));
    let mut b = g.clone();
    b[8] = 0;
    b[9] = 0;
    v.push(("version zero", strict(&b)));
    let mut b = g.clone();
    b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    v.push(("header too long", strict(&b)));
    v.push(("header cut", strict(&g[..30])));
    let mut b = g.clone();
    b[20] ^= 1;
    v.push(("header checksum", strict(&b)));
    let mut b = format::MAGIC.to_vec();
    b.extend_from_slice(&format::FORMAT_VERSION.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(b"{\"tool\":1");
    let crc = crc32fast::hash(&b[8..]);
    b.extend_from_slice(&crc.to_le_bytes());
    v.push(("header json", strict(&b)));
    let mut b = h.clone();
    b.push(0x80);
    v.push(("cut in length", strict(&b)));
    let mut b = h.clone();
    b.extend_from_slice(&[0xff; 6]);
    v.push(("length too many bytes", strict(&b)));
    let mut b = h.clone();
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    v.push(("length too large", strict(&b)));
    let mut b = with_frame(rtype::LOST, &enc(|e| e.str("engine")));
    b.truncate(b.len() - 2);
    v.push(("record cut", strict(&b)));
    let mut b = with_frame(rtype::LOST, &enc(|e| e.str("engine")));
    b[ds + 3] ^= 0x10;
    v.push(("record checksum", strict(&b)));
    v.push(("unknown type", strict(&with_frame(0x7e, b"future"))));
    let mut b = with_frame(rtype::LOST, &enc(|e| e.str("engine")));
    b[ds + 1] = 0x7e;
    v.push(("unknown type, bad checksum", strict(&b)));
    v.push(("no end record", strict(&g[..g.len() - 8])));
    v.push(("no end record, no items", strict(&h)));
    let mut b = h.clone();
    format::put_frame(&mut b, rtype::LOST, &enc(|e| e.str("engine")));
    v.push(("malformed", strict(&b)));
    let mut sync = format::SYNC_MARKER.to_vec();
    sync.push(7);
    v.push(("sync index", strict(&with_frame(rtype::SYNC, &sync))));
    let mut b = g.clone();
    b.extend_from_slice(b"junk");
    v.push(("trailing data", strict(&b)));
    let mut b = g.clone();
    b.extend_from_slice(&vec![0; (1 << 20) + 10]);
    v.push(("trailing data, over a MiB", strict(&b)));
    let end = enc(|e| {
        e.var(5);
        e.var(0);
    });
    v.push(("end count", strict(&with_frame(rtype::END, &end))));
    let e = Reader::new(Broken, "broken", ReadOptions::default()).unwrap_err();
    v.push(("read failed", show(&e)));
    let e = Reader::open("/nonexistent/ringside/x.rsrec").unwrap_err();
    v.push(("open", show(&e)));
    v
}

fn replay_cases() -> Vec<(&'static str, String)> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.rsrec");
    std::fs::write(&p, good()).unwrap();
    let r = Replay::open(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    let e = r.iter_from(0).err().unwrap();
    let e = show(&e).replace(&dir.path().display().to_string(), "<dir>");
    vec![("replay reopen", e)]
}

fn field_cases() -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = Vec::new();
    let d = |b: &'static [u8]| Dec::new(b);
    v.push(("u8", d(&[]).u8("f").unwrap_err().to_string()));
    v.push(("var cut", d(&[0x80]).var("f").unwrap_err().to_string()));
    let over = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
    v.push(("var overflow", d(over).var("f").unwrap_err().to_string()));
    let long = &[
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0,
    ];
    v.push(("var long", d(long).var("f").unwrap_err().to_string()));
    let big = &[0xff, 0xff, 0xff, 0xff, 0x1f];
    v.push(("u32", d(big).u32("f").unwrap_err().to_string()));
    v.push(("u16", d(big).u16("f").unwrap_err().to_string()));
    v.push(("i32", d(big).i32("f").unwrap_err().to_string()));
    v.push((
        "i32 neg",
        d(&[0xfd, 0xff, 0xff, 0xff, 0x1f])
            .i32("f")
            .unwrap_err()
            .to_string(),
    ));
    v.push(("len", d(&[5, 1]).len("f").unwrap_err().to_string()));
    v.push(("raw", d(&[1, 2]).raw(3, "f").unwrap_err().to_string()));
    v.push((
        "opt_bytes",
        d(&[6, 1]).opt_bytes("f").unwrap_err().to_string(),
    ));
    v.push(("str", d(&[2, 0xc3, 0x28]).str("f").unwrap_err().to_string()));
    v.push((
        "opt_str",
        d(&[3, 0xff, 0x41]).opt_str("f").unwrap_err().to_string(),
    ));
    let esc = &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x04,
    ];
    v.push(("opt_var", d(esc).opt_var("f").unwrap_err().to_string()));
    let mut x = Dec::new(&[1, 2, 3]);
    x.u8("f").unwrap();
    v.push(("finish", x.finish("f").unwrap_err().to_string()));

    v.push(("sync marker", field(rtype::SYNC, &[0; 9])));
    v.push(("unknown record type", field(0x7e, b"")));
    v.push(("end trailing", field(rtype::END, &[0, 0, 0])));
    v.push(("lost utf8", field(rtype::LOST, &[1, 0xff, 0])));
    let ring = |when: u8, have: u64| {
        enc(|e| {
            for _ in 0..4 {
                e.var(0);
            }
            e.u8(when);
            e.var(0);
            e.var(have);
        })
    };
    v.push(("ring.when", field(rtype::RING, &ring(9, 0))));
    v.push(("ring.have", field(rtype::RING, &ring(1, 1 << 40))));
    let probe = |kind: u8, mask: u64, delta: Option<i64>| {
        enc(|e| {
            e.u8(kind);
            e.var(mask);
            if let Some(d) = delta {
                e.zz(d);
            }
        })
    };
    v.push((
        "probe.fields",
        field(rtype::PROBE, &probe(1, 1 << 20, None)),
    ));
    v.push(("probe.kind", field(rtype::PROBE, &probe(0xee, 0, None))));
    // Field 3 (`res`) is 4 bytes wide.
    let narrow = 3;
    let mut p = enc(|e| {
        e.u8(1);
        e.var(1 << narrow);
        e.zz(-1);
    });
    v.push(("probe.field", field(rtype::PROBE, &p)));
    p.clear();
    v.push(("probe empty", field(rtype::PROBE, &p)));
    let step_added = event(|e| {
        e.var(0);
        e.var(0);
        e.u8(7);
    });
    v.push(("placement", field(rtype::STEP_ADDED, &step_added)));
    let app = |step: Option<u64>, kind: u8| {
        event(|e| {
            e.var(0);
            e.opt_var(step);
            e.var(0);
            e.zz(0);
            e.var(0);
            e.u8(kind);
        })
    };
    v.push((
        "app step",
        field(rtype::APP_COMPLETION, &app(Some(1 << 33), 0)),
    ));
    v.push(("app kind", field(rtype::APP_COMPLETION, &app(None, 9))));
    v.push((
        "msgpack",
        field(rtype::ENGINE_GENERIC, &event(|e| e.u8(0xc1))),
    ));
    let string_ref = event(|e| {
        e.zz(0);
        e.var(0);
        e.var(5);
    });
    v.push(("string ref", field(rtype::DECISION, &string_ref)));
    let step = event(|e| {
        decision_ctx(e);
        e.zz(0); // decision.chain
        e.zz(-1); // decision.step
    });
    v.push(("decision.step", field(rtype::DECISION, &step)));
    let fd = event(|e| decision_head(e, i64::MAX, None));
    v.push(("view.fd", field(rtype::DECISION, &fd)));
    let pending = event(|e| decision_head(e, 0, Some(1 << 40)));
    v.push(("view.pending", field(rtype::DECISION, &pending)));
    let calls = event(|e| {
        decision_head(e, 0, None);
        e.var(0); // touched
        e.var(1); // calls
        for _ in 0..7 {
            e.var(0); // helper, args, ret
        }
        e.u8(99);
    });
    v.push(("call detail", field(rtype::DECISION, &calls)));
    let no_actions = |e: &mut Enc| e.var(0);
    let action = decision(
        |e| {
            e.var(1);
            e.u8(9);
        },
        |_| {},
    );
    v.push(("action", field(rtype::DECISION, &action)));
    v.push((
        "result",
        field(rtype::DECISION, &decision(no_actions, |e| e.u8(9))),
    ));
    let verdict = decision(no_actions, |e| {
        e.u8(0);
        e.u8(9);
    });
    v.push(("verdict", field(rtype::DECISION, &verdict)));
    let budget = decision(no_actions, |e| {
        e.u8(3);
        e.u8(9);
    });
    v.push(("budget", field(rtype::DECISION, &budget)));
    let exec = decision(no_actions, |e| {
        e.u8(0);
        e.u8(0);
        e.var(0);
        e.var(0);
        e.u8(9);
    });
    v.push(("exec", field(rtype::DECISION, &exec)));
    v
}

/// Case, then `kind: Display` (the crate version as `<version>`).
const EXPECTED: &[(&str, &str)] = &[
    (
        "empty",
        "NotARecording: <memory>: offset 0: the file is empty",
    ),
    (
        "jsonl",
        "NotARecording: <memory>: offset 0: not a ringside recording: it starts with 7b 22 6b 69 6e 64 22 3a where a recording starts with 89 52 53 52 45 43 0d 0a (it looks like JSON Lines, e.g. `--headless` or `export --format jsonl` output)",
    ),
    (
        "text",
        "NotARecording: <memory>: offset 0: not a ringside recording: it starts with 68 65 6c 6c 6f 2c 20 77 where a recording starts with 89 52 53 52 45 43 0d 0a",
    ),
    (
        "magic prefix",
        "Truncated: <memory>: offset 0: the header is cut short: 5 bytes, the fixed part has 16",
    ),
    (
        "fixed part cut",
        "Truncated: <memory>: offset 12: the header is cut short: 12 bytes, the fixed part has 16",
    ),
    (
        "newer version",
        "NewerVersion: <memory>: offset 8: field format_version: 9 is newer than this ringside (<version>) reads (up to 3): use a newer ringside",
    ),
    (
        "version zero",
        "BadHeader: <memory>: offset 8: field format_version: 0 is not a version",
    ),
    (
        "header too long",
        "BadHeader: <memory>: offset 12: field header_len: 4294967295 bytes exceeds the limit of 1048576",
    ),
    (
        "header cut",
        "Truncated: <memory>: offset 30: the header is cut short: it needs 310 bytes, the file has 30",
    ),
    (
        "header checksum",
        "Checksum: <memory>: offset 306: header checksum mismatch: stored 0x7f62cae4, computed 0x021998ff",
    ),
    (
        "header json",
        "BadHeader: <memory>: offset 16: header body (JSON): invalid type: integer `1`, expected a string at line 1 column 9",
    ),
    (
        "cut in length",
        "Truncated: <memory>: offset 310: the record at offset 310 is cut short inside its length (1 bytes left)",
    ),
    (
        "length too many bytes",
        "Checksum: <memory>: offset 310: the record at offset 310 has a damaged length (more than 5 length bytes)",
    ),
    (
        "length too large",
        "Checksum: <memory>: offset 310: the record at offset 310 has a damaged length: 4294967295 bytes exceeds the limit of 67108864",
    ),
    (
        "record cut",
        "Truncated: <memory>: offset 310: the record at offset 310 needs 13 bytes but the file ends 11 bytes later (cut short, or its length is damaged)",
    ),
    (
        "record checksum",
        "Checksum: <memory>: offset 310: checksum mismatch in the record at offset 310 (type 0x30 lost, 7 payload bytes): stored 0x3d1fa40e, computed 0x3ec9a695",
    ),
    (
        "unknown type",
        "UnknownType: <memory>: offset 310: record type 0x7e at offset 310 is not known to this ringside (<version>, format 3): the file may come from a newer ringside",
    ),
    (
        "unknown type, bad checksum",
        "Checksum: <memory>: offset 310: checksum mismatch in the record at offset 310 (type 0x7e unknown, 7 payload bytes): stored 0x3d1fa40e, computed 0x010874d1",
    ),
    (
        "no end record",
        "Truncated: <memory>: offset 352: the file ends at offset 352 without an end record: the recording was cut short (the writer crashed, was killed, or is still writing); 3 items read",
    ),
    (
        "no end record, no items",
        "Truncated: <memory>: offset 310: the file ends at offset 310 without an end record: the recording was cut short (the writer crashed, was killed, or is still writing); 0 items read",
    ),
    (
        "malformed",
        "BadRecord: <memory>: offset 310: the record at offset 310 (type 0x30 lost) is malformed: field `lost.count` at payload byte 7: the record ends inside a varint",
    ),
    (
        "sync index",
        "BadRecord: <memory>: offset 310: the sync record at offset 310 says the next item is 7, but 0 items were read",
    ),
    (
        "trailing data",
        "TrailingData: <memory>: offset 360: 4 bytes follow the end record at offset 352",
    ),
    (
        "trailing data, over a MiB",
        "TrailingData: <memory>: offset 360: 1048586+ bytes follow the end record at offset 352",
    ),
    (
        "end count",
        "BadRecord: <memory>: offset 310: the end record says 5 items were written, but 0 were read",
    ),
    (
        "read failed",
        "Io: broken: offset 0: read failed: the disk is on fire",
    ),
    (
        "open",
        "Io: /nonexistent/ringside/x.rsrec: offset 0: cannot open: No such file or directory (os error 2)",
    ),
    (
        "replay reopen",
        "Io: <dir>/r.rsrec: offset 310: cannot read: No such file or directory (os error 2)",
    ),
    ("u8", "field `f` at payload byte 0: the record ends here"),
    (
        "var cut",
        "field `f` at payload byte 0: the record ends inside a varint",
    ),
    (
        "var overflow",
        "field `f` at payload byte 0: varint overflows 64 bits",
    ),
    (
        "var long",
        "field `f` at payload byte 0: varint overflows 64 bits",
    ),
    (
        "u32",
        "field `f` at payload byte 0: 8589934591 does not fit in 32 bits",
    ),
    (
        "u16",
        "field `f` at payload byte 0: 8589934591 does not fit in 16 bits",
    ),
    (
        "i32",
        "field `f` at payload byte 0: -4294967296 does not fit in a signed 32-bit value",
    ),
    (
        "i32 neg",
        "field `f` at payload byte 0: -4294967295 does not fit in a signed 32-bit value",
    ),
    (
        "len",
        "field `f` at payload byte 0: length 5 exceeds the 1 bytes left in the record",
    ),
    (
        "raw",
        "field `f` at payload byte 0: needs 3 bytes, 2 left in the record",
    ),
    (
        "opt_bytes",
        "field `f` at payload byte 0: length 5 exceeds the 1 bytes left in the record",
    ),
    (
        "str",
        "field `f` at payload byte 0: not UTF-8: invalid utf-8 sequence of 1 bytes from index 0",
    ),
    (
        "opt_str",
        "field `f` at payload byte 0: not UTF-8: invalid utf-8 sequence of 1 bytes from index 0",
    ),
    (
        "opt_var",
        "field `f` at payload byte 10: bad escape 4 after an all-ones optional value",
    ),
    (
        "finish",
        "field `f` at payload byte 1: 2 unexpected bytes after the last field",
    ),
    (
        "sync marker",
        "field `sync.marker` at payload byte 0: wrong sync marker",
    ),
    (
        "unknown record type",
        "field `type` at payload byte 0: record type 0x7e is not known to this version",
    ),
    (
        "end trailing",
        "field `end` at payload byte 2: 1 unexpected bytes after the last field",
    ),
    (
        "lost utf8",
        "field `lost.queue` at payload byte 0: not UTF-8: invalid utf-8 sequence of 1 bytes from index 0",
    ),
    (
        "ring.when",
        "field `ring.when` at payload byte 4: unknown code 9",
    ),
    (
        "ring.have",
        "field `ring.have` at payload byte 6: field mask 0x10000000000 names fields this version does not know",
    ),
    (
        "probe.fields",
        "field `probe.fields` at payload byte 1: field mask 0x100000 names fields this version does not know",
    ),
    (
        "probe.kind",
        "field `probe.kind` at payload byte 0: probe event of unknown kind 238",
    ),
    (
        "probe.field",
        "field `probe.field` at payload byte 2: value 0xffffffffffffffff does not fit in 4 bytes",
    ),
    (
        "probe empty",
        "field `probe.kind` at payload byte 0: the record ends here",
    ),
    (
        "placement",
        "field `step_added.place` at payload byte 4: 7 is not a placement (0..=2)",
    ),
    (
        "app step",
        "field `app_completion.step` at payload byte 3: 8589934592 is out of range",
    ),
    (
        "app kind",
        "field `app_completion.kind` at payload byte 7: 9 is not a completion kind",
    ),
    (
        "msgpack",
        "field `event` at payload byte 2: MessagePack body: wrong msgpack marker Reserved",
    ),
    (
        "string ref",
        "field `decision.prog_name` at payload byte 4: string reference 5 but only 0 strings are defined since the last sync",
    ),
    (
        "decision.step",
        "field `decision.step` at payload byte 23: 0 + -1 is out of range",
    ),
    (
        "view.fd",
        "field `view.fd` at payload byte 28: 0 + 9223372036854775807 is out of range",
    ),
    (
        "view.pending",
        "field `view.pending` at payload byte 31: step 274877906944 is out of range",
    ),
    (
        "call detail",
        "field `call.detail` at payload byte 40: 99 is not a call detail kind",
    ),
    (
        "action",
        "field `action` at payload byte 35: 9 is not an action kind",
    ),
    (
        "result",
        "field `decision.result` at payload byte 36: 9 is not a result kind",
    ),
    (
        "verdict",
        "field `decision.result.verdict` at payload byte 37: 9 is not a verdict",
    ),
    (
        "budget",
        "field `budget.kind` at payload byte 37: 9 is not a budget kind",
    ),
    (
        "exec",
        "field `decision.exec` at payload byte 40: 9 is not an exec mode",
    ),
];

#[test]
fn every_read_error_keeps_its_text() {
    let version = env!("CARGO_PKG_VERSION");
    let got: Vec<(&str, String)> = reader_cases()
        .into_iter()
        .chain(replay_cases())
        .chain(field_cases())
        .map(|(k, m)| (k, m.replace(version, "<version>")))
        .collect();
    let listing: String = got
        .iter()
        .map(|(k, m)| format!("    ({k:?}, {m:?}),\n"))
        .collect();
    let same = got.len() == EXPECTED.len()
        && got
            .iter()
            .zip(EXPECTED)
            .all(|(g, e)| g.0 == e.0 && g.1 == e.1);
    assert!(same, "messages changed; now:\n{listing}");
}
