//! Storage for values with sequential ids that mostly die in order: the
//! graph's requests and chains.
//!
//! A hash map of a million requests misses the cache on every insert and
//! remove, so folding got slower as the history grew. Ids here are handed
//! out in order and requests mostly finish in order, so they live in a
//! deque indexed by `id - base`: inserts append, evictions pop the front,
//! lookups index, all near the newest entries and without hashing. The
//! few values that outlive the window (a multishot accept that runs for the
//! whole session) move to a side map so the deque stays bounded.

use foldhash::{HashMap, HashMapExt};
use std::collections::VecDeque;

/// Values by sequential id. See the module docs.
#[derive(Debug, Clone)]
pub struct Window<T> {
    base: u64,
    slots: VecDeque<Option<T>>,
    /// Values whose id fell below `base` while still alive.
    old: HashMap<u64, T>,
    len: usize,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Window {
            base: 0,
            slots: VecDeque::new(),
            old: HashMap::new(),
            len: 0,
        }
    }
}

#[allow(clippy::len_without_is_empty)]
impl<T> Window<T> {
    /// Values held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The value of `id`.
    pub fn get(&self, id: &u64) -> Option<&T> {
        match id.checked_sub(self.base) {
            Some(i) => self.slots.get(i as usize)?.as_ref(),
            None => self.old.get(id),
        }
    }

    /// The value of `id`, mutably.
    pub fn get_mut(&mut self, id: &u64) -> Option<&mut T> {
        match id.checked_sub(self.base) {
            Some(i) => self.slots.get_mut(i as usize)?.as_mut(),
            None => self.old.get_mut(id),
        }
    }

    /// Whether `id` is held.
    pub fn contains_key(&self, id: &u64) -> bool {
        self.get(id).is_some()
    }

    /// Holds `v` under `id`. Ids normally come in order; an id far ahead
    /// of the newest (more than a million) goes to the side map rather than
    /// opening a gap of empty slots.
    pub fn insert(&mut self, id: u64, v: T) {
        if id < self.base {
            if self.old.insert(id, v).is_none() {
                self.len += 1;
            }
            return;
        }
        let i = (id - self.base) as usize;
        if i >= self.slots.len() + (1 << 20) {
            if self.old.insert(id, v).is_none() {
                self.len += 1;
            }
            return;
        }
        while self.slots.len() <= i {
            self.slots.push_back(None);
        }
        if self.slots[i].replace(v).is_none() {
            self.len += 1;
        }
        self.compact();
    }

    /// Takes the value of `id` out.
    pub fn remove(&mut self, id: &u64) -> Option<T> {
        let v = match id.checked_sub(self.base) {
            Some(i) => self.slots.get_mut(i as usize)?.take(),
            None => self.old.remove(id),
        }?;
        self.len -= 1;
        self.compact();
        Some(v)
    }

    /// Values, by id.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        let mut old: Vec<(&u64, &T)> = self.old.iter().collect();
        old.sort_by_key(|(id, _)| **id);
        old.into_iter()
            .map(|(_, v)| v)
            .chain(self.slots.iter().flatten())
    }

    /// Drops empty slots at the front; when live values hold the front of
    /// a window much larger than what it holds, moves them aside.
    fn compact(&mut self) {
        loop {
            match self.slots.front() {
                Some(None) => {
                    self.slots.pop_front();
                    self.base += 1;
                }
                Some(Some(_)) if self.slots.len() > 2 * self.len + 1024 => {
                    if let Some(Some(v)) = self.slots.pop_front() {
                        self.old.insert(self.base, v);
                    }
                    self.base += 1;
                }
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the order of inserts and removes, it answers as a map.
        #[test]
        fn behaves_as_a_map(ops in prop::collection::vec((0u8..3, 0u64..3000), 0..3000)) {
            let mut w = Window::default();
            let mut m = std::collections::BTreeMap::new();
            let mut next = 0u64;
            for (op, x) in ops {
                match op {
                    0 => { w.insert(next, next); m.insert(next, next); next += 1; }
                    1 => { prop_assert_eq!(w.remove(&x), m.remove(&x)); }
                    _ => { w.insert(x, x + 1); m.insert(x, x + 1); }
                }
                prop_assert_eq!(w.len(), m.len());
                prop_assert_eq!(w.get(&x), m.get(&x));
            }
            let got: Vec<u64> = w.values().copied().collect();
            let want: Vec<u64> = m.values().copied().collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_long_lived_value_does_not_hold_the_window_open() {
        let mut w = Window::default();
        w.insert(0, 0u64);
        for id in 1..100_000u64 {
            w.insert(id, id);
            w.remove(&id);
        }
        assert_eq!(w.get(&0), Some(&0));
        assert!(w.slots.len() < 2048, "{}", w.slots.len());
        assert_eq!(w.len(), 1);
    }
}
