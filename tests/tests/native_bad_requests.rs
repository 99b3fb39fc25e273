//! One request must never kill a node: each test sends a real node (a real process, over real
//! gRPC) one hostile or out-of-range request, asserts the precise error it gets back, and then
//! asserts the node is still alive and serving (`Status` answers, a QUORUM put and get work).
//!
//! Needs the binary: `cargo build -p ringside-node` (or `RINGSIDE_BIN`). Timeouts are generous
//! limits for "this should have happened by now", never assertions on speed.

use ringside_core::id::NodeId;
use ringside_core::message::Message;
use ringside_core::token::token_for;
use ringside_core::version::{CausalContext, ClockEntry, Dot, Siblings, VClock, Version};
use ringside_tests::native::{
    Cluster, UpOptions, bytes, channel, get, pid_alive, proto as pb, put, values,
};
use tonic::Code;

use pb::ConsistencyLevel as Cl;
use pb::internode_client::InternodeClient;

/// The largest key a node accepts: fjall limits stored keys to `u16::MAX` bytes and a data key
/// is the 8-byte token followed by the key. Written out (not imported from the node) so the
/// test states the documented contract independently of the code it checks.
const KEY_LIMIT: usize = 65_535 - 8;

/// Asserts `result` is `INVALID_ARGUMENT` with a message containing `needle`.
fn expect_invalid(
    cluster: &Cluster,
    what: &str,
    result: Result<impl std::fmt::Debug, tonic::Status>,
    needle: &str,
) {
    match result {
        Err(s) if s.code() == Code::InvalidArgument && s.message().contains(needle) => {}
        other => cluster.fail(&format!(
            "{what}: expected InvalidArgument mentioning {needle:?}, got {other:?}"
        )),
    }
}

/// Asserts every node of the cluster is still running and serving: its process is alive, it
/// answers `Status`, and a QUORUM put followed by a QUORUM get through it round-trips.
async fn assert_all_serving(cluster: &Cluster, tag: &str) {
    for id in cluster.ids() {
        let pid = cluster.get(id).pid();
        cluster.check(pid.is_some_and(pid_alive), || {
            format!("node {id} (pid {pid:?}) is no longer running after {tag}")
        });
        let status = cluster.status(id).await;
        cluster.check(status.as_ref().is_ok_and(|s| s.lifecycle == "normal"), || {
            format!("node {id} does not answer Status as a NORMAL node after {tag}: {status:?}")
        });
        let mut kv = cluster.kv(id);
        let key = format!("alive-after-{tag}-via-{id}");
        let w = put(&mut kv, &key, "still serving", Cl::Quorum).await;
        cluster.check(w.is_ok(), || format!("QUORUM put via node {id} after {tag}: {w:?}"));
        let r = get(&mut kv, &key, Cl::Quorum).await;
        cluster.check(r.as_ref().is_ok_and(|r| values(r) == ["still serving"]), || {
            format!("QUORUM get via node {id} after {tag}: {r:?}")
        });
    }
}

fn put_request(key: Vec<u8>, context: Vec<u8>) -> pb::PutRequest {
    pb::PutRequest {
        key: bytes(&key),
        value: bytes(b"v"),
        consistency: Cl::Quorum as i32,
        context: bytes(&context),
    }
}

/// A key of 64 KiB (what the README used to promise) is refused before storage is touched, with
/// the real limit in the message; a key of exactly the limit works end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_the_storage_limit_is_refused_and_the_node_survives() {
    let c = Cluster::up(UpOptions::default()).await;
    let mut kv = c.kv(1);
    let limit_text = format!("exceeds the limit of {KEY_LIMIT} bytes");

    let r = kv.put(put_request(vec![b'k'; 64 * 1024], vec![])).await;
    expect_invalid(&c, "put of a 65,536-byte key", r, &limit_text);
    let r =
        kv.get(pb::GetRequest { key: bytes(&[b'k'; 64 * 1024]), consistency: Cl::Quorum as i32 });
    expect_invalid(&c, "get of a 65,536-byte key", r.await, &limit_text);
    let r = kv
        .delete(pb::DeleteRequest {
            key: bytes(&[b'k'; 64 * 1024]),
            consistency: Cl::Quorum as i32,
            context: Default::default(),
        })
        .await;
    expect_invalid(&c, "delete of a 65,536-byte key", r, &limit_text);
    let r = kv.put(put_request(vec![b'k'; KEY_LIMIT + 1], vec![])).await;
    expect_invalid(&c, "put of a key one byte over the limit", r, &limit_text);
    assert_all_serving(&c, "oversized-keys").await;

    // The limit itself is a usable key, on every replica (RF=3 on 3 nodes: each stores it).
    let at_limit = "L".repeat(KEY_LIMIT);
    let w = put(&mut kv, &at_limit, "at the limit", Cl::All).await;
    c.check(w.is_ok(), || format!("put of a key of exactly {KEY_LIMIT} bytes at ALL: {w:?}"));
    let r = get(&mut c.kv(2), &at_limit, Cl::All).await;
    c.check(r.as_ref().is_ok_and(|r| values(r) == ["at the limit"]), || {
        format!("get of a key of exactly {KEY_LIMIT} bytes at ALL: {r:?}")
    });
    assert_all_serving(&c, "a-key-at-the-limit").await;
}

/// A causal context claiming counter `u64::MAX` (no node ever minted it) is refused up front
/// instead of overflowing the coordinator's `counter + 1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_counter_of_u64_max_is_refused_and_the_node_survives() {
    let c = Cluster::up(UpOptions::default()).await;
    let mut kv = c.kv(1);
    let w = put(&mut kv, "ctx-key", "first", Cl::Quorum).await;
    c.check(w.is_ok(), || format!("initial put: {w:?}"));
    let forged =
        VClock([(NodeId(1), ClockEntry { counter: u64::MAX, at: 0 })].into_iter().collect());
    let context = ringside_node::convert::encode_context(&CausalContext::Vector(forged));
    let needle = format!("1:{} exceeds the largest counter a node mints", u64::MAX);

    let r = kv.put(put_request(b"ctx-key".to_vec(), context.clone())).await;
    expect_invalid(&c, "put with a context counter of u64::MAX", r, &needle);
    let r = kv
        .delete(pb::DeleteRequest {
            key: bytes(b"ctx-key"),
            consistency: Cl::Quorum as i32,
            context: bytes(&context),
        })
        .await;
    expect_invalid(&c, "delete with a context counter of u64::MAX", r, &needle);
    assert_all_serving(&c, "a-forged-context").await;
    // The key still holds what was written before.
    let r = get(&mut kv, "ctx-key", Cl::Quorum).await;
    c.check(r.as_ref().is_ok_and(|r| values(r) == ["first"]), || {
        format!("the key after the refused writes: {r:?}")
    });
}

/// MessagePack nested `depth` arrays deep: `[[[…nil…]]]`.
fn nested_msgpack(depth: usize) -> Vec<u8> {
    let mut b = vec![0x91u8; depth]; // fixarray of one element
    b.push(0xc0); // nil
    b
}

/// MessagePack string `s` (shorter than 32 bytes).
fn fixstr(s: &str) -> Vec<u8> {
    assert!(s.len() < 32);
    let mut b = vec![0xa0 | s.len() as u8];
    b.extend_from_slice(s.as_bytes());
    b
}

/// An internode message `{"kind": "echo", "x": [[[…]]]}`: a valid tag plus an extra field. The
/// engine's `Message` is an internally tagged enum, which serde decodes by first buffering the
/// whole map, nested field included, recursively: the nesting reaches the decoder's recursion.
fn deep_message(depth: usize) -> Vec<u8> {
    let mut b = vec![0x82]; // fixmap of two entries
    b.extend(fixstr("kind"));
    b.extend(fixstr("echo"));
    b.extend(fixstr("x"));
    b.extend(nested_msgpack(depth));
    b
}

/// A client context `{"vector": {1: {"counter": 1, "x": [[[…]]]}}}`: the unknown field of the
/// clock entry is skipped, and skipping decodes it recursively.
fn deep_context(depth: usize) -> Vec<u8> {
    let mut b = vec![0x81];
    b.extend(fixstr("vector"));
    b.extend([0x81, 0x01, 0x82]);
    b.extend(fixstr("counter"));
    b.push(0x01);
    b.extend(fixstr("x"));
    b.extend(nested_msgpack(depth));
    b
}

/// A peer stream whose batch holds MessagePack nested 100,000 levels deep is refused with a
/// clear error, and the node keeps running (it used to overflow the stack of the decoding task,
/// which aborts the whole process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_internode_message_is_refused_and_the_node_survives() {
    let c = Cluster::up(UpOptions::default()).await;
    let mut internode = InternodeClient::new(channel(&c.address(1)));
    // An unknown host id and no address: the sender is not learned into the address book, and
    // the message is refused while decoding, before the engine checks membership.
    let batch = pb::Batch {
        cluster_name: "ringside".into(),
        host_id: 999,
        address: String::new(),
        messages: vec![bytes(&deep_message(100_000))],
    };
    let r = internode.exchange(one_batch(batch)).await;
    expect_invalid(
        &c,
        "a 100,000-deep internode message",
        r,
        "malformed internode message from n999",
    );
    // Also moderately deep nesting, far beyond any real message but within old decoder limits.
    let batch = pb::Batch {
        cluster_name: "ringside".into(),
        host_id: 999,
        address: String::new(),
        messages: vec![bytes(&deep_message(1_000))],
    };
    let r = internode.exchange(one_batch(batch)).await;
    expect_invalid(&c, "a 1,000-deep internode message", r, "nested deeper than 64 levels");
    assert_all_serving(&c, "deep-internode-messages").await;
}

/// A client context nested 100,000 levels deep is refused as malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_context_is_refused_and_the_node_survives() {
    let c = Cluster::up(UpOptions::default()).await;
    let mut kv = c.kv(1);
    for depth in [100_000, 1_000] {
        let r = kv.put(put_request(b"deep".to_vec(), deep_context(depth))).await;
        expect_invalid(
            &c,
            &format!("put with a {depth}-deep context"),
            r,
            "nested deeper than 64 levels",
        );
    }
    assert_all_serving(&c, "deep-contexts").await;
}

/// A batch that claims to come from member `from` of the cluster (with no address, so the node's
/// address book keeps the real one).
fn batch_from(from: u32, message: &Message) -> pb::Batch {
    pb::Batch {
        cluster_name: "ringside".into(),
        host_id: from,
        address: String::new(),
        messages: vec![bytes(&ringside_node::server::transport::encode(message))],
    }
}

/// Peers are checked at the edge too: a message from a member carrying a key longer than
/// storage holds, or a version whose counter would overflow the next write's `+ 1`, is refused
/// before it reaches the engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_message_with_out_of_range_values_is_refused_and_the_node_survives() {
    let c = Cluster::up(UpOptions::default()).await;
    let mut internode = InternodeClient::new(channel(&c.address(1)));

    // A repair that would store a version with dot n1:u64::MAX on node 1; node 1's next write of
    // the key would mint u64::MAX + 1. Both outcomes are collected before asserting, so a run
    // that accepts the repair also shows what the following write does.
    let key = b"poisoned".to_vec();
    let poison = Message::Repair {
        token: token_for(&key),
        key: key.clone(),
        value: Siblings::one(Version {
            dot: Dot { node: NodeId(1), counter: u64::MAX },
            context: VClock::new(),
            timestamp: 1,
            value: Some(b"poison".to_vec()),
        }),
    };
    let repair = internode.exchange(one_batch(batch_from(2, &poison))).await;
    let write = put(&mut c.kv(1), "poisoned", "clean", Cl::Quorum).await;
    expect_invalid(
        &c,
        "a repair with dot counter u64::MAX",
        repair,
        &format!("refused internode message from n2: counter n1:{} exceeds", u64::MAX),
    );
    c.check(write.is_ok(), || format!("write of the key the repair targeted: {write:?}"));

    // A read of a key longer than storage holds, as only a misconfigured peer would send.
    let long = vec![b'k'; 64 * 1024];
    let read = Message::Read { op: 1, epoch: 0, token: token_for(&long), key: long };
    let r = internode.exchange(one_batch(batch_from(2, &read))).await;
    expect_invalid(
        &c,
        "a peer read of a 65,536-byte key",
        r,
        &format!(
            "refused internode message from n2: key of 65536 bytes exceeds the limit of {KEY_LIMIT} bytes"
        ),
    );
    assert_all_serving(&c, "out-of-range-peer-values").await;
}

/// A request stream of one batch.
fn one_batch(batch: pb::Batch) -> impl tonic::IntoStreamingRequest<Message = pb::Batch> {
    tonic::codegen::tokio_stream::iter(vec![batch])
}
