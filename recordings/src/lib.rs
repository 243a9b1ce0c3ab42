//! ringside recordings: the unit of events every consumer shares ([`Item`]),
//! and (issue 5) the recording format, writer, reader, replay and export.

pub mod item;

pub use item::Item;
