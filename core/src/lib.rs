//! # ringside-core
//!
//! The sans-IO engine of Ringside: a Dynamo/Cassandra-style replicated key-value store written as
//! plain state machines. Nothing here performs I/O, reads a clock or draws OS randomness: time is an
//! argument, randomness comes from seeded generators, and iteration order is deterministic. The
//! same engine runs in the simulator (here), in the browser (wasm) and in native nodes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alloc;
pub mod checker;
pub mod compare;
pub mod consistency;
pub mod coordinator;
pub mod course;
pub mod detector;
pub mod explore;
pub mod gossip;
pub mod history;
pub mod id;
pub mod membership;
pub mod merkle;
pub mod message;
pub mod node;
pub mod placement;
pub mod presets;
pub mod ring;
pub mod scenario;
pub mod sim;
pub mod status;
pub mod storage;
pub mod streaming;
pub mod time;
pub mod token;
pub mod topology;
pub mod trace;
pub mod version;

pub use consistency::ConsistencyLevel;
pub use id::{NodeId, RequestId};
pub use time::Instant;
pub use version::{CausalContext, ConflictMode, Dot, Siblings, VClock, Version, VersionTag};
