//! The decision log, and where a stopped engine waits.

#[allow(unused_imports)]
use super::*;

use ringside_engine::decision::DecisionRecord;
use ringside_engine::event::{Event, EventRecord};
use std::sync::Arc;

/// A decision in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionEntry {
    /// Engine instance.
    pub epoch: u32,
    /// The event (its `event` is an [`Event::Decision`]).
    pub rec: Arc<EventRecord>,
    /// Timeline time.
    pub t_ns: u64,
}

impl DecisionEntry {
    /// The decision.
    pub fn decision(&self) -> &DecisionRecord {
        match &self.rec.event {
            Event::Decision(d) => d,
            _ => unreachable!("decision entries hold decisions"),
        }
    }
}

/// Where the engine is stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct PausedAt {
    /// Engine instance.
    pub epoch: u32,
    /// Why.
    pub reason: String,
    /// Decision number.
    pub decision: Option<u64>,
}

impl Model {
    /// The decision `seq` of engine instance `epoch`, if still kept.
    pub fn find_decision(&self, epoch: u32, seq: u64) -> Option<usize> {
        self.decisions
            .binary_search_by(|d| (d.epoch, d.decision().seq).cmp(&(epoch, seq)))
            .ok()
    }
}
