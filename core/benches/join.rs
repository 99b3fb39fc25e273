//! A node joining a 1,000-node cluster that holds 10,000,000 keys (RF = 3, 16 balanced tokens
//! per node): wall time of the simulated join and peak memory. The keys are put on their
//! replicas with `Simulation::preload` (no network), then one node is added with `add_node` and
//! the simulation runs until the join completes. Gossip and failure detection are off
//! (`heartbeat_interval: None`), so the only traffic is the join's: the `staged` barriers, which
//! push state directly, and the streams, which are unthrottled. No client workload.
//!
//! Not a criterion benchmark: it runs once, prints its figures and checks that the joiner ends
//! up holding exactly the keys the final ring gives it. BENCHMARKS.md has the results.
//!
//! Run: `cargo bench -p ringside-core --bench join`. Environment:
//! * `RINGSIDE_JOIN_KEYS` — keys to preload (default 10,000,000);
//! * `RINGSIDE_JOIN_VALUE_BYTES` — value size (default 16, as `sim_memory`);
//! * `RINGSIDE_JOIN_GOSSIP_MS` — run with gossip and failure detection, this heartbeat period;
//! * `RINGSIDE_JOIN_SEEDS=all` — every node a seed (default: the simulator's three).

// A benchmark measures wall time: the engine's ban on reading the clock does not apply here.
#![allow(clippy::disallowed_methods)]

use rand::SeedableRng;
use ringside_core::NodeId;
use ringside_core::alloc::{Allocation, build_ring};
use ringside_core::membership::JoinStrategy;
use ringside_core::node::{JoinPhase, JoinRequest, Lifecycle, NodeConfig};
use ringside_core::sim::network::NetworkConfig;
use ringside_core::sim::workload::WorkloadConfig;
use ringside_core::sim::{SimConfig, Simulation};
use ringside_core::storage::Storage;
use ringside_core::time::Instant;
use ringside_core::token::token_for;
use std::time::Duration;

/// A field of `/proc/self/status` in KiB (`VmHWM`: peak resident memory; `VmRSS`: current).
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.replace(['_', ','], "").parse().unwrap_or_else(|_| panic!("{name}={v:?}")),
        Err(_) => default,
    }
}

/// The joiner's phase, as a short label.
fn phase(sim: &Simulation, id: NodeId) -> String {
    match sim.node(id).map(|n| n.lifecycle()) {
        Some(Lifecycle::Joining(j)) => match &j.phase {
            JoinPhase::Discovering { .. } => "discovering".into(),
            JoinPhase::Barrier { status } => format!("barrier {status}"),
            JoinPhase::Streaming => "streaming".into(),
            JoinPhase::Failed { reason } => format!("failed: {reason}"),
            other => format!("{other:?}"),
        },
        Some(Lifecycle::Normal) => "NORMAL".into(),
        Some(other) => other.describe(),
        None => "down".into(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and expects speed.
    let bench = std::env::args().any(|a| a == "--bench");
    let keys: u64 = env_or("RINGSIDE_JOIN_KEYS", if bench { 10_000_000 } else { 10_000 });
    let value_bytes: usize = env_or("RINGSIDE_JOIN_VALUE_BYTES", 16);
    let gossip: Option<u64> = std::env::var("RINGSIDE_JOIN_GOSSIP_MS")
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("RINGSIDE_JOIN_GOSSIP_MS={v:?}")));
    let all_seeds = std::env::var("RINGSIDE_JOIN_SEEDS").is_ok_and(|v| v == "all");
    let nodes = if bench { 1_000u32 } else { 100 };
    let ids: Vec<NodeId> = (0..nodes).map(NodeId).collect();
    let base_kib = proc_status_kib("VmRSS");

    let t = std::time::Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let ring = build_ring(&ids, 16, 3, Allocation::Balanced, &mut rng).expect("ring");
    let ring_wall = t.elapsed();

    let t = std::time::Instant::now();
    let mut sim = Simulation::new(SimConfig {
        seed: 7,
        names: (0..nodes).map(|i| format!("n{i}")).collect(),
        ring,
        node: NodeConfig {
            // By default no gossip and no failure detection: every peer is presumed up, and the
            // joiner, handed the cluster's view by `add_node`, pushes its state with barriers.
            heartbeat_interval: gossip.map(Duration::from_millis),
            join_strategy: JoinStrategy::Staged,
            stream_throughput: None,
            seeds: if all_seeds { ids.clone() } else { Vec::new() },
            ..NodeConfig::default()
        },
        network: NetworkConfig::default(),
        workload: WorkloadConfig { clients: 0, ..WorkloadConfig::default() },
        keep_trace: false,
        record_history: false,
    });
    let new_wall = t.elapsed();
    let cluster_kib = proc_status_kib("VmRSS");

    let t = std::time::Instant::now();
    sim.preload(keys, value_bytes);
    let preload_wall = t.elapsed();
    let preload_rss_kib = proc_status_kib("VmRSS");
    let preload_hwm_kib = proc_status_kib("VmHWM");
    let stored: u64 =
        (0..nodes).filter_map(|n| sim.storage(NodeId(n))).map(|s| s.key_count()).sum();
    assert_eq!(stored, keys * 3, "every key is stored on RF replicas");
    let stored_bytes: u64 =
        (0..nodes).filter_map(|n| sim.storage(NodeId(n))).map(|s| s.load_bytes()).sum();

    // The join. The loop runs in 1 ms slices of simulated time to time-stamp the joiner's
    // phases (the slices add no events, so the run is the same as one `run_until`).
    let before = sim.stats().clone();
    let t = std::time::Instant::now();
    let id = sim.add_node(&format!("n{nodes}"), JoinRequest::default()).expect("add_node");
    let started = sim.stats().join_started[&id];
    let mut phases: Vec<(String, Instant, Duration)> =
        vec![(phase(&sim, id), sim.now(), t.elapsed())];
    let limit = started + Duration::from_secs(3_600);
    // (messages sent, when that count last changed): a join that sends nothing for two
    // simulated minutes is stuck.
    let mut last_sent = (sim.stats().sent, sim.now());
    while !sim.stats().join_completed.contains_key(&id)
        && sim.stats().movement_failures.is_empty()
        && sim.now() < limit
        && sim.now().saturating_duration_since(last_sent.1) < Duration::from_secs(120)
    {
        sim.run_for(Duration::from_millis(1));
        let p = phase(&sim, id);
        if phases.last().is_none_or(|(last, _, _)| *last != p) {
            if phases.last().is_some_and(|(last, _, _)| last == "discovering") {
                // The ring the joiner allocated its tokens on: with gossip, what it had learned.
                let known = sim.node(id).map_or(0, |n| n.view().members.len());
                println!(
                    "join: the joiner knew {known} members (itself included) when it chose its tokens"
                );
            }
            phases.push((p, sim.now(), t.elapsed()));
        }
        if sim.stats().sent != last_sent.0 {
            last_sent = (sim.stats().sent, sim.now());
        }
    }
    let join_wall = t.elapsed();
    let peak_kib = proc_status_kib("VmHWM");
    let print_phases = |phases: &[(String, Instant, Duration)]| {
        for w in phases.windows(2) {
            let ((name, sim_at, wall_at), (_, sim_next, wall_next)) = (&w[0], &w[1]);
            println!(
                "join:   {name:<16} simulated {:>8.3} s   wall {:>7.2} s",
                sim_next.saturating_duration_since(*sim_at).as_secs_f64(),
                (*wall_next - *wall_at).as_secs_f64(),
            );
        }
        if let Some((name, at, _)) = phases.last() {
            println!("join:   {name:<16} since {:.3} s simulated", at.as_micros() as f64 / 1e6);
        }
    };
    assert!(
        sim.stats().movement_failures.is_empty(),
        "join failed: {:?}",
        sim.stats().movement_failures
    );
    let Some(&completed) = sim.stats().join_completed.get(&id) else {
        print_phases(&phases);
        let refused: u64 =
            (0..nodes).filter_map(|n| sim.node(NodeId(n))).map(|n| n.stats().refused).sum();
        eprintln!(
            "join: stuck: nothing sent since {:.3} s simulated; the cluster's nodes refused \
             {refused} messages; {} sent in all",
            last_sent.1.as_micros() as f64 / 1e6,
            sim.stats().sent
        );
        panic!("the join did not complete (see BENCHMARKS.md, \"Joining a node\")");
    };
    let sim_time = completed.saturating_duration_since(started);
    let stats = sim.stats();
    let streamed_keys = stats.keys_streamed - before.keys_streamed;
    let streamed_bytes = stats.bytes_streamed - before.bytes_streamed;
    let delivered = stats.delivered - before.delivered;

    // Check: the joiner holds exactly the keys the final ring gives it.
    let t = std::time::Instant::now();
    let ring = sim.topology().ring();
    let expected = (0..keys)
        .filter(|i| ring.replicas(token_for(format!("k{i}").as_bytes())).contains(&id))
        .count() as u64;
    let held = sim.storage(id).expect("joiner storage").key_count();
    let check_wall = t.elapsed();

    println!(
        "join: {nodes} nodes (RF 3, 16 balanced tokens each), {keys} keys of {value_bytes} B, \
         {stored} stored copies ({:.2} GiB by load accounting); gossip {}",
        stored_bytes as f64 / (1u64 << 30) as f64,
        match (gossip, all_seeds) {
            (None, _) => "off".to_string(),
            (Some(ms), false) => format!("every {ms} ms, 3 seeds"),
            (Some(ms), true) => format!("every {ms} ms, every node a seed"),
        },
    );
    println!(
        "join: wall: build_ring {:.2} s, Simulation::new {:.2} s, preload {:.2} s \
         ({:.0} k keys/s), join {:.2} s, check {:.2} s",
        ring_wall.as_secs_f64(),
        new_wall.as_secs_f64(),
        preload_wall.as_secs_f64(),
        keys as f64 / preload_wall.as_secs_f64() / 1e3,
        join_wall.as_secs_f64(),
        check_wall.as_secs_f64(),
    );
    println!(
        "join: memory: RSS {:.1} MiB at start, {:.1} MiB with the empty cluster, {:.1} MiB after \
         preload ({:.0} B per stored copy); peak (VmHWM) {:.1} MiB before the join, {:.1} MiB \
         after",
        mib(base_kib),
        mib(cluster_kib),
        mib(preload_rss_kib),
        (preload_rss_kib.saturating_sub(cluster_kib)) as f64 * 1024.0 / stored.max(1) as f64,
        mib(preload_hwm_kib),
        mib(peak_kib),
    );
    println!(
        "join: streamed {streamed_keys} keys, {:.2} MiB ({:.3} % of the keys); {delivered} \
         messages delivered during the join",
        streamed_bytes as f64 / (1u64 << 20) as f64,
        100.0 * streamed_keys as f64 / keys.max(1) as f64,
    );
    let streaming_sim = phases
        .windows(2)
        .find(|w| w[0].0 == "streaming")
        .map(|w| w[1].1.saturating_duration_since(w[0].1));
    println!(
        "join: simulated time to NORMAL {:.3} s; {:.2} MiB/s simulated over the whole join{}",
        sim_time.as_secs_f64(),
        streamed_bytes as f64 / (1u64 << 20) as f64 / sim_time.as_secs_f64(),
        streaming_sim.map_or(String::new(), |d| format!(
            ", {:.2} MiB/s over the streaming phase ({:.3} s)",
            streamed_bytes as f64 / (1u64 << 20) as f64 / d.as_secs_f64(),
            d.as_secs_f64()
        )),
    );
    println!("join: the joiner holds {held} keys; the final ring gives it {expected}");
    print_phases(&phases);
    assert_eq!(
        ring.tokens_of(id).len(),
        16,
        "the joiner is NORMAL but the cluster's ring does not hold its tokens: {:?}",
        sim.cluster_view().topology(JoinStrategy::Staged).err()
    );
    assert_eq!(held, expected, "the joiner holds exactly the keys it replicates");
    assert_eq!(streamed_keys, expected, "each key streamed once (the network loses nothing)");
    // Freeing 30 M stored copies one by one takes most of a minute; the process is ending.
    std::mem::forget(sim);
}
