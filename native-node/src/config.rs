//! Node settings: a TOML file and command-line flags (flags win), with defaults that work on one
//! machine.

use anyhow::{Context, bail};
use ringside_core::alloc::Allocation;
use ringside_core::id::NodeId;
use ringside_core::membership::JoinStrategy;
use ringside_core::node::NodeConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default gRPC address of a single node (and the first node of `ringside cluster up`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7401";
/// Default Prometheus address of a single node.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9401";

/// Everything a node is configured with. Field names are the TOML keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// gRPC address to listen on (clients, operators and peers).
    pub listen: String,
    /// Address advertised to peers and clients; `listen` when empty.
    pub advertise: String,
    /// Prometheus `/metrics` address; empty disables it.
    pub metrics: String,
    /// Data directory (storage, hints, bootstrap progress).
    pub data_dir: PathBuf,
    /// Cluster identity: peers with another name are refused.
    pub cluster_name: String,
    /// Host id; chosen at random at first start and kept in the data directory when 0.
    pub host_id: u32,
    /// Seed addresses (`host:port`) a new node contacts to learn the ring.
    pub seeds: Vec<String>,
    /// Members of the initial cluster as `host_id=host:port`, identical on every one of them
    /// (like etcd's `--initial-cluster`): they start as NORMAL owners with tokens allocated
    /// deterministically from this list. Ignored once the data directory holds a view.
    pub initial_cluster: Vec<String>,
    /// Replication factor of the initial cluster.
    pub rf: usize,
    /// Vnodes per node.
    pub num_tokens: usize,
    /// Token allocation: `balanced` or `random`.
    pub allocation: Allocation,
    /// Join strategy (`staged` is the safe default).
    pub strategy: JoinStrategy,
    /// Outbound streaming throttle in MiB/s; 0 streams unthrottled.
    pub stream_throughput_mib: f64,
    /// Bytes per streaming chunk.
    pub stream_chunk_bytes: usize,
    /// No hints are stored for a target down longer than this.
    #[serde(with = "humantime_serde")]
    pub max_hint_window: Duration,
    /// RING_DELAY (used by `pending-ranges` joins and decommissions outside `staged`).
    #[serde(with = "humantime_serde")]
    pub ring_delay: Duration,
    /// Rack name (empty: none).
    pub rack: String,
    /// Start joining as soon as the node is up (Cassandra's `auto_bootstrap`).
    pub join: bool,
}

impl Default for Settings {
    fn default() -> Self {
        let engine = NodeConfig::default();
        Settings {
            listen: DEFAULT_LISTEN.into(),
            advertise: String::new(),
            metrics: DEFAULT_METRICS.into(),
            data_dir: PathBuf::from("ringside-data/node"),
            cluster_name: engine.cluster_name,
            host_id: 0,
            seeds: Vec::new(),
            initial_cluster: Vec::new(),
            rf: 3,
            num_tokens: engine.num_tokens,
            allocation: engine.allocation,
            strategy: engine.join_strategy,
            stream_throughput_mib: 24.0,
            stream_chunk_bytes: 4 * 1024 * 1024,
            max_hint_window: engine.max_hint_window,
            ring_delay: engine.ring_delay,
            rack: String::new(),
            join: false,
        }
    }
}

/// One member of `initial_cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialMember {
    /// Host id.
    pub id: NodeId,
    /// gRPC address.
    pub address: String,
}

impl Settings {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// The address peers and clients use.
    pub fn advertised(&self) -> &str {
        if self.advertise.is_empty() { &self.listen } else { &self.advertise }
    }

    /// Parses `initial_cluster`.
    pub fn initial_members(&self) -> anyhow::Result<Vec<InitialMember>> {
        let mut members = Vec::new();
        for item in &self.initial_cluster {
            let Some((id, address)) = item.split_once('=') else {
                bail!("initial_cluster entry `{item}` is not `host_id=host:port`");
            };
            let id: u32 = id.trim().parse().with_context(|| {
                format!("initial_cluster entry `{item}`: host id must be a positive integer")
            })?;
            if id == 0 {
                bail!("initial_cluster entry `{item}`: host id 0 is reserved");
            }
            if members.iter().any(|m: &InitialMember| m.id.0 == id) {
                bail!("initial_cluster lists host id {id} twice");
            }
            members.push(InitialMember { id: NodeId(id), address: address.trim().to_string() });
        }
        Ok(members)
    }

    /// Checks values that the engine would otherwise reject later, with a message that says
    /// which setting to change.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.rf == 0 {
            bail!("rf must be at least 1");
        }
        if self.num_tokens == 0 || self.num_tokens > 256 {
            bail!("num_tokens must be between 1 and 256 (got {})", self.num_tokens);
        }
        if self.stream_throughput_mib < 0.0 || !self.stream_throughput_mib.is_finite() {
            bail!("stream_throughput_mib must be 0 (unthrottled) or a positive number");
        }
        if self.stream_chunk_bytes < 1024 {
            bail!("stream_chunk_bytes must be at least 1024");
        }
        if self.cluster_name.trim().is_empty() {
            bail!("cluster_name must not be empty");
        }
        let members = self.initial_members()?;
        if !members.is_empty()
            && self.host_id != 0
            && !members.iter().any(|m| m.id.0 == self.host_id)
        {
            bail!(
                "host_id {} is not listed in initial_cluster; list it there or start the node with --seeds to join",
                self.host_id
            );
        }
        Ok(())
    }

    /// The engine configuration for host `id` with resolved `seeds`.
    pub fn engine_config(&self, id: NodeId, seeds: Vec<NodeId>) -> NodeConfig {
        NodeConfig {
            cluster_name: self.cluster_name.clone(),
            seeds,
            join_strategy: self.strategy,
            ring_delay: self.ring_delay,
            stream_throughput: (self.stream_throughput_mib > 0.0)
                .then_some((self.stream_throughput_mib * 1024.0 * 1024.0) as u64),
            stream_chunk_bytes: self.stream_chunk_bytes,
            num_tokens: self.num_tokens,
            allocation: self.allocation,
            max_hint_window: self.max_hint_window,
            // The engine refuses longer keys up front; storage could not hold them.
            max_key_bytes: crate::server::storage::MAX_KEY_BYTES,
            rng_seed: u64::from(id.0).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ..NodeConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let s = Settings::default();
        let text = toml::to_string(&s).unwrap();
        assert_eq!(toml::from_str::<Settings>(&text).unwrap(), s);
    }

    #[test]
    fn unknown_keys_and_bad_members_are_refused() {
        assert!(toml::from_str::<Settings>("listne = \"x\"").is_err());
        let s = Settings { initial_cluster: vec!["a=127.0.0.1:1".into()], ..Settings::default() };
        assert!(s.validate().unwrap_err().to_string().contains("host id must be"));
        let s = Settings {
            initial_cluster: vec!["1=127.0.0.1:1".into(), "1=127.0.0.1:2".into()],
            ..Settings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("twice"));
        let s = Settings { strategy: JoinStrategy::Staged, rf: 0, ..Settings::default() };
        assert!(s.validate().is_err());
    }
}
