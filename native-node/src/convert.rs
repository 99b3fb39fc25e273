//! Every conversion between the protocol's messages and the engine's types, in both directions:
//! consistency levels, causal contexts, version tags, client and operator replies, the `Status`
//! and `Progress` replies, trace events, and engine failures turned into gRPC statuses.
//!
//! Keeping them in one place means a protocol field is translated once: the services, the
//! driver and the CLI all call these functions instead of each spelling out its own copy.

use crate::proto::v1 as pb;
use crate::server::inbox::{AdminFailure, AdminOutcome, ClientError};
use ringside_core::consistency::ConsistencyLevel;
use ringside_core::gossip::{StateKey, Status as GossipStatus};
use ringside_core::id::NodeId;
use ringside_core::node::{
    AdminError, InvalidRequest, JoinPhase, JoinRequest, Lifecycle, Node, NodeTrace, RepairReport,
    Reply, RequestError,
};
use ringside_core::status::NodeStatus;
use ringside_core::storage::Storage;
use ringside_core::time::Instant;
use ringside_core::version::{CausalContext, VersionTag};
use tonic::{Code, Status};

/// Converts the protocol's level, refusing unset and unknown values.
pub fn consistency(value: i32) -> Result<ConsistencyLevel, Status> {
    use pb::ConsistencyLevel as P;
    match P::try_from(value) {
        Ok(P::One) => Ok(ConsistencyLevel::One),
        Ok(P::Two) => Ok(ConsistencyLevel::Two),
        Ok(P::Three) => Ok(ConsistencyLevel::Three),
        Ok(P::Quorum) => Ok(ConsistencyLevel::Quorum),
        Ok(P::All) => Ok(ConsistencyLevel::All),
        Ok(P::Any) => Ok(ConsistencyLevel::Any),
        Ok(P::Unspecified) => Err(Status::invalid_argument(
            "consistency level not set: use one of ONE, TWO, THREE, QUORUM, ALL, ANY",
        )),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown consistency level {value}: use one of ONE (1), TWO (2), THREE (3), QUORUM (4), ALL (5), ANY (6)"
        ))),
    }
}

/// The protocol's value of a level.
pub fn consistency_to_proto(cl: ConsistencyLevel) -> pb::ConsistencyLevel {
    use pb::ConsistencyLevel as P;
    match cl {
        ConsistencyLevel::Any => P::Any,
        ConsistencyLevel::One => P::One,
        ConsistencyLevel::Two => P::Two,
        ConsistencyLevel::Three => P::Three,
        ConsistencyLevel::Quorum => P::Quorum,
        ConsistencyLevel::All => P::All,
    }
}

/// Encodes a causal context for the client (opaque bytes).
pub fn encode_context(context: &CausalContext) -> Vec<u8> {
    rmp_serde::to_vec_named(context).expect("contexts always encode")
}

/// Decodes a client's context; empty means a blind write.
pub fn decode_context(bytes: &[u8]) -> Result<Option<CausalContext>, Status> {
    if bytes.is_empty() {
        return Ok(None);
    }
    // Bounded depth: a context is client input, and unbounded nesting would exhaust the stack.
    crate::msgpack::from_slice(bytes).map(Some).map_err(|e| {
        Status::invalid_argument(format!(
            "malformed causal context ({e}): pass the context returned by Get unchanged, or none for a blind write"
        ))
    })
}

impl From<VersionTag> for pb::VersionTag {
    fn from(tag: VersionTag) -> pb::VersionTag {
        pb::VersionTag { timestamp: tag.timestamp, node: tag.dot.node.0, counter: tag.dot.counter }
    }
}

/// The reply to a put or delete the engine acknowledged.
pub fn write_reply(reply: Reply) -> Result<pb::WriteReply, Status> {
    match reply {
        Reply::Written { tag, acks, hinted } => Ok(pb::WriteReply {
            version: Some(tag.into()),
            acks: acks.iter().map(|n| n.0).collect(),
            hinted: hinted.iter().map(|n| n.0).collect(),
        }),
        Reply::Read { .. } => Err(Status::internal("engine answered a write with a read")),
    }
}

/// The reply to a read: the live siblings, the context to write back with, who answered.
pub fn get_reply(reply: Reply) -> Result<pb::GetReply, Status> {
    match reply {
        Reply::Read { value, context, replied } => {
            let values = value.values();
            Ok(pb::GetReply {
                found: !values.is_empty(),
                values: values.into_iter().collect(),
                context: encode_context(&context),
                replicas: replied.iter().map(|n| n.0).collect(),
            })
        }
        Reply::Written { .. } => Err(Status::internal("engine answered a read with a write")),
    }
}

/// Maps an engine failure to a gRPC status.
pub fn client_status(e: &ClientError) -> Status {
    match e {
        ClientError::Invalid(
            i @ (InvalidRequest::NotServing { .. }
            | InvalidRequest::CatchingUp
            | InvalidRequest::Stopped),
        ) => Status::failed_precondition(i.to_string()),
        ClientError::Invalid(i) => Status::invalid_argument(i.to_string()),
        ClientError::Failed(f @ RequestError::Unavailable { .. }) => {
            Status::unavailable(f.to_string())
        }
        ClientError::Failed(f @ RequestError::Timeout { .. }) => {
            Status::deadline_exceeded(f.to_string())
        }
        ClientError::ShuttingDown => Status::unavailable(e.to_string()),
    }
}

/// Maps an operator command's failure to a gRPC status carrying the engine's words (operators
/// read them), with the code [`admin_code`] picks.
pub fn admin_status(e: &AdminFailure) -> Status {
    Status::new(admin_code(e), e.to_string())
}

/// The gRPC code of an operator command's failure: the one place that decides it.
///
/// Every variant is named, with no catch-all, so that a new refusal in the engine does not
/// compile here until someone decides what its code tells a client to do.
pub fn admin_code(e: &AdminFailure) -> Code {
    match e {
        AdminFailure::Refused(refusal) => match refusal {
            // The node stopped after a storage failure and answers nothing until restarted:
            // another node can take the command.
            AdminError::Stopped => Code::Unavailable,
            // Each of these depends on the node's or the cluster's state (already a member,
            // another movement holding the range, a join to resume, too late to abort, not
            // NORMAL): the same command succeeds only once that state changed.
            AdminError::AlreadyMember(_)
            | AdminError::NothingToResume(_)
            | AdminError::MustResume
            | AdminError::MovementInProgress { .. }
            | AdminError::NotNormal(_)
            | AdminError::CleanupDuringMovement { .. }
            | AdminError::TooLateToAbort(_) => Code::FailedPrecondition,
            // The cluster is too small for the decommission: it succeeds once a node was added,
            // a state of the system rather than a value out of some range the client chose.
            AdminError::TooFewNodes { .. } => Code::FailedPrecondition,
        },
        // The engine accepted the movement, then the cluster did not admit it (range lock
        // refused, source down, aborted): the cluster's state decides a retry.
        AdminFailure::NotAdmitted(_) => Code::FailedPrecondition,
        // The node is stopping: another node can answer.
        AdminFailure::ShuttingDown => Code::Unavailable,
    }
}

impl From<pb::JoinRequest> for JoinRequest {
    fn from(r: pb::JoinRequest) -> JoinRequest {
        JoinRequest {
            tokens: (!r.tokens.is_empty()).then_some(r.tokens),
            allow_inconsistent_source: r.allow_inconsistent_source,
            resume: r.resume,
        }
    }
}

impl From<AdminOutcome> for pb::AdminReply {
    fn from(outcome: AdminOutcome) -> pb::AdminReply {
        match outcome {
            AdminOutcome::Started(message) => pb::AdminReply { message, started: 0, run: 0 },
            AdminOutcome::Repair { started: 0, .. } => pb::AdminReply {
                message: "nothing to repair: no other live replica of this node's ranges".into(),
                started: 0,
                run: 0,
            },
            AdminOutcome::Repair { started, run } => pb::AdminReply {
                message: format!("repair run {run} started: {started} comparisons"),
                started: started as u64,
                run,
            },
            AdminOutcome::Cleanup { keys, bytes } => pb::AdminReply {
                message: format!("cleanup removed {keys} keys ({bytes} bytes)"),
                started: 0,
                run: 0,
            },
        }
    }
}

/// The reply to a cleanup; any other outcome is an internal error.
pub fn cleanup_reply(outcome: AdminOutcome) -> Result<pb::CleanupReply, Status> {
    match outcome {
        AdminOutcome::Cleanup { keys, bytes } => {
            Ok(pb::CleanupReply { keys_removed: keys, bytes_removed: bytes })
        }
        _ => Err(Status::internal("cleanup returned another outcome")),
    }
}

/// A trace event as the Watch API streams it: the engine's trace as JSON, stamped.
pub fn trace_event(time_micros: u64, node: NodeId, trace: &NodeTrace) -> pb::TraceEvent {
    let json = serde_json::to_string(trace).unwrap_or_default();
    pb::TraceEvent { time_micros, node: node.0, json }
}

/// A repair run for the Progress reply: the driver's numbering (`run`, the `comparisons` it
/// started, since when) and times, the engine's report.
pub fn repair_run(
    run: u64,
    comparisons: u64,
    started_micros: u64,
    report: &RepairReport,
    completed_micros: u64,
) -> pb::RepairRun {
    pb::RepairRun {
        run,
        comparisons,
        compared: report.compared,
        unanswered: report.unanswered,
        differing: report.differing,
        keys_received: report.keys_received,
        keys_changed: report.keys_changed,
        bytes_streamed: report.bytes_streamed,
        over_streaming: report.over_streaming(),
        started_micros,
        completed_micros,
    }
}

/// The ring as `node` sees it, with the addresses `address_of` knows.
pub fn status_reply<S: Storage>(
    node: &Node<S>,
    now: Instant,
    address_of: impl Fn(NodeId) -> Option<String>,
) -> pb::StatusReply {
    let view = node.view();
    let ownership = node.topology().map(|t| t.ring().effective_ownership()).unwrap_or_default();
    let mut members = Vec::new();
    for (id, member) in &view.members {
        let gossip = node.gossiper().endpoint(*id);
        let load = if *id == node.id() {
            node.storage().load_bytes()
        } else {
            gossip
                .and_then(|e| e.states.get(&StateKey::Load))
                .and_then(|v| v.value.parse().ok())
                .unwrap_or(0)
        };
        let up = *id == node.id() || node.is_alive(*id);
        let shown = NodeStatus::of(up, Some(member));
        let owns = shown.owns(ownership.get(id).copied().unwrap_or(0.0)).map(|s| s * 100.0);
        members.push(pb::MemberStatus {
            host_id: id.0,
            address: address_of(*id).unwrap_or_default(),
            state: shown.state_letter().to_string(),
            mode: shown.mode_letter().to_string(),
            status: member.status.to_string(),
            load_bytes: load,
            // Gossiped by the member itself: saturate rather than wrap on absurd counts.
            tokens: u32::try_from(member.tokens.len()).unwrap_or(u32::MAX),
            owns,
            rack: member.rack.clone().unwrap_or_default(),
            phi: if *id == node.id() { 0.0 } else { node.phi(now, *id) },
        });
    }
    let locks = node.range_locks();
    let movements = view
        .members
        .iter()
        .filter(|(_, m)| {
            matches!(
                m.status,
                GossipStatus::Boot
                    | GossipStatus::MidJoin
                    | GossipStatus::Leaving
                    | GossipStatus::MidLeave
            )
        })
        .map(|(id, m)| pb::Movement {
            host_id: id.0,
            address: address_of(*id).unwrap_or_default(),
            kind: if matches!(m.status, GossipStatus::Boot | GossipStatus::MidJoin) {
                "join"
            } else {
                "decommission"
            }
            .into(),
            status: m.status.to_string(),
            epoch: m.epoch,
            ranges: view.movements(*id).map_or(0, |r| u32::try_from(r.len()).unwrap_or(u32::MAX)),
            lock_granted: locks.granted.get(id) == Some(&m.epoch),
            lock_held: *id == node.id() && locks.holding == Some(m.epoch),
            refused: if *id == node.id() {
                locks
                    .refused_by
                    .iter()
                    .map(|(by, holder)| pb::LockRefusal { by: by.0, holder: holder.0 })
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    pb::StatusReply {
        movements,
        cluster_name: node.config().cluster_name.clone(),
        rf: view.rf as u32,
        strategy: node.config().join_strategy.to_string(),
        host_id: node.id().0,
        lifecycle: node.lifecycle().describe(),
        members,
        hints: node.hints_by_target().into_iter().map(|(k, v)| (k.0, v as u64)).collect(),
        keys: node.storage().key_count(),
    }
}

/// `node`'s own movement as the Progress reply shows it. `finished` is the keys and bytes of
/// the last finished movement (the lifecycle forgets them once NORMAL or LEFT); `repair` and
/// `last_repair` are the run in progress and the last one completed.
pub fn progress_reply<S: Storage>(
    node: &Node<S>,
    finished: Option<(u64, u64)>,
    repair: Option<pb::RepairRun>,
    last_repair: Option<pb::RepairRun>,
) -> pb::ProgressReply {
    let status = node.own_status().map(|s| s.to_string()).unwrap_or_default();
    let (movement, phase, progress) = match node.lifecycle() {
        Lifecycle::Fresh => ("none", None, None),
        Lifecycle::Normal => ("normal", None, None),
        Lifecycle::Left => ("left", None, None),
        Lifecycle::Joining(j) => ("joining", Some(&j.phase), Some(&j.progress)),
        Lifecycle::Leaving(l) => ("leaving", Some(&l.phase), Some(&l.progress)),
    };
    let error = match phase {
        Some(JoinPhase::Failed { reason }) => reason.clone(),
        _ => String::new(),
    };
    let description = node.lifecycle().describe();
    let (keys, bytes) = match progress {
        Some(p) => (p.moved.keys, p.moved.bytes),
        None => finished.unwrap_or((0, 0)),
    };
    pb::ProgressReply {
        movement: movement.into(),
        phase: description,
        ranges_done: progress.map_or(0, |p| p.ranges_done as u64),
        ranges_total: progress.map_or(0, |p| p.ranges_total as u64),
        keys,
        bytes,
        error,
        status,
        bytes_estimate: 0,
        repair,
        last_repair,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One failure of every kind, with the code a client must see for it.
    fn admin_table() -> Vec<(AdminFailure, Code)> {
        let moving = NodeId(4);
        vec![
            (AdminError::Stopped.into(), Code::Unavailable),
            (AdminError::AlreadyMember("normal".into()).into(), Code::FailedPrecondition),
            (AdminError::NothingToResume("normal".into()).into(), Code::FailedPrecondition),
            (AdminError::MustResume.into(), Code::FailedPrecondition),
            (
                AdminError::MovementInProgress { node: moving, status: GossipStatus::Boot }.into(),
                Code::FailedPrecondition,
            ),
            (AdminError::TooFewNodes { remaining: 2, rf: 3 }.into(), Code::FailedPrecondition),
            (AdminError::NotNormal("joining".into()).into(), Code::FailedPrecondition),
            (
                AdminError::CleanupDuringMovement { node: moving, status: GossipStatus::Leaving }
                    .into(),
                Code::FailedPrecondition,
            ),
            (AdminError::TooLateToAbort("MID_JOIN".into()).into(), Code::FailedPrecondition),
            (AdminFailure::NotAdmitted("range lock refused".into()), Code::FailedPrecondition),
            (AdminFailure::ShuttingDown, Code::Unavailable),
        ]
    }

    #[test]
    fn every_admin_failure_maps_to_its_code() {
        for (failure, code) in admin_table() {
            assert_eq!(admin_status(&failure).code(), code, "{failure:?}");
        }
    }

    #[test]
    fn admin_statuses_keep_the_engines_words() {
        for (failure, _) in admin_table() {
            assert_eq!(admin_status(&failure).message(), failure.to_string());
        }
        let refused = admin_status(&AdminError::TooFewNodes { remaining: 2, rf: 3 }.into());
        assert_eq!(
            refused.message(),
            "decommission would leave 2 nodes, fewer than RF=3; add a node first"
        );
    }

    #[test]
    fn consistency_levels_round_trip_and_unset_is_refused() {
        use ConsistencyLevel as L;
        for cl in [L::Any, L::One, L::Two, L::Three, L::Quorum, L::All] {
            assert_eq!(consistency(consistency_to_proto(cl) as i32).unwrap(), cl);
        }
        assert_eq!(consistency(0).unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(consistency(99).unwrap_err().code(), Code::InvalidArgument);
    }
}
