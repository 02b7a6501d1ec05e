//! Compact string interning: keys live back to back in one byte arena, the hash table holds only u32 indices.
//!
//! A `HashMap<String, u32>` costs about 60 bytes per key; this costs the key's bytes plus about 13, which
//! keeps the item and session maps small next to the 8 bytes each event takes.

use hashbrown::HashTable;
use std::hash::BuildHasher;

#[derive(Clone, Default)]
pub struct Interner {
    arena: Vec<u8>,
    /// `ends[i]` is where key `i` ends in the arena; it starts where key `i - 1` ends.
    ends: Vec<u32>,
    table: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner").field("len", &self.len()).finish()
    }
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// An interner holding `keys`, numbered in order.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let mut interner = Interner::new();
        for key in keys {
            interner.intern(key.as_bytes());
        }
        interner
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The key with index `index`, as bytes.
    pub fn bytes(&self, index: u32) -> &[u8] {
        let index = index as usize;
        let start = if index == 0 { 0 } else { self.ends[index - 1] as usize };
        &self.arena[start..self.ends[index] as usize]
    }

    /// The key with index `index`; keys are interned from UTF-8 text, so this does not fail.
    pub fn get_str(&self, index: u32) -> &str {
        std::str::from_utf8(self.bytes(index)).unwrap_or("<not UTF-8>")
    }

    /// The index of `key`, if it was interned.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.table.find(hash, |&index| self.bytes(index) == key).copied()
    }

    /// The index of `key`, interning it if it is new. Indices count up from 0 in order of first appearance.
    pub fn intern(&mut self, key: &[u8]) -> u32 {
        let hash = self.hasher.hash_one(key);
        let Interner { arena, ends, table, hasher } = self;
        let bytes_of = |index: u32| {
            let index = index as usize;
            let start = if index == 0 { 0 } else { ends[index - 1] as usize };
            &arena[start..ends[index] as usize]
        };
        if let Some(&index) = table.find(hash, |&index| bytes_of(index) == key) {
            return index;
        }
        let index = u32::try_from(ends.len()).expect("more than 4 billion distinct keys");
        arena.extend_from_slice(key);
        let end = u32::try_from(arena.len()).expect("more than 4 GiB of keys");
        ends.push(end);
        let (arena, ends) = (&*arena, &*ends);
        table.insert_unique(hash, index, |&i| {
            let i = i as usize;
            let start = if i == 0 { 0 } else { ends[i - 1] as usize };
            hasher.hash_one(&arena[start..ends[i] as usize])
        });
        index
    }

    /// Heap bytes held, for the memory benchmark.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.ends.capacity() * 4 + self.table.capacity() * 5
    }

    /// Keeps the keys whose `keep` flag is set, renumbered in their old order; returns old index -> new index.
    pub fn retain(&self, keep: &[bool]) -> (Interner, Vec<Option<u32>>) {
        let mut kept = Interner::new();
        let mut mapping = vec![None; self.len()];
        for (index, &keep) in keep.iter().enumerate() {
            if keep {
                mapping[index] = Some(kept.intern(self.bytes(index as u32)));
            }
        }
        (kept, mapping)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len() as u32).map(|i| self.get_str(i))
    }
}

impl PartialEq for Interner {
    fn eq(&self, other: &Self) -> bool {
        self.arena == other.arena && self.ends == other.ends
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_in_order_of_first_appearance() {
        let mut interner = Interner::new();
        assert_eq!(interner.intern(b"b"), 0);
        assert_eq!(interner.intern(b"a"), 1);
        assert_eq!(interner.intern(b"b"), 0);
        assert_eq!(interner.find(b"a"), Some(1));
        assert_eq!(interner.find(b"c"), None);
        assert_eq!(interner.get_str(1), "a");
        assert_eq!(interner.len(), 2);
    }

    #[test]
    fn survives_growth() {
        let mut interner = Interner::new();
        for i in 0..10_000u32 {
            assert_eq!(interner.intern(i.to_string().as_bytes()), i);
        }
        for i in (0..10_000u32).rev() {
            assert_eq!(interner.find(i.to_string().as_bytes()), Some(i));
        }
    }

    #[test]
    fn retain_renumbers_kept_keys() {
        let mut interner = Interner::new();
        for key in ["x", "y", "z"] {
            interner.intern(key.as_bytes());
        }
        let (kept, mapping) = interner.retain(&[true, false, true]);
        assert_eq!(mapping, vec![Some(0), None, Some(1)]);
        assert_eq!(kept.iter().collect::<Vec<_>>(), ["x", "z"]);
    }
}
