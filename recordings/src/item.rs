//! One thing that happened, from any source: the unit the UI, recordings and
//! replay all work on. Live and replay differ only in where items come from.

use ringside_engine::event::EventRecord;
use ringside_probes::ProbeEvent;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// An event from the engine or the kernel probes, or a note that some were lost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Item {
    /// An engine event (in-process engine, an engine behind a socket, or a recording).
    Engine(Arc<EventRecord>),
    /// A kernel probe event.
    Probe(ProbeEvent),
    /// Events a bounded queue had to drop (never silently).
    Lost {
        /// Which queue: "engine", "probes", "ui", "recorder".
        queue: String,
        /// How many.
        count: u64,
    },
}
