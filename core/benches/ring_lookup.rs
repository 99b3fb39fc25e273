//! Ring lookup cost: `Ring::replicas` against a bare binary search over the same tokens.
//!
//! The replica table is precomputed, so a lookup should cost one `partition_point` plus a slice;
//! this benchmark keeps that promise honest on a large ring (1,000 nodes × 256 vnodes, RF=3).
//!
//! Run: `cargo bench -p ringside-core --bench ring_lookup`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ringside_core::alloc::{Allocation, build_ring};
use ringside_core::id::NodeId;
use ringside_core::token::Token;
use std::hint::black_box;

const NODES: u32 = 1_000;
const VNODES: usize = 256;
const RF: usize = 3;
const PROBES: usize = 4_096;

fn ring_lookup(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let nodes: Vec<NodeId> = (0..NODES).map(NodeId).collect();
    let ring = build_ring(&nodes, VNODES, RF, Allocation::Random, &mut rng).expect("valid ring");
    let probes: Vec<Token> = (0..PROBES).map(|_| rng.random()).collect();
    let tokens = ring.tokens();

    let mut group = c.benchmark_group("ring_lookup");
    group.throughput(Throughput::Elements(PROBES as u64));
    let size = format!("{NODES}x{VNODES}");
    group.bench_with_input(BenchmarkId::new("replicas_rf3", &size), &probes, |b, probes| {
        b.iter(|| {
            for &t in probes {
                black_box(ring.replicas(black_box(t)));
            }
        })
    });
    group.bench_with_input(BenchmarkId::new("partition_point", &size), &probes, |b, probes| {
        b.iter(|| {
            for &t in probes {
                black_box(tokens.partition_point(|x| *x < black_box(t)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, ring_lookup);
criterion_main!(benches);
