//! Memory of a 1,000-node simulation holding 1,000,000 keys (RF=3, 16 vnodes per node), loaded
//! through the engine's real write path at QUORUM. Reports peak resident memory (VmHWM) and the
//! load rate. Not a criterion benchmark: it measures memory, once.
//!
//! Run: `cargo bench -p ringside-core --bench sim_memory`

// A benchmark measures wall time: the engine's ban on reading the clock does not apply here.
#![allow(clippy::disallowed_methods)]

use rand::SeedableRng;
use ringside_core::alloc::{Allocation, build_ring};
use ringside_core::history::OpFunction;
use ringside_core::node::NodeConfig;
use ringside_core::sim::network::NetworkConfig;
use ringside_core::sim::workload::WorkloadConfig;
use ringside_core::sim::{SimConfig, Simulation};
use ringside_core::storage::Storage;
use ringside_core::{ConsistencyLevel, NodeId};
use std::time::Duration;

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and expects speed.
    let keys: u64 = if std::env::args().any(|a| a == "--bench") { 1_000_000 } else { 10_000 };
    let nodes = 1_000u32;
    let ids: Vec<NodeId> = (0..nodes).map(NodeId).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let started = std::time::Instant::now();
    let ring = build_ring(&ids, 16, 3, Allocation::Random, &mut rng).unwrap();
    let base_kib = vm_hwm_kib();
    let mut sim = Simulation::new(SimConfig {
        seed: 7,
        names: (0..nodes).map(|i| format!("n{i}")).collect(),
        ring,
        // All-to-all heartbeats would be a million messages per simulated second at this size:
        // failure detection is off for a pure storage-footprint measurement.
        node: NodeConfig { heartbeat_interval: None, ..NodeConfig::default() },
        network: NetworkConfig::default(),
        workload: WorkloadConfig { clients: 0, ..WorkloadConfig::default() },
        keep_trace: false,
        record_history: false,
    });
    let value = "x".repeat(16);
    let batch = 2_000u64;
    let mut i = 0;
    while i < keys {
        for j in i..(i + batch).min(keys) {
            let coordinator = NodeId((j % u64::from(nodes)) as u32);
            sim.client_op(
                coordinator,
                OpFunction::Write,
                &format!("key{j}"),
                Some(&value),
                ConsistencyLevel::Quorum,
                None,
            )
            .expect("write accepted");
        }
        sim.run_for(Duration::from_millis(100));
        i += batch;
    }
    sim.run_for(Duration::from_secs(3));
    let elapsed = started.elapsed();
    let stored: u64 =
        (0..nodes).filter_map(|n| sim.storage(NodeId(n))).map(|s| s.key_count()).sum();
    let peak_kib = vm_hwm_kib();
    println!("sim_memory: {nodes} nodes, {keys} keys written at QUORUM, {stored} replicas stored");
    println!(
        "sim_memory: peak RSS {:.1} MiB (before the cluster: {:.1} MiB), {:.0} bytes per key",
        peak_kib as f64 / 1024.0,
        base_kib as f64 / 1024.0,
        (peak_kib - base_kib) as f64 * 1024.0 / keys as f64
    );
    println!(
        "sim_memory: {} messages delivered in {:.1} s wall ({:.0} msg/s)",
        sim.stats().delivered,
        elapsed.as_secs_f64(),
        sim.stats().delivered as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(stored, keys * 3, "every key must be stored on RF replicas");
}
