//! Drive one `Node` handler at a time and assert the exact outputs (openraft's engine tests).

use ringside_core::gossip::{EndpointState, GossipMessage, HeartbeatState, Status};
use ringside_core::membership::{ClusterView, Member};
use ringside_core::message::{Message, Transmit};
use ringside_core::node::{Event, Node, NodeConfig, NodeTrace, Reply, RequestError};
use ringside_core::ring::Ring;
use ringside_core::storage::{MemStorage, Storage};
use ringside_core::token::token_for;
use ringside_core::{CausalContext, ConflictMode, ConsistencyLevel, Instant, NodeId, Siblings};
use std::time::Duration;

const A: NodeId = NodeId(0);
const B: NodeId = NodeId(1);
const C: NodeId = NodeId(2);
const D: NodeId = NodeId(3);

fn three_node_ring() -> Ring {
    Ring::new([(100, A), (200, B), (300, C)], 3).unwrap()
}

fn config(mode: ConflictMode) -> NodeConfig {
    NodeConfig { conflict_mode: mode, heartbeat_interval: None, ..NodeConfig::default() }
}

fn node(id: NodeId, mode: ConflictMode, view: ClusterView) -> Node<MemStorage> {
    Node::new(id, config(mode), view, MemStorage::new(), Instant::ZERO).unwrap()
}

fn three_nodes() -> ClusterView {
    ClusterView::from_ring(&three_node_ring())
}

/// A gossip ACK2 from `from` carrying only its heartbeat: what feeds the failure detector.
fn heartbeat(from: NodeId, generation: u64, version: u64) -> Message {
    let state =
        EndpointState { heartbeat: HeartbeatState { generation, version }, ..Default::default() };
    Message::Gossip(Box::new(GossipMessage::Ack2 {
        states: [(from, state)].into_iter().collect(),
        since: Default::default(),
    }))
}

fn drain(n: &mut Node<MemStorage>) -> (Vec<Transmit>, Vec<Event>) {
    let mut t = Vec::new();
    let mut e = Vec::new();
    while let Some(x) = n.poll_transmit() {
        t.push(x);
    }
    while let Some(x) = n.poll_event() {
        e.push(x);
    }
    (t, e)
}

/// B heartbeats every second until `secs`; C is heard from once at 0 s and then stays silent,
/// so A's detector convicts it.
fn silence_c_until(a: &mut Node<MemStorage>, secs: u64) {
    for s in 0..secs {
        let now = Instant::from_secs(s);
        a.handle_message(now, B, heartbeat(B, 1, s + 1));
        if s == 0 {
            a.handle_message(now, C, heartbeat(C, 1, 1));
        }
        a.handle_timeout(now);
        drain(a);
    }
}

/// Node A (LWW) with a given configuration, on the three-node ring.
fn coordinator_a(cfg: NodeConfig) -> Node<MemStorage> {
    Node::new(A, cfg, three_nodes(), MemStorage::new(), Instant::ZERO).unwrap()
}

/// A writes key `k` at ONE at `secs`.
fn lww_put_at_one(a: &mut Node<MemStorage>, secs: u64) {
    a.put(
        Instant::from_secs(secs),
        b"k".to_vec(),
        b"v".to_vec(),
        ConsistencyLevel::One,
        CausalContext::Lww(None),
    )
    .unwrap();
}

fn mutation_value(t: &Transmit) -> Siblings {
    match &t.message {
        Message::Mutation { value, .. } => (**value).clone(),
        other => panic!("expected a mutation, got {other:?}"),
    }
}

#[test]
fn lww_quorum_write_fans_out_and_replies_at_two_acks() {
    let mut a = node(A, ConflictMode::Lww, three_nodes());
    let now = Instant::from_secs(1);
    let req = a
        .put(now, b"k".to_vec(), b"v".to_vec(), ConsistencyLevel::Quorum, CausalContext::Lww(None))
        .unwrap();
    let (t, e) = drain(&mut a);
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(t.iter().map(|t| t.to).collect::<Vec<_>>(), vec![B, C]);
    let value = mutation_value(&t[0]);
    assert_eq!(mutation_value(&t[1]), value);
    assert_eq!(value.values(), vec![b"v".to_vec()]);
    assert_eq!(value.0[0].timestamp, now.as_micros());
    // The coordinator applied its own copy before sending.
    assert_eq!(a.storage().get(token_for(b"k"), b"k").unwrap(), Some(value.clone()));

    let Message::Mutation { op, .. } = t[0].message else { unreachable!() };
    a.handle_message(now, B, Message::MutationAck { op });
    let (t, e) = drain(&mut a);
    assert!(t.is_empty());
    assert_eq!(
        e,
        vec![Event::Reply {
            request: req,
            result: Ok(Reply::Written { tag: value.0[0].tag(), acks: vec![A, B], hinted: vec![] }),
        }]
    );
    // C's late ack finishes the write silently; the deadline then does nothing.
    a.handle_message(now, C, Message::MutationAck { op });
    a.handle_timeout(now + Duration::from_secs(3));
    assert_eq!(drain(&mut a), (vec![], vec![]));
    assert_eq!(a.in_flight(), (0, 0));
}

#[test]
fn vector_clock_write_from_a_non_replica_asks_a_replica_to_mint() {
    // RF=1 ring where B owns k's token; A only coordinates.
    let tk = token_for(b"k");
    let ring = Ring::new([(tk, B), (tk.wrapping_add(1 << 63), A)], 1).unwrap();
    let view = ClusterView::from_ring(&ring);
    let mut a = node(A, ConflictMode::VectorClock, view.clone());
    let mut b = node(B, ConflictMode::VectorClock, view);
    let now = Instant::from_secs(1);
    let req = a
        .put(now, b"k".to_vec(), b"v1".to_vec(), ConsistencyLevel::One, CausalContext::default())
        .unwrap();
    let (t, _) = drain(&mut a);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].to, B);
    assert!(matches!(t[0].message, Message::Mint { .. }));
    b.handle_message(now, A, t[0].message.clone());
    let (t, _) = drain(&mut b);
    let Message::MintAck { version, .. } = &t[0].message else { panic!("{t:?}") };
    // B mints the first dot of its chain for this key.
    assert_eq!((version.dot.node, version.dot.counter), (B, 1));
    a.handle_message(now, B, t[0].message.clone());
    let (t, e) = drain(&mut a);
    assert!(t.is_empty());
    assert!(matches!(
        &e[..],
        [Event::Reply { request, result: Ok(Reply::Written { acks, .. }) }] if *request == req && acks == &vec![B]
    ));
}

#[test]
fn unavailable_is_refused_up_front_without_writing() {
    let mut a = Node::new(
        A,
        NodeConfig { conflict_mode: ConflictMode::Lww, ..NodeConfig::default() },
        three_nodes(),
        MemStorage::new(),
        Instant::ZERO,
    )
    .unwrap();
    // Only B heartbeats; C stays silent and is convicted.
    silence_c_until(&mut a, 40);
    assert!(!a.is_alive(C));
    let now = Instant::from_secs(40);
    let req = a
        .put(now, b"k".to_vec(), b"v".to_vec(), ConsistencyLevel::All, CausalContext::Lww(None))
        .unwrap();
    let (t, e) = drain(&mut a);
    assert!(t.is_empty(), "nothing may be sent: {t:?}");
    assert_eq!(
        e,
        vec![Event::Reply {
            request: req,
            result: Err(RequestError::Unavailable {
                cl: ConsistencyLevel::All,
                required: 3,
                alive: 2
            }),
        }]
    );
    assert_eq!(a.storage().key_count(), 0);
    assert!(a.storage().hints().unwrap().is_empty());

    // QUORUM succeeds with a hint for C, stored before anything is sent.
    let req = a
        .put(now, b"k".to_vec(), b"v".to_vec(), ConsistencyLevel::Quorum, CausalContext::Lww(None))
        .unwrap();
    let (t, e) = drain(&mut a);
    assert_eq!(t.iter().map(|t| t.to).collect::<Vec<_>>(), vec![B]);
    assert!(matches!(&e[..], [Event::Trace(NodeTrace::HintStored { target, .. })] if *target == C));
    let hints = a.storage().hints().unwrap();
    assert_eq!(hints.len(), 1);
    assert_eq!(hints[0].target, C);
    let Message::Mutation { op, .. } = t[0].message else { unreachable!() };
    a.handle_message(now, B, Message::MutationAck { op });
    let (_, e) = drain(&mut a);
    assert!(matches!(
        &e[..],
        [Event::Reply { request, result: Ok(Reply::Written { acks, hinted, .. }) }]
            if *request == req && acks == &vec![A, B] && hinted == &vec![C]
    ));

    // C comes back: the next replay round sends the hint; its ack removes it.
    a.handle_message(Instant::from_secs(45), C, heartbeat(C, 2, 1));
    let (_, e) = drain(&mut a);
    assert_eq!(e, vec![Event::Trace(NodeTrace::PeerUp { peer: C })]);
    a.handle_timeout(Instant::from_secs(50));
    let (t, _) = drain(&mut a);
    let hint = t.iter().find(|t| t.to == C && matches!(t.message, Message::Hint { .. }));
    let Some(Transmit { message: Message::Hint { id, .. }, .. }) = hint else { panic!("{t:?}") };
    a.handle_message(Instant::from_secs(50), C, Message::HintAck { id: *id });
    let (_, e) = drain(&mut a);
    assert_eq!(e, vec![Event::Trace(NodeTrace::HintDelivered { target: C, id: *id })]);
    assert!(a.storage().hints().unwrap().is_empty());
}

#[test]
fn pending_replica_raises_required_acks() {
    // Cassandra #833: RF=3 QUORUM with D joining → 4 targets, 3 acks.
    // D joins (BOOT) with the token of "k": it gains k's range.
    let mut view = three_nodes();
    view.members.insert(
        D,
        Member { status: Status::Boot, tokens: vec![token_for(b"k")], rack: None, epoch: 0 },
    );
    let mut a = node(A, ConflictMode::Lww, view);
    let now = Instant::from_secs(1);
    let req = a
        .put(now, b"k".to_vec(), b"v".to_vec(), ConsistencyLevel::Quorum, CausalContext::Lww(None))
        .unwrap();
    let (t, _) = drain(&mut a);
    assert_eq!(t.iter().map(|t| t.to).collect::<Vec<_>>(), vec![B, C, D]);
    let Message::Mutation { op, .. } = t[0].message else { unreachable!() };
    a.handle_message(now, B, Message::MutationAck { op });
    assert!(drain(&mut a).1.is_empty(), "2 acks are not enough with a pending replica");
    a.handle_message(now, D, Message::MutationAck { op });
    let (_, e) = drain(&mut a);
    assert!(matches!(
        &e[..],
        [Event::Reply { request, result: Ok(Reply::Written { acks, .. }) }]
            if *request == req && acks == &vec![A, B, D]
    ));
    // Reads never go to the pending replica.
    a.get(now, b"k".to_vec(), ConsistencyLevel::All).unwrap();
    let (t, _) = drain(&mut a);
    assert_eq!(t.iter().map(|t| t.to).collect::<Vec<_>>(), vec![B, C]);
}

#[test]
fn read_repairs_the_stale_replica_after_answering() {
    let mut a = node(A, ConflictMode::VectorClock, three_nodes());
    let now = Instant::from_secs(1);
    // A writes v1 locally (as coordinator and replica) at ONE.
    a.put(now, b"k".to_vec(), b"v1".to_vec(), ConsistencyLevel::One, CausalContext::default())
        .unwrap();
    let (t, _) = drain(&mut a);
    let fresh = mutation_value(&t[0]);
    let req = a.get(now, b"k".to_vec(), ConsistencyLevel::Quorum).unwrap();
    let (t, _) = drain(&mut a);
    assert_eq!(t.iter().map(|t| t.to).collect::<Vec<_>>(), vec![B, C]);
    let Message::Read { op, .. } = t[0].message else { unreachable!() };
    // B is fresh: the client is answered at 2 replies.
    a.handle_message(now, B, Message::ReadReply { op, value: fresh.clone() });
    let (t, e) = drain(&mut a);
    assert!(t.is_empty());
    let [Event::Reply { request, result: Ok(Reply::Read { value, context, replied }) }] = &e[..]
    else {
        panic!("{e:?}")
    };
    assert_eq!(*request, req);
    assert_eq!(value.values(), vec![b"v1".to_vec()]);
    assert_eq!(replied, &vec![A, B]);
    assert!(context.covers(&fresh.0[0].tag()));
    // C answers with nothing: it is repaired in the background.
    a.handle_message(now, C, Message::ReadReply { op, value: Siblings::new() });
    let (t, e) = drain(&mut a);
    assert_eq!(
        t,
        vec![Transmit {
            to: C,
            message: Message::Repair { token: token_for(b"k"), key: b"k".to_vec(), value: fresh }
        }]
    );
    assert_eq!(e, vec![Event::Trace(NodeTrace::ReadRepair { replica: C, key: "k".into() })]);
    assert_eq!(a.stats().read_repairs, 1);
}

#[test]
fn bad_input_is_rejected_with_a_specific_error() {
    let mut a = node(A, ConflictMode::VectorClock, three_nodes());
    let now = Instant::ZERO;
    let e = a.get(now, vec![], ConsistencyLevel::One).unwrap_err();
    assert!(e.to_string().contains("empty key"));
    let e = a.get(now, vec![b'x'; 70_000], ConsistencyLevel::One).unwrap_err();
    assert_eq!(e.to_string(), "key of 70000 bytes exceeds the limit of 65536 bytes");
    let e = a.get(now, b"k".to_vec(), ConsistencyLevel::Any).unwrap_err();
    assert!(e.to_string().contains("ANY is only supported for writes"));
    let e = a
        .put(now, b"k".to_vec(), vec![0; 2 << 20], ConsistencyLevel::One, CausalContext::default())
        .unwrap_err();
    assert!(e.to_string().contains("exceeds the limit of 1048576 bytes"));
    let e = a
        .put(now, b"k".to_vec(), b"v".to_vec(), ConsistencyLevel::One, CausalContext::Lww(None))
        .unwrap_err();
    assert!(e.to_string().contains("conflict mode"));
    assert_eq!(drain(&mut a), (vec![], vec![]), "rejected requests produce no output");
}

#[test]
fn write_timeout_hints_the_silent_replica_and_reports_info() {
    let mut a = node(A, ConflictMode::Lww, three_nodes());
    let now = Instant::from_secs(1);
    let req = a
        .put(now, b"k".to_vec(), b"v".to_vec(), ConsistencyLevel::All, CausalContext::Lww(None))
        .unwrap();
    let (t, _) = drain(&mut a);
    let Message::Mutation { op, .. } = t[0].message else { unreachable!() };
    a.handle_message(now, B, Message::MutationAck { op });
    assert_eq!(a.poll_timeout(), Some(now + Duration::from_secs(2)));
    a.handle_timeout(now + Duration::from_secs(2));
    let (_, e) = drain(&mut a);
    assert!(matches!(&e[0], Event::Trace(NodeTrace::HintStored { target, .. }) if *target == C));
    assert_eq!(
        e[1],
        Event::Reply {
            request: req,
            result: Err(RequestError::Timeout {
                cl: ConsistencyLevel::All,
                required: 3,
                received: 2
            }),
        }
    );
}

#[test]
fn restart_keeps_data_and_raises_the_generation() {
    let mut a = node(A, ConflictMode::Lww, three_nodes());
    a.put(
        Instant::ZERO,
        b"k".to_vec(),
        b"v".to_vec(),
        ConsistencyLevel::One,
        CausalContext::Lww(None),
    )
    .unwrap();
    drain(&mut a);
    assert_eq!(a.generation(), 1);
    let storage = a.into_storage();
    let a = Node::new(A, config(ConflictMode::Lww), three_nodes(), storage, Instant::from_secs(5))
        .unwrap();
    assert_eq!(a.generation(), 2);
    assert_eq!(a.storage().key_count(), 1);
}

#[test]
fn hints_expire_after_the_grace_period_instead_of_resurrecting() {
    let cfg = NodeConfig {
        conflict_mode: ConflictMode::Lww,
        gc_grace: Duration::from_secs(60),
        ..NodeConfig::default()
    };
    let mut a = coordinator_a(cfg);
    silence_c_until(&mut a, 40);
    lww_put_at_one(&mut a, 40);
    drain(&mut a);
    assert_eq!(a.storage().hints().unwrap().len(), 1);
    // C returns only after the grace period: the hint is dropped, never sent.
    let back = Instant::from_secs(105);
    a.handle_message(back, C, heartbeat(C, 2, 1));
    a.handle_timeout(back + Duration::from_secs(10));
    let (t, e) = drain(&mut a);
    assert!(!t.iter().any(|t| matches!(t.message, Message::Hint { .. })), "{t:?}");
    assert!(
        e.iter().any(
            |e| matches!(e, Event::Trace(NodeTrace::HintExpired { target, .. }) if *target == C)
        )
    );
    // (B never acknowledged either, so the write's deadline hinted B just now; C has none left.)
    assert!(a.storage().hints().unwrap().iter().all(|h| h.target != C));
}

#[test]
fn no_hint_once_the_target_is_down_longer_than_the_window() {
    let cfg = NodeConfig {
        conflict_mode: ConflictMode::Lww,
        max_hint_window: Duration::from_secs(30),
        ..NodeConfig::default()
    };
    let mut a = coordinator_a(cfg);
    silence_c_until(&mut a, 100);
    assert!(a.storage().hints().unwrap().is_empty());
    lww_put_at_one(&mut a, 100);
    let (_, e) = drain(&mut a);
    assert!(e.iter().any(
        |e| matches!(e, Event::Trace(NodeTrace::HintWindowExceeded { target, .. }) if *target == C)
    ));
    assert!(a.storage().hints().unwrap().is_empty());
}

#[test]
fn messages_from_a_node_outside_the_cluster_are_refused_on_every_path() {
    use ringside_core::gossip::GossipDigest;
    use ringside_core::storage::{Entry, Hint};
    use ringside_core::streaming::StreamPurpose;
    use ringside_core::token::TokenRange;
    const X: NodeId = NodeId(42);
    let mut a = node(A, ConflictMode::Lww, three_nodes());
    let now = Instant::from_secs(1);
    let value = {
        a.put(
            now,
            b"seed".to_vec(),
            b"v".to_vec(),
            ConsistencyLevel::One,
            CausalContext::Lww(None),
        )
        .unwrap();
        let (t, _) = drain(&mut a);
        mutation_value(&t[0])
    };
    let keys_before = a.storage().key_count();
    let whole = TokenRange { start: 0, end: 0 };
    let foreign = [
        Message::Mutation {
            epoch: 0,
            op: 1,
            token: token_for(b"k"),
            key: b"k".to_vec(),
            value: value.clone().into(),
        },
        Message::StreamData {
            session: 1,
            seq: 1,
            range: whole,
            purpose: StreamPurpose::Join,
            entries: vec![Entry {
                token: token_for(b"k"),
                key: b"k".to_vec(),
                value: value.clone(),
            }],
            last: true,
        },
        Message::StreamRequest { session: 1, epoch: 0, range: whole, purpose: StreamPurpose::Join },
        Message::Hint {
            id: 1,
            epoch: 0,
            token: token_for(b"k"),
            key: b"k".to_vec(),
            value: value.clone(),
        },
        Message::HandoffHint {
            hint: Hint {
                id: 1,
                target: B,
                token: token_for(b"k"),
                key: b"k".to_vec(),
                value: value.clone(),
                created: now,
                epoch: 0,
            },
        },
        Message::Repair { token: token_for(b"k"), key: b"k".to_vec(), value },
        Message::Read { op: 1, epoch: 0, token: token_for(b"k"), key: b"k".to_vec() },
        Message::ViewRequest,
    ];
    for m in foreign {
        let what = format!("{m:?}");
        a.handle_message(now, X, m);
        let (t, e) = drain(&mut a);
        assert!(
            matches!(&t[..], [Transmit { to: X, message: Message::Refused { .. } }]),
            "{what}: {t:?}"
        );
        assert!(matches!(&e[..], [Event::Trace(NodeTrace::Refused { from: X, .. })]), "{what}");
    }
    assert_eq!(a.storage().key_count(), keys_before, "nothing applied");
    assert!(a.storage().hints().unwrap().is_empty(), "no hint kept");
    // Gossip from another cluster is refused too, and X is not learned.
    let syn = GossipMessage::Syn {
        cluster_id: "other".into(),
        digests: vec![GossipDigest { node: X, generation: 1, max_version: 5 }],
    };
    a.handle_message(now, X, Message::Gossip(Box::new(syn)));
    let (t, _) = drain(&mut a);
    assert!(
        matches!(&t[..], [Transmit { to: X, message: Message::Refused { reason } }] if reason.contains("cluster mismatch"))
    );
    assert!(a.gossiper().endpoint(X).is_none());
    assert!(!a.admits(X));
}

#[test]
fn operator_commands_refuse_what_would_break_the_cluster() {
    use ringside_core::node::{AdminError, JoinRequest};
    let mut a = node(A, ConflictMode::Lww, three_nodes());
    let now = Instant::from_secs(1);
    // Three nodes at RF=3: leaving would leave two replicas for every range.
    let err = a.decommission(now).unwrap_err();
    assert_eq!(err, AdminError::TooFewNodes { remaining: 2, rf: 3 });
    assert!(err.to_string().contains("add a node first"), "{err}");
    // A member has nothing to join; a resume with nothing interrupted says so.
    assert!(matches!(a.join(now, JoinRequest::default()), Err(AdminError::AlreadyMember(_))));
    let err = a.join(now, JoinRequest { resume: true, ..JoinRequest::default() }).unwrap_err();
    assert!(err.to_string().starts_with("nothing to resume"), "{err}");
    // With D joining, a decommission waits for the movement in progress.
    let mut view = three_nodes();
    view.members.insert(D, Member { status: Status::Boot, tokens: vec![50], rack: None, epoch: 0 });
    view.members.insert(
        NodeId(4),
        Member { status: Status::Normal, tokens: vec![250], rack: None, epoch: 0 },
    );
    let mut a = node(A, ConflictMode::Lww, view);
    assert_eq!(
        a.decommission(now).unwrap_err(),
        AdminError::MovementInProgress { node: D, status: Status::Boot }
    );
    // Nothing was announced.
    assert_eq!(a.own_status(), Some(Status::Normal));
}

#[test]
fn a_joining_node_does_not_coordinate_client_requests() {
    use ringside_core::node::{InvalidRequest, JoinRequest};
    let mut d = Node::new(
        D,
        config(ConflictMode::Lww),
        ClusterView::empty(3),
        MemStorage::new(),
        Instant::ZERO,
    )
    .unwrap();
    let err = d.get(Instant::ZERO, b"k".to_vec(), ConsistencyLevel::One).unwrap_err();
    assert!(matches!(err, InvalidRequest::NotServing { .. }), "{err}");
    d.join(Instant::ZERO, JoinRequest::default()).unwrap();
    let err = d.get(Instant::ZERO, b"k".to_vec(), ConsistencyLevel::One).unwrap_err();
    assert!(err.to_string().contains("joining"), "{err}");
    assert!(!d.accepts_clients());
}

/// A peer's version whose counter no node could have minted is refused before it reaches
/// storage, in the engine itself (before, only the native transport filtered it): such a counter
/// would make the next dot for the key overflow or repeat.
#[test]
fn a_peer_version_with_an_impossible_counter_is_refused() {
    use ringside_core::node::MAX_CONTEXT_COUNTER;
    use ringside_core::version::{Dot, VClock, Version};
    let mut a = node(A, ConflictMode::VectorClock, three_nodes());
    let now = Instant::from_secs(1);
    let token = token_for(b"k");
    let version = Version {
        dot: Dot { node: B, counter: u64::MAX },
        context: VClock::new(),
        timestamp: 1,
        value: Some(b"v".to_vec()),
    };
    let m = Message::Mutation {
        op: 1,
        epoch: 0,
        token,
        key: b"k".to_vec(),
        value: std::sync::Arc::new(Siblings::one(version)),
    };
    a.handle_message(now, B, m);
    let (t, e) = drain(&mut a);
    assert!(
        matches!(&t[..], [Transmit { to: B, message: Message::Refused { reason } }] if reason.contains(&MAX_CONTEXT_COUNTER.to_string())),
        "{t:?}"
    );
    assert!(matches!(&e[..], [Event::Trace(NodeTrace::Refused { from: B, .. })]), "{e:?}");
    assert_eq!(a.storage().get(token, b"k").unwrap(), None, "nothing stored");
}
