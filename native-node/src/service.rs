//! The client (`Kv`) and operator (`Admin`) gRPC services: they validate at the edge, hand the
//! request to the driver, and map the engine's outcome to a gRPC status that says what to do.

use crate::driver::{
    AdminCommand, AdminFailure, AdminOutcome, ClientError, DriverHandle, Input, TraceSender,
};
use crate::metrics::Metrics;
use crate::proto::v1 as pb;
use crate::proto::v1::admin_server::Admin;
use crate::proto::v1::kv_server::Kv;
use ringside_core::consistency::ConsistencyLevel;
use ringside_core::node::{AdminError, InvalidRequest, JoinRequest, Reply, RequestError};
use ringside_core::version::CausalContext;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant as StdInstant;
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};
use tonic::{Request, Response, Status};

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

/// Maps an operator command's failure to a gRPC status carrying the engine's words. Every
/// refusal depends on the cluster's or the node's state (already a member, another movement
/// holding the range, too late to abort, …): FAILED_PRECONDITION, retried only once that state
/// changed. A node stopped by a storage failure is UNAVAILABLE: another node can answer.
pub fn admin_status(e: &AdminFailure) -> Status {
    match e {
        AdminFailure::Refused(AdminError::Stopped) => Status::unavailable(e.to_string()),
        AdminFailure::Refused(_) | AdminFailure::Stopped(_) => {
            Status::failed_precondition(e.to_string())
        }
    }
}

fn outcome_label(result: &Result<impl Sized, ClientError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ClientError::Failed(RequestError::Unavailable { .. })) => "unavailable",
        Err(ClientError::Failed(RequestError::Timeout { .. })) => "timeout",
        Err(_) => "invalid",
    }
}

/// The client API.
pub struct KvService {
    /// The driver.
    pub driver: DriverHandle,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl KvService {
    async fn write(
        &self,
        op: &'static str,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        cl: i32,
        context: &[u8],
    ) -> Result<Response<pb::WriteReply>, Status> {
        let started = StdInstant::now();
        let cl = consistency(cl)?;
        let context = decode_context(context)?;
        let result = self
            .driver
            .ask(|reply| Input::Write { key, value, cl, context, reply })
            .await
            .unwrap_or(Err(ClientError::ShuttingDown));
        self.metrics.request(op, &cl.to_string(), outcome_label(&result), started.elapsed());
        match result {
            Ok(Reply::Written { tag, acks, hinted }) => Ok(Response::new(pb::WriteReply {
                version: Some(pb::VersionTag {
                    timestamp: tag.timestamp,
                    node: tag.dot.node.0,
                    counter: tag.dot.counter,
                }),
                acks: acks.iter().map(|n| n.0).collect(),
                hinted: hinted.iter().map(|n| n.0).collect(),
            })),
            Ok(Reply::Read { .. }) => Err(Status::internal("engine answered a write with a read")),
            Err(e) => Err(client_status(&e)),
        }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        let r = request.into_inner();
        self.write("put", r.key.to_vec(), Some(r.value.to_vec()), r.consistency, &r.context).await
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        let r = request.into_inner();
        self.write("delete", r.key.to_vec(), None, r.consistency, &r.context).await
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetReply>, Status> {
        let started = StdInstant::now();
        let r = request.into_inner();
        let cl = consistency(r.consistency)?;
        let key = r.key.to_vec();
        let result = self
            .driver
            .ask(|reply| Input::Read { key, cl, reply })
            .await
            .unwrap_or(Err(ClientError::ShuttingDown));
        self.metrics.request("get", &cl.to_string(), outcome_label(&result), started.elapsed());
        match result {
            Ok(Reply::Read { value, context, replied }) => {
                let values = value.values();
                Ok(Response::new(pb::GetReply {
                    found: !values.is_empty(),
                    values: values.into_iter().collect(),
                    context: encode_context(&context),
                    replicas: replied.iter().map(|n| n.0).collect(),
                }))
            }
            Ok(Reply::Written { .. }) => {
                Err(Status::internal("engine answered a read with a write"))
            }
            Err(e) => Err(client_status(&e)),
        }
    }
}

/// The operator API.
pub struct AdminService {
    /// The driver.
    pub driver: DriverHandle,
    /// Trace events for `Watch`.
    pub traces: TraceSender,
}

impl AdminService {
    async fn command(&self, command: AdminCommand) -> Result<AdminOutcome, Status> {
        self.driver
            .ask(|reply| Input::Admin { command, reply })
            .await
            .ok_or_else(|| Status::unavailable("node is shutting down"))?
            .map_err(|e| admin_status(&e))
    }
}

fn admin_reply(outcome: AdminOutcome) -> pb::AdminReply {
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

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::TraceEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        self.driver
            .ask(Input::Status)
            .await
            .map(Response::new)
            .ok_or_else(|| Status::unavailable("node is shutting down"))
    }

    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        let r = request.into_inner();
        let request = JoinRequest {
            tokens: (!r.tokens.is_empty()).then_some(r.tokens),
            allow_inconsistent_source: r.allow_inconsistent_source,
            resume: r.resume,
        };
        self.command(AdminCommand::Join(request)).await.map(|o| Response::new(admin_reply(o)))
    }

    async fn decommission(
        &self,
        _: Request<pb::DecommissionRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        self.command(AdminCommand::Decommission).await.map(|o| Response::new(admin_reply(o)))
    }

    async fn abort(
        &self,
        _: Request<pb::AbortRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        self.command(AdminCommand::Abort).await.map(|o| Response::new(admin_reply(o)))
    }

    async fn repair(
        &self,
        _: Request<pb::RepairRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        self.command(AdminCommand::Repair).await.map(|o| Response::new(admin_reply(o)))
    }

    async fn cleanup(
        &self,
        _: Request<pb::CleanupRequest>,
    ) -> Result<Response<pb::CleanupReply>, Status> {
        match self.command(AdminCommand::Cleanup).await? {
            AdminOutcome::Cleanup { keys, bytes } => {
                Ok(Response::new(pb::CleanupReply { keys_removed: keys, bytes_removed: bytes }))
            }
            _ => Err(Status::internal("cleanup returned another outcome")),
        }
    }

    async fn progress(
        &self,
        _: Request<pb::ProgressRequest>,
    ) -> Result<Response<pb::ProgressReply>, Status> {
        self.driver
            .ask(Input::Progress)
            .await
            .map(Response::new)
            .ok_or_else(|| Status::unavailable("node is shutting down"))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, _: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let stream = BroadcastStream::new(self.traces.subscribe()).filter_map(|item| match item {
            Ok(event) => Some(Ok(event)),
            // A slow watcher skips events rather than slowing the node down.
            Err(_) => None,
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
