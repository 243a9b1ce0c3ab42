//! The engine's clock: what times decisions and stamps events.
//!
//! The TSC where it is invariant (quanta calibrates it against the OS
//! clock once per process, in about 0.6 ms), the OS clock elsewhere. A
//! `clock_gettime` costs about 15 ns in a VM, a TSC read a few; a watched
//! step reads the clock three times (docs/bench.md, "Watching the engine").

use std::sync::LazyLock;

static CLOCK: LazyLock<quanta::Clock> = LazyLock::new(quanta::Clock::new);

/// Calibrate the clock now rather than at its first reading.
pub fn calibrate() {
    LazyLock::force(&CLOCK);
}

/// A reading, to subtract from a later one ([`nanos_between`]).
#[inline]
pub fn now() -> u64 {
    CLOCK.raw()
}

/// Nanoseconds from reading `start` to reading `end`.
#[inline]
pub fn nanos_between(start: u64, end: u64) -> u64 {
    CLOCK.delta_as_nanos(start, end)
}
