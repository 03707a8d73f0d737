//! A map from owned string keys to values that shares its hash table with the rest of the
//! core.
//!
//! Every distinct `HashMap<String, V>` brings its own copy of the hash table's code (insert,
//! rehash, drop) into the wasm module: about 1.7 to 1.9 KB each after `wasm-opt`
//! (docs/decisions/0028-wasm-size-budget.md). [`KeyedVec`] keeps its values in a `Vec` of
//! slots and indexes them with a `HashMap<String, usize>`, the type the LRU index and the key
//! memo already use, so a new value type adds only `Vec` code. Each key is stored once (in the
//! index); a removed value's slot is reused by the next insert. Iteration is in no particular
//! order, as with a `HashMap`.

use crate::strhash::{reseed, str_map, HashSeed, StrMap};

#[cfg(test)]
use std::collections::HashMap;

/// Values by owned string key: slots of values and an index of keys into them.
#[derive(Clone, Debug)]
pub struct KeyedVec<V> {
    index: StrMap<usize>,
    slots: Vec<Option<V>>,
    /// Empty slots, reused before the `Vec` grows.
    free: Vec<usize>,
}

impl<V> Default for KeyedVec<V> {
    fn default() -> Self {
        KeyedVec::with_seed(0, HashSeed::default())
    }
}

impl<V> KeyedVec<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        KeyedVec::with_seed(n, HashSeed::default())
    }

    /// An empty map with room for `n` entries, its keys hashed with `seed`.
    pub fn with_seed(n: usize, seed: HashSeed) -> Self {
        KeyedVec {
            index: str_map(n, seed),
            slots: Vec::with_capacity(n),
            free: Vec::new(),
        }
    }

    /// Rehashes the keys with `seed` ([`crate::Engine::reseed_hashes`]).
    pub fn reseed(&mut self, seed: HashSeed) {
        reseed(&mut self.index, seed);
    }

    /// The seed the keys are hashed with.
    #[cfg(test)]
    pub(crate) fn hash_seed(&self) -> HashSeed {
        *self.index.hasher()
    }

    /// Entries the map's allocations have room for: its slots, its index and its list of
    /// free slots (what it costs, whatever it holds now).
    #[cfg(test)]
    pub(crate) fn room(&self) -> usize {
        self.slots
            .capacity()
            .max(self.index.capacity())
            .max(self.free.capacity())
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// True when `key` is held.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        let i = *self.index.get(key)?;
        self.slots.get(i)?.as_ref()
    }

    /// The value of `key`, mutable.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let i = *self.index.get(key)?;
        self.slots.get_mut(i)?.as_mut()
    }

    /// A slot holding `value`: an empty one reused, else a new one.
    fn place(&mut self, value: V) -> usize {
        if let Some(i) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(i) {
                *slot = Some(value);
                return i;
            }
        }
        self.slots.push(Some(value));
        self.slots.len() - 1
    }

    /// The value of `key`, inserted with `make` when absent.
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                let i = self.place(make());
                self.index.insert(key.to_owned(), i);
                i
            }
        };
        // The index only points at full slots; the fallback is unreachable and keeps this
        // total without an `unwrap`.
        match self.slots.get_mut(i).and_then(Option::as_mut) {
            Some(v) => v,
            None => unreachable_slot(),
        }
    }

    /// Sets `key` to `value`; returns the value it replaces.
    pub fn insert(&mut self, key: &str, value: V) -> Option<V> {
        if let Some(old) = self.get_mut(key) {
            return Some(std::mem::replace(old, value));
        }
        let i = self.place(value);
        self.index.insert(key.to_owned(), i);
        None
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let i = self.index.remove(key)?;
        let value = self.slots.get_mut(i)?.take()?;
        self.free.push(i);
        Some(value)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        let slots = &mut self.slots;
        let free = &mut self.free;
        self.index.retain(|k, i| {
            let Some(slot) = slots.get_mut(*i) else {
                return false;
            };
            let kept = slot.as_mut().is_some_and(|v| keep(k, v));
            if !kept && slot.take().is_some() {
                free.push(*i);
            }
            kept
        });
    }

    /// Gives back the room a larger past left: when the map's allocations (its slots, its
    /// index or its list of free slots) have room for over four times what it holds (and more
    /// than 64 entries), its values are moved into slots of their own size, the index rebuilt
    /// to fit and the list of free slots dropped. A map that only grows back to the same
    /// size never pays it twice in a row; one that shrank for good (a mirror past a burst of
    /// tags, folded back to its bound) stops holding the burst's memory.
    pub fn compact(&mut self) {
        let room = self
            .slots
            .capacity()
            .max(self.index.capacity())
            .max(self.free.capacity());
        if room <= 64 || room / 4 <= self.index.len() {
            return;
        }
        // An index of its own size, by the code reseeding has (no shrinking code of its own).
        let seed = *self.index.hasher();
        reseed(&mut self.index, seed);
        let mut slots = Vec::with_capacity(self.index.len());
        for i in self.index.values_mut() {
            if let Some(value) = self.slots.get_mut(*i).and_then(Option::take) {
                *i = slots.len();
                slots.push(Some(value));
            }
        }
        self.slots = slots;
        self.free = Vec::new();
    }

    /// All entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        let slots = &self.slots;
        self.index
            .iter()
            .filter_map(move |(k, &i)| Some((k, slots.get(i)?.as_ref()?)))
    }

    /// All values, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten()
    }
}

/// The index pointed at an empty slot: a broken invariant of [`KeyedVec`], not input.
#[cold]
fn unreachable_slot() -> ! {
    unreachable!("KeyedVec index points at an empty slot")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        Remove(u8),
        Upsert(u8, u32),
        Retain(u32),
        Compact,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..16, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u8..16).prop_map(Op::Remove),
            (0u8..16, any::<u32>()).prop_map(|(k, v)| Op::Upsert(k, v)),
            (1u32..8).prop_map(Op::Retain),
            Just(Op::Compact),
        ]
    }

    #[test]
    fn compacting_gives_back_the_room_of_a_past_burst() {
        let mut kv: KeyedVec<u32> = KeyedVec::new();
        for i in 0..10_000u32 {
            kv.insert(&i.to_string(), i);
        }
        kv.retain(|_, v| *v < 100);
        kv.compact();
        assert!(kv.slots.capacity() <= 400 && kv.index.capacity() <= 400);
        assert!(kv.free.is_empty());
        for i in 0..100u32 {
            assert_eq!(kv.get(&i.to_string()), Some(&i));
        }
        assert_eq!(kv.len(), 100);
    }

    proptest! {
        /// Behaves as a `HashMap<String, u32>` under any sequence of operations.
        #[test]
        fn matches_a_hash_map(ops in proptest::collection::vec(op(), 0..200)) {
            let mut map: HashMap<String, u32> = HashMap::new();
            let mut kv: KeyedVec<u32> = KeyedVec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let k = k.to_string();
                        prop_assert_eq!(kv.insert(&k, v), map.insert(k, v));
                    }
                    Op::Remove(k) => {
                        let k = k.to_string();
                        prop_assert_eq!(kv.remove(&k), map.remove(&k));
                    }
                    Op::Upsert(k, v) => {
                        let k = k.to_string();
                        *kv.get_or_insert_with(&k, || 0) += v % 100;
                        *map.entry(k).or_insert(0) += v % 100;
                    }
                    Op::Retain(m) => {
                        kv.retain(|_, v| *v % m != 0);
                        map.retain(|_, v| *v % m != 0);
                    }
                    Op::Compact => kv.compact(),
                }
                prop_assert_eq!(kv.len(), map.len());
                prop_assert_eq!(kv.is_empty(), map.is_empty());
                for k in 0u8..16 {
                    let k = k.to_string();
                    prop_assert_eq!(kv.get(&k), map.get(&k));
                    prop_assert_eq!(kv.contains_key(&k), map.contains_key(&k));
                }
                let mut listed: Vec<(String, u32)> =
                    kv.iter().map(|(k, v)| (k.clone(), *v)).collect();
                listed.sort();
                let mut expected: Vec<(String, u32)> =
                    map.iter().map(|(k, v)| (k.clone(), *v)).collect();
                expected.sort();
                prop_assert_eq!(listed, expected);
                prop_assert_eq!(kv.values().count(), map.len());
                // Removed slots are reused: never more slots than keys ever used.
                prop_assert!(kv.slots.len() <= 16);
            }
        }
    }
}
