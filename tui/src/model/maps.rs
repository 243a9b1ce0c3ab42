//! Program maps as the events show them.

#[allow(unused_imports)]
use super::*;

use ringside_engine::event::MapInfo;
use std::collections::BTreeMap;

/// One program map, as the events show it.
#[derive(Clone, Debug, PartialEq)]
pub struct MapState {
    /// Engine instance.
    pub epoch: u32,
    /// Program that declared it.
    pub program: String,
    /// Definition.
    pub info: MapInfo,
    /// Key -> (value, timeline time of the last change).
    pub entries: BTreeMap<Vec<u8>, (Vec<u8>, u64)>,
    /// Writes seen.
    pub writes: u64,
}
