//! Hostile programs: registers: uninitialised reads, clobbered caller-saved registers, r10.

use super::*;

/// The cases of this class.
pub(crate) fn cases() -> Vec<Case> {
    vec![
        // ---- registers ----------------------------------------------------------
        case(
            "read a register never written",
            "registers",
            asm("mov64 r0, r3\nexit"),
            no_at(0, "r3 is read before it is written"),
        ),
        case(
            "exit without a decision",
            "registers",
            asm("exit"),
            no_at(0, "exit without setting r0"),
        ),
        case(
            "read r1 after a call",
            "registers",
            asm("call 5\nmov64 r0, r1\nexit"),
            no_at(1, "r1 is read before it is written"),
        ),
        case(
            "read r5 after a call",
            "registers",
            asm("mov64 r5, 1\ncall 5\nmov64 r0, r5\nexit"),
            no("r5 is read before it is written"),
        ),
        case(
            "r6 survives a call",
            "registers",
            asm("mov64 r6, 1\ncall 5\nmov64 r0, r6\nexit"),
            Pass,
        ),
        case(
            "write r10",
            "registers",
            asm("mov64 r10, 0\nmov64 r0, 0\nexit"),
            no_at(0, "r10"),
        ),
        case(
            "add to r10",
            "registers",
            asm("add64 r10, -8\nmov64 r0, 0\nexit"),
            no_at(0, "r10"),
        ),
        case(
            "load into r10",
            "registers",
            asm("stdw [r10-8], 0\nldxdw r10, [r10-8]\nmov64 r0, 0\nexit"),
            no_at(1, "r10"),
        ),
        case(
            "lddw into r10",
            "registers",
            raw(vec![ins(0x18, 10, 0, 0, 1), ins(0, 0, 0, 0, 0)]),
            no_at(0, "r10"),
        ),
        case(
            "register 11",
            "registers",
            raw(vec![ins(0xb7, 11, 0, 0, 1)]),
            no_at(0, "bad register"),
        ),
        case(
            "source register 15",
            "registers",
            raw(vec![ins(0xbf, 0, 15, 0, 0)]),
            no_at(0, "bad register"),
        ),
        case(
            "a value that is a pointer on one path and a number on the other",
            "registers",
            asm("ldxw r2, [r1+8]\nmov64 r3, 0\njeq r2, 0, +1\nmov64 r3, r10\nmov64 r0, r3\nexit"),
            no("returns r0"),
        ),
    ]
}
