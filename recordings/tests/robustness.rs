//! A damaged or hostile file never panics the reader, never yields a record
//! that was not written, and says where and why it stopped.

mod common;

use proptest::prelude::*;
use ringside_recordings::format::{self, rtype};
use ringside_recordings::reader::{ErrorKind, ReadOptions, Stop, read_all};
use ringside_recordings::{Entry, FieldProblem, Header, ReadProblem, Writer};
use std::sync::OnceLock;

fn small() -> &'static (Vec<u8>, Vec<Entry>) {
    static S: OnceLock<(Vec<u8>, Vec<Entry>)> = OnceLock::new();
    S.get_or_init(|| {
        let demo = common::demo_items();
        let items = common::small_items(&demo);
        let mut w = Writer::new(Vec::new(), &Header::keeping_pointers("small")).unwrap();
        for (i, it) in items.iter().enumerate() {
            w.write_item(it).unwrap();
            if i % 7 == 6 {
                w.sync().unwrap();
            }
            if i == 3 {
                w.write_clock(123_456_789).unwrap();
            }
        }
        w.finish(0).unwrap();
        let bytes = w.into_inner();
        eprintln!(
            "small recording: {} items, {} bytes",
            items.len(),
            bytes.len()
        );
        let (entries, stop) = read_all(&bytes, ReadOptions::default());
        assert!(stop.unwrap().is_clean());
        assert_eq!(entries.len(), items.len());
        for (e, it) in entries.iter().zip(&items) {
            assert_eq!(&e.item, it);
        }
        (bytes, entries)
    })
}

const ITEM_TYPES: [u8; 11] = [
    rtype::ENGINE_GENERIC,
    rtype::SUBMITTED,
    rtype::COMPLETED,
    rtype::CHAIN_STARTED,
    rtype::STEP_ADDED,
    rtype::APP_COMPLETION,
    rtype::UNLINKED,
    rtype::DECISION,
    rtype::PROBE,
    rtype::RING,
    rtype::LOST,
];

#[test]
fn small_recording_has_every_record_type() {
    let (bytes, _) = small();
    let types: std::collections::BTreeSet<u8> = common::frames(bytes).iter().map(|f| f.2).collect();
    for t in ITEM_TYPES
        .iter()
        .chain(&[rtype::SYNC, rtype::END, rtype::CLOCK])
    {
        assert!(
            types.contains(t),
            "no record of type {t:#x} ({})",
            rtype::name(*t)
        );
    }
}

#[test]
fn truncation_at_every_byte_reads_every_complete_record_before_the_cut() {
    let (bytes, entries) = small();
    let frames = common::frames(bytes);
    let data_start = frames[0].0;
    for cut in 0..bytes.len() {
        let (got, stop) = read_all(&bytes[..cut], ReadOptions::default());
        if cut < data_start {
            assert!(got.is_empty());
            let e = stop.expect_err("a cut header is an error");
            assert!(
                matches!(e.kind(), ErrorKind::Truncated | ErrorKind::NotARecording),
                "cut {cut}: {e}"
            );
            continue;
        }
        let complete_items = frames
            .iter()
            .filter(|f| f.1 <= cut && ITEM_TYPES.contains(&f.2))
            .count();
        assert_eq!(got.len(), complete_items, "cut at {cut}");
        assert_eq!(&got[..], &entries[..complete_items], "cut at {cut}");
        match stop.unwrap() {
            Stop::Error(e) => {
                assert_eq!(e.kind(), ErrorKind::Truncated, "cut {cut}: {e}");
                // Where: the start of the cut record, or the end of the data.
                assert!(e.offset as usize <= cut, "cut {cut}: {e}");
                assert!(e.to_string().contains("offset"), "{e}");
            }
            Stop::End { .. } => panic!("cut {cut}: a cut file read as complete"),
        }
    }
    let (got, stop) = read_all(bytes, ReadOptions::default());
    assert_eq!(got.len(), entries.len());
    assert!(stop.unwrap().is_clean());
}

fn flip(bytes: &[u8], flips: &[(usize, u8)]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for &(at, bit) in flips {
        let i = at % b.len();
        b[i] ^= 1 << (bit % 8);
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Strict reading: a prefix of what was written, then a located error.
    #[test]
    fn bit_flips_yield_only_written_records(flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let (bytes, entries) = small();
        let b = flip(bytes, &flips);
        let (got, stop) = read_all(&b, ReadOptions::default());
        prop_assert!(got.len() <= entries.len());
        prop_assert_eq!(&got[..], &entries[..got.len()]);
        if let Ok(Stop::Error(e)) = &stop {
            prop_assert!((e.offset as usize) <= b.len(), "{}", e);
        }
    }

    /// Resynchronizing: every record returned is the one written at that index.
    #[test]
    fn bit_flips_with_resync_yield_only_written_records(flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let (bytes, entries) = small();
        let b = flip(bytes, &flips);
        let (got, _) = read_all(&b, ReadOptions { resync: true, collect_syncs: true });
        for e in &got {
            let orig = entries.iter().find(|o| o.index == e.index);
            prop_assert!(orig.is_some(), "index {} was never written", e.index);
            prop_assert_eq!(&orig.unwrap().item, &e.item);
        }
    }

    /// Arbitrary bytes after a valid header: no panic.
    #[test]
    fn garbage_records_never_panic(tail in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut b = format::header_bytes(&Header::keeping_pointers("garbage"));
        b.extend_from_slice(&tail);
        let _ = read_all(&b, ReadOptions::default());
        let _ = read_all(&b, ReadOptions { resync: true, collect_syncs: true });
    }
}

#[test]
fn resync_skips_a_damaged_record_and_reports_its_offset() {
    let (bytes, entries) = small();
    let frames = common::frames(bytes);
    // Damage the payload of an item record in the middle.
    let (start, end, _) = *frames
        .iter()
        .filter(|f| f.2 == rtype::COMPLETED || f.2 == rtype::PROBE)
        .nth(3)
        .unwrap();
    let mut b = bytes.clone();
    b[(start + end) / 2] ^= 0x10;
    let (got, stop) = read_all(&b, ReadOptions::default());
    let Stop::Error(e) = stop.unwrap() else {
        panic!("damage not found")
    };
    assert_eq!(e.kind(), ErrorKind::Checksum, "{e}");
    assert_eq!(e.offset as usize, start, "{e}");
    assert!(
        matches!(e.problem, ReadProblem::RecordChecksum { at, .. } if at as usize == start),
        "{e}"
    );
    assert!(got.len() < entries.len());

    let (got2, _) = read_all(
        &b,
        ReadOptions {
            resync: true,
            collect_syncs: false,
        },
    );
    assert!(
        got2.len() > got.len(),
        "resync found nothing after the damage"
    );
    assert!(got2.len() < entries.len());
    assert_eq!(got2.last(), entries.last());
}

#[test]
fn unknown_record_type_and_newer_version_are_named() {
    let (bytes, _) = small();
    let frames = common::frames(bytes);
    // An unknown record type with a valid checksum, after the first frames.
    let at = frames[3].0;
    let mut b = bytes[..at].to_vec();
    format::put_frame(&mut b, 0x7e, b"future");
    b.extend_from_slice(&bytes[at..]);
    let (got, stop) = read_all(&b, ReadOptions::default());
    assert_eq!(got.len(), 3);
    let Stop::Error(e) = stop.unwrap() else {
        panic!()
    };
    assert_eq!(e.kind(), ErrorKind::UnknownType);
    assert_eq!(e.offset as usize, at);
    assert!(
        matches!(
            e.problem,
            ReadProblem::UnknownRecordType {
                record_type: 0x7e,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("newer"), "{e}");

    // A newer format version.
    let mut b = bytes.clone();
    b[8] = 9;
    let (got, stop) = read_all(&b, ReadOptions::default());
    assert!(got.is_empty());
    let e = stop.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NewerVersion);
    assert_eq!(e.problem, ReadProblem::NewerVersion { version: 9 }, "{e}");
    assert!(e.to_string().contains("format_version"), "{e}");

    // Not a recording; JSON Lines gets a hint.
    let e = read_all(b"{\"kind\":\"ring_setup\"}\n", ReadOptions::default())
        .1
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotARecording);
    assert!(e.problem.looks_like_jsonl(), "{e}");
    assert!(e.to_string().contains("JSON Lines"), "{e}");
    let e = read_all(b"", ReadOptions::default()).1.unwrap_err();
    assert_eq!(e.problem, ReadProblem::Empty, "{e}");

    // Bytes after the end record.
    let mut b = bytes.clone();
    b.extend_from_slice(b"junk");
    let Stop::Error(e) = read_all(&b, ReadOptions::default()).1.unwrap() else {
        panic!()
    };
    assert_eq!(e.kind(), ErrorKind::TrailingData);
    assert_eq!(e.offset as usize, bytes.len());
}

#[test]
fn malformed_payload_names_the_field() {
    // A decision record whose CRC is right but whose content is cut.
    let (bytes, _) = small();
    let frames = common::frames(bytes);
    let (start, end, _) = *frames.iter().find(|f| f.2 == rtype::DECISION).unwrap();
    let frame = &bytes[start..end];
    // Re-frame a shortened payload with a valid checksum.
    let hl = 1 + (frame[0] & 0x80 != 0) as usize + (frame.len() > 16384 + 8) as usize;
    let payload = &frame[hl + 1..frame.len() - 4];
    let mut b = bytes[..start].to_vec();
    format::put_frame(&mut b, rtype::DECISION, &payload[..payload.len() / 2]);
    let (_, stop) = read_all(&b, ReadOptions::default());
    let Stop::Error(e) = stop.unwrap() else {
        panic!()
    };
    assert_eq!(e.kind(), ErrorKind::BadRecord, "{e}");
    assert_eq!(e.offset as usize, start);
    assert!(matches!(e.problem, ReadProblem::Malformed { .. }), "{e}");
    assert!(e.to_string().contains("field `"), "{e}");
}

/// A damaged ring record (valid checksum, bad content) stops the reader
/// with the field and the record's offset, never a panic.
#[test]
fn malformed_ring_record_names_the_field() {
    let (bytes, _) = small();
    let frames = common::frames(bytes);
    let rings: Vec<(usize, usize, u8)> = frames
        .iter()
        .copied()
        .filter(|f| f.2 == rtype::RING)
        .collect();
    assert_eq!(rings.len(), 4);
    let payload_of = |(start, end, _): (usize, usize, u8)| {
        // Ring records are small: a one-byte length.
        assert!(bytes[start] & 0x80 == 0);
        bytes[start + 2..end - 4].to_vec()
    };
    let read_with = |start: usize, p: &[u8]| {
        let mut b = bytes[..start].to_vec();
        format::put_frame(&mut b, rtype::RING, p);
        let (got, stop) = read_all(&b, ReadOptions::default());
        let Stop::Error(e) = stop.unwrap() else {
            panic!("damage not reported")
        };
        (got.len(), e)
    };
    let start = rings[0].0;
    let payload = payload_of(rings[0]);
    let (good, _) = read_with(start, &[]);
    // Cut at every byte: always a field error at this record, no item.
    for cut in 0..payload.len() {
        let (n, e) = read_with(start, &payload[..cut]);
        assert_eq!(e.kind(), ErrorKind::BadRecord, "cut {cut}: {e}");
        assert_eq!(e.offset as usize, start, "{e}");
        assert!(
            matches!(&e.problem, ReadProblem::Malformed { field, .. } if field.field.starts_with("ring.")),
            "cut {cut}: {e}"
        );
        assert_eq!(n, good, "no item from the damaged record");
    }
    // ts_ns 1_000_000 (3 bytes), tgid 4242 (2), tid 0, cpu 0, then `when`.
    let mut p = payload.clone();
    assert_eq!(p[7], 1, "when = create");
    p[7] = 9;
    let (_, e) = read_with(start, &p);
    assert!(
        matches!(&e.problem, ReadProblem::Malformed { field, .. }
            if field.field == "ring.when" && field.problem == FieldProblem::UnknownWhen { code: 9 }),
        "{e}"
    );
    // Trailing bytes after the last field.
    let mut p = payload.clone();
    p.push(0);
    let (_, e) = read_with(start, &p);
    assert_eq!(e.kind(), ErrorKind::BadRecord, "{e}");
    assert!(
        matches!(&e.problem, ReadProblem::Malformed { field, .. }
            if matches!(field.problem, FieldProblem::TrailingBytes { extra: 1 })),
        "{e}"
    );
    // A buffer count larger than the record (the attach record has no
    // buffers: its last byte is their count).
    let start = rings[1].0;
    let mut p = payload_of(rings[1]);
    *p.last_mut().unwrap() = 0x7f;
    let (_, e) = read_with(start, &p);
    assert!(
        matches!(&e.problem, ReadProblem::Malformed { field, .. }
            if field.field == "ring.buffers"
                && matches!(field.problem, FieldProblem::LengthExceeds { len: 0x7f, .. })),
        "{e}"
    );
    // A field mask naming fields this version does not know.
    let mut p = payload_of(rings[1]);
    // ring is null (1 byte, 0) right after `when`; `have` follows in two
    // bytes (bits 0..11); bit 6 of its second byte is mask bit 13.
    assert_eq!(p[8], 0);
    assert!(p[9] & 0x80 != 0 && p[10] & 0x80 == 0);
    p[10] |= 0x40;
    let (_, e) = read_with(start, &p);
    assert!(
        matches!(&e.problem, ReadProblem::Malformed { field, .. }
            if field.field == "ring.have" && matches!(field.problem, FieldProblem::UnknownFields { .. })),
        "{e}"
    );
}
