//! A recording of about a million real events, for the seek test and
//! bench: the committed fio capture (`benches/fixtures/fio-randread.rsrec`,
//! 68k events of `fio --rw=randread --iodepth=32 --ioengine=io_uring`)
//! repeated, each copy's timestamps after the previous copy's.

use ringside_recordings::{Item, Writer};
use std::path::Path;

/// Write `n` events to `path`; the number written.
pub fn write_million(path: &Path, n: u64) -> u64 {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/fixtures/fio-randread.rsrec"
    );
    let mut reader = ringside_recordings::Reader::open(fixture).expect("the fio fixture opens");
    let header = reader.header().clone();
    let round: Vec<Item> = reader.by_ref().flatten().map(|e| e.item).collect();
    let ts = round.iter().filter_map(|it| match it {
        Item::Probe(ev) => Some(ev.header().ts_ns),
        _ => None,
    });
    let (lo, hi) = ts.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let step = hi.saturating_sub(lo) + 1_000;
    let file = std::fs::File::create(path).expect("creating the recording");
    let mut w = Writer::new(std::io::BufWriter::new(file), &header).expect("writing its header");
    let mut written = 0u64;
    'rounds: for k in 0.. {
        for it in &round {
            if written == n {
                break 'rounds;
            }
            let it = match it {
                Item::Probe(ev) => {
                    let mut ev = ev.clone();
                    ev.header_mut().ts_ns += k * step;
                    Item::Probe(ev)
                }
                other => other.clone(),
            };
            w.write_item(&it).expect("writing an event");
            written += 1;
        }
    }
    w.finish(0).expect("finishing the recording");
    written
}
