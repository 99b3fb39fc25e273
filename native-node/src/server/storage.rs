//! Durable storage on disk: [`DiskStorage`], the [`Storage`] implementation of the native node,
//! built on the `fjall` LSM-tree.
//!
//! # Layout
//! One fjall keyspace per data directory, holding three partitions:
//! - `data`: key = token (8 bytes, big-endian) followed by the key's bytes; value = the key's
//!   [`Siblings`] in MessagePack. Big-endian tokens make the byte order of stored keys the
//!   `(token, key)` order, so a token range is one contiguous range scan, or two for a range that
//!   wraps past `u64::MAX` (exactly the pieces [`MemStorage`](ringside_core::storage::MemStorage)
//!   scans). An empty [`Siblings`] is never stored: writing one removes the key.
//! - `hints`: key = hint id (8 bytes, big-endian, so iteration is id order); value = the rest of
//!   the [`Hint`] in MessagePack.
//! - `meta`: the caller's metadata under `user/<name>`, and this module's own records under
//!   `sys/`: `sys/format` (the on-disk format version) and `sys/counters` (see below). The prefixes
//!   keep a caller's name from ever colliding with an internal record.
//!
//! Values are encoded through private mirror structs, not through the serde derives of
//! `ringside-core`: the mirrors store value bytes as MessagePack `bin` (serde's default for
//! `Vec<u8>` is an array of integers, up to twice the size), and they destructure every core type
//! exhaustively, so adding a field to [`Version`] or [`Hint`] fails to compile here instead of
//! silently changing or truncating the on-disk format.
//!
//! # Durability
//! fjall appends every write to its journal (its write-ahead log, shared by all partitions) before
//! applying it to a memtable. The keyspace and its partitions are opened with
//! `manual_journal_persist(true)`: a write only appends to the journal's 8 KiB in-process buffer
//! (written to the file when it fills), with no system call per write, let alone an fsync. There
//! is no `fsync_ms` background thread either: nothing becomes durable on a timer. [`Storage::sync`]
//! calls `Keyspace::persist(PersistMode::SyncAll)`, which writes the buffer out and fsyncs the
//! journal, making every earlier write of every partition durable. The driver calls it once per
//! batch of inputs, before releasing their acknowledgements (group commit), so the cost is one
//! fsync per batch, not per write.
//!
//! After a crash fjall recovers a *prefix* of the journal: every synced write, perhaps some later
//! ones, in write order (a torn tail record is dropped). Memtable flushes do not break this: fjall
//! fsyncs the journal before sealing it, so a flushed segment never holds a write whose
//! predecessors were lost. Dropping a [`DiskStorage`] without `sync` flushes the journal too
//! (fjall persists it on drop), so only a crash loses unsynced writes.
//!
//! # Counters
//! [`Storage::key_count`] and [`Storage::load_bytes`] are O(1): both are kept in memory and updated
//! by every write (`load_bytes` counts stored key bytes, token included, plus encoded value bytes).
//! They survive restarts through `sys/counters`, kept exact by write ordering:
//! - `sync` writes the current counters to `sys/counters` (when data changed since the last time),
//!   just before its fsync;
//! - the first data write after that *removes* `sys/counters`, before writing the data.
//!
//! Because recovery yields a journal prefix, a `sys/counters` present at open matches the data
//! exactly: any data write after it that survived was preceded by its removal, which then survived
//! too. When it is absent (a crash, or a drop, after unsynced data writes) `open` recounts in a
//! single pass over `data` and persists the result, so counters are never wrong after a restart.
//! The cost at run time is one small extra write per synced batch and one per first write after it.

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use ringside_core::id::NodeId;
use ringside_core::storage::{Entry, Hint, Storage, StorageError, scan_pieces};
use ringside_core::time::Instant;
use ringside_core::token::{Token, TokenRange};
use ringside_core::version::{ClockEntry, Dot, Siblings, VClock, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};

/// Version of the on-disk layout described in the module documentation.
const FORMAT_VERSION: u8 = 1;
/// Meta key of the format version.
const FORMAT_KEY: &[u8] = b"sys/format";
/// Meta key of the persisted counters.
const COUNTERS_KEY: &[u8] = b"sys/counters";
/// Prefix of the caller's metadata names.
const USER_META_PREFIX: &[u8] = b"user/";
/// fjall's limit on key length (it panics on a longer key, reads included).
const MAX_STORED_KEY: usize = u16::MAX as usize;
/// Length of the token prefix of a data key.
const TOKEN_LEN: usize = 8;
/// The longest client key this store can hold: the data key, the longest of the layouts (hints
/// keep their key in the value, metadata names are this module's own), is the token followed by
/// the key and must fit fjall's limit. The node configures the engine with this limit, so longer
/// keys are refused before storage is touched.
pub const MAX_KEY_BYTES: usize = MAX_STORED_KEY - TOKEN_LEN;

/// [`Storage`] on disk, in a fjall keyspace (see the module documentation for the layout and the
/// durability guarantees).
pub struct DiskStorage {
    dir: PathBuf,
    keyspace: Keyspace,
    data: PartitionHandle,
    hints: PartitionHandle,
    meta: PartitionHandle,
    keys: u64,
    bytes: u64,
    /// Whether `sys/counters` holds `keys` and `bytes` (no data write since it was written).
    counters_persisted: bool,
    /// Whether anything was written since the last `sync` (a sync with nothing to persist skips
    /// the fsync: the driver syncs after every batch, read-only ones included).
    dirty: bool,
}

impl DiskStorage {
    /// Whether a write happened since the last `sync` (the next sync will fsync).
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }
}

impl fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStorage")
            .field("dir", &self.dir)
            .field("keys", &self.keys)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl DiskStorage {
    /// Opens the store in `dir`, creating the directory and an empty store when missing.
    ///
    /// Recovers what the last run made durable. Fails when the directory cannot be created or
    /// read, or holds something other than this store (the message names the directory).
    pub fn open(dir: &Path) -> Result<DiskStorage, StorageError> {
        let fail = |what: &dyn fmt::Display| {
            StorageError(format!("cannot open data directory {}: {what}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        // Durability comes from `sync` alone: no flush to the OS per write, no fsync timer.
        let keyspace = Config::new(dir)
            .manual_journal_persist(true)
            .fsync_ms(None)
            .open()
            .map_err(|e| fail(&Fjall(&e)))?;
        let partition = |name: &str| {
            keyspace
                .open_partition(
                    name,
                    PartitionCreateOptions::default().manual_journal_persist(true),
                )
                .map_err(|e| fail(&format_args!("partition {name}: {}", Fjall(&e))))
        };
        let (data, hints, meta) = (partition("data")?, partition("hints")?, partition("meta")?);
        let mut store = DiskStorage {
            dir: dir.to_path_buf(),
            keyspace,
            data,
            hints,
            meta,
            keys: 0,
            bytes: 0,
            counters_persisted: false,
            dirty: false,
        };
        match store.meta.get(FORMAT_KEY).map_err(|e| fail(&Fjall(&e)))? {
            Some(v) if v.as_ref() == [FORMAT_VERSION] => {}
            Some(v) => {
                return Err(fail(&format_args!(
                    "unsupported on-disk format {:?} (this build reads format {FORMAT_VERSION})",
                    v.as_ref()
                )));
            }
            None => {
                store.meta.insert(FORMAT_KEY, [FORMAT_VERSION]).map_err(|e| fail(&Fjall(&e)))?;
                store.dirty = true;
            }
        }
        let persisted = store.meta.get(COUNTERS_KEY).map_err(|e| fail(&Fjall(&e)))?;
        match persisted {
            Some(raw) => {
                let (keys, bytes) = rmp_serde::from_slice::<(u64, u64)>(&raw)
                    .map_err(|e| fail(&format_args!("corrupt {:?}: {e}", "sys/counters")))?;
                store.keys = keys;
                store.bytes = bytes;
                store.counters_persisted = true;
            }
            None => {
                // Data changed after the last persisted counters (crash or drop without `sync`):
                // one pass over the data, then persist so the next open does not recount.
                let (keys, bytes) = store.count_data()?;
                store.keys = keys;
                store.bytes = bytes;
                store.sync()?;
            }
        }
        Ok(store)
    }

    /// The data directory this store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Counts keys and bytes of the `data` partition in one pass.
    fn count_data(&self) -> Result<(u64, u64), StorageError> {
        let (mut keys, mut bytes) = (0u64, 0u64);
        for item in self.data.iter() {
            let (k, v) = item.map_err(|e| self.error("count the keys", &e))?;
            keys += 1;
            bytes += stored_bytes(k.len(), v.len());
        }
        Ok((keys, bytes))
    }

    fn error(&self, what: impl fmt::Display, e: &fjall::Error) -> StorageError {
        StorageError(format!("cannot {what} in {}: {}", self.dir.display(), Fjall(e)))
    }

    fn corrupt(&self, what: impl fmt::Display, e: impl fmt::Display) -> StorageError {
        StorageError(format!("corrupt {what} in {}: {e}", self.dir.display()))
    }

    /// Removes `sys/counters` before the first data write after it was persisted (see the module
    /// documentation).
    fn invalidate_counters(&mut self) -> Result<(), StorageError> {
        if self.counters_persisted {
            self.meta.remove(COUNTERS_KEY).map_err(|e| self.error("write the counters", &e))?;
            self.counters_persisted = false;
        }
        Ok(())
    }
}

impl Storage for DiskStorage {
    fn get(&self, token: Token, key: &[u8]) -> Result<Option<Siblings>, StorageError> {
        // No stored key is this long (`put` refuses it), and fjall would panic looking it up.
        if key.len() > MAX_KEY_BYTES {
            return Ok(None);
        }
        let k = data_key(token, key);
        let what = || format!("key {} (token {token})", key.escape_ascii());
        match self.data.get(&k).map_err(|e| self.error(format_args!("read {}", what()), &e))? {
            Some(raw) => Ok(Some(decode_siblings(&raw).map_err(|e| self.corrupt(what(), e))?)),
            None => Ok(None),
        }
    }

    fn put(&mut self, token: Token, key: &[u8], value: Siblings) -> Result<(), StorageError> {
        self.dirty = true;
        let k = data_key(token, key);
        let what = || format!("key {} (token {token})", key.escape_ascii());
        if key.len() > MAX_KEY_BYTES {
            return Err(StorageError(format!(
                "cannot write a key of {} bytes in {} (the limit is {MAX_KEY_BYTES})",
                key.len(),
                self.dir.display(),
            )));
        }
        let old =
            self.data.size_of(&k).map_err(|e| self.error(format_args!("read {}", what()), &e))?;
        if value.is_empty() {
            if let Some(old_len) = old {
                self.invalidate_counters()?;
                self.data
                    .remove(k.as_slice())
                    .map_err(|e| self.error(format_args!("remove {}", what()), &e))?;
                self.keys -= 1;
                self.bytes -= stored_bytes(k.len(), old_len as usize);
            }
            return Ok(());
        }
        let encoded = encode_siblings(&value)
            .map_err(|e| StorageError(format!("cannot encode the value of {}: {e}", what())))?;
        let new_bytes = stored_bytes(k.len(), encoded.len());
        self.invalidate_counters()?;
        self.data
            .insert(k.as_slice(), encoded)
            .map_err(|e| self.error(format_args!("write {}", what()), &e))?;
        match old {
            Some(old_len) => self.bytes -= stored_bytes(k.len(), old_len as usize),
            None => self.keys += 1,
        }
        self.bytes += new_bytes;
        Ok(())
    }

    fn scan(
        &self,
        range: TokenRange,
        after: Option<(Token, &[u8])>,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let what = || format!("scan {range}");
        let mut out = Vec::new();
        for (lo, hi, at_cursor) in scan_pieces(range, after.map(|(t, _)| t)) {
            let lower = match after {
                Some((t, k)) if at_cursor => Bound::Excluded(cursor_key(t, k)),
                _ => Bound::Included(lo.to_be_bytes().to_vec()),
            };
            let upper = match hi.checked_add(1) {
                Some(next) => Bound::Excluded(next.to_be_bytes().to_vec()),
                None => Bound::Unbounded,
            };
            for item in self.data.range::<Vec<u8>, _>((lower, upper)) {
                let (k, v) = item.map_err(|e| self.error(what(), &e))?;
                let (token, key) = split_data_key(&k)
                    .ok_or_else(|| self.corrupt("data key", format_args!("{} bytes", k.len())))?;
                let value = decode_siblings(&v).map_err(|e| {
                    self.corrupt(format_args!("key {} (token {token})", key.escape_ascii()), e)
                })?;
                out.push(Entry { token, key: key.to_vec(), value });
                if out.len() >= limit {
                    return Ok(out);
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
        self.dirty = true;
        let encoded = encode_hint(hint)
            .map_err(|e| StorageError(format!("cannot encode hint {}: {e}", hint.id)))?;
        self.hints
            .insert(hint.id.to_be_bytes(), encoded)
            .map_err(|e| self.error(format_args!("write hint {}", hint.id), &e))
    }

    fn remove_hint(&mut self, id: u64) -> Result<(), StorageError> {
        self.dirty = true;
        self.hints
            .remove(id.to_be_bytes())
            .map_err(|e| self.error(format_args!("remove hint {id}"), &e))
    }

    fn hints(&self) -> Result<Vec<Hint>, StorageError> {
        let mut out = Vec::new();
        for item in self.hints.iter() {
            let (k, v) = item.map_err(|e| self.error("read the hints", &e))?;
            let id = <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| self.corrupt("hint key", format_args!("{} bytes", k.len())))?;
            out.push(decode_hint(id, &v).map_err(|e| self.corrupt(format_args!("hint {id}"), e))?);
        }
        Ok(out)
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let k = meta_key(name);
        // `put_meta` refuses such a name, and fjall would panic looking it up.
        if k.len() > MAX_STORED_KEY {
            return Ok(None);
        }
        let value =
            self.meta.get(k).map_err(|e| self.error(format_args!("read metadata {name:?}"), &e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StorageError> {
        self.dirty = true;
        let k = meta_key(name);
        if k.len() > MAX_STORED_KEY {
            return Err(StorageError(format!(
                "cannot write metadata with a name of {} bytes in {}",
                name.len(),
                self.dir.display()
            )));
        }
        self.meta
            .insert(k, value)
            .map_err(|e| self.error(format_args!("write metadata {name:?}"), &e))
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if !self.dirty && self.counters_persisted {
            return Ok(());
        }
        if !self.counters_persisted {
            let counters = rmp_serde::to_vec(&(self.keys, self.bytes))
                .map_err(|e| StorageError(format!("cannot encode the counters: {e}")))?;
            self.meta
                .insert(COUNTERS_KEY, counters)
                .map_err(|e| self.error("write the counters", &e))?;
            self.counters_persisted = true;
        }
        self.keyspace.persist(PersistMode::SyncAll).map_err(|e| self.error("sync", &e))?;
        self.dirty = false;
        Ok(())
    }
}

/// Bytes a data entry accounts for in [`Storage::load_bytes`].
fn stored_bytes(key_len: usize, value_len: usize) -> u64 {
    (key_len + value_len) as u64
}

/// The stored key of a data entry: the token big-endian, then the key.
fn data_key(token: Token, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(TOKEN_LEN + key.len());
    k.extend_from_slice(&token.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// The exclusive lower bound of a scan after `(token, key)`. A key too long to be stored is cut
/// to fjall's limit, which changes nothing: no stored key (at most `MAX_STORED_KEY` bytes) lies
/// between the cut key and the full one, so the same entries follow both.
fn cursor_key(token: Token, key: &[u8]) -> Vec<u8> {
    let mut k = data_key(token, key);
    k.truncate(MAX_STORED_KEY);
    k
}

/// Splits a stored data key into token and key.
fn split_data_key(k: &[u8]) -> Option<(Token, &[u8])> {
    let (token, key) = k.split_first_chunk::<TOKEN_LEN>()?;
    Some((Token::from_be_bytes(*token), key))
}

fn meta_key(name: &str) -> Vec<u8> {
    [USER_META_PREFIX, name.as_bytes()].concat()
}

/// Displays a fjall error readably (its own `Display` is its `Debug`).
struct Fjall<'a>(&'a fjall::Error);

impl fmt::Display for Fjall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            fjall::Error::Io(e) => write!(f, "{e}"),
            fjall::Error::Poisoned => {
                f.write_str("the store refuses writes after an earlier failed fsync")
            }
            other => write!(f, "{other:?}"),
        }
    }
}

/// Bytes written as MessagePack `bin`.
struct BinRef<'a>(&'a [u8]);

impl Serialize for BinRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Bytes read from MessagePack `bin`.
struct BinBuf(Vec<u8>);

impl<'de> Deserialize<'de> for BinBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = BinBuf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<BinBuf, E> {
                Ok(BinBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<BinBuf, E> {
                Ok(BinBuf(v))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// On-disk form of one context entry: actor, counter, update time.
type ClockRepr = (u32, u64, u64);

/// On-disk form of a [`Version`] (written as a MessagePack array, fields in this order).
#[derive(Serialize)]
struct VersionOut<'a> {
    node: u32,
    counter: u64,
    context: Vec<ClockRepr>,
    timestamp: u64,
    value: Option<BinRef<'a>>,
}

/// What [`VersionOut`] reads back as.
#[derive(Deserialize)]
struct VersionIn {
    node: u32,
    counter: u64,
    context: Vec<ClockRepr>,
    timestamp: u64,
    value: Option<BinBuf>,
}

impl<'a> VersionOut<'a> {
    fn new(v: &'a Version) -> Self {
        // Exhaustive patterns: a new field in core must be added to the format here.
        let Version {
            dot: Dot { node: NodeId(node), counter },
            context: VClock(context),
            timestamp,
            value,
        } = v;
        VersionOut {
            node: *node,
            counter: *counter,
            context: context
                .iter()
                .map(|(NodeId(n), ClockEntry { counter, at })| (*n, *counter, *at))
                .collect(),
            timestamp: *timestamp,
            value: value.as_deref().map(BinRef),
        }
    }
}

impl From<VersionIn> for Version {
    fn from(v: VersionIn) -> Self {
        let VersionIn { node, counter, context, timestamp, value } = v;
        Version {
            dot: Dot { node: NodeId(node), counter },
            context: VClock(
                context
                    .into_iter()
                    .map(|(n, counter, at)| (NodeId(n), ClockEntry { counter, at }))
                    .collect::<BTreeMap<_, _>>(),
            ),
            timestamp,
            value: value.map(|b| b.0),
        }
    }
}

/// On-disk form of a [`Hint`] without its id (the id is the key).
#[derive(Serialize)]
struct HintOut<'a> {
    target: u32,
    token: u64,
    key: BinRef<'a>,
    value: Vec<VersionOut<'a>>,
    created: u64,
    epoch: u64,
}

/// What [`HintOut`] reads back as.
#[derive(Deserialize)]
struct HintIn {
    target: u32,
    token: u64,
    key: BinBuf,
    value: Vec<VersionIn>,
    created: u64,
    #[serde(default)]
    epoch: u64,
}

fn encode_siblings(s: &Siblings) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    let Siblings(versions) = s;
    rmp_serde::to_vec(&versions.iter().map(VersionOut::new).collect::<Vec<_>>())
}

fn decode_siblings(raw: &[u8]) -> Result<Siblings, rmp_serde::decode::Error> {
    let versions: Vec<VersionIn> = rmp_serde::from_slice(raw)?;
    Ok(Siblings(versions.into_iter().map(Version::from).collect()))
}

fn encode_hint(h: &Hint) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    let Hint {
        id: _,
        target: NodeId(target),
        token,
        key,
        value: Siblings(versions),
        created: Instant(created),
        epoch,
    } = h;
    rmp_serde::to_vec(&HintOut {
        target: *target,
        token: *token,
        key: BinRef(key),
        value: versions.iter().map(VersionOut::new).collect(),
        created: *created,
        epoch: *epoch,
    })
}

fn decode_hint(id: u64, raw: &[u8]) -> Result<Hint, rmp_serde::decode::Error> {
    let HintIn { target, token, key, value, created, epoch } = rmp_serde::from_slice(raw)?;
    Ok(Hint {
        id,
        target: NodeId(target),
        token,
        key: key.0,
        value: Siblings(value.into_iter().map(Version::from).collect()),
        created: Instant(created),
        epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestRunner;
    use ringside_core::storage::MemStorage;
    use ringside_core::token::token_for;
    use ringside_core::version::ConflictMode;
    use std::collections::BTreeMap;
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    const WHOLE: TokenRange = TokenRange { start: 0, end: 0 };

    fn version(node: u32, counter: u64, value: Option<&[u8]>) -> Version {
        Version {
            dot: Dot { node: NodeId(node), counter },
            context: VClock::new(),
            timestamp: counter,
            value: value.map(<[u8]>::to_vec),
        }
    }

    fn val(s: &str) -> Siblings {
        Siblings::one(version(0, 1, Some(s.as_bytes())))
    }

    fn open(dir: &Path) -> DiskStorage {
        DiskStorage::open(dir).expect("open")
    }

    fn tokens(entries: &[Entry]) -> Vec<Token> {
        entries.iter().map(|e| e.token).collect()
    }

    fn assert_counters_exact(s: &DiskStorage) {
        assert_eq!((s.key_count(), s.load_bytes()), s.count_data().expect("count"));
    }

    #[test]
    fn scan_respects_wrapping_ranges_and_paging() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
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
        let r = TokenRange::new;
        assert_eq!(keys(r(5, 10), None, 10), ["b", "c"]);
        assert_eq!(keys(r(10, 5), None, 10), ["z", "zero", "a"]);
        assert_eq!(keys(r(0, 10), Some((10, b"b")), 10), ["c"]);
        assert_eq!(keys(r(10, 5), None, 2), ["z", "zero"]);
        assert_eq!(keys(r(10, 5), Some((0, b"zero")), 5), ["a"]);
        // Whole ring, from any start: (t, MAX] then [0, t].
        assert_eq!(keys(r(0, 0), None, 10), ["a", "b", "c", "z", "zero"]);
        assert_eq!(keys(r(7, 7), None, 10), ["b", "c", "z", "zero", "a"]);
        assert_eq!(keys(r(u64::MAX, u64::MAX), None, 10), ["zero", "a", "b", "c", "z"]);
        // The extreme tokens: (0, MAX] is all but token 0, (MAX, 0] is token 0 alone.
        assert_eq!(keys(r(0, u64::MAX), None, 10), ["a", "b", "c", "z"]);
        assert_eq!(keys(r(u64::MAX, 0), None, 10), ["zero"]);
        assert_eq!(keys(r(u64::MAX - 1, u64::MAX), None, 10), ["z"]);
        // Keys sharing a token are in byte order, and a cursor between them resumes inside it.
        assert_eq!(keys(r(9, 10), Some((10, b"bb")), 10), ["c"]);
        assert_eq!(keys(r(9, 10), Some((10, b"")), 10), ["b", "c"]);
    }

    /// A key of exactly [`MAX_KEY_BYTES`] is stored and read back; a longer one is refused by
    /// `put` with an error and is absent for `get` and scan cursors, never a panic in fjall.
    #[test]
    fn keys_up_to_the_limit_work_and_longer_ones_fail_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        let at_limit = vec![b'k'; MAX_KEY_BYTES];
        let over = vec![b'k'; MAX_KEY_BYTES + 1];
        s.put(7, &at_limit, val("max")).unwrap();
        assert_eq!(s.get(7, &at_limit).unwrap(), Some(val("max")));
        let e = s.put(7, &over, val("too long")).unwrap_err();
        assert!(e.0.contains(&format!("the limit is {MAX_KEY_BYTES}")), "{e}");
        assert_eq!(s.get(7, &over).unwrap(), None);
        assert_eq!(s.get(7, &vec![b'k'; 64 * 1024]).unwrap(), None);
        s.put(7, b"l", val("after")).unwrap();
        // A cursor longer than any stored key resumes exactly where the full key would.
        let after: Vec<_> = s
            .scan(TokenRange::new(6, 7), Some((7, &over)), 10)
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(after, [b"l".to_vec()]);
        let long_name = "n".repeat(MAX_STORED_KEY);
        assert_eq!(s.get_meta(&long_name).unwrap(), None);
        assert!(s.put_meta(&long_name, b"v").is_err());
        assert_counters_exact(&s);
    }

    #[test]
    fn paging_resumes_after_a_removed_cursor_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        for t in [10u64, 20, 30, u64::MAX - 5] {
            s.put(t, b"k", val("v")).unwrap();
        }
        let first = s.scan(WHOLE, None, 2).unwrap();
        assert_eq!(tokens(&first), vec![10, 20]);
        // The cursor key disappears before the next page is read (cleanup deletes as it pages).
        s.put(20, b"k", Siblings::new()).unwrap();
        let next = s.scan(WHOLE, Some((20, b"k")), 10).unwrap();
        assert_eq!(tokens(&next), vec![30, u64::MAX - 5]);
        // A wrapping range resumes in its second piece without revisiting the first.
        let wrap = TokenRange { start: 25, end: 15 };
        let page = s.scan(wrap, Some((10, b"k")), 10).unwrap();
        assert!(page.is_empty(), "{page:?}");
        let page = s.scan(wrap, Some((u64::MAX - 5, b"k")), 10).unwrap();
        assert_eq!(tokens(&page), vec![10]);
        // Deleting every key as it is paged (cleanup) visits each exactly once.
        let mut seen = Vec::new();
        let mut cursor: Option<(Token, Vec<u8>)> = None;
        loop {
            let page = s.scan(WHOLE, cursor.as_ref().map(|(t, k)| (*t, k.as_slice())), 1).unwrap();
            let Some(e) = page.into_iter().next() else { break };
            s.put(e.token, &e.key, Siblings::new()).unwrap();
            seen.push(e.token);
            cursor = Some((e.token, e.key));
        }
        assert_eq!(seen, vec![10, 30, u64::MAX - 5]);
        assert_eq!(s.key_count(), 0);
        assert_eq!(s.load_bytes(), 0);
    }

    #[test]
    fn counters_survive_reopen_and_are_recounted_after_unsynced_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        for i in 0..20u64 {
            s.put(i, format!("k{i}").as_bytes(), val(&"x".repeat(i as usize))).unwrap();
        }
        s.put(3, b"k3", Siblings::new()).unwrap();
        s.put(4, b"k4", val("shorter")).unwrap();
        assert_eq!(s.key_count(), 19);
        assert_counters_exact(&s);
        s.sync().unwrap();
        let counters = (s.key_count(), s.load_bytes());
        drop(s);
        // Persisted by `sync`: read back without a recount.
        let mut s = open(dir.path());
        assert_eq!((s.key_count(), s.load_bytes()), counters);
        assert!(s.meta.get(COUNTERS_KEY).unwrap().is_some());
        // A data write removes the record until the next sync.
        s.put(100, b"new", val("v")).unwrap();
        assert!(s.meta.get(COUNTERS_KEY).unwrap().is_none());
        drop(s);
        // Dropped without sync: the record is gone, so open recounts (and persists the result).
        let s = open(dir.path());
        assert_eq!(s.key_count(), 20);
        assert_counters_exact(&s);
        assert!(s.meta.get(COUNTERS_KEY).unwrap().is_some());
    }

    #[test]
    fn metadata_names_do_not_clash_with_internal_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.put(1, b"k", val("v")).unwrap();
        for name in ["sys/counters", "sys/format", "", "user/x"] {
            s.put_meta(name, b"garbage").unwrap();
        }
        s.sync().unwrap();
        let counters = (s.key_count(), s.load_bytes());
        drop(s);
        let s = open(dir.path());
        assert_eq!((s.key_count(), s.load_bytes()), counters);
        assert_eq!(s.get_meta("sys/format").unwrap(), Some(b"garbage".to_vec()));
        assert_eq!(s.get_meta("absent").unwrap(), None);
    }

    #[test]
    fn disk_storage_can_move_to_the_driver_thread() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<DiskStorage>();
    }

    #[test]
    fn errors_name_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = DiskStorage::open(&file).unwrap_err();
        assert!(
            err.0.starts_with(&format!("cannot open data directory {}: ", file.display())),
            "{err}"
        );
        let mut s = open(&dir.path().join("store"));
        assert_eq!(s.data_dir(), dir.path().join("store"));
        let err = s.put(1, &vec![0; MAX_STORED_KEY], val("v")).unwrap_err();
        assert!(err.0.contains(&dir.path().join("store").display().to_string()), "{err}");
        assert!(s.put(1, &vec![0; MAX_STORED_KEY - TOKEN_LEN], val("v")).is_ok());
    }

    #[test]
    fn unknown_format_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        s.meta.insert(FORMAT_KEY, [FORMAT_VERSION + 1]).unwrap();
        drop(s);
        let err = DiskStorage::open(dir.path()).unwrap_err();
        assert!(err.0.contains("unsupported on-disk format"), "{err}");
    }

    #[test]
    fn values_are_stored_as_msgpack_bin() {
        let s = Siblings::one(version(1, 1, Some(&[0xff; 100])));
        let encoded = encode_siblings(&s).unwrap();
        // An integer array would take two bytes per 0xff.
        assert!(encoded.len() < 130, "{} bytes", encoded.len());
        assert_eq!(decode_siblings(&encoded).unwrap(), s);
    }

    // --- Strategies ---

    /// Tokens with many collisions and the ring's extremes.
    const TOKENS: [Token; 8] = [0, 1, 2, 5, 10, 1 << 63, u64::MAX - 1, u64::MAX];
    /// Keys including the empty key and keys that are prefixes of one another.
    const KEYS: [&[u8]; 6] = [b"", b"a", b"ab", b"b", b"\xff", b"\x00"];
    /// Metadata names including the ones of internal records.
    const META_NAMES: [&str; 5] = ["", "ring", "sys/counters", "sys/format", "user/x"];

    fn any_token() -> impl Strategy<Value = Token> {
        prop_oneof![3 => prop::sample::select(TOKENS.to_vec()), 1 => any::<u64>()]
    }

    fn any_range() -> impl Strategy<Value = TokenRange> {
        (any_token(), any_token()).prop_map(|(s, e)| TokenRange::new(s, e))
    }

    fn any_version(small: bool) -> impl Strategy<Value = Version> {
        let (nodes, counters) = if small { (4u32, 5u64) } else { (u32::MAX, u64::MAX) };
        (
            0..nodes,
            1..counters,
            prop::collection::btree_map(0..nodes, (any::<u64>(), any::<u64>()), 0..3),
            any::<u64>(),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..12)),
        )
            .prop_map(move |(node, own, ctx, timestamp, value)| Version {
                dot: Dot { node: NodeId(node), counter: own },
                context: VClock(
                    ctx.into_iter()
                        .map(|(n, (counter, at))| {
                            // Small versions are causally sane: a context only covers dots with
                            // lower counters, so no two versions cover each other and a join
                            // never empties a set (arbitrary contexts can, which real writes
                            // never produce).
                            let counter = if small { counter % own } else { counter };
                            (NodeId(n), ClockEntry { counter, at })
                        })
                        .collect(),
                ),
                timestamp,
                value,
            })
    }

    fn any_siblings(small: bool) -> impl Strategy<Value = Siblings> {
        prop::collection::vec(any_version(small), 0..4).prop_map(Siblings)
    }

    fn any_hint() -> impl Strategy<Value = Hint> {
        (
            0..6u64,
            any::<u32>(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..6),
            any_siblings(false),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(id, target, token, key, value, created, epoch)| Hint {
                id,
                target: NodeId(target),
                token,
                key,
                value,
                created: Instant(created),
                // The epoch is stored too (round-trips through the encoding).
                epoch,
            })
    }

    /// A key of the model: indices into [`TOKENS`] and [`KEYS`].
    type Slot = (usize, usize);

    fn any_slot() -> impl Strategy<Value = Slot> {
        (0..TOKENS.len(), 0..KEYS.len())
    }

    fn slot_key(slot: Slot) -> (Token, &'static [u8]) {
        (TOKENS[slot.0], KEYS[slot.1])
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(Slot, Siblings),
        Delete(Slot),
        Merge(Slot, Siblings, ConflictMode),
        Get(Slot),
        Scan {
            range: TokenRange,
            after: Option<Slot>,
            limit: usize,
        },
        /// Pages through `range`, optionally deleting every key paged so far (cleanup).
        PageAll {
            range: TokenRange,
            limit: usize,
            delete: bool,
        },
        PutHint(Hint),
        RemoveHint(u64),
        PutMeta(usize, Vec<u8>),
        GetMeta(usize),
        Sync,
        Reopen {
            sync_first: bool,
        },
    }

    fn any_op() -> impl Strategy<Value = Op> {
        let mode = prop_oneof![Just(ConflictMode::VectorClock), Just(ConflictMode::Lww)];
        prop_oneof![
            8 => (any_slot(), any_siblings(true)).prop_map(|(s, v)| Op::Put(s, v)),
            3 => any_slot().prop_map(Op::Delete),
            3 => (any_slot(), any_siblings(true), mode).prop_map(|(s, v, m)| Op::Merge(s, v, m)),
            2 => any_slot().prop_map(Op::Get),
            4 => (any_range(), prop::option::of(any_slot()), 0..6usize)
                .prop_map(|(range, after, limit)| Op::Scan { range, after, limit }),
            2 => (any_range(), 1..4usize, any::<bool>())
                .prop_map(|(range, limit, delete)| Op::PageAll { range, limit, delete }),
            2 => any_hint().prop_map(Op::PutHint),
            1 => (0..6u64).prop_map(Op::RemoveHint),
            1 => (0..META_NAMES.len(), prop::collection::vec(any::<u8>(), 0..4))
                .prop_map(|(n, v)| Op::PutMeta(n, v)),
            1 => (0..META_NAMES.len()).prop_map(Op::GetMeta),
            2 => Just(Op::Sync),
            1 => any::<bool>().prop_map(|sync_first| Op::Reopen { sync_first }),
        ]
    }

    /// Pages through `range` on both stores with `limit`, deleting each page's keys when asked.
    fn page_all<S: Storage>(
        s: &mut S,
        range: TokenRange,
        limit: usize,
        delete: bool,
    ) -> Vec<Entry> {
        let mut all = Vec::new();
        let mut cursor: Option<(Token, Vec<u8>)> = None;
        loop {
            let page =
                s.scan(range, cursor.as_ref().map(|(t, k)| (*t, k.as_slice())), limit).unwrap();
            let Some(last) = page.last() else { break };
            cursor = Some((last.token, last.key.clone()));
            if delete {
                for e in &page {
                    s.put(e.token, &e.key, Siblings::new()).unwrap();
                }
            }
            all.extend(page);
            assert!(all.len() <= 64, "paging does not terminate");
        }
        all
    }

    fn assert_same_contents(disk: &DiskStorage, mem: &MemStorage) {
        assert_eq!(
            disk.scan(WHOLE, None, usize::MAX).unwrap(),
            mem.scan(WHOLE, None, usize::MAX).unwrap()
        );
        assert_eq!(disk.key_count(), mem.key_count());
        assert_eq!(disk.hints().unwrap(), mem.hints().unwrap());
        for name in META_NAMES {
            assert_eq!(disk.get_meta(name).unwrap(), mem.get_meta(name).unwrap(), "meta {name:?}");
        }
        assert_counters_exact(disk);
    }

    proptest! {
        /// Every field of a value or hint survives encoding, including `Some(empty)` vs `None`.
        #[test]
        fn encoding_round_trips_every_field(s in any_siblings(false), h in any_hint()) {
            prop_assert_eq!(decode_siblings(&encode_siblings(&s).unwrap()).unwrap(), s);
            prop_assert_eq!(decode_hint(h.id, &encode_hint(&h).unwrap()).unwrap(), h);
        }
    }

    /// DiskStorage answers exactly as the reference MemStorage, across reopens.
    ///
    /// Each case opens a keyspace, and each drop waits for fjall's monitor thread to wake (up to
    /// 250 ms), so the cases are few and long, and run on four threads with one runner each.
    #[test]
    fn matches_mem_storage_across_reopens() {
        let runners: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let mut runner = TestRunner::new(ProptestConfig::with_cases(8));
                    runner
                        .run(&prop::collection::vec(any_op(), 1..80), run_model)
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        for runner in runners {
            if let Err(e) = runner.join().expect("runner thread") {
                panic!("{e}");
            }
        }
    }

    /// Applies `ops` to a DiskStorage and a MemStorage, asserting identical answers.
    fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().unwrap();
        let mut disk = open(dir.path());
        let mut mem = MemStorage::new();
        for op in ops {
            match op {
                Op::Put(slot, v) => {
                    let (t, k) = slot_key(slot);
                    disk.put(t, k, v.clone()).unwrap();
                    mem.put(t, k, v).unwrap();
                }
                Op::Delete(slot) => {
                    let (t, k) = slot_key(slot);
                    disk.put(t, k, Siblings::new()).unwrap();
                    mem.put(t, k, Siblings::new()).unwrap();
                }
                Op::Merge(slot, v, mode) => {
                    let (t, k) = slot_key(slot);
                    prop_assert_eq!(
                        disk.merge(t, k, &v, mode).unwrap(),
                        mem.merge(t, k, &v, mode).unwrap()
                    );
                }
                Op::Get(slot) => {
                    let (t, k) = slot_key(slot);
                    prop_assert_eq!(disk.get(t, k).unwrap(), mem.get(t, k).unwrap());
                }
                Op::Scan { range, after, limit } => {
                    let after = after.map(slot_key);
                    prop_assert_eq!(
                        disk.scan(range, after, limit).unwrap(),
                        mem.scan(range, after, limit).unwrap(),
                        "scan {} after {:?} limit {}",
                        range,
                        after,
                        limit
                    );
                }
                Op::PageAll { range, limit, delete } => {
                    prop_assert_eq!(
                        page_all(&mut disk, range, limit, delete),
                        page_all(&mut mem, range, limit, delete)
                    );
                }
                Op::PutHint(h) => {
                    disk.put_hint(&h).unwrap();
                    mem.put_hint(&h).unwrap();
                }
                Op::RemoveHint(id) => {
                    disk.remove_hint(id).unwrap();
                    mem.remove_hint(id).unwrap();
                }
                Op::PutMeta(n, v) => {
                    disk.put_meta(META_NAMES[n], &v).unwrap();
                    mem.put_meta(META_NAMES[n], &v).unwrap();
                }
                Op::GetMeta(n) => {
                    prop_assert_eq!(
                        disk.get_meta(META_NAMES[n]).unwrap(),
                        mem.get_meta(META_NAMES[n]).unwrap()
                    );
                }
                Op::Sync => disk.sync().unwrap(),
                Op::Reopen { sync_first } => {
                    if sync_first {
                        disk.sync().unwrap();
                    }
                    drop(disk);
                    disk = open(dir.path());
                    assert_same_contents(&disk, &mem);
                }
            }
            prop_assert_eq!(disk.key_count(), mem.key_count());
        }
        assert_same_contents(&disk, &mem);
        disk.sync().unwrap();
        let counters = (disk.key_count(), disk.load_bytes());
        drop(disk);
        let disk = open(dir.path());
        prop_assert_eq!((disk.key_count(), disk.load_bytes()), counters);
        assert_same_contents(&disk, &mem);
        Ok(())
    }

    // --- Crash durability with a real kill -9 ---

    /// Set in the child process: the data directory it writes to.
    const CRASH_DIR_ENV: &str = "RINGSIDE_STORAGE_CRASH_DIR";
    /// Set in the child process: which round it is (keys of each round are distinct).
    const CRASH_ROUND_ENV: &str = "RINGSIDE_STORAGE_CRASH_ROUND";
    /// Writes per `sync` in the child.
    const CRASH_BATCH: u64 = 4;
    /// Acknowledgements the parent waits for before killing the child.
    const CRASH_ACKS: usize = 300;

    fn crash_key(round: u32, i: u64) -> Vec<u8> {
        format!("r{round}-{i:07}").into_bytes()
    }

    /// Write number `i` of a round: a put of key `i` with a value of varying size, except that
    /// every fifth write deletes the key put two writes earlier.
    fn crash_op(round: u32, i: u64) -> (Vec<u8>, Siblings) {
        if i % 5 == 4 {
            (crash_key(round, i - 2), Siblings::new())
        } else {
            let value = format!("value {i} of round {round};").repeat(1 + (i % 9) as usize);
            (crash_key(round, i), Siblings::one(version(1, i + 1, Some(value.as_bytes()))))
        }
    }

    fn crash_child(dir: &Path, round: u32) {
        let mut s = DiskStorage::open(dir).expect("child: open");
        for i in 0..1_000_000u64 {
            let (key, value) = crash_op(round, i);
            s.put(token_for(&key), &key, value).expect("child: put");
            if (i + 1) % CRASH_BATCH == 0 {
                s.sync().expect("child: sync");
                // Writes 0..=i are durable.
                println!("acked {}", i + 1);
            }
        }
    }

    /// Kills the child if the parent panics before it does.
    struct KillOnDrop(std::process::Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Runs one child to be killed; returns how many writes it acknowledged.
    fn run_crash_child(dir: &Path, round: u32) -> u64 {
        let test_name = concat!(module_path!(), "::acked_writes_survive_kill_9");
        let test_name = test_name.split_once("::").map_or(test_name, |(_, rest)| rest);
        let exe = std::env::current_exe().unwrap();
        let mut child = KillOnDrop(
            Command::new(exe)
                .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
                .env(CRASH_DIR_ENV, dir)
                .env(CRASH_ROUND_ENV, round.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn the child"),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print its "test … ..." prefix on the same line as the first ack.
                if let Some(n) = line.rsplit_once("acked ").and_then(|(_, n)| n.parse().ok()) {
                    let _ = tx.send(n);
                }
            }
        });
        let mut acked = 0;
        for seen in 0..CRASH_ACKS {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(n) => acked = n,
                Err(e) => panic!("the child stopped acknowledging after {seen} acks: {e}"),
            }
        }
        // SIGKILL: no destructor, no flush; only what `sync` made durable may be relied on.
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        reader.join().unwrap();
        // Acknowledgements printed before the kill count too.
        acked.max(rx.try_iter().max().unwrap_or(0))
    }

    /// The state of `round`'s keys after its first `n` writes.
    fn crash_expected(round: u32, n: u64) -> BTreeMap<Vec<u8>, Siblings> {
        let mut state = BTreeMap::new();
        for i in 0..n {
            let (key, value) = crash_op(round, i);
            if value.is_empty() {
                state.remove(&key);
            } else {
                state.insert(key, value);
            }
        }
        state
    }

    /// Checks that `round`'s keys are exactly the state after some prefix of at least `acked`
    /// writes (a crash keeps every acknowledged write and loses a suffix); returns its length.
    fn check_round(entries: &[Entry], round: u32, acked: u64) -> u64 {
        let prefix = format!("r{round}-").into_bytes();
        let actual: BTreeMap<Vec<u8>, Siblings> = entries
            .iter()
            .filter(|e| e.key.starts_with(&prefix))
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect();
        let highest = actual
            .keys()
            .map(|k| std::str::from_utf8(&k[prefix.len()..]).unwrap().parse::<u64>().unwrap())
            .max()
            .unwrap_or(0);
        let mut state = crash_expected(round, acked);
        for n in acked..=highest.max(acked) + 3 {
            if state == actual {
                return n;
            }
            let (key, value) = crash_op(round, n);
            if value.is_empty() {
                state.remove(&key);
            } else {
                state.insert(key, value);
            }
        }
        let missing: Vec<_> = crash_expected(round, acked)
            .into_iter()
            .filter(|(k, v)| actual.get(k) != Some(v))
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .take(10)
            .collect();
        panic!(
            "round {round}: the recovered keys are no prefix of at least {acked} writes \
             ({} keys recovered; acknowledged but missing or wrong: {missing:?})",
            actual.len()
        );
    }

    /// A child writes and syncs batches, printing what it acknowledged, and is killed with
    /// SIGKILL; every acknowledged write must be there after reopening, and the counters must
    /// match the data. Two rounds, so the second recovers from a crash and crashes again.
    #[test]
    fn acked_writes_survive_kill_9() {
        if let Some(dir) = std::env::var_os(CRASH_DIR_ENV) {
            let round = std::env::var(CRASH_ROUND_ENV).unwrap().parse().unwrap();
            crash_child(Path::new(&dir), round);
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut recovered: Vec<u64> = Vec::new();
        for round in 0..2u32 {
            let acked = run_crash_child(dir.path(), round);
            let s = open(dir.path());
            let entries = s.scan(WHOLE, None, usize::MAX).unwrap();
            assert_eq!(s.key_count(), entries.len() as u64);
            assert_counters_exact(&s);
            for (earlier, n) in recovered.iter().enumerate() {
                // Earlier rounds' data is untouched by later crashes.
                assert_eq!(check_round(&entries, earlier as u32, *n), *n);
            }
            let n = check_round(&entries, round, acked);
            assert!(n >= acked);
            recovered.push(n);
            // Every acknowledged key reads back with its value.
            for (key, value) in crash_expected(round, acked) {
                assert_eq!(s.get(token_for(&key), &key).unwrap(), Some(value));
            }
        }
    }
}
