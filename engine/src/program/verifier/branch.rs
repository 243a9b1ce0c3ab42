//! What a conditional jump teaches about its operands on each branch.

use super::*;

/// A value range, or None when a branch cannot be taken.
pub(super) type MaybeRange = Option<(u64, u64)>;

/// The comparison with operands swapped (`a op b` == `b mirror(op) a`).
pub(super) fn mirror(op: u8) -> u8 {
    match op {
        JMP_JGT => JMP_JLT,
        JMP_JLT => JMP_JGT,
        JMP_JGE => JMP_JLE,
        JMP_JLE => JMP_JGE,
        JMP_JSGT => JMP_JSLT,
        JMP_JSLT => JMP_JSGT,
        JMP_JSGE => JMP_JSLE,
        JMP_JSLE => JMP_JSGE,
        o => o,
    }
}

/// Narrow [lo, hi] by `x op k` being `taken`; None when that branch is impossible.
pub(super) fn refine_range(
    op: u8,
    is32: bool,
    lo: u64,
    hi: u64,
    k: u64,
    taken: bool,
) -> Option<(u64, u64)> {
    let (lo, hi, k) = if is32 {
        if hi > u32::MAX as u64 {
            return Some((lo, hi));
        }
        (lo, hi, k & u32::MAX as u64)
    } else {
        (lo, hi, k)
    };
    let signbit = if is32 { 1u64 << 31 } else { 1u64 << 63 };
    // Signed compares refine only when both sides are known non-negative.
    let op = match op {
        JMP_JSGT | JMP_JSGE | JMP_JSLT | JMP_JSLE => {
            if hi >= signbit || k >= signbit {
                return Some((lo, hi));
            }
            match op {
                JMP_JSGT => JMP_JGT,
                JMP_JSGE => JMP_JGE,
                JMP_JSLT => JMP_JLT,
                _ => JMP_JLE,
            }
        }
        o => o,
    };
    // Express "taken" and "not taken" as one of: x > k, x >= k, x < k, x <= k, x == k, x != k.
    let (op, k) = if taken {
        (op, k)
    } else {
        match op {
            JMP_JEQ => (JMP_JNE, k),
            JMP_JNE => (JMP_JEQ, k),
            JMP_JGT => (JMP_JLE, k),
            JMP_JGE => (JMP_JLT, k),
            JMP_JLT => (JMP_JGE, k),
            JMP_JLE => (JMP_JGT, k),
            _ => return Some((lo, hi)),
        }
    };
    let r = match op {
        JMP_JEQ => (lo.max(k), hi.min(k)),
        JMP_JNE => {
            if lo == hi && lo == k {
                return None;
            }
            (
                if lo == k { lo + 1 } else { lo },
                if hi == k { hi - 1 } else { hi },
            )
        }
        JMP_JGT => {
            if k == u64::MAX {
                return None;
            }
            (lo.max(k + 1), hi)
        }
        JMP_JGE => (lo.max(k), hi),
        JMP_JLT => {
            if k == 0 {
                return None;
            }
            (lo, hi.min(k - 1))
        }
        JMP_JLE => (lo, hi.min(k)),
        _ => (lo, hi), // JSET: no refinement
    };
    (r.0 <= r.1).then_some(r)
}
