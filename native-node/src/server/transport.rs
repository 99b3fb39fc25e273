//! Internode transport: one long-lived gRPC `Exchange` stream per peer, carrying batches of
//! engine messages encoded with MessagePack.
//!
//! Sending never blocks the driver: each peer has a bounded queue drained by its own task, which
//! batches whatever is queued into one gRPC message. While a peer cannot be reached its messages
//! are dropped, as a network would drop them; the engine's timeouts, hints and retries are built
//! for that. The receiving side checks the cluster name and sender on the first batch of every
//! stream and refuses nodes of another cluster before any message reaches the engine.

use crate::proto::v1::internode_client::InternodeClient;
use crate::proto::v1::internode_server::Internode;
use crate::proto::v1::{Batch, ExchangeReply, HelloReply, HelloRequest};
use crate::server::inbox::{DriverHandle, Input, Peers};
use crate::server::metrics::Metrics;
use crate::server::storage::MAX_KEY_BYTES;
use ringside_core::id::NodeId;
use ringside_core::message::Message;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE: usize = 16 * 1024;
/// Largest batch, in encoded bytes (a streaming chunk may exceed it alone).
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Largest gRPC message accepted on internode streams.
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

/// Encodes an engine message.
pub fn encode(message: &Message) -> Vec<u8> {
    rmp_serde::to_vec(message).expect("engine messages always encode")
}

/// Decodes an engine message from a peer, refusing input nested deep enough to exhaust the
/// stack (see [`crate::msgpack`]).
pub fn decode(bytes: &[u8]) -> Result<Message, crate::msgpack::DecodeError> {
    crate::msgpack::from_slice(bytes)
}

/// Why a well-formed message from a peer is refused before it reaches the engine.
///
/// The engine validates what clients send, not what peers send: a peer running the same build
/// never sends these, but a peer with another build or configuration (or anything that speaks
/// the protocol) could, and the engine would then fail on it: a key longer than storage holds
/// stops the node, and a counter near `u64::MAX` overflows the `+ 1` of the next write's dot.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A key longer than the storage limit.
    #[error("key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A dot or context counter beyond any counter a node mints.
    #[error("counter {node}:{counter} exceeds the largest counter a node mints ({max})")]
    CounterTooLarge {
        /// Its actor.
        node: NodeId,
        /// The counter.
        counter: u64,
        /// The largest accepted.
        max: u64,
    },
}

/// Checks the keys and counters a peer's message carries (see [`Refused`]).
pub fn check(message: &Message) -> Result<(), Refused> {
    fn key(k: &[u8]) -> Result<(), Refused> {
        match k.len() {
            len if len > MAX_KEY_BYTES => Err(Refused::KeyTooLarge { len, max: MAX_KEY_BYTES }),
            _ => Ok(()),
        }
    }
    if let Err(e) = message.check_counters() {
        return Err(Refused::CounterTooLarge { node: e.node, counter: e.counter, max: e.max });
    }
    match message {
        Message::Mint { key: k, .. }
        | Message::Mutation { key: k, .. }
        | Message::Read { key: k, .. }
        | Message::Repair { key: k, .. }
        | Message::Hint { key: k, .. } => key(k),
        Message::HandoffHint { hint } => key(&hint.key),
        Message::StreamData { entries, .. } => entries.iter().try_for_each(|e| key(&e.key)),
        // The rest carry no key (gossip, barriers, rejections, acknowledgements, replies,
        // stream and Merkle control, whose depth the engine caps itself); counters were
        // checked above.
        _ => Ok(()),
    }
}

/// Who this node is, as it introduces itself to peers.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Host id.
    pub id: NodeId,
    /// Cluster name.
    pub cluster: String,
    /// Advertised gRPC address.
    pub address: String,
}

/// The node's side of every peer connection, and its address book.
pub struct Transport {
    me: Identity,
    runtime: tokio::runtime::Handle,
    book: Mutex<BTreeMap<NodeId, String>>,
    book_path: PathBuf,
    peers: Mutex<HashMap<NodeId, mpsc::Sender<Message>>>,
    metrics: Arc<Metrics>,
}

impl Transport {
    /// A transport for `me`; the address book is kept in `book_path` (JSON) so a restarted node
    /// can reach its peers before gossip tells it where they are.
    pub fn new(
        me: Identity,
        runtime: tokio::runtime::Handle,
        book_path: PathBuf,
        metrics: Arc<Metrics>,
    ) -> Transport {
        let book = std::fs::read(&book_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<NodeId, String>>(&b).ok())
            .unwrap_or_default();
        Transport {
            me,
            runtime,
            book: Mutex::new(book),
            book_path,
            peers: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// This node's identity.
    pub fn identity(&self) -> &Identity {
        &self.me
    }
}

impl Peers for Transport {
    fn advertised_address(&self) -> &str {
        &self.me.address
    }

    fn address_of(&self, id: NodeId) -> Option<String> {
        if id == self.me.id {
            return Some(self.me.address.clone());
        }
        self.book.lock().expect("address book lock").get(&id).cloned()
    }

    // A changed address closes the old connection, so the next message dials the new one.
    fn learn(&self, id: NodeId, address: &str) {
        if id == self.me.id || address.is_empty() {
            return;
        }
        let mut book = self.book.lock().expect("address book lock");
        if book.get(&id).map(String::as_str) == Some(address) {
            return;
        }
        book.insert(id, address.to_string());
        let snapshot = serde_json::to_vec_pretty(&*book).expect("address book encodes");
        drop(book);
        self.peers.lock().expect("peers lock").remove(&id);
        let tmp = self.book_path.with_extension("tmp");
        if let Err(e) =
            std::fs::write(&tmp, snapshot).and_then(|_| std::fs::rename(&tmp, &self.book_path))
        {
            tracing::warn!(error = %e, path = %self.book_path.display(), "cannot save the address book");
        }
    }

    fn send(&self, to: NodeId, message: Message) -> bool {
        let mut peers = self.peers.lock().expect("peers lock");
        let sender = match peers.get(&to) {
            Some(s) if !s.is_closed() => s.clone(),
            _ => {
                let Some(address) = self.address_of(to) else {
                    self.metrics.messages_dropped.inc();
                    return false;
                };
                let (tx, rx) = mpsc::channel(PEER_QUEUE);
                let me = self.me.clone();
                let metrics = self.metrics.clone();
                self.runtime.spawn(run_peer(me, to, address, rx, metrics));
                peers.insert(to, tx.clone());
                tx
            }
        };
        drop(peers);
        match sender.try_send(message) {
            Ok(()) => true,
            Err(_) => {
                self.metrics.messages_dropped.inc();
                false
            }
        }
    }
}

/// Keeps one `Exchange` stream open to `peer` and feeds it batches from `rx`.
async fn run_peer(
    me: Identity,
    peer: NodeId,
    address: String,
    mut rx: mpsc::Receiver<Message>,
    metrics: Arc<Metrics>,
) {
    let span = tracing::debug_span!("peer", node = %me.id, peer = %peer, %address);
    let _enter = span.enter();
    let mut backoff = Duration::from_millis(100);
    loop {
        let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{address}")) {
            Ok(e) => e
                .connect_timeout(Duration::from_secs(1))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10)),
            Err(e) => {
                tracing::warn!(error = %e, "invalid peer address");
                return;
            }
        };
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(_) => {
                // Unreachable: drop what was queued (the network would have), retry later.
                let mut dropped = 0u64;
                while rx.try_recv().is_ok() {
                    dropped += 1;
                }
                metrics.messages_dropped.add(dropped);
                if rx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let mut client = InternodeClient::new(channel)
            .max_decoding_message_size(MAX_FRAME)
            .max_encoding_message_size(MAX_FRAME);
        let (tx_batches, rx_batches) = mpsc::channel::<Batch>(4);
        let call = tokio::spawn(async move {
            client.exchange(tokio_stream::wrappers::ReceiverStream::new(rx_batches)).await
        });
        let mut first = true;
        let closed = loop {
            let Some(message) = rx.recv().await else { break true };
            let mut messages = vec![bytes::Bytes::from(encode(&message))];
            let mut size = messages[0].len();
            while size < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(m) => {
                        let b = encode(&m);
                        size += b.len();
                        messages.push(b.into());
                    }
                    Err(_) => break,
                }
            }
            let count = messages.len() as u64;
            let batch = Batch {
                cluster_name: if first { me.cluster.clone() } else { String::new() },
                host_id: me.id.0,
                address: if first { me.address.clone() } else { String::new() },
                messages,
            };
            first = false;
            if tx_batches.send(batch).await.is_err() {
                metrics.messages_dropped.add(count);
                break false;
            }
            metrics.messages_sent.add(count);
            metrics.bytes_sent.add(size as u64);
        };
        drop(tx_batches);
        match call.await {
            Ok(Err(status)) if status.code() == tonic::Code::PermissionDenied => {
                tracing::error!(reason = %status.message(), "peer refused this node");
            }
            Ok(Err(status)) => tracing::debug!(reason = %status.message(), "peer stream ended"),
            _ => {}
        }
        if closed {
            return;
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Asks the node at `address` who it is (resolving a seed address to its host id).
pub async fn hello(me: &Identity, address: &str) -> Result<HelloReply, Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| Status::invalid_argument(format!("invalid address {address}: {e}")))?
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("cannot reach {address}: {e}")))?;
    let reply = InternodeClient::new(channel)
        .hello(HelloRequest {
            cluster_name: me.cluster.clone(),
            host_id: me.id.0,
            address: me.address.clone(),
        })
        .await?;
    Ok(reply.into_inner())
}

/// The inbound side: the `Internode` gRPC service.
pub struct InternodeService {
    /// Shared transport (address book).
    pub transport: Arc<Transport>,
    /// Where messages go.
    pub driver: DriverHandle,
    /// Where received messages are counted.
    pub metrics: Arc<Metrics>,
}

fn foreign(me: &Identity, theirs: &str, from: u32) -> Status {
    Status::permission_denied(format!(
        "node {from} belongs to cluster '{theirs}', this node to cluster '{}': nodes of another cluster are refused; check cluster_name and seeds",
        me.cluster
    ))
}

#[tonic::async_trait]
impl Internode for InternodeService {
    async fn hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let me = self.transport.identity();
        let r = request.into_inner();
        if r.cluster_name != me.cluster {
            self.metrics.refused.inc();
            return Err(foreign(me, &r.cluster_name, r.host_id));
        }
        if r.host_id == me.id.0 && r.address != me.address {
            return Err(Status::already_exists(format!(
                "host id {} is already used by the node at {}; give the new node another host_id",
                r.host_id, me.address
            )));
        }
        Ok(Response::new(HelloReply {
            cluster_name: me.cluster.clone(),
            host_id: me.id.0,
            address: me.address.clone(),
        }))
    }

    async fn exchange(
        &self,
        request: Request<Streaming<Batch>>,
    ) -> Result<Response<ExchangeReply>, Status> {
        let me = self.transport.identity();
        let mut stream = request.into_inner();
        let Some(first) = stream.message().await? else {
            return Ok(Response::new(ExchangeReply {}));
        };
        if first.cluster_name != me.cluster {
            self.metrics.refused.inc();
            tracing::warn!(from = first.host_id, cluster = %first.cluster_name, "refused a node of another cluster");
            return Err(foreign(me, &first.cluster_name, first.host_id));
        }
        let from = NodeId(first.host_id);
        self.transport.learn(from, &first.address);
        self.deliver(from, first)?;
        while let Some(batch) = stream.message().await? {
            self.deliver(from, batch)?;
        }
        Ok(Response::new(ExchangeReply {}))
    }
}

impl InternodeService {
    fn deliver(&self, from: NodeId, batch: Batch) -> Result<(), Status> {
        for bytes in batch.messages {
            let message = decode(&bytes).map_err(|e| {
                Status::invalid_argument(format!("malformed internode message from {from}: {e}"))
            })?;
            check(&message).map_err(|e| {
                tracing::warn!(%from, error = %e, "refused an internode message");
                Status::invalid_argument(format!("refused internode message from {from}: {e}"))
            })?;
            self.metrics.messages_received.inc();
            if !self.driver.send(Input::Message { from, message }) {
                return Err(Status::unavailable("node is shutting down"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringside_core::message::Message;
    use ringside_core::storage::Entry;
    use ringside_core::streaming::StreamPurpose;
    use ringside_core::token::TokenRange;
    use ringside_core::version::{Dot, Siblings, VClock, Version};

    fn version(value: Option<&[u8]>) -> Version {
        Version {
            dot: Dot { node: NodeId(3), counter: 9 },
            context: VClock::new(),
            timestamp: 1_700_000_000_000_000,
            value: value.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn messages_round_trip_and_values_are_compact() {
        let value = vec![0xffu8; 4096];
        let entries = vec![Entry {
            token: 42,
            key: b"key".to_vec(),
            value: Siblings(vec![version(Some(&value)), version(None)]),
        }];
        let messages = vec![
            Message::Echo,
            Message::EchoReply,
            Message::ViewRequest,
            Message::StreamAck { session: 7, seq: 1 },
            Message::StreamData {
                session: 7,
                seq: 1,
                range: TokenRange::new(1, 2),
                purpose: StreamPurpose::Join,
                entries,
                last: true,
            },
        ];
        for m in messages {
            let bytes = encode(&m);
            assert_eq!(decode(&bytes).expect("decodes"), m);
            if matches!(m, Message::StreamData { .. }) {
                // Values travel as MessagePack bin, not as arrays of integers (2 bytes per 0xff).
                assert!(bytes.len() < value.len() + 512, "{} bytes", bytes.len());
            }
        }
        assert!(decode(b"\x93garbage").is_err());
    }

    /// `{"kind": "echo", "x": [[[…]]]}` 100,000 levels deep: the tagged enum buffers the whole
    /// map, so the nesting reaches the decoder; it is refused as too deep, not a stack overflow.
    #[test]
    fn deeply_nested_messages_are_refused() {
        let mut bytes = b"\x82\xa4kind\xa4echo\xa1x".to_vec();
        bytes.extend(std::iter::repeat_n(0x91, 100_000));
        bytes.push(0xc0);
        let e = decode(&bytes).unwrap_err();
        assert!(matches!(e, crate::msgpack::DecodeError::TooDeep { .. }), "{e}");
    }
}
