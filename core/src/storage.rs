//! The storage interface the engine writes through, and its in-memory implementation.
//!
//! Keys are ordered by `(token, key)` so that a token range is one contiguous scan (streaming,
//! repair and cleanup work range by range).
//!
//! # Failure policy
//! Every method returns `Result`. The engine treats any storage error as fatal for the node, the
//! way Cassandra's `disk_failure_policy: stop` does: the node emits [`crate::node::Event::Fatal`]
//! and refuses further requests; the driver is expected to stop it. No partial state is
//! acknowledged: acknowledgements are only released after [`Storage::sync`] returned `Ok`.
//!
//! # Durability contract
//! Writes may be buffered. The driver calls [`Storage::sync`] after every batch of inputs and
//! *before* it releases the transmits and events those inputs produced, so an acknowledgement never
//! leaves a node before the write it acknowledges is durable. Batching many inputs per `sync` is
//! group commit.
//!
//! [`MemStorage`] models this contract rather than assuming it: every write since the last `sync`
//! is remembered with the value it replaced, and [`MemStorage::crash`] (called by the simulator
//! when a node dies) puts those values back, so a driver that releases an acknowledgement before
//! syncing loses the acknowledged write exactly as a real disk would.

use crate::id::NodeId;
use crate::time::Instant;
use crate::token::{Token, TokenRange};
use crate::version::{ConflictMode, Siblings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A storage failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage failure: {0}")]
pub struct StorageError(pub String);

/// One stored key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The key's token.
    pub token: Token,
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Its versions.
    pub value: Siblings,
}

/// A write a coordinator could not deliver, kept for its target (hinted handoff).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    /// Unique on the node that stores it.
    pub id: u64,
    /// The replica the write is for.
    pub target: NodeId,
    /// Token of the key.
    pub token: Token,
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The versions to deliver.
    pub value: Siblings,
    /// When the hint was stored.
    pub created: Instant,
    /// The placement epoch its target was chosen under: a target that knows a newer placement
    /// refuses it, and the holder re-targets it to the current replicas.
    #[serde(default)]
    pub epoch: u64,
}

/// Synchronous storage used by one node.
pub trait Storage {
    /// Reads a key.
    fn get(&self, token: Token, key: &[u8]) -> Result<Option<Siblings>, StorageError>;
    /// Replaces a key's versions (an empty set removes the key).
    fn put(&mut self, token: Token, key: &[u8], value: Siblings) -> Result<(), StorageError>;
    /// Merges `incoming` into a key's versions; returns whether the stored state changed.
    /// The default reads, merges and writes back; implementations may merge in place.
    fn merge(
        &mut self,
        token: Token,
        key: &[u8],
        incoming: &Siblings,
        mode: ConflictMode,
    ) -> Result<bool, StorageError> {
        merge_by_rewrite(self, token, key, incoming, mode)
    }

    /// Up to `limit` entries of `range` in `(token, key)` order, starting strictly after `after`
    /// when given (for paging).
    fn scan(
        &self,
        range: TokenRange,
        after: Option<(Token, &[u8])>,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError>;
    /// Number of keys stored.
    fn key_count(&self) -> u64;
    /// Approximate bytes stored (the LOAD column of `status`).
    fn load_bytes(&self) -> u64;

    /// Stores a hint.
    fn put_hint(&mut self, hint: &Hint) -> Result<(), StorageError>;
    /// Removes a hint (no error when absent).
    fn remove_hint(&mut self, id: u64) -> Result<(), StorageError>;
    /// Every stored hint, in id order.
    fn hints(&self) -> Result<Vec<Hint>, StorageError>;

    /// Reads a small metadata value.
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Writes a small metadata value.
    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StorageError>;

    /// Makes every earlier write durable (see the module's durability contract).
    fn sync(&mut self) -> Result<(), StorageError>;
}

/// The contiguous pieces a [`Storage::scan`] of `range` reads, in scan order, as inclusive token
/// bounds: `(start, end]` when it does not wrap, else `(start, MAX]` then `[0, end]` (the first
/// empty, and left out, when `start` is `MAX`). Paging resumes strictly after a cursor at token
/// `after`, even if the cursor's key was removed meanwhile: pieces before the cursor's are left
/// out, and the cursor's piece is marked `true` so the caller starts it after the cursor.
/// Shared by every implementation so they page identically.
pub fn scan_pieces(range: TokenRange, after: Option<Token>) -> Vec<(Token, Token, bool)> {
    let pieces: Vec<(Token, Token)> = if range.start < range.end {
        vec![(range.start + 1, range.end)]
    } else {
        let mut p = Vec::with_capacity(2);
        if let Some(lo) = range.start.checked_add(1) {
            p.push((lo, Token::MAX));
        }
        p.push((0, range.end));
        p
    };
    let cursor = after.and_then(|t| pieces.iter().position(|(lo, hi)| (*lo..=*hi).contains(&t)));
    pieces
        .into_iter()
        .enumerate()
        .filter(|(i, _)| cursor.is_none_or(|c| *i >= c))
        .map(|(i, (lo, hi))| (lo, hi, cursor == Some(i)))
        .collect()
}

/// Merges by reading the key, merging and writing it back: the default [`Storage::merge`].
pub fn merge_by_rewrite<S: Storage + ?Sized>(
    storage: &mut S,
    token: Token,
    key: &[u8],
    incoming: &Siblings,
    mode: ConflictMode,
) -> Result<bool, StorageError> {
    let mut current = storage.get(token, key)?.unwrap_or_default();
    let changed = current.merge(incoming, mode);
    if changed {
        storage.put(token, key, current)?;
    }
    Ok(changed)
}

/// In-memory storage for tests, the simulator and the browser. Cloning it is how the simulator
/// keeps a crashed node's state; [`MemStorage::crash`] first drops what was never synced (the
/// module's durability contract).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemStorage {
    /// Keys by token; the few keys sharing a token are kept sorted in one inline bucket, so a
    /// lookup needs no allocation.
    data: BTreeMap<Token, Bucket>,
    hints: BTreeMap<u64, Hint>,
    meta: BTreeMap<String, Vec<u8>>,
    bytes: u64,
    keys: u64,
    /// What each item written since the last `sync` held at that sync (`None`: absent).
    unsynced: Unsynced,
}

/// The undo journal of [`MemStorage`]: the synced value of every data key, hint and metadata
/// entry changed since the last `sync`. Only the first change after a sync is recorded, so a
/// rollback restores exactly the synced state whatever the order of the later changes.
#[derive(Clone, Debug, Default, PartialEq)]
struct Unsynced {
    data: BTreeMap<(Token, Vec<u8>), Option<Siblings>>,
    hints: BTreeMap<u64, Option<Hint>>,
    meta: BTreeMap<String, Option<Vec<u8>>>,
}

impl Unsynced {
    fn len(&self) -> usize {
        self.data.len() + self.hints.len() + self.meta.len()
    }
}

type Bucket = smallvec::SmallVec<[(Vec<u8>, Siblings); 1]>;

impl MemStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry, in `(token, key)` order (for views and convergence checks).
    pub fn iter(&self) -> impl Iterator<Item = (Token, &[u8], &Siblings)> {
        self.data.iter().flat_map(|(t, b)| b.iter().map(move |(k, v)| (*t, k.as_slice(), v)))
    }

    fn entry_bytes(key: &[u8], value: &Siblings) -> u64 {
        (key.len() + value.approx_bytes()) as u64
    }

    /// Number of data keys, hints and metadata entries changed since the last `sync`.
    pub fn unsynced_writes(&self) -> usize {
        self.unsynced.len()
    }

    /// The node died: every write not yet synced is lost, and the store is back to its state at
    /// the last `sync` (the durability contract of the [module docs](self)).
    pub fn crash(&mut self) {
        let journal = std::mem::take(&mut self.unsynced);
        for ((token, key), before) in journal.data {
            self.put_unjournaled(token, &key, before.unwrap_or_default());
        }
        for (id, before) in journal.hints {
            match before {
                Some(h) => self.hints.insert(id, h),
                None => self.hints.remove(&id),
            };
        }
        for (name, before) in journal.meta {
            match before {
                Some(v) => self.meta.insert(name, v),
                None => self.meta.remove(&name),
            };
        }
    }

    /// Records the synced value of a data key before its first change since the last sync.
    fn journal_data(&mut self, token: Token, key: &[u8]) {
        let slot = (token, key.to_vec());
        if !self.unsynced.data.contains_key(&slot) {
            let before = self.get(token, key).unwrap_or_default();
            self.unsynced.data.insert(slot, before);
        }
    }

    fn put_unjournaled(&mut self, token: Token, key: &[u8], value: Siblings) {
        let bucket = self.data.entry(token).or_default();
        let pos = bucket.binary_search_by(|(k, _)| k.as_slice().cmp(key));
        if let Ok(i) = pos {
            self.bytes -= Self::entry_bytes(key, &bucket[i].1);
        }
        let new_bytes = Self::entry_bytes(key, &value);
        match (pos, value.is_empty()) {
            (Ok(i), true) => {
                bucket.remove(i);
                self.keys -= 1;
            }
            (Ok(i), false) => {
                bucket[i].1 = value;
                self.bytes += new_bytes;
            }
            (Err(_), true) => {}
            (Err(i), false) => {
                bucket.insert(i, (key.to_vec(), value));
                self.bytes += new_bytes;
                self.keys += 1;
            }
        }
        if bucket.is_empty() {
            self.data.remove(&token);
        }
    }
}

impl Storage for MemStorage {
    fn get(&self, token: Token, key: &[u8]) -> Result<Option<Siblings>, StorageError> {
        Ok(self
            .data
            .get(&token)
            .and_then(|b| b.iter().find(|(k, _)| k.as_slice() == key))
            .map(|(_, v)| v.clone()))
    }

    fn put(&mut self, token: Token, key: &[u8], value: Siblings) -> Result<(), StorageError> {
        self.journal_data(token, key);
        self.put_unjournaled(token, key, value);
        Ok(())
    }

    fn merge(
        &mut self,
        token: Token,
        key: &[u8],
        incoming: &Siblings,
        mode: ConflictMode,
    ) -> Result<bool, StorageError> {
        let journaled = self.unsynced.data.contains_key(&(token, key.to_vec()));
        let existing =
            self.data.get_mut(&token).and_then(|b| b.iter_mut().find(|(k, _)| k.as_slice() == key));
        match existing {
            Some((_, current)) => {
                let before = Self::entry_bytes(key, current);
                // The synced value is kept only if this merge changes it (most merges of
                // replayed or repaired data do not).
                let synced = (!journaled).then(|| current.clone());
                let changed = current.merge(incoming, mode);
                if changed {
                    if let Some(synced) = synced {
                        self.unsynced.data.insert((token, key.to_vec()), Some(synced));
                    }
                    let after = Self::entry_bytes(key, current);
                    // A join never empties a non-empty set, so the key stays.
                    self.bytes = self.bytes + after - before;
                }
                Ok(changed)
            }
            None => merge_by_rewrite(self, token, key, incoming, mode),
        }
    }

    fn scan(
        &self,
        range: TokenRange,
        after: Option<(Token, &[u8])>,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let mut out = Vec::new();
        for (lo, hi, at_cursor) in scan_pieces(range, after.map(|(t, _)| t)) {
            let lo = match (at_cursor, after) {
                (true, Some((t, _))) => t,
                _ => lo,
            };
            for (t, bucket) in self.data.range(lo..=hi) {
                for (k, v) in bucket {
                    if at_cursor
                        && let Some((at, ak)) = after
                        && (*t, k.as_slice()) <= (at, ak)
                    {
                        continue;
                    }
                    out.push(Entry { token: *t, key: k.clone(), value: v.clone() });
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    fn key_count(&self) -> u64 {
        self.keys
    }

    fn load_bytes(&self) -> u64 {
        self.bytes
    }

    fn put_hint(&mut self, hint: &Hint) -> Result<(), StorageError> {
        let before = self.hints.insert(hint.id, hint.clone());
        self.unsynced.hints.entry(hint.id).or_insert(before);
        Ok(())
    }

    fn remove_hint(&mut self, id: u64) -> Result<(), StorageError> {
        let before = self.hints.remove(&id);
        self.unsynced.hints.entry(id).or_insert(before);
        Ok(())
    }

    fn hints(&self) -> Result<Vec<Hint>, StorageError> {
        Ok(self.hints.values().cloned().collect())
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.meta.get(name).cloned())
    }

    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StorageError> {
        let before = self.meta.insert(name.to_string(), value.to_vec());
        self.unsynced.meta.entry(name.to_string()).or_insert(before);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        // Everything written so far is now durable: forget how to undo it.
        if self.unsynced.len() > 0 {
            self.unsynced = Unsynced::default();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{Dot, VClock, Version};

    fn val(s: &str) -> Siblings {
        Siblings::one(Version {
            dot: Dot { node: NodeId(0), counter: 1 },
            context: VClock::new(),
            timestamp: 1,
            value: Some(s.as_bytes().to_vec()),
        })
    }

    #[test]
    fn scan_respects_wrapping_ranges_and_paging() {
        let mut s = MemStorage::new();
        for (t, k) in [(5u64, "a"), (10, "b"), (10, "c"), (u64::MAX, "z"), (0, "zero")] {
            s.put(t, k.as_bytes(), val(k)).unwrap();
        }
        let keys = |r: TokenRange, after: Option<(Token, &[u8])>, limit| {
            s.scan(r, after, limit)
                .unwrap()
                .into_iter()
                .map(|e| String::from_utf8(e.key).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(TokenRange { start: 5, end: 10 }, None, 10), ["b", "c"]);
        assert_eq!(keys(TokenRange { start: 10, end: 5 }, None, 10), ["z", "zero", "a"]);
        assert_eq!(keys(TokenRange { start: 0, end: 10 }, Some((10, b"b")), 10), ["c"]);
        assert_eq!(keys(TokenRange { start: 10, end: 5 }, None, 2), ["z", "zero"]);
        assert_eq!(keys(TokenRange { start: 10, end: 5 }, Some((0, b"zero")), 5), ["a"]);
    }

    #[test]
    fn paging_resumes_after_a_removed_cursor_key() {
        let mut s = MemStorage::new();
        for t in [10u64, 20, 30, u64::MAX - 5] {
            s.put(t, b"k", val("v")).unwrap();
        }
        let whole = TokenRange { start: 0, end: 0 };
        let first = s.scan(whole, None, 2).unwrap();
        assert_eq!(first.iter().map(|e| e.token).collect::<Vec<_>>(), vec![10, 20]);
        // The cursor key disappears before the next page is read (cleanup deletes as it pages).
        s.put(20, b"k", Siblings::new()).unwrap();
        let next = s.scan(whole, Some((20, b"k")), 10).unwrap();
        assert_eq!(next.iter().map(|e| e.token).collect::<Vec<_>>(), vec![30, u64::MAX - 5]);
        // A wrapping range resumes in its second piece without revisiting the first.
        let wrap = TokenRange { start: 25, end: 15 };
        let page = s.scan(wrap, Some((10, b"k")), 10).unwrap();
        assert!(page.is_empty(), "{page:?}");
        let page = s.scan(wrap, Some((u64::MAX - 5, b"k")), 10).unwrap();
        assert_eq!(page.iter().map(|e| e.token).collect::<Vec<_>>(), vec![10]);
    }

    #[test]
    fn in_place_merge_matches_get_merge_put() {
        let mut fast = MemStorage::new();
        let mut slow = MemStorage::new();
        let mut newer = val("b");
        newer.0[0].dot.counter = 2;
        newer.0[0].timestamp = 2;
        for v in [val("a"), newer.clone(), val("a")] {
            let a = fast.merge(7, b"k", &v, ConflictMode::Lww).unwrap();
            let mut cur = slow.get(7, b"k").unwrap().unwrap_or_default();
            let b = cur.merge(&v, ConflictMode::Lww);
            slow.put(7, b"k", cur).unwrap();
            assert_eq!(a, b);
            assert_eq!(fast, slow);
        }
        assert_eq!(fast.get(7, b"k").unwrap(), Some(newer));
    }

    #[test]
    fn a_crash_drops_what_was_not_synced_and_keeps_what_was() {
        let mut s = MemStorage::new();
        s.put(1, b"kept", val("a")).unwrap();
        s.put_meta("m", b"old").unwrap();
        let hint = Hint {
            id: 1,
            target: NodeId(2),
            token: 1,
            key: b"kept".to_vec(),
            value: val("a"),
            created: Instant::ZERO,
            epoch: 0,
        };
        s.put_hint(&hint).unwrap();
        s.sync().unwrap();
        let synced = s.clone();
        assert_eq!(s.unsynced_writes(), 0);

        // After the sync: a new key, an overwrite, an in-place merge, a removal, hint and meta
        // changes — all lost by the crash, in whatever order they happened.
        s.put(2, b"new", val("b")).unwrap();
        let mut newer = val("c");
        newer.0[0].dot.counter = 2;
        s.merge(1, b"kept", &newer, ConflictMode::VectorClock).unwrap();
        s.put(1, b"kept", Siblings::new()).unwrap();
        s.put(1, b"kept", val("d")).unwrap();
        s.remove_hint(1).unwrap();
        s.put_hint(&Hint { id: 2, ..hint.clone() }).unwrap();
        s.put_meta("m", b"new").unwrap();
        s.put_meta("other", b"x").unwrap();
        assert!(s.unsynced_writes() > 0);
        s.crash();
        assert_eq!(s.get(2, b"new").unwrap(), None, "an unsynced key survived the crash");
        assert_eq!(s.get(1, b"kept").unwrap(), Some(val("a")));
        assert_eq!(s.hints().unwrap(), vec![hint]);
        assert_eq!(s.get_meta("m").unwrap(), Some(b"old".to_vec()));
        assert_eq!(s.get_meta("other").unwrap(), None);
        assert_eq!((s.key_count(), s.load_bytes()), (synced.key_count(), synced.load_bytes()));
        assert_eq!(s, synced);

        // Synced writes survive.
        s.put(3, b"durable", val("e")).unwrap();
        s.sync().unwrap();
        s.crash();
        assert_eq!(s.get(3, b"durable").unwrap(), Some(val("e")));
    }

    #[test]
    fn empty_value_removes_key_and_load_tracks_bytes() {
        let mut s = MemStorage::new();
        s.put(1, b"k", val("v")).unwrap();
        assert_eq!(s.key_count(), 1);
        assert!(s.load_bytes() > 0);
        s.put(1, b"k", Siblings::new()).unwrap();
        assert_eq!(s.key_count(), 0);
        assert_eq!(s.load_bytes(), 0);
    }
}
