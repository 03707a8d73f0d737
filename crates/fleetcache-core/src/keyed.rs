//! A map from owned string keys to values that shares its hash table with the rest of the
//! core.
//!
//! Every distinct `HashMap<String, V>` brings its own copy of the hash table's code (insert,
//! rehash, drop) into the wasm module: about 1.7 to 1.9 KB each after `wasm-opt`
//! (docs/decisions/0028-wasm-size-budget.md). [`KeyedVec`] keeps its values in a dense `Vec`
//! and indexes them with a `HashMap<String, usize>`, the type the LRU index and the key memo
//! already use, so a new value type adds only `Vec` code. Removal swaps the last entry into
//! the hole, so positions are not stable and iteration order is not insertion order (no user
//! of it relies on an order, as none could with a `HashMap`).

use std::collections::HashMap;

/// Values by owned string key: a dense `Vec` of `(key, value)` and an index into it.
#[derive(Clone, Debug)]
pub struct KeyedVec<V> {
    index: HashMap<String, usize>,
    entries: Vec<(String, V)>,
}

impl<V> Default for KeyedVec<V> {
    fn default() -> Self {
        KeyedVec {
            index: HashMap::new(),
            entries: Vec::new(),
        }
    }
}

impl<V> KeyedVec<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `key` is held.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        let i = *self.index.get(key)?;
        self.entries.get(i).map(|(_, v)| v)
    }

    /// The value of `key`, mutable.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let i = *self.index.get(key)?;
        self.entries.get_mut(i).map(|(_, v)| v)
    }

    /// The value of `key`, inserted with `make` when absent.
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                let i = self.entries.len();
                self.index.insert(key.to_owned(), i);
                self.entries.push((key.to_owned(), make()));
                i
            }
        };
        // `i` indexes `entries` (the index and the entries change together); the fallback is
        // unreachable and keeps this total.
        match self.entries.get_mut(i) {
            Some((_, v)) => v,
            None => unreachable_entry(),
        }
    }

    /// Sets `key` to `value`; returns the value it replaces.
    pub fn insert(&mut self, key: &str, value: V) -> Option<V> {
        if let Some(old) = self.get_mut(key) {
            return Some(std::mem::replace(old, value));
        }
        self.index.insert(key.to_owned(), self.entries.len());
        self.entries.push((key.to_owned(), value));
        None
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let i = self.index.remove(key)?;
        if i >= self.entries.len() {
            return None;
        }
        let (_, value) = self.entries.swap_remove(i);
        if let Some((moved, _)) = self.entries.get(i) {
            if let Some(slot) = self.index.get_mut(moved.as_str()) {
                *slot = i;
            }
        }
        Some(value)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        let before = self.entries.len();
        self.entries.retain_mut(|(k, v)| keep(k, v));
        if self.entries.len() != before {
            self.index.clear();
            for (i, (k, _)) in self.entries.iter().enumerate() {
                self.index.insert(k.clone(), i);
            }
        }
    }

    /// All entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// All values, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }
}

/// The index pointed past the entries: a broken invariant of [`KeyedVec`], not input.
#[cold]
fn unreachable_entry() -> ! {
    unreachable!("KeyedVec index out of step with its entries")
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
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..16, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u8..16).prop_map(Op::Remove),
            (0u8..16, any::<u32>()).prop_map(|(k, v)| Op::Upsert(k, v)),
            (1u32..8).prop_map(Op::Retain),
        ]
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
            }
        }
    }
}
