//! Hostile programs: what the verifier computes is what runs: arithmetic, shifts, byte swaps, division.

use super::*;

/// The cases of this class.
pub(crate) fn cases() -> Vec<Case> {
    vec![
        // ---- semantics: what the verifier computes is what runs ----------
        case(
            "mod32 by zero, shifted out",
            "semantics",
            asm("mov64 r2, 0\nmov64 r0, -1\nmod32 r0, r2\nrsh64 r0, 32\nexit"),
            Pass,
        ),
        case(
            "mod32 by zero as a stack offset",
            "semantics",
            asm(
                "mov64 r2, 0\nlddw r3, 0x100000008\nmod32 r3, r2\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nldxdw r0, [r4+0]\nexit",
            ),
            Pass,
        ),
        case(
            "mod32 by zero: the verifier knows the upper half is 0",
            "semantics",
            asm(
                "mov64 r2, 0\nmov64 r3, -1\nmod32 r3, r2\nmov64 r4, r10\nadd64 r4, r3\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no_at(4, "pointer offset out of range"),
        ),
        case(
            "mod32 by zero, 13-instruction write above the stack",
            "semantics",
            asm(
                "mov64 r2, 0\nlddw r3, 0xffffffff00000010\nmod32 r3, r2\nlsh64 r3, 3\nmov64 r4, r10\nadd64 r4, r3\nlddw r5, 0x414141414140\nstxdw [r4+0], r5\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "div32 by zero is 0",
            "semantics",
            asm("mov64 r2, 0\nmov64 r0, -1\ndiv32 r0, r2\nexit"),
            Pass,
        ),
        case(
            "div64 by zero is 0, then used as an offset",
            "semantics",
            asm(
                "mov64 r2, 0\nmov64 r3, 64\ndiv64 r3, r2\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "mod64 by zero keeps the dividend",
            "semantics",
            asm(
                "mov64 r2, 0\nmov64 r3, 600\nmod64 r3, r2\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "mov32 zero-extends",
            "semantics",
            asm(
                "mov64 r3, -1\nmov32 r3, r3\nrsh64 r3, 32\nmov64 r4, r10\nadd64 r4, r3\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "add32 wraps and zero-extends",
            "semantics",
            asm(
                "mov64 r3, -1\nadd32 r3, 1\nmov64 r4, r10\nadd64 r4, r3\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "neg32 zero-extends",
            "semantics",
            asm("mov64 r3, 1\nneg32 r3\nrsh64 r3, 32\nmov64 r0, r3\nexit"),
            Pass,
        ),
        case(
            "arsh32 zero-extends",
            "semantics",
            asm("mov64 r3, -8\narsh32 r3, 1\nrsh64 r3, 32\nmov64 r0, r3\nexit"),
            Pass,
        ),
        case(
            "le16 truncates",
            "semantics",
            asm(
                "mov64 r3, -1\nle16 r3\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "le32 truncates",
            "semantics",
            asm(
                "lddw r3, 0x100000008\nle32 r3\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "be16 swaps and truncates",
            "semantics",
            asm(
                "mov64 r3, 0x800\nbe16 r3\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "shift by a register is masked",
            "semantics",
            asm(
                "mov64 r2, 67\nmov64 r3, 1\nlsh64 r3, r2\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "shift32 by a register is masked",
            "semantics",
            asm(
                "mov64 r2, 35\nmov64 r3, 1\nlsh32 r3, r2\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "jeq with a negative immediate sign-extends",
            "semantics",
            asm(
                "ldxw r2, [r1+8]\nlsh64 r2, 32\narsh64 r2, 32\njeq r2, -11, +2\nmov64 r0, 0\nexit\nmov64 r0, 1\nexit",
            ),
            Pass,
        ),
        case(
            "jgt against -1 (all ones) is never taken",
            "semantics",
            asm(
                "ldxdw r2, [r1+0]\njgt r2, -1, +3\nmov64 r4, r10\nstdw [r4-8], 1\nja +2\nstdw [r10+0], 1\nmov64 r0, 0\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "jmp32 compares the low half only",
            "semantics",
            asm("lddw r2, 0x100000000\njeq32 r2, 0, +2\nmov64 r0, 0\nexit\nmov64 r0, 1\nexit"),
            Pass,
        ),
        case(
            "64-bit immediates are sign-extended",
            "semantics",
            asm(
                "mov64 r3, 0\nadd64 r3, -8\nmov64 r4, r10\nadd64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "32-bit immediates in 32-bit ops",
            "semantics",
            asm(
                "mov64 r3, 0\nadd32 r3, -8\nmov64 r4, r10\nadd64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
    ]
}
