//! BPF maps: kernel-style hash and array maps with stable value addresses.
//!
//! Values live in one arena per map, allocated once, so a pointer a program
//! got from `bpf_map_lookup_elem` stays valid for the whole decision (and the
//! program's address space can name the arena once, see
//! [`crate::program::mem`]).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// `BPF_MAP_TYPE_HASH`
pub const MAP_TYPE_HASH: u32 = 1;
/// `BPF_MAP_TYPE_ARRAY`
pub const MAP_TYPE_ARRAY: u32 = 2;

/// Largest key a map may have, in bytes.
pub const MAX_KEY_SIZE: u32 = 512;
/// Largest value a map may have, in bytes.
pub const MAX_VALUE_SIZE: u32 = 65536;
/// Most entries a map may have.
pub const MAX_ENTRIES: u32 = 1 << 20;
/// Most bytes one map's arena may take.
pub const MAX_ARENA_BYTES: u64 = 256 << 20;

/// `bpf_map_update_elem` flag: create or replace.
pub const BPF_ANY: u64 = 0;
/// `bpf_map_update_elem` flag: create only.
pub const BPF_NOEXIST: u64 = 1;
/// `bpf_map_update_elem` flag: replace only.
pub const BPF_EXIST: u64 = 2;

/// Map entries as (key, value) byte strings.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

pub use ringside_schema::event::MapKind;

/// A map's shape as declared in the program's ELF `maps` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapDef {
    /// Symbol name of the map.
    pub name: String,
    /// Hash or array.
    pub kind: MapKind,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
    /// `map_flags` as declared (kept, not interpreted).
    pub flags: u32,
}

impl MapDef {
    /// Check a raw definition; the error says which field is out of range.
    pub fn validate(
        name: &str,
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        flags: u32,
    ) -> Result<MapDef, MapDefError> {
        let refuse = |problem| {
            Err(MapDefError {
                name: name.to_string(),
                problem,
            })
        };
        let kind = match map_type {
            MAP_TYPE_HASH => MapKind::Hash,
            MAP_TYPE_ARRAY => MapKind::Array,
            t => return refuse(MapDefProblem::Type(t)),
        };
        if kind == MapKind::Array && key_size != 4 {
            return refuse(MapDefProblem::ArrayKeySize(key_size));
        }
        if key_size == 0 || key_size > MAX_KEY_SIZE {
            return refuse(MapDefProblem::KeySize(key_size));
        }
        if value_size == 0 || value_size > MAX_VALUE_SIZE {
            return refuse(MapDefProblem::ValueSize(value_size));
        }
        if max_entries == 0 || max_entries > MAX_ENTRIES {
            return refuse(MapDefProblem::MaxEntries(max_entries));
        }
        let def = MapDef {
            name: name.to_string(),
            kind,
            key_size,
            value_size,
            max_entries,
            flags,
        };
        if def.arena_bytes() > MAX_ARENA_BYTES {
            return refuse(MapDefProblem::Arena(def.arena_bytes()));
        }
        Ok(def)
    }

    /// Bytes per slot: values are 8-byte aligned.
    pub fn slot_size(&self) -> usize {
        (self.value_size as usize).div_ceil(8) * 8
    }

    /// Bytes the arena takes.
    pub fn arena_bytes(&self) -> u64 {
        self.slot_size() as u64 * self.max_entries as u64
    }
}

/// A map definition [`MapDef::validate`] refuses: the map and the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("map `{name}`: {problem}")]
pub struct MapDefError {
    /// The map's symbol name.
    pub name: String,
    /// Which field is out of range.
    pub problem: MapDefProblem,
}

/// Which field of a map definition is out of range, and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapDefProblem {
    /// `type`: neither hash nor array.
    #[error("type {0} is not supported (1 = hash, 2 = array)")]
    Type(u32),
    /// `key_size` of an array map: not 4.
    #[error("key_size {0} out of range (an array map's key is 4 bytes)")]
    ArrayKeySize(u32),
    /// `key_size`: 0 or more than [`MAX_KEY_SIZE`].
    #[error("key_size {0} out of range (1..={MAX_KEY_SIZE})")]
    KeySize(u32),
    /// `value_size`: 0 or more than [`MAX_VALUE_SIZE`].
    #[error("value_size {0} out of range (1..={MAX_VALUE_SIZE})")]
    ValueSize(u32),
    /// `max_entries`: 0 or more than [`MAX_ENTRIES`].
    #[error("max_entries {0} out of range (1..={MAX_ENTRIES})")]
    MaxEntries(u32),
    /// The values take more than [`MAX_ARENA_BYTES`].
    #[error("{0} bytes of values is more than the {MAX_ARENA_BYTES} a map may take")]
    Arena(u64),
}

/// Why a map operation failed; maps to the kernel's errno.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Key or value of the wrong size.
    BadSize {
        /// Which argument.
        what: &'static str,
        /// Expected bytes.
        expected: u32,
        /// Given bytes.
        got: usize,
    },
    /// No such key (`-ENOENT`).
    NotFound,
    /// Key exists and `BPF_NOEXIST` was asked (`-EEXIST`).
    Exists,
    /// The map is full (`-E2BIG`).
    Full,
    /// Bad flags or an array index out of range (`-EINVAL`).
    Invalid(&'static str),
}

impl MapError {
    /// Negative errno a helper returns for this error.
    pub fn errno(&self) -> i64 {
        match self {
            MapError::BadSize { .. } | MapError::Invalid(_) => -(libc::EINVAL as i64),
            MapError::NotFound => -(libc::ENOENT as i64),
            MapError::Exists => -(libc::EEXIST as i64),
            MapError::Full => -(libc::E2BIG as i64),
        }
    }
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::BadSize {
                what,
                expected,
                got,
            } => write!(f, "{what} is {got} bytes, the map wants {expected}"),
            MapError::NotFound => write!(f, "no such key"),
            MapError::Exists => write!(f, "key exists"),
            MapError::Full => write!(f, "map is full"),
            MapError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for MapError {}

/// A live map: its definition, its values arena and (for hashes) the index.
pub struct Map {
    def: MapDef,
    arena: Box<[u64]>,
    /// Hash maps: key bytes -> slot (foldhash: keys come from programs, but
    /// a program can only slow its own map, which its budgets bound).
    index: HashMap<Box<[u8]>, u32, foldhash::fast::RandomState>,
    /// Hash maps: free slots.
    free: Vec<u32>,
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("def", &self.def)
            .field("len", &self.len())
            .finish()
    }
}

impl Map {
    /// Allocate a map (values zeroed; an array map has every entry).
    pub fn new(def: MapDef) -> Map {
        let words = def.arena_bytes() as usize / 8;
        let free = match def.kind {
            MapKind::Hash => (0..def.max_entries).rev().collect(),
            MapKind::Array => Vec::new(),
        };
        Map {
            arena: vec![0u64; words].into_boxed_slice(),
            def,
            index: HashMap::default(),
            free,
        }
    }

    /// The definition.
    pub fn def(&self) -> &MapDef {
        &self.def
    }

    /// Entries present.
    pub fn len(&self) -> usize {
        match self.def.kind {
            MapKind::Hash => self.index.len(),
            MapKind::Array => self.def.max_entries as usize,
        }
    }

    /// True when no entry is present.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Address range of the values (without padding), for the VM's allowed memory.
    pub fn arena_range(&self) -> std::ops::Range<u64> {
        let start = self.arena.as_ptr() as u64;
        start..start + self.def.arena_bytes()
    }

    fn check_key(&self, key: &[u8]) -> Result<(), MapError> {
        if key.len() != self.def.key_size as usize {
            return Err(MapError::BadSize {
                what: "key",
                expected: self.def.key_size,
                got: key.len(),
            });
        }
        Ok(())
    }

    fn slot_of(&self, key: &[u8]) -> Result<Option<u32>, MapError> {
        self.check_key(key)?;
        Ok(match self.def.kind {
            MapKind::Array => {
                let i = u32::from_le_bytes(key.try_into().expect("4-byte key"));
                (i < self.def.max_entries).then_some(i)
            }
            MapKind::Hash => self.index.get(key).copied(),
        })
    }

    fn slot_bytes(&self, slot: u32) -> &[u8] {
        let start = slot as usize * self.def.slot_size();
        // SAFETY: the arena is a u64 slice; viewing it as bytes is always valid.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.arena.as_ptr() as *const u8, self.arena.len() * 8)
        };
        &bytes[start..start + self.def.value_size as usize]
    }

    fn slot_bytes_mut(&mut self, slot: u32) -> &mut [u8] {
        let start = slot as usize * self.def.slot_size();
        let len = self.arena.len() * 8;
        // SAFETY: as in slot_bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(self.arena.as_mut_ptr() as *mut u8, len) };
        &mut bytes[start..start + self.def.value_size as usize]
    }

    /// The value stored at `addr`, a host address [`Map::lookup_ptr`] returned.
    pub fn value_at(&self, addr: u64) -> &[u8] {
        let off = (addr - self.arena.as_ptr() as u64) as usize;
        self.slot_bytes((off / self.def.slot_size()) as u32)
    }

    /// Address of the value for `key`, as `bpf_map_lookup_elem` returns it.
    pub fn lookup_ptr(&mut self, key: &[u8]) -> Result<Option<u64>, MapError> {
        Ok(self
            .slot_of(key)?
            .map(|slot| self.arena.as_mut_ptr() as u64 + slot as u64 * self.def.slot_size() as u64))
    }

    /// Copy of the value for `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
        Ok(self.slot_of(key)?.map(|s| self.slot_bytes(s).to_vec()))
    }

    /// Insert or replace, with the kernel's `BPF_ANY`/`BPF_NOEXIST`/`BPF_EXIST` rules.
    pub fn update(&mut self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        self.check_key(key)?;
        if value.len() != self.def.value_size as usize {
            return Err(MapError::BadSize {
                what: "value",
                expected: self.def.value_size,
                got: value.len(),
            });
        }
        if flags > BPF_EXIST {
            return Err(MapError::Invalid(
                "flags must be BPF_ANY, BPF_NOEXIST or BPF_EXIST",
            ));
        }
        let slot = match self.def.kind {
            MapKind::Array => {
                let Some(slot) = self.slot_of(key)? else {
                    return Err(MapError::Invalid("array index out of range"));
                };
                if flags == BPF_NOEXIST {
                    return Err(MapError::Exists);
                }
                slot
            }
            MapKind::Hash => match (self.index.get(key).copied(), flags) {
                (Some(_), BPF_NOEXIST) => return Err(MapError::Exists),
                (Some(slot), _) => slot,
                (None, BPF_EXIST) => return Err(MapError::NotFound),
                (None, _) => {
                    let slot = self.free.pop().ok_or(MapError::Full)?;
                    self.index.insert(key.into(), slot);
                    slot
                }
            },
        };
        self.slot_bytes_mut(slot).copy_from_slice(value);
        Ok(())
    }

    /// Remove a hash entry; array entries cannot be deleted (`-EINVAL`).
    pub fn delete(&mut self, key: &[u8]) -> Result<(), MapError> {
        self.check_key(key)?;
        match self.def.kind {
            MapKind::Array => Err(MapError::Invalid("array entries cannot be deleted")),
            MapKind::Hash => {
                let slot = self.index.remove(key).ok_or(MapError::NotFound)?;
                self.slot_bytes_mut(slot).fill(0);
                self.free.push(slot);
                Ok(())
            }
        }
    }

    /// Every entry, sorted by key (array maps: every index).
    pub fn entries(&self) -> Entries {
        match self.def.kind {
            MapKind::Array => (0..self.def.max_entries)
                .map(|i| (i.to_le_bytes().to_vec(), self.slot_bytes(i).to_vec()))
                .collect(),
            MapKind::Hash => {
                let mut v: Vec<_> = self
                    .index
                    .iter()
                    .map(|(k, &s)| (k.to_vec(), self.slot_bytes(s).to_vec()))
                    .collect();
                v.sort();
                v
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: u32, k: u32, v: u32, n: u32) -> MapDef {
        MapDef::validate("m", kind, k, v, n, 0).unwrap()
    }

    #[test]
    fn array_has_every_entry_and_rejects_delete() {
        let mut m = Map::new(def(MAP_TYPE_ARRAY, 4, 8, 4));
        assert_eq!(m.len(), 4);
        assert_eq!(m.get(&2u32.to_le_bytes()).unwrap(), Some(vec![0; 8]));
        assert_eq!(m.get(&4u32.to_le_bytes()).unwrap(), None);
        m.update(&1u32.to_le_bytes(), &7u64.to_le_bytes(), BPF_ANY)
            .unwrap();
        assert_eq!(
            m.get(&1u32.to_le_bytes()).unwrap(),
            Some(7u64.to_le_bytes().to_vec())
        );
        assert_eq!(
            m.update(&1u32.to_le_bytes(), &[0; 8], BPF_NOEXIST),
            Err(MapError::Exists)
        );
        assert!(matches!(
            m.delete(&1u32.to_le_bytes()),
            Err(MapError::Invalid(_))
        ));
    }

    #[test]
    fn hash_follows_kernel_flags_and_capacity() {
        let mut m = Map::new(def(MAP_TYPE_HASH, 2, 3, 2));
        assert_eq!(m.update(b"ab", b"xyz", BPF_EXIST), Err(MapError::NotFound));
        m.update(b"ab", b"xyz", BPF_NOEXIST).unwrap();
        m.update(b"cd", b"123", BPF_ANY).unwrap();
        assert_eq!(m.update(b"ef", b"123", BPF_ANY), Err(MapError::Full));
        assert_eq!(m.update(b"ab", b"zzz", BPF_NOEXIST), Err(MapError::Exists));
        m.delete(b"ab").unwrap();
        assert_eq!(m.delete(b"ab"), Err(MapError::NotFound));
        m.update(b"ef", b"123", BPF_ANY).unwrap();
        assert_eq!(m.entries().len(), 2);
        assert!(matches!(
            m.update(b"abc", b"123", BPF_ANY),
            Err(MapError::BadSize { .. })
        ));
    }

    #[test]
    fn lookup_pointer_is_stable_and_inside_arena() {
        let mut m = Map::new(def(MAP_TYPE_HASH, 4, 12, 8));
        m.update(&[1, 0, 0, 0], &[9; 12], BPF_ANY).unwrap();
        let p1 = m.lookup_ptr(&[1, 0, 0, 0]).unwrap().unwrap();
        for i in 2..8u8 {
            m.update(&[i, 0, 0, 0], &[i; 12], BPF_ANY).unwrap();
        }
        let p2 = m.lookup_ptr(&[1, 0, 0, 0]).unwrap().unwrap();
        assert_eq!(p1, p2);
        let r = m.arena_range();
        assert!(r.contains(&p1) && p1 + 12 <= r.end);
        assert_eq!(p1 % 8, 0);
    }

    #[test]
    fn definitions_out_of_range_are_named() {
        let e = MapDef::validate("big", MAP_TYPE_HASH, 4, 0, 1, 0).unwrap_err();
        assert!(e.to_string().contains("value_size 0"), "{e}");
        let e = MapDef::validate("arr", MAP_TYPE_ARRAY, 8, 8, 1, 0).unwrap_err();
        assert!(e.to_string().contains("key_size 8"), "{e}");
        let e = MapDef::validate("t", 9, 4, 8, 1, 0).unwrap_err();
        assert!(e.to_string().contains("type 9"), "{e}");
        let e = MapDef::validate("huge", MAP_TYPE_ARRAY, 4, 65536, 1 << 20, 0).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }
}
