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
