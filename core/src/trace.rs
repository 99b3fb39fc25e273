//! The trace: what happened in a cluster, in one schema shared by the simulator, the explorer and
//! (later) native nodes' watch stream.
//!
//! Every record is hashed into a running 64-bit hash as it is produced, from a fixed little-endian
//! encoding of its fields (never from `Debug` output or float formatting), so two runs are
//! byte-identical exactly when their hashes match — natively and in wasm alike.

use crate::id::NodeId;
use crate::message::{Message, MessageKind};
use crate::node::NodeTrace;
use crate::time::Instant;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// Random loss.
    Loss,
    /// A partition separates sender and receiver.
    Partition,
    /// The receiver is not running, or crashed after the message was sent (a message dies with
    /// the process it was sent to, as on its TCP connection, even if a new one has started).
    NodeDown,
}

/// One trace event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum TraceEvent {
    /// A message left `from`. `deliver_at` is when it arrives unless dropped.
    Send {
        /// Message id (unique in the run).
        id: u64,
        /// The node that sent it.
        from: NodeId,
        /// The node it is addressed to.
        to: NodeId,
        /// Kind, for filters.
        kind: MessageKind,
        /// Key concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// Arrival time.
        deliver_at: Instant,
    },
    /// A message arrived.
    Deliver {
        /// Message id.
        id: u64,
    },
    /// A message was lost.
    Drop {
        /// Message id.
        id: u64,
        /// What stopped it: loss, a partition, a crashed receiver, …
        reason: DropReason,
    },
    /// A client invoked or completed an operation (index into the history).
    Client {
        /// History index.
        op: u64,
    },
    /// Something inside a node.
    Node {
        /// The node.
        node: NodeId,
        /// What the node reported.
        event: NodeTrace,
    },
    /// A node crashed (process killed; storage kept).
    Crash {
        /// The node.
        node: NodeId,
    },
    /// A node restarted.
    Restart {
        /// The node.
        node: NodeId,
        /// Its new generation.
        generation: u64,
    },
    /// A node's process paused (GC, VM stall) until `until`.
    Pause {
        /// The node.
        node: NodeId,
        /// When it resumes.
        until: Instant,
    },
    /// The network was partitioned into groups.
    Partition {
        /// The groups; nodes not listed form one more group.
        groups: Vec<Vec<NodeId>>,
    },
    /// Every partition healed.
    Heal,
    /// A node stopped after a storage failure.
    Fatal {
        /// The node.
        node: NodeId,
        /// The error.
        error: String,
    },
}

/// A timestamped trace event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// The simulated time the event happened at.
    pub time: Instant,
    /// The event itself.
    #[serde(flatten)]
    pub event: TraceEvent,
}

/// A trace: an optional list of records plus the running hash of all of them.
#[derive(Clone)]
pub struct Trace {
    records: Option<Vec<TraceRecord>>,
    hasher: Xxh3,
    count: u64,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace").field("count", &self.count).field("hash", &self.hash()).finish()
    }
}

impl Trace {
    /// A trace that keeps its records when `keep` is set (the hash is always computed).
    pub fn new(keep: bool) -> Self {
        Trace { records: keep.then(Vec::new), hasher: Xxh3::new(), count: 0 }
    }

    /// Appends an event.
    pub fn record(&mut self, time: Instant, event: TraceEvent) {
        self.count += 1;
        hash_event(&mut self.hasher, time, &event);
        if let Some(r) = &mut self.records {
            r.push(TraceRecord { time, event });
        }
    }

    /// Appends a `Send` event without building it unless records are kept (the simulator's hot
    /// path). Hashes exactly like [`Trace::record`] of the equivalent event.
    pub fn record_send(
        &mut self,
        time: Instant,
        id: u64,
        from: NodeId,
        to: NodeId,
        message: &Message,
        deliver_at: Instant,
    ) {
        if self.records.is_some() {
            let (kind, key) = describe(message);
            return self.record(time, TraceEvent::Send { id, from, to, kind, key, deliver_at });
        }
        self.count += 1;
        // One hasher update per event: the fields go through a stack buffer first (the bytes are
        // exactly those `hash_event` feeds, so both paths give the same hash).
        let key = message.key().unwrap_or(b"");
        let lossy;
        let key = match std::str::from_utf8(key) {
            Ok(_) => key,
            Err(_) => {
                lossy = String::from_utf8_lossy(key).into_owned();
                lossy.as_bytes()
            }
        };
        let mut buf = [0u8; 64];
        let fields = [
            time.0,
            1,
            id,
            u64::from(from.0),
            u64::from(to.0),
            message.kind() as u64,
            key.len() as u64,
        ];
        for (i, f) in fields.iter().enumerate() {
            buf[i * 8..i * 8 + 8].copy_from_slice(&f.to_le_bytes());
        }
        self.hasher.update(&buf[..56]);
        self.hasher.update(key);
        self.hasher.update(&deliver_at.0.to_le_bytes());
    }

    /// Hash of every event so far.
    pub fn hash(&self) -> u64 {
        self.hasher.digest()
    }

    /// Number of events so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether no event was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The kept records (empty when not kept).
    pub fn records(&self) -> &[TraceRecord] {
        self.records.as_deref().unwrap_or(&[])
    }
}

fn put_u64(h: &mut Xxh3, v: u64) {
    h.update(&v.to_le_bytes());
}

fn put_bytes(h: &mut Xxh3, b: &[u8]) {
    put_u64(h, b.len() as u64);
    h.update(b);
}

fn hash_event(h: &mut Xxh3, time: Instant, e: &TraceEvent) {
    put_u64(h, time.0);
    match e {
        TraceEvent::Send { id, from, to, kind, key, deliver_at } => {
            put_u64(h, 1);
            put_u64(h, *id);
            put_u64(h, u64::from(from.0));
            put_u64(h, u64::from(to.0));
            put_u64(h, *kind as u64);
            put_bytes(h, key.as_deref().unwrap_or("").as_bytes());
            put_u64(h, deliver_at.0);
        }
        TraceEvent::Deliver { id } => {
            put_u64(h, 2);
            put_u64(h, *id);
        }
        TraceEvent::Drop { id, reason } => {
            put_u64(h, 3);
            put_u64(h, *id);
            put_u64(h, *reason as u64);
        }
        TraceEvent::Client { op } => {
            put_u64(h, 4);
            put_u64(h, *op);
        }
        TraceEvent::Node { node, event } => {
            put_u64(h, 5);
            put_u64(h, u64::from(node.0));
            hash_node_trace(h, event);
        }
        TraceEvent::Crash { node } => {
            put_u64(h, 6);
            put_u64(h, u64::from(node.0));
        }
        TraceEvent::Restart { node, generation } => {
            put_u64(h, 7);
            put_u64(h, u64::from(node.0));
            put_u64(h, *generation);
        }
        TraceEvent::Partition { groups } => {
            put_u64(h, 8);
            for g in groups {
                put_u64(h, g.len() as u64);
                for n in g {
                    put_u64(h, u64::from(n.0));
                }
            }
        }
        TraceEvent::Heal => put_u64(h, 9),
        TraceEvent::Pause { node, until } => {
            put_u64(h, 11);
            put_u64(h, u64::from(node.0));
            put_u64(h, until.0);
        }
        TraceEvent::Fatal { node, error } => {
            put_u64(h, 10);
            put_u64(h, u64::from(node.0));
            put_bytes(h, error.as_bytes());
        }
    }
}

fn hash_node_trace(h: &mut Xxh3, t: &NodeTrace) {
    match t {
        NodeTrace::HintStored { target, id, key } => {
            put_u64(h, 1);
            put_u64(h, u64::from(target.0));
            put_u64(h, *id);
            put_bytes(h, key.as_bytes());
        }
        NodeTrace::HintWindowExceeded { target, key } => {
            put_u64(h, 2);
            put_u64(h, u64::from(target.0));
            put_bytes(h, key.as_bytes());
        }
        NodeTrace::HintDelivered { target, id } => {
            put_u64(h, 3);
            put_u64(h, u64::from(target.0));
            put_u64(h, *id);
        }
        NodeTrace::HintExpired { target, id } => {
            put_u64(h, 4);
            put_u64(h, u64::from(target.0));
            put_u64(h, *id);
        }
        NodeTrace::ReadRepair { replica, key } => {
            put_u64(h, 5);
            put_u64(h, u64::from(replica.0));
            put_bytes(h, key.as_bytes());
        }
        NodeTrace::PeerDown { peer } => {
            put_u64(h, 6);
            put_u64(h, u64::from(peer.0));
        }
        NodeTrace::PeerUp { peer } => {
            put_u64(h, 7);
            put_u64(h, u64::from(peer.0));
        }
        NodeTrace::StatusChanged { status } => {
            put_u64(h, 8);
            put_bytes(h, status.as_str().as_bytes());
        }
        NodeTrace::MemberChanged { member, status } => {
            put_u64(h, 9);
            put_u64(h, u64::from(member.0));
            put_bytes(h, status.as_str().as_bytes());
        }
        NodeTrace::BarrierComplete { status, acked } => {
            put_u64(h, 10);
            put_bytes(h, status.as_str().as_bytes());
            put_u64(h, *acked as u64);
        }
        NodeTrace::StreamStarted { peer, range, purpose } => {
            put_u64(h, 11);
            put_u64(h, u64::from(peer.0));
            put_range(h, range);
            put_u64(h, *purpose as u64);
        }
        NodeTrace::RangeStreamed { peer, range, purpose, keys, bytes } => {
            put_u64(h, 12);
            put_u64(h, u64::from(peer.0));
            put_range(h, range);
            put_u64(h, *purpose as u64);
            put_u64(h, *keys);
            put_u64(h, *bytes);
        }
        NodeTrace::JoinCompleted { keys, bytes } => {
            put_u64(h, 13);
            put_u64(h, *keys);
            put_u64(h, *bytes);
        }
        NodeTrace::JoinFailed { reason } => {
            put_u64(h, 14);
            put_bytes(h, reason.as_bytes());
        }
        NodeTrace::Decommissioned => put_u64(h, 15),
        NodeTrace::DecommissionFailed { reason } => {
            put_u64(h, 16);
            put_bytes(h, reason.as_bytes());
        }
        NodeTrace::Cleanup { keys, bytes } => {
            put_u64(h, 17);
            put_u64(h, *keys);
            put_u64(h, *bytes);
        }
        NodeTrace::RepairCompared { peer, range, differing } => {
            put_u64(h, 18);
            put_u64(h, u64::from(peer.0));
            put_range(h, range);
            put_u64(h, *differing);
        }
        NodeTrace::RepairCompleted { report } => {
            put_u64(h, 21);
            for v in [
                report.compared,
                report.unanswered,
                report.differing,
                report.keys_received,
                report.keys_changed,
                report.bytes_streamed,
            ] {
                put_u64(h, v);
            }
        }
        NodeTrace::Refused { from, reason } => {
            put_u64(h, 19);
            put_u64(h, u64::from(from.0));
            put_bytes(h, reason.as_bytes());
        }
        NodeTrace::Fenced { from, request, epoch, reason } => {
            put_u64(h, 20);
            put_u64(h, u64::from(from.0));
            put_bytes(h, format!("{request:?}").as_bytes());
            put_u64(h, *epoch);
            put_bytes(h, reason.to_string().as_bytes());
        }
    }
}

fn put_range(h: &mut Xxh3, r: &crate::token::TokenRange) {
    put_u64(h, r.start);
    put_u64(h, r.end);
}

/// The trace summary of a message (kind and key).
pub fn describe(message: &Message) -> (MessageKind, Option<String>) {
    (message.kind(), message.key().map(|k| String::from_utf8_lossy(k).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::token_for;

    #[test]
    fn fast_send_path_hashes_like_the_full_event() {
        let messages = [
            Message::Read { op: 9, epoch: 0, token: token_for(b"k"), key: b"k".to_vec() },
            Message::Read { op: 9, epoch: 0, token: 1, key: vec![0xff, 0xfe] },
        ];
        for m in messages {
            let mut kept = Trace::new(true);
            let mut fast = Trace::new(false);
            for t in [&mut kept, &mut fast] {
                t.record_send(Instant(5), 1, NodeId(0), NodeId(2), &m, Instant(9));
            }
            assert_eq!(kept.hash(), fast.hash(), "{m:?}");
            assert_eq!(kept.records().len(), 1);
        }
    }
}
