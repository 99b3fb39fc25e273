//! Ringside native node: the library behind the `ringside` binary, in two groups.
//!
//! - [`server`]: a running node, `ringside node` (the driver that owns the engine, durable
//!   storage, the gRPC services, the internode transport, metrics).
//! - [`cli`]: the command line and every other command (operator and client commands, local
//!   clusters, the load generator, the simulator).
//!
//! Both sides share the rest: [`proto`] (the gRPC protocol), [`convert`] (every conversion
//! between the protocol and the engine), [`config`] (a node's settings, which `cluster up`
//! writes and `node` reads) and [`msgpack`] (bounded MessagePack decoding).

pub mod cli;
pub mod config;
pub mod convert;
pub mod msgpack;
pub mod proto;
pub mod server;
