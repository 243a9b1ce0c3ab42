//! ringside's terminal UI: one event path from any source to the views.
//!
//! Sources ([`source`]: the engine in this process, kernel probes,
//! [`source::remote`], [`source::replay`]) run a collector thread each and
//! feed [`source::Msg`]s into one bounded channel; [`run::run`] is the single
//! draw loop that folds them into the [`model::Model`] and draws the [`ui`].
//! Live and replay differ only in the source. The subcommands that use them
//! are the binary's (`src/cmd/`).

pub mod app;
pub mod model;
pub mod run;
pub mod source;
pub mod stepper;
pub mod term;
pub mod ui;
