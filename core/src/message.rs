//! Messages exchanged between nodes. Every variant is a plain value so the simulator can queue it
//! and native nodes can encode it.

use crate::gossip::{EndpointState, GossipMessage, Status};
use crate::id::NodeId;
use crate::merkle::{MerkleRequest, MerkleResponse};
use crate::storage::{Entry, Hint};
use crate::streaming::StreamPurpose;
use crate::token::{Token, TokenRange};
use crate::version::{Siblings, VClock, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The largest dot or context counter a message may carry (`node::MAX_CONTEXT_COUNTER`).
pub const MAX_COUNTER: u64 = 1 << 62;

/// A dot or context counter beyond any a node mints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("counter {node}:{counter} exceeds the largest counter a node mints ({max})")]
pub struct CounterTooLarge {
    /// Its actor.
    pub node: NodeId,
    /// The counter.
    pub counter: u64,
    /// The largest accepted.
    pub max: u64,
}

fn check_clock(c: &VClock) -> Result<(), CounterTooLarge> {
    match c.0.iter().find(|(_, e)| e.counter > MAX_COUNTER) {
        Some((node, e)) => {
            Err(CounterTooLarge { node: *node, counter: e.counter, max: MAX_COUNTER })
        }
        None => Ok(()),
    }
}

fn check_version(v: &Version) -> Result<(), CounterTooLarge> {
    if v.dot.counter > MAX_COUNTER {
        return Err(CounterTooLarge { node: v.dot.node, counter: v.dot.counter, max: MAX_COUNTER });
    }
    check_clock(&v.context)
}

fn check_siblings(s: &Siblings) -> Result<(), CounterTooLarge> {
    s.0.iter().try_for_each(check_version)
}

/// An internode message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Message {
    /// One message of a gossip round (SYN, ACK or ACK2). Heartbeats travel inside; their
    /// arrivals feed the phi-accrual detector.
    Gossip(Box<GossipMessage>),
    /// Are you alive? Sent before believing a peer learned second-hand is up (Cassandra's echo).
    Echo,
    /// The answer to `Echo`: the sender is alive and reachable.
    EchoReply,
    /// A topology barrier (the fenced strategies): apply the sender's state now and acknowledge.
    Barrier {
        /// The sender's state version being announced.
        epoch: u64,
        /// The sender's endpoint state.
        states: BTreeMap<NodeId, EndpointState>,
    },
    /// The barrier's state was applied.
    BarrierAck {
        /// The epoch acknowledged.
        epoch: u64,
    },
    /// The first barrier of a movement (BOOT, LEAVING) is not acknowledged: another movement
    /// holds ranges this one would change (a range lock; one movement per range at a time).
    BarrierRefused {
        /// The epoch of the barrier refused.
        epoch: u64,
        /// The member whose movement holds the ranges.
        holder: NodeId,
        /// Its status.
        status: Status,
        /// The topology epoch of its change: of two movements, the one with the lower
        /// `(epoch, node)` goes on and the other gives way.
        holder_epoch: u64,
    },
    /// A restarted node asks for everything the receiver knows before it coordinates again.
    ViewRequest,
    /// Every endpoint state the sender knows.
    ViewReply {
        /// The states.
        states: BTreeMap<NodeId, EndpointState>,
    },
    /// Asks the receiver to stream `range` to the sender.
    StreamRequest {
        /// Session id chosen by the requester.
        session: u64,
        /// The requester's topology epoch (see [`Message::Rejected`]).
        #[serde(default)]
        epoch: u64,
        /// The range.
        range: TokenRange,
        /// What the stream is for: a join, a decommission or a repair.
        purpose: StreamPurpose,
    },
    /// One chunk of a stream.
    StreamData {
        /// Session id.
        session: u64,
        /// The range streamed.
        range: TokenRange,
        /// What the stream is for, as in the request.
        purpose: StreamPurpose,
        /// Entries in `(token, key)` order.
        entries: Vec<Entry>,
        /// The last chunk of the range.
        last: bool,
        /// The chunk's number in the session, from 1; a re-sent chunk keeps its number.
        #[serde(default)]
        seq: u64,
    },
    /// A chunk was applied (`seq`), or with `seq` 0 a stream request was accepted.
    StreamAck {
        /// Session id.
        session: u64,
        /// The chunk acknowledged; 0 for the request.
        #[serde(default)]
        seq: u64,
    },
    /// A leaving node hands one of its hints to a peer, which keeps it for the target.
    HandoffHint {
        /// The hint (its id is the sender's).
        hint: Hint,
    },
    /// The handed-off hint is stored.
    HandoffAck {
        /// The sender's hint id.
        id: u64,
    },
    /// Anti-entropy: asks for the receiver's Merkle tree of a range.
    MerkleRequest(MerkleRequest),
    /// The tree.
    MerkleResponse(MerkleResponse),
    /// The receiver refused a message (unknown peer, other cluster, not serving).
    Refused {
        /// Why, for the operator.
        reason: String,
    },
    /// Asks a natural replica to mint the version of a write (vector-clock mode, when the
    /// coordinator is not itself a replica), apply it and return it.
    Mint {
        /// Coordinator-local operation id.
        op: u64,
        /// The placement epoch of the token the coordinator planned with.
        #[serde(default)]
        epoch: u64,
        /// Key token.
        token: Token,
        /// The key, raw bytes as the client sent them.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// New value, `None` for a delete.
        #[serde(with = "serde_bytes")]
        value: Option<Vec<u8>>,
        /// Client's causal context.
        context: VClock,
        /// Coordinator timestamp (µs).
        timestamp: u64,
    },
    /// The minted, applied version.
    MintAck {
        /// Operation id.
        op: u64,
        /// The version the replica minted.
        version: Version,
        /// Every version the replica holds for the key after applying it: the coordinator
        /// fans these out (Riak's put), so no replica ends up with a context covering a version
        /// it never received.
        siblings: Arc<Siblings>,
    },
    /// Apply versions of a key and acknowledge.
    Mutation {
        /// Operation id.
        op: u64,
        /// The placement epoch of the token the coordinator planned with.
        #[serde(default)]
        epoch: u64,
        /// Key token.
        token: Token,
        /// The key, raw bytes as the client sent them.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// Versions to merge.
        value: Arc<Siblings>,
    },
    /// A mutation was applied (and is durable once the driver released this message).
    MutationAck {
        /// Operation id.
        op: u64,
    },
    /// Read a key.
    Read {
        /// Operation id.
        op: u64,
        /// The placement epoch of the token the coordinator planned with.
        #[serde(default)]
        epoch: u64,
        /// Key token.
        token: Token,
        /// The key, raw bytes as the client sent them.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// A replica's answer to a read.
    ReadReply {
        /// Operation id.
        op: u64,
        /// What the replica holds (empty when absent).
        value: Siblings,
    },
    /// Read repair: merge these versions (no acknowledgement).
    Repair {
        /// Key token.
        token: Token,
        /// The key, raw bytes as the client sent them.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// Versions to merge.
        value: Siblings,
    },
    /// A hinted write being replayed to the replica it was meant for.
    Hint {
        /// Hint id on the sender.
        id: u64,
        /// The placement epoch the hint's target was chosen under.
        #[serde(default)]
        epoch: u64,
        /// Key token.
        token: Token,
        /// The key, raw bytes as the client sent them.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// Versions to merge.
        value: Siblings,
    },
    /// The hint was applied.
    HintAck {
        /// Hint id.
        id: u64,
    },
    /// A replica refused a request: it was planned under an older placement epoch than the
    /// replica knows (Cassandra TCM's `CoordinatorBehindException`, Scylla's fencing token), or
    /// asks for something the replica cannot do (a mint by a node that is not a NORMAL natural
    /// replica). The sender catches up from `states` and re-plans.
    Rejected {
        /// What was refused.
        request: Rejectable,
        /// The replica's placement epoch for the request.
        epoch: u64,
        /// Why, for traces and the explorer.
        reason: RejectReason,
        /// The replica's endpoint states, so the sender catches up at once.
        states: BTreeMap<NodeId, EndpointState>,
    },
}

/// A request a replica can refuse with [`Message::Rejected`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", content = "id", rename_all = "kebab-case")]
pub enum Rejectable {
    /// A `Mutation` of a write.
    Mutation(u64),
    /// A `Mint` of a write.
    Mint(u64),
    /// A `Read`.
    Read(u64),
    /// A replayed `Hint` (by hint id).
    Hint(u64),
    /// A `StreamRequest` (by session).
    Stream(u64),
    /// A `MerkleRequest` (by session).
    Merkle(u64),
}

/// Why a replica refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// The request's epoch is older than the replica's placement epoch.
    StaleEpoch {
        /// The epoch the request carried.
        carried: u64,
    },
    /// The replica is not a NORMAL natural replica of the token, so it does not mint.
    NotMintReplica,
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::StaleEpoch { carried } => {
                write!(f, "planned under epoch {carried}, older than the replica's")
            }
            RejectReason::NotMintReplica => f.write_str("not a NORMAL natural replica: no mint"),
        }
    }
}

/// A coarse kind of message, for traces, filters and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    /// Gossip rounds.
    Gossip,
    /// Topology barriers, catch-up requests and refusals.
    Topology,
    /// Streaming (join, decommission, repair).
    Stream,
    /// Merkle tree exchange.
    Merkle,
    /// Mint, Mutation.
    Mutation,
    /// MintAck, MutationAck, HintAck.
    Ack,
    /// `Message::Read`: a coordinator asks a replica for its versions of a key.
    Read,
    /// `Message::ReadReply`: a replica's versions of a key.
    ReadReply,
    /// Read repair.
    Repair,
    /// Hint replay.
    Hint,
}

impl Message {
    /// Checks every dot and context counter the message carries against [`MAX_COUNTER`].
    pub fn check_counters(&self) -> Result<(), CounterTooLarge> {
        match self {
            Message::Mint { context, .. } => check_clock(context),
            Message::MintAck { version, siblings, .. } => {
                check_version(version)?;
                check_siblings(siblings)
            }
            Message::Mutation { value, .. } => check_siblings(value),
            Message::ReadReply { value, .. } => check_siblings(value),
            Message::Repair { value, .. } => check_siblings(value),
            Message::Hint { value, .. } => check_siblings(value),
            Message::HandoffHint { hint } => check_siblings(&hint.value),
            Message::StreamData { entries, .. } => {
                entries.iter().try_for_each(|e| check_siblings(&e.value))
            }
            _ => Ok(()),
        }
    }
}

impl Message {
    /// The coarse kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Gossip(_) | Message::Echo | Message::EchoReply => MessageKind::Gossip,
            Message::Barrier { .. }
            | Message::BarrierAck { .. }
            | Message::BarrierRefused { .. }
            | Message::ViewRequest
            | Message::ViewReply { .. }
            | Message::Refused { .. }
            | Message::Rejected { .. } => MessageKind::Topology,
            Message::StreamRequest { .. }
            | Message::StreamData { .. }
            | Message::StreamAck { .. } => MessageKind::Stream,
            Message::MerkleRequest(_) | Message::MerkleResponse(_) => MessageKind::Merkle,
            Message::HandoffHint { .. } => MessageKind::Hint,
            Message::HandoffAck { .. } => MessageKind::Ack,
            Message::Mint { .. } | Message::Mutation { .. } => MessageKind::Mutation,
            Message::MintAck { .. } | Message::MutationAck { .. } | Message::HintAck { .. } => {
                MessageKind::Ack
            }
            Message::Read { .. } => MessageKind::Read,
            Message::ReadReply { .. } => MessageKind::ReadReply,
            Message::Repair { .. } => MessageKind::Repair,
            Message::Hint { .. } => MessageKind::Hint,
        }
    }

    /// Whether the message acknowledges nothing and carries no state of the sender's that a
    /// crash before the input's `Storage::sync` could take back: requests to other nodes and
    /// data read for streaming. A host may send these before the sync (the native driver's
    /// group commit does); acknowledgements, replies, gossip (status), hints and mutations
    /// (whose dots may come from a counter not yet durable) must wait for it
    /// (ARCHITECTURE.md's invariant on `Storage::sync`).
    pub fn claims_nothing_durable(&self) -> bool {
        matches!(
            self,
            Message::Read { .. }
                | Message::Mint { .. }
                | Message::StreamRequest { .. }
                | Message::StreamData { .. }
                | Message::Echo
                | Message::MerkleRequest(_)
        )
    }

    /// The variant's name, e.g. `MutationAck` (for the explorer's labels and filters).
    pub fn name(&self) -> &'static str {
        match self {
            Message::Gossip(_) => "Gossip",
            Message::Echo => "Echo",
            Message::EchoReply => "EchoReply",
            Message::Barrier { .. } => "Barrier",
            Message::BarrierAck { .. } => "BarrierAck",
            Message::BarrierRefused { .. } => "BarrierRefused",
            Message::ViewRequest => "ViewRequest",
            Message::ViewReply { .. } => "ViewReply",
            Message::StreamRequest { .. } => "StreamRequest",
            Message::StreamData { .. } => "StreamData",
            Message::StreamAck { .. } => "StreamAck",
            Message::HandoffHint { .. } => "HandoffHint",
            Message::HandoffAck { .. } => "HandoffAck",
            Message::MerkleRequest(_) => "MerkleRequest",
            Message::MerkleResponse(_) => "MerkleResponse",
            Message::Refused { .. } => "Refused",
            Message::Rejected { .. } => "Rejected",
            Message::Mint { .. } => "Mint",
            Message::MintAck { .. } => "MintAck",
            Message::Mutation { .. } => "Mutation",
            Message::MutationAck { .. } => "MutationAck",
            Message::Read { .. } => "Read",
            Message::ReadReply { .. } => "ReadReply",
            Message::Repair { .. } => "Repair",
            Message::Hint { .. } => "Hint",
            Message::HintAck { .. } => "HintAck",
        }
    }

    /// The coordinator's operation id of client-request traffic (writes, reads and their
    /// answers).
    pub fn op(&self) -> Option<u64> {
        match self {
            Message::Mint { op, .. }
            | Message::MintAck { op, .. }
            | Message::Mutation { op, .. }
            | Message::MutationAck { op }
            | Message::Read { op, .. }
            | Message::ReadReply { op, .. } => Some(*op),
            _ => None,
        }
    }

    /// The request a replica may refuse with [`Message::Rejected`], with the topology epoch it
    /// carries (see `docs/semantics.md`, "Fencing"): Mutation, Mint, Read and Hint carry the
    /// placement epoch of their token, StreamRequest and MerkleRequest the sender's highest.
    /// `None` for every other message, barriers included: a barrier's epoch announces a state,
    /// it is not checked against the receiver's.
    pub fn rejectable(&self) -> Option<(Rejectable, u64)> {
        match self {
            Message::Mutation { op, epoch, .. } => Some((Rejectable::Mutation(*op), *epoch)),
            Message::Mint { op, epoch, .. } => Some((Rejectable::Mint(*op), *epoch)),
            Message::Read { op, epoch, .. } => Some((Rejectable::Read(*op), *epoch)),
            Message::Hint { id, epoch, .. } => Some((Rejectable::Hint(*id), *epoch)),
            Message::StreamRequest { session, epoch, .. } => {
                Some((Rejectable::Stream(*session), *epoch))
            }
            Message::MerkleRequest(req) => Some((Rejectable::Merkle(req.session), req.epoch)),
            _ => None,
        }
    }

    /// The topology epoch a request carries (see [`Message::rejectable`]).
    pub fn epoch(&self) -> Option<u64> {
        self.rejectable().map(|(_, epoch)| epoch)
    }

    /// The key this message concerns, if any.
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Message::Mint { key, .. }
            | Message::Mutation { key, .. }
            | Message::Read { key, .. }
            | Message::Repair { key, .. }
            | Message::Hint { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// The node the message is for.
    pub to: NodeId,
    /// The message itself.
    pub message: Message,
}
