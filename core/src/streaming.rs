//! Streaming sessions: moving every key of a token range from one node to another, chunk by
//! chunk, with flow control (one chunk in flight per session), throttling and progress.
//!
//! The *source* of a session holds an [`OutStream`]: it scans its storage in `(token, key)` order
//! from a cursor, sends a [`crate::message::Message::StreamData`] chunk, and sends the next one
//! only after the receiver's `StreamAck` and not before the throttle allows. The *receiver*
//! merges each chunk into its storage (a join of versions, so a chunk can never undo a newer
//! write that reached the receiver directly) and acknowledges it. A join pulls (the joiner asks
//! each source with `StreamRequest`); a decommission and a repair push.

use crate::id::NodeId;
use crate::storage::{Entry, Storage, StorageError};
use crate::time::Instant;
use crate::token::{Token, TokenRange};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Why a range is streamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamPurpose {
    /// To a joining node (bootstrap).
    Join,
    /// From a leaving node (decommission).
    Leave,
    /// Differing Merkle leaves (anti-entropy repair).
    Repair,
}

/// Progress counters of a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCounters {
    /// Keys sent or received.
    pub keys: u64,
    /// Bytes sent or received (keys plus values, as [`entry_bytes`] counts them).
    pub bytes: u64,
}

/// Bytes an entry costs on the wire: its key plus [`crate::version::Siblings::approx_bytes`].
pub fn entry_bytes(e: &Entry) -> u64 {
    (e.key.len() + e.value.approx_bytes()) as u64
}

/// The source side of one session.
#[derive(Clone, Debug)]
pub struct OutStream {
    /// The receiver.
    pub to: NodeId,
    /// Session id, chosen by whoever opened the session.
    pub session: u64,
    /// The range.
    pub range: TokenRange,
    /// What the stream is for: a join, a decommission or a repair.
    pub purpose: StreamPurpose,
    /// What has been sent.
    pub sent: StreamCounters,
    /// A chunk read and waiting for the throttle (leaves at `next_send`).
    pub staged: Option<(Vec<Entry>, bool)>,
    /// A chunk is waiting for its acknowledgement.
    pub awaiting_ack: bool,
    /// The last chunk has been sent.
    pub finished: bool,
    /// Throttling: the next chunk may not leave before this.
    pub next_send: Instant,
    /// When the last chunk left.
    pub sent_at: Instant,
    /// Chunks sent so far (the number of the last one).
    pub seq: u64,
    /// How many times the unacknowledged chunk was sent again.
    pub attempts: u32,
    /// The last chunk, kept until acknowledged so it can be sent again.
    pub unacked: Option<(Vec<Entry>, bool)>,
    cursor: Option<(Token, Vec<u8>)>,
}

impl OutStream {
    /// A new session, ready to send its first chunk at `now`.
    pub fn new(
        to: NodeId,
        session: u64,
        range: TokenRange,
        purpose: StreamPurpose,
        now: Instant,
    ) -> Self {
        OutStream {
            to,
            session,
            range,
            purpose,
            sent: StreamCounters::default(),
            staged: None,
            awaiting_ack: false,
            finished: false,
            next_send: now,
            sent_at: now,
            seq: 0,
            attempts: 0,
            unacked: None,
            cursor: None,
        }
    }

    /// Records that a chunk left at `now` (`last`: the final one).
    pub fn mark_sent(&mut self, now: Instant, last: bool) {
        self.awaiting_ack = true;
        self.finished = last;
        self.sent_at = now;
    }

    /// Starts the range over (after a lost chunk or acknowledgement); the receiver merges, so
    /// chunks it already applied change nothing.
    pub fn restart(&mut self, now: Instant) {
        *self = OutStream::new(self.to, self.session, self.range, self.purpose, now);
    }

    /// Reads the next chunk: entries after the cursor until `chunk_bytes` is reached (at least
    /// one entry). Returns the entries and whether this is the last chunk. Advances the cursor
    /// and the counters, and sets `next_send`, when the chunk may leave: a rate limiter pays
    /// before sending, so a chunk of `b` bytes leaves `b / throughput` after `not_before` (the
    /// end of the previous chunk's slot; `None` is unthrottled).
    pub fn next_chunk<S: Storage + ?Sized>(
        &mut self,
        storage: &S,
        chunk_bytes: usize,
        throughput: Option<u64>,
        not_before: Instant,
    ) -> Result<(Vec<Entry>, bool), StorageError> {
        const PAGE: usize = 64;
        let mut out = Vec::new();
        let mut bytes = 0u64;
        loop {
            let after = self.cursor.as_ref().map(|(t, k)| (*t, k.as_slice()));
            let page = storage.scan(self.range, after, PAGE)?;
            let exhausted = page.len() < PAGE;
            for e in page {
                bytes += entry_bytes(&e);
                self.cursor = Some((e.token, e.key.clone()));
                out.push(e);
                if bytes >= chunk_bytes as u64 {
                    break;
                }
            }
            if bytes >= chunk_bytes as u64 {
                // Peek: the chunk is the last one when nothing follows the cursor.
                let after = self.cursor.as_ref().map(|(t, k)| (*t, k.as_slice()));
                let more = !storage.scan(self.range, after, 1)?.is_empty();
                self.finish_chunk(out.len(), bytes, throughput, not_before);
                return Ok((out, !more));
            }
            if exhausted {
                self.finish_chunk(out.len(), bytes, throughput, not_before);
                return Ok((out, true));
            }
        }
    }

    fn finish_chunk(
        &mut self,
        keys: usize,
        bytes: u64,
        throughput: Option<u64>,
        not_before: Instant,
    ) {
        self.sent.keys += keys as u64;
        self.sent.bytes += bytes;
        self.next_send = match throughput {
            Some(rate) if rate > 0 => not_before + Duration::from_micros(bytes * 1_000_000 / rate),
            _ => not_before,
        };
    }
}

/// The size of the chunks a throttled stream sends: the configured size, but never more than
/// one second of the throttle's rate. A chunk's slot is paid before it leaves, so a full-size chunk
/// at a very slow rate (64 KiB at 1 KiB/s) would take longer than a receiver waits for progress
/// and be asked for again, from the start, for ever; a second's worth always arrives in time.
pub fn chunk_size(configured: usize, throughput: Option<u64>) -> usize {
    match throughput {
        Some(rate) if rate > 0 => {
            configured.min(usize::try_from(rate).unwrap_or(usize::MAX)).max(1)
        }
        _ => configured,
    }
}

/// Progress of a node's own join or decommission, for `status` views and progress bars.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovementProgress {
    /// Ranges to move in all.
    pub ranges_total: usize,
    /// Ranges finished.
    pub ranges_done: usize,
    /// Keys and bytes moved so far.
    pub moved: StreamCounters,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use crate::token::token_for;
    use crate::version::{Dot, Siblings, VClock, Version};

    fn store(n: usize) -> MemStorage {
        let mut s = MemStorage::new();
        for i in 0..n {
            let key = format!("key{i}");
            let v = Version {
                dot: Dot { node: NodeId(0), counter: i as u64 + 1 },
                context: VClock::new(),
                timestamp: 0,
                value: Some(vec![b'x'; 100]),
            };
            s.put(token_for(key.as_bytes()), key.as_bytes(), Siblings::one(v)).unwrap();
        }
        s
    }

    #[test]
    fn chunks_cover_the_range_exactly_once_and_throttle() {
        let s = store(500);
        let whole = TokenRange { start: 0, end: 0 };
        let mut out = OutStream::new(NodeId(1), 7, whole, StreamPurpose::Join, Instant::ZERO);
        let mut seen = std::collections::BTreeSet::new();
        let mut now = Instant::ZERO;
        let mut chunks = 0;
        loop {
            let (entries, last) = out.next_chunk(&s, 4096, Some(1 << 20), now).unwrap();
            chunks += 1;
            for e in entries {
                assert!(seen.insert(e.key), "sent twice");
            }
            // ~4 KiB at 1 MiB/s: the chunk leaves about 4 ms later.
            assert!(out.next_send > now);
            now = out.next_send;
            out.mark_sent(now, last);
            if last {
                break;
            }
        }
        assert_eq!(seen.len(), 500);
        assert_eq!(out.sent.keys, 500);
        assert!(chunks > 10, "{chunks} chunks");
        assert!(out.finished);
        // 500 keys × (4-6 bytes of key + 100 + 24) ≈ 64 KB at 1 MiB/s ≈ 61 ms.
        let elapsed = now.saturating_duration_since(Instant::ZERO);
        assert!(elapsed >= Duration::from_millis(55), "{elapsed:?}");
    }

    #[test]
    fn an_empty_range_is_one_empty_last_chunk() {
        let s = MemStorage::new();
        let mut out = OutStream::new(
            NodeId(1),
            1,
            TokenRange { start: 5, end: 9 },
            StreamPurpose::Leave,
            Instant::ZERO,
        );
        let (entries, last) = out.next_chunk(&s, 1024, None, Instant::ZERO).unwrap();
        assert!(entries.is_empty() && last);
    }
}
