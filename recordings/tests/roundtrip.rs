//! Every demo event survives the format exactly, and the recording checks identical.

mod common;

use ringside_recordings::reader::{ReadOptions, read_all};
use ringside_recordings::{Reader, Stop, check};

#[test]
fn demo_round_trips_exactly_and_checks_identical() {
    let items = common::demo_items();
    assert!(items.len() > 500, "{} items", items.len());
    let bytes = common::record(&items);
    let (entries, stop) = read_all(&bytes, ReadOptions::default());
    let stop = stop.unwrap();
    assert!(matches!(stop, Stop::End { .. }), "{stop:?}");
    assert_eq!(entries.len(), items.len());
    for (e, it) in entries.iter().zip(&items) {
        assert_eq!(&e.item, it, "item {}", e.index);
    }
    let r = Reader::new(&bytes[..], "demo", ReadOptions::default()).unwrap();
    let report = check::check_reader(r);
    assert_eq!(report.divergence, None, "{report:#?}");
    assert_eq!(report.damage, None);
    assert!(report.decisions > 100, "{report:?}");
    assert_eq!(report.exit_code(), 0);
    eprintln!("{} items, {} bytes, {report:?}", items.len(), bytes.len());
}

/// A field the kernel did not have stays absent through a recording
/// (queue_async_work on 7.x has `hashed` and no `rw`; 6.x has both).
#[test]
fn absent_probe_fields_survive_the_format() {
    use ringside_probes::{Header, ProbeEvent, Ptr};
    use ringside_recordings::Item;
    let qaw = |rw: Option<u32>, hashed: Option<bool>| {
        Item::Probe(ProbeEvent::QueueAsyncWork {
            hdr: Header::default(),
            ring: Ptr(1),
            req: Ptr(2),
            user_data: 3,
            opcode: 22,
            flags: 1 << 40,
            work: Ptr(4),
            rw,
            hashed,
        })
    };
    let items = vec![
        qaw(Some(1), Some(true)),
        qaw(None, Some(true)),
        qaw(None, Some(false)),
        qaw(Some(0), Some(false)),
    ];
    let bytes = common::record(&items);
    let (entries, stop) = read_all(&bytes, ReadOptions::default());
    assert!(matches!(stop.unwrap(), Stop::End { .. }));
    let got: Vec<&Item> = entries.iter().map(|e| &e.item).collect();
    assert_eq!(got, items.iter().collect::<Vec<_>>());
}

/// Ring records (every field, none, extremes) come back exactly, and so
/// does a version 1 file (written before ring records existed).
#[test]
fn ring_records_round_trip_and_version_1_still_reads() {
    use ringside_recordings::Item;
    let items = common::ring_items();
    let bytes = common::record(&items);
    assert_eq!(
        u16::from_le_bytes([bytes[8], bytes[9]]),
        3,
        "format 3 files (2 added ring records, 3 inputs-only decisions)"
    );
    let (entries, stop) = read_all(&bytes, ReadOptions::default());
    assert!(matches!(stop.unwrap(), Stop::End { .. }));
    let got: Vec<&Item> = entries.iter().map(|e| &e.item).collect();
    assert_eq!(got, items.iter().collect::<Vec<_>>());
    // The JSON Lines export names the kind and keeps the lists.
    let v = ringside_recordings::export::item_json(&items[0]);
    assert_eq!(v["kind"], "ring");
    assert_eq!(v["files"][1]["path"], "/tmp/ünïcode file");

    let old = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/demo.rsrec"
    ))
    .unwrap();
    assert_eq!(
        u16::from_le_bytes([old[8], old[9]]),
        1,
        "the committed file is format 1"
    );
    let (entries, stop) = read_all(&old, ReadOptions::default());
    assert!(
        matches!(stop.unwrap(), Stop::End { .. }),
        "a format 1 file reads to its end"
    );
    assert!(entries.len() > 1000);
}
