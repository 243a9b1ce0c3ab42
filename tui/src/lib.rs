//! ringside's terminal UI: one event path from any source to the views.
//!
//! Sources ([`source`], [`remote_client`], [`replay`]) run a collector thread
//! each and feed [`source::Msg`]s into one bounded channel; [`app::run`] is
//! the single draw loop that folds them into the [`model::Model`] and draws
//! the [`views`]. Live and replay differ only in the source.

pub mod app;
pub mod model;
pub mod remote_client;
pub mod replay;
pub mod source;
pub mod stepper;
pub mod term;
pub mod ui;
