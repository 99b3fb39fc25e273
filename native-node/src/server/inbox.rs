//! The seam between the driver and the edges that talk to it: everything the gRPC services,
//! the internode transport and the metrics endpoint hand the driver ([`Input`], through a
//! [`DriverHandle`]), the answers that come back (client and operator results and their typed
//! failures), and [`Peers`], the way the driver's transmits leave the node.
//!
//! It exists so that the driver and the transport do not import each other: the transport
//! delivers peers' messages as [`Input`]s and implements [`Peers`]; the driver reads the inputs
//! and sends through any [`Peers`].

use crate::proto::v1 as pb;
use crate::server::metrics::EngineFigures;
use ringside_core::consistency::ConsistencyLevel;
use ringside_core::id::NodeId;
use ringside_core::message::Message;
use ringside_core::node::{AdminError, InvalidRequest, JoinRequest, Reply, RequestError};
use ringside_core::version::CausalContext;
use std::sync::mpsc::{Receiver, Sender};
use tokio::sync::{broadcast, oneshot};

/// The outcome of a client request.
pub type ClientResult = Result<Reply, ClientError>;

/// Why a client request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Refused before it started.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// Failed after it started.
    #[error(transparent)]
    Failed(#[from] RequestError),
    /// The node is stopping.
    #[error("node is shutting down; retry on another node")]
    ShuttingDown,
}

/// The outcome of an operator command.
pub type AdminResult = Result<AdminOutcome, AdminFailure>;

/// Why an operator command failed; the text says what to do. Typed, so that
/// [`crate::convert::admin_status`] picks the gRPC code from the cause rather than from words.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdminFailure {
    /// The engine refused the command.
    #[error(transparent)]
    Refused(#[from] AdminError),
    /// A join or decommission the engine accepted stopped before the cluster admitted it: its
    /// range lock was refused, a streaming source was down, the operator aborted it, or a later
    /// request superseded it. The engine's reason.
    #[error("{0}")]
    NotAdmitted(String),
    /// The driver has stopped: the node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
}

/// An operator command.
#[derive(Debug, Clone)]
pub enum AdminCommand {
    /// Join or resume a join.
    Join(JoinRequest),
    /// Decommission (or resume one).
    Decommission,
    /// Abort this node's join or decommission.
    Abort,
    /// Merkle repair.
    Repair,
    /// Drop the data of ranges this node no longer replicates.
    Cleanup,
}

/// What an operator command did.
#[derive(Debug, Clone)]
pub enum AdminOutcome {
    /// Started (or, for an abort, done); a message for the operator.
    Started(String),
    /// Repair comparisons started, and the run they belong to (0 when none started).
    Repair {
        /// Comparisons started.
        started: usize,
        /// The run.
        run: u64,
    },
    /// Cleanup removed keys and bytes.
    Cleanup {
        /// Keys removed.
        keys: u64,
        /// Bytes removed.
        bytes: u64,
    },
}

/// An input for the driver.
pub enum Input {
    /// A message from a peer.
    Message {
        /// The peer it came from.
        from: NodeId,
        /// The message.
        message: Message,
    },
    /// A put (`Some` value) or delete (`None`).
    Write {
        /// The key written.
        key: Vec<u8>,
        /// Value, `None` to delete.
        value: Option<Vec<u8>>,
        /// How many replicas must acknowledge.
        cl: ConsistencyLevel,
        /// Context from a read; `None` for a blind write.
        context: Option<CausalContext>,
        /// Where the outcome goes.
        reply: oneshot::Sender<ClientResult>,
    },
    /// A read.
    Read {
        /// The key read.
        key: Vec<u8>,
        /// How many replicas must answer.
        cl: ConsistencyLevel,
        /// Where the outcome goes.
        reply: oneshot::Sender<ClientResult>,
    },
    /// An operator command.
    Admin {
        /// The command.
        command: AdminCommand,
        /// Where the outcome goes (the error text says what to do).
        reply: oneshot::Sender<AdminResult>,
    },
    /// The ring as this node sees it.
    Status(oneshot::Sender<pb::StatusReply>),
    /// Progress of this node's movement.
    Progress(oneshot::Sender<pb::ProgressReply>),
    /// The engine's figures for a metrics scrape.
    Metrics(oneshot::Sender<EngineFigures>),
    /// Sync and stop.
    Shutdown,
}

/// A cloneable way to reach the driver.
#[derive(Clone)]
pub struct DriverHandle {
    tx: Sender<Input>,
}

impl DriverHandle {
    /// Sends an input; false when the driver has stopped.
    pub fn send(&self, input: Input) -> bool {
        self.tx.send(input).is_ok()
    }

    /// Sends an input built around a reply channel and waits for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Input) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)) {
            return None;
        }
        rx.await.ok()
    }
}

/// A trace event as the Watch API streams it.
pub type TraceSender = broadcast::Sender<pb::TraceEvent>;

/// Creates the channel the driver reads from.
pub fn channel() -> (DriverHandle, Receiver<Input>) {
    let (tx, rx) = std::sync::mpsc::channel();
    (DriverHandle { tx }, rx)
}

/// Where the driver's transmits go: the node's connections to its peers and its address book.
pub trait Peers: Send + Sync {
    /// The address this node advertises to its peers.
    fn advertised_address(&self) -> &str;

    /// The address of `id`, if known.
    fn address_of(&self, id: NodeId) -> Option<String>;

    /// Records where `id` listens.
    fn learn(&self, id: NodeId, address: &str);

    /// Queues `message` for `to`. Returns false when it was dropped (address unknown, queue
    /// full), as a network would drop it.
    fn send(&self, to: NodeId, message: Message) -> bool;
}
