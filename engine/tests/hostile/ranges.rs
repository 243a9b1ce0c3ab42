//! Hostile programs: value ranges the verifier could get wrong.

use super::*;

/// The cases of this class.
pub(crate) fn cases() -> Vec<Case> {
    vec![
        // ---- value ranges ---------------------------------------------------
        case(
            "a divisor that may be 0",
            "ranges",
            asm(
                "ldxw r2, [r1+8]\nand64 r2, 1\nmov64 r3, 0x10000\ndiv64 r3, r2\nsub64 r3, 0x10000\nmov64 r4, r10\nadd64 r4, -8\nadd64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            no_at(7, "pointer offset out of range"),
        ),
        case(
            "mod bounds the result below the divisor",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nmod64 r2, 64\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "mod by a register that may be 0 keeps the dividend's range",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nldxw r3, [r1+8]\nand64 r3, 7\nmod64 r2, r3\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "and bounds",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nand64 r2, 0x1f9\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "and bounds (fits)",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nand64 r2, 0x1f0\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "or can raise the top bit",
            "ranges",
            asm(
                "ldxb r2, [r1+0]\nor64 r2, 0x100\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "xor of two bytes stays a byte",
            "ranges",
            asm(
                "ldxb r2, [r1+0]\nldxb r3, [r1+1]\nxor64 r2, r3\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "lsh that overflows the width",
            "ranges",
            asm(
                "ldxw r2, [r1+8]\nlsh32 r2, 8\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "add that may wrap",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nadd64 r2, 8\nmov64 r4, r10\nadd64 r4, r2\nstdw [r4-16], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "sub that may go below 0",
            "ranges",
            asm(
                "ldxb r2, [r1+0]\nsub64 r2, 16\nmov64 r4, r10\nadd64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "mul that may overflow",
            "ranges",
            asm(
                "ldxw r2, [r1+8]\nmul64 r2, 0x10000000\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "arsh of a value that may be negative",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\narsh64 r2, 56\nmov64 r4, r10\nadd64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "rsh bounds",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nrsh64 r2, 56\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "a 32-bit op on a wide value covers every low half",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nadd32 r2, 0\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "signed compare with a negative bound does not narrow",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\njsgt r2, -100, +3\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "unsigned compare narrows",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\njgt r2, 400, +5\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "off by one at the narrowing",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\njgt r2, 505, +5\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "jmp32 narrowing of a wide value says nothing",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\njgt32 r2, 400, +5\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "jne narrows only at the ends",
            "ranges",
            asm(
                "ldxb r2, [r1+0]\njne r2, 0, +3\nmov64 r0, 0\nstdw [r10-8], 0\nexit\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "narrowing the source operand too",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nmov64 r3, 400\njlt r3, r2, +5\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "jset does not narrow",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\njset r2, -512, +5\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
    ]
}
