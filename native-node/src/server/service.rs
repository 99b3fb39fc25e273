//! The client (`Kv`) and operator (`Admin`) gRPC services: they validate at the edge, hand the
//! request to the driver, and map the engine's outcome to a gRPC status that says what to do.

use crate::convert::{self, client_status, consistency, decode_context};
use crate::proto::v1 as pb;
use crate::proto::v1::admin_server::Admin;
use crate::proto::v1::kv_server::Kv;
use crate::server::inbox::{
    AdminCommand, AdminFailure, AdminOutcome, ClientError, DriverHandle, Input, TraceSender,
};
use crate::server::metrics::Metrics;
use ringside_core::node::RequestError;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant as StdInstant;
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};
use tonic::{Request, Response, Status};

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
    /// Where client requests and their latencies are counted.
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
        let reply = result.map_err(|e| client_status(&e))?;
        convert::write_reply(reply).map(Response::new)
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
        let reply = result.map_err(|e| client_status(&e))?;
        convert::get_reply(reply).map(Response::new)
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
            .unwrap_or(Err(AdminFailure::ShuttingDown))
            .map_err(|e| convert::admin_status(&e))
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
            .ok_or_else(|| convert::admin_status(&AdminFailure::ShuttingDown))
    }

    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        let request = request.into_inner().into();
        self.command(AdminCommand::Join(request)).await.map(|o| Response::new(o.into()))
    }

    async fn decommission(
        &self,
        _: Request<pb::DecommissionRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        self.command(AdminCommand::Decommission).await.map(|o| Response::new(o.into()))
    }

    async fn abort(
        &self,
        _: Request<pb::AbortRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        self.command(AdminCommand::Abort).await.map(|o| Response::new(o.into()))
    }

    async fn repair(
        &self,
        _: Request<pb::RepairRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        self.command(AdminCommand::Repair).await.map(|o| Response::new(o.into()))
    }

    async fn cleanup(
        &self,
        _: Request<pb::CleanupRequest>,
    ) -> Result<Response<pb::CleanupReply>, Status> {
        convert::cleanup_reply(self.command(AdminCommand::Cleanup).await?).map(Response::new)
    }

    async fn progress(
        &self,
        _: Request<pb::ProgressRequest>,
    ) -> Result<Response<pb::ProgressReply>, Status> {
        self.driver
            .ask(Input::Progress)
            .await
            .map(Response::new)
            .ok_or_else(|| convert::admin_status(&AdminFailure::ShuttingDown))
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
