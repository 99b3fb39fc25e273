//! Ringside native node: the pieces of the `ringside` binary that run a real node — the driver
//! that owns the engine, durable storage, gRPC services and transport, and the operator CLI.

pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod convert;
pub mod driver;
pub mod http;
pub mod inbox;
pub mod loadgen;
pub mod metrics;
pub mod msgpack;
pub mod proto;
pub mod server;
pub mod service;
pub mod storage;
pub mod transport;
