//! Messages exchanged between nodes. Every variant is a plain value so the simulator can queue it
//! and native nodes can encode it.

use crate::id::NodeId;
use crate::token::Token;
use crate::version::{Siblings, VClock, Version};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// An internode message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Message {
    /// Liveness heartbeat (feeds the phi-accrual detector).
    Heartbeat {
        /// The sender's generation (increases at every restart).
        generation: u64,
    },
    /// Asks a natural replica to mint the version of a write (vector-clock mode, when the
    /// coordinator is not itself a replica), apply it and return it.
    Mint {
        /// Coordinator-local operation id.
        op: u64,
        /// Key token.
        token: Token,
        /// Key.
        key: Vec<u8>,
        /// New value, `None` for a delete.
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
    },
    /// Apply versions of a key and acknowledge.
    Mutation {
        /// Operation id.
        op: u64,
        /// Key token.
        token: Token,
        /// Key.
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
        /// Key token.
        token: Token,
        /// Key.
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
        /// Key.
        key: Vec<u8>,
        /// Versions to merge.
        value: Siblings,
    },
    /// A hinted write being replayed to the replica it was meant for.
    Hint {
        /// Hint id on the sender.
        id: u64,
        /// Key token.
        token: Token,
        /// Key.
        key: Vec<u8>,
        /// Versions to merge.
        value: Siblings,
    },
    /// The hint was applied.
    HintAck {
        /// Hint id.
        id: u64,
    },
}

/// A coarse kind of message, for traces, filters and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    /// Heartbeats and (later) gossip.
    Gossip,
    /// Mint, Mutation.
    Mutation,
    /// MintAck, MutationAck, HintAck.
    Ack,
    /// Read.
    Read,
    /// ReadReply.
    ReadReply,
    /// Read repair.
    Repair,
    /// Hint replay.
    Hint,
}

impl Message {
    /// The coarse kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Heartbeat { .. } => MessageKind::Gossip,
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
    /// Destination.
    pub to: NodeId,
    /// Payload.
    pub message: Message,
}
