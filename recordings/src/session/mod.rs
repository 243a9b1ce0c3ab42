//! What every consumer of a session's items shares, whether the items come
//! live or from a file: when each item happened ([`Clock`]) and the
//! programs that made its decisions, loaded again ([`Programs`]), which
//! also make inputs-only decisions whole ([`Completer`]). Replay,
//! export, `ringside check` and the UI all place items on this one line,
//! so a time the UI shows, a `:seek 1.5s` and a Chrome trace's `ts` agree.

mod clock;
mod complete;
mod programs;

pub use clock::{Clock, EPOCH_GAP_NS};
pub(crate) use complete::complete_with;
pub use complete::{CompleteFailure, Completer};
pub use programs::{LoadRecordedError, ProgSlot, Programs, load_recorded};
