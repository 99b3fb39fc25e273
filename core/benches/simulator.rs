//! Simulator throughput: delivered messages per second of wall time on one core, for a 64-node
//! RF=3 cluster under a closed-loop QUORUM workload (reads and writes, vector clocks).
//!
//! Run: `cargo bench -p ringside-core --bench simulator`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use ringside_core::alloc::{Allocation, build_ring};
use ringside_core::node::NodeConfig;
use ringside_core::sim::network::NetworkConfig;
use ringside_core::sim::workload::WorkloadConfig;
use ringside_core::sim::{SimConfig, Simulation};
use ringside_core::{ConflictMode, Instant, NodeId};
use std::time::Duration;

fn config(nodes: u32, mode: ConflictMode, record_history: bool) -> SimConfig {
    let ids: Vec<NodeId> = (0..nodes).map(NodeId).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    SimConfig {
        seed: 1,
        names: (0..nodes).map(|i| format!("n{i}")).collect(),
        ring: build_ring(&ids, 16, 3, Allocation::Balanced, &mut rng).unwrap(),
        node: NodeConfig { conflict_mode: mode, ..NodeConfig::default() },
        network: NetworkConfig::default(),
        workload: WorkloadConfig {
            clients: 256,
            keys: 10_000,
            think_time: Duration::from_millis(1),
            start: Duration::from_millis(100),
            stop: Duration::from_secs(60),
            ..WorkloadConfig::default()
        },
        keep_trace: false,
        record_history,
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulator");
    group.sample_size(10);
    let cases = [
        ("quorum-64-nodes-vclock", ConflictMode::VectorClock, true),
        ("quorum-64-nodes-lww", ConflictMode::Lww, true),
        ("quorum-64-nodes-vclock-no-history", ConflictMode::VectorClock, false),
        ("quorum-64-nodes-lww-no-history", ConflictMode::Lww, false),
    ];
    for (name, mode, history) in cases {
        let base = config(64, mode, history);
        // Warm the cluster up once (heartbeats settle), then measure 2 simulated seconds.
        let mut warm = Simulation::new(base.clone());
        warm.run_until(Instant::from_secs(1));
        let mut probe = warm.clone();
        let before = probe.stats().delivered;
        probe.run_until(Instant::from_secs(3));
        let delivered = probe.stats().delivered - before;
        group.throughput(Throughput::Elements(delivered));
        group.bench_function(name, |b| {
            b.iter_batched(
                || warm.clone(),
                |mut sim| {
                    sim.run_until(Instant::from_secs(3));
                    sim
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
