//! Shared by the recordings tests: a demo recording made in memory.

#![allow(dead_code)]

use ringside_engine::event::Overflow;
use ringside_engine::workload::{self, PrepareOptions};
use ringside_recordings::{Header, Item, Writer};
use std::sync::atomic::AtomicBool;

/// The demo's engine events as items.
pub fn demo_items() -> Vec<Item> {
    let mut p = workload::prepare_demo(&PrepareOptions::default()).expect("demo");
    let sub = p.engine().subscribe(1 << 20, Overflow::Block);
    let stop = AtomicBool::new(false);
    let (_report, engine) = p.run(&stop).expect("demo run");
    drop(engine);
    sub.rx.try_iter().map(Item::Engine).collect()
}

/// Encode items into a complete recording.
pub fn record(items: &[Item]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), &Header::new("test")).unwrap();
    for it in items {
        w.write_item(it).unwrap();
    }
    w.finish(0).unwrap();
    w.into_inner()
}
