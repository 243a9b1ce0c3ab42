//! The memory a program may touch, and the addresses it sees for it.
//!
//! A program may touch its context, its stack, the values of its maps and its
//! read-only data: nothing else. Each is a [`Region`]. Both backends check
//! helper arguments against the regions ([`AddrSpace::resolve`]); they differ
//! in the addresses the program sees:
//!
//! - the interpreter gives the program *virtual* addresses, `region id << 32
//!   | offset` (ids from [`CTX_ID`] on), and checks every access against the
//!   region over its whole length. So a trace shows `r10 = 0x2_0000_0200` on
//!   every machine, no host address ever reaches a register, and an access out
//!   of bounds is an error in program terms (region, offset, size);
//! - compiled code uses host addresses directly, with no checks of its own:
//!   it runs only programs the verifier proved, and the verifier proves that
//!   no pointer value ever leaves the program (returned, stored in a map,
//!   passed to a helper as a number, compared with a number), so host
//!   addresses stay invisible there too.

use crate::program::maps::Map;

/// Virtual region id of the context.
pub const CTX_ID: u32 = 1;
/// Virtual region id of the stack.
pub const STACK_ID: u32 = 2;
/// Virtual region id of the first static region (maps, then rodata).
pub const FIRST_STATIC_ID: u32 = 3;

/// Stack bytes a program has (as the kernel gives it).
pub const STACK_SIZE: usize = 512;

/// What a region is, in the program's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// The context (`struct rs_ctx`), read-only.
    Ctx,
    /// The 512-byte stack below r10.
    Stack,
    /// The value arena of the program's map with this object-local index.
    Map(u32),
    /// Read-only data region (string literals, constant tables) of the object.
    Rodata(u32),
}

impl RegionKind {
    /// Short name, as traces show it: `ctx`, `stack`, `map`, `rodata`.
    pub fn name(&self) -> &'static str {
        match self {
            RegionKind::Ctx => "ctx",
            RegionKind::Stack => "stack",
            RegionKind::Map(_) => "map",
            RegionKind::Rodata(_) => "rodata",
        }
    }
}

impl std::fmt::Display for RegionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegionKind::Ctx => f.write_str("the context"),
            RegionKind::Stack => f.write_str("the stack"),
            RegionKind::Map(m) => write!(f, "map {m}'s values"),
            RegionKind::Rodata(r) => write!(f, "read-only data {r}"),
        }
    }
}

/// A map arena or rodata region, fixed for the program's life.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    /// What it is.
    pub kind: RegionKind,
    /// Host address of its first byte.
    pub ptr: *mut u8,
    /// Bytes the program may touch.
    pub len: usize,
    /// Whether the program may store to it.
    pub writable: bool,
}

// SAFETY: a Region is a description (pointer + length) of memory owned by a
// Registry or a replay; whoever dereferences it holds that owner.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// A map's value arena (object-local index `local`).
    pub fn map(local: u32, m: &Map) -> Region {
        let r = m.arena_range();
        Region {
            kind: RegionKind::Map(local),
            ptr: r.start as *mut u8,
            len: (r.end - r.start) as usize,
            writable: true,
        }
    }
}

/// Which addresses the program sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// `id << 32 | offset` (the interpreter).
    Virtual,
    /// Host addresses (compiled code).
    Host,
}

/// Where an address points: a region and an offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    /// The region.
    pub kind: RegionKind,
    /// Offset from its start (the stack: from its lowest byte).
    pub offset: u64,
}

/// The regions of one program run.
pub struct AddrSpace<'a> {
    addressing: Addressing,
    ctx: *mut u8,
    ctx_len: usize,
    /// Lowest byte of the stack (r10 - 512).
    stack: *mut u8,
    statics: &'a [Region],
}

impl<'a> AddrSpace<'a> {
    /// The address space of one run: `ctx` (read-only to the program), the
    /// stack's lowest byte (512 bytes), and the program's maps and rodata.
    pub fn new(
        addressing: Addressing,
        ctx: *mut u8,
        ctx_len: usize,
        stack: *mut u8,
        statics: &'a [Region],
    ) -> AddrSpace<'a> {
        AddrSpace {
            addressing,
            ctx,
            ctx_len,
            stack,
            statics,
        }
    }

    /// Which addresses the program sees.
    pub fn addressing(&self) -> Addressing {
        self.addressing
    }

    /// The address the program sees for `offset` in virtual region `id`.
    pub fn virtual_addr(id: u32, offset: u64) -> u64 {
        ((id as u64) << 32) | offset
    }

    fn region_of_id(&self, id: u32) -> Option<(RegionKind, *mut u8, usize, bool)> {
        match id {
            CTX_ID => Some((RegionKind::Ctx, self.ctx, self.ctx_len, false)),
            STACK_ID => Some((RegionKind::Stack, self.stack, STACK_SIZE, true)),
            _ => {
                let r = self
                    .statics
                    .get(id.checked_sub(FIRST_STATIC_ID)? as usize)?;
                Some((r.kind, r.ptr, r.len, r.writable))
            }
        }
    }

    /// The value of r1 (the context) and r10 (one past the stack's top).
    pub fn entry_registers(&self) -> (u64, u64) {
        match self.addressing {
            Addressing::Virtual => (
                Self::virtual_addr(CTX_ID, 0),
                Self::virtual_addr(STACK_ID, STACK_SIZE as u64),
            ),
            Addressing::Host => (self.ctx as u64, self.stack as u64 + STACK_SIZE as u64),
        }
    }

    /// Where `addr` points, if into a region (whatever the length of an access).
    pub fn place(&self, addr: u64) -> Option<Place> {
        self.locate(addr, 0, false).map(|(p, _)| p)
    }

    /// Check an access of `len` bytes at `addr` (a store if `write`): the
    /// place it starts at and the host pointer, when every byte is inside
    /// one region that allows it.
    pub fn locate(&self, addr: u64, len: usize, write: bool) -> Option<(Place, *mut u8)> {
        let ok = |kind: RegionKind, base: *mut u8, size: usize, writable: bool, off: u64| {
            let end = off.checked_add(len as u64)?;
            (end <= size as u64 && (writable || !write)).then(|| {
                (
                    Place { kind, offset: off },
                    // Computed, not dereferenced: off <= size.
                    base.wrapping_add(off as usize),
                )
            })
        };
        match self.addressing {
            Addressing::Virtual => {
                let (kind, base, size, writable) = self.region_of_id((addr >> 32) as u32)?;
                ok(kind, base, size, writable, addr & 0xffff_ffff)
            }
            Addressing::Host => {
                // The same order as the statics' walk below, without the
                // iterator chain (this is on every helper call's path).
                let (stack, ctx) = (self.stack as u64, self.ctx as u64);
                if let Some(off) = addr.checked_sub(ctx)
                    && let Some(r) = ok(RegionKind::Ctx, self.ctx, self.ctx_len, false, off)
                {
                    return Some(r);
                }
                if let Some(off) = addr.checked_sub(stack)
                    && let Some(r) = ok(RegionKind::Stack, self.stack, STACK_SIZE, true, off)
                {
                    return Some(r);
                }
                self.statics.iter().find_map(|r| {
                    let off = addr.checked_sub(r.ptr as u64)?;
                    ok(r.kind, r.ptr, r.len, r.writable, off)
                })
            }
        }
    }

    /// `len` readable bytes at `addr`, or None.
    ///
    /// The slice borrows memory the address space describes; the caller must
    /// not keep it past the run (the program may change it).
    pub fn read(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let (_, p) = self.locate(addr, len, false)?;
        // SAFETY: `locate` proved [p, p+len) inside a live region.
        Some(unsafe { std::slice::from_raw_parts(p as *const u8, len) })
    }

    /// `len` writable bytes at `addr`, or None.
    #[allow(clippy::mut_from_ref)]
    pub fn write(&self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let (_, p) = self.locate(addr, len, true)?;
        // SAFETY: `locate` proved [p, p+len) inside a live writable region;
        // during a helper call the program is suspended, so nothing else
        // refers to those bytes.
        Some(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }

    /// The address the program sees for a host pointer into the value arena
    /// of map `local` (what `bpf_map_lookup_elem` returns).
    pub fn map_value_addr(&self, local: u32, host: *mut u8) -> u64 {
        match self.addressing {
            Addressing::Host => host as u64,
            Addressing::Virtual => {
                let Some(i) = self
                    .statics
                    .iter()
                    .position(|r| r.kind == RegionKind::Map(local))
                else {
                    return 0;
                };
                let off = host as u64 - self.statics[i].ptr as u64;
                Self::virtual_addr(FIRST_STATIC_ID + i as u32, off)
            }
        }
    }
}
