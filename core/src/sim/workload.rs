//! Client workload: closed-loop clients issuing reads, writes and deletes.

use crate::consistency::ConsistencyLevel;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How clients behave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadConfig {
    /// Number of concurrent clients (each runs one request at a time).
    pub clients: usize,
    /// Number of distinct keys (`k0`, `k1`, …).
    pub keys: usize,
    /// Fraction of operations that are reads, 0..=1.
    pub read_fraction: f64,
    /// Fraction of operations that are deletes, 0..=1 (the rest are writes).
    pub delete_fraction: f64,
    /// Read consistency level.
    pub read_cl: ConsistencyLevel,
    /// Write and delete consistency level.
    pub write_cl: ConsistencyLevel,
    /// Pause between a reply and the client's next request.
    #[serde(with = "humantime_serde")]
    pub think_time: Duration,
    /// When clients start.
    #[serde(with = "humantime_serde")]
    pub start: Duration,
    /// When clients stop issuing new requests.
    #[serde(with = "humantime_serde")]
    pub stop: Duration,
    /// Whether writes carry the context of the client's last read of the key (read-modify-write).
    pub use_context: bool,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            clients: 4,
            keys: 20,
            read_fraction: 0.5,
            delete_fraction: 0.0,
            read_cl: ConsistencyLevel::Quorum,
            write_cl: ConsistencyLevel::Quorum,
            think_time: Duration::from_millis(10),
            start: Duration::from_secs(5),
            stop: Duration::from_secs(60),
            use_context: true,
        }
    }
}
