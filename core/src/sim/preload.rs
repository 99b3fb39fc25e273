//! Bulk loading: puts a data set into the replicas' storage directly, without the network.
//!
//! Writing millions of keys through the engine's write path costs six messages each (mutation
//! and acknowledgement per replica) and minutes of wall time at 10 M keys. Experiments that need
//! a large data set as their *starting point* — a node joining a cluster that already holds
//! 10 M keys — use [`Simulation::preload`] instead: the resulting storage is what a completed
//! write at `ALL` leaves on every natural replica, and nothing else (no message, trace record,
//! history operation, hint or random draw), so the rest of the run is unaffected.

use super::{SimNode, Simulation};
use crate::id::NodeId;
use crate::storage::{MemStorage, Storage};
use crate::token::token_for;
use crate::version::{ConflictMode, Dot, Siblings, VClock, Version};

/// The storage of a node, running or crashed (`None` for an id with no storage).
fn storage_mut(nodes: &mut [SimNode], id: NodeId) -> Option<&mut MemStorage> {
    let slot = nodes.get_mut(id.0 as usize)?;
    match &mut slot.node {
        Some(node) => Some(node.storage_mut()),
        None => slot.parked.as_mut(),
    }
}

fn get(storage: &MemStorage, token: crate::token::Token, key: &str) -> Option<Siblings> {
    storage.get(token, key.as_bytes()).expect("in-memory storage cannot fail")
}

impl Simulation {
    /// Writes keys `k0`, `k1`, …, `k{keys - 1}` (the workload's key names), each with one
    /// version holding `value_bytes` bytes of `x`, directly into the storage of every natural
    /// replica of its token in [`Simulation::topology`]'s ring — as if each had been written
    /// at `ALL` before the run — without going through the network.
    ///
    /// The version is the one the write path would create for a blind write (empty context)
    /// at the current time:
    /// * vector clocks: minted by the first natural replica, whose per-key dot counter
    ///   continues from what it already stores (1 for a new key), so later writes minted
    ///   through the engine continue the chain;
    /// * LWW: per-node dot counters are the nodes' private state, so the version carries
    ///   counter 0, which no node ever hands out: it cannot collide with the dot of a later
    ///   write, and any later write wins by its timestamp (ties at the same microsecond break
    ///   by dot, as between any two writes).
    ///
    /// The version is merged into what a replica already holds, as a delivered write's would
    /// be: over a key that already exists it is one more blind write (a concurrent sibling under
    /// vector clocks). Crashed nodes get the key too (their disk would have); nodes gaining a
    /// range in a movement in progress do not, so preload before starting a join or a
    /// decommission. Nothing is recorded in the trace or the history and no random number is
    /// drawn: the run that follows is the one that would start on disks already holding the
    /// data.
    ///
    /// Memory: each stored copy costs about 245 bytes of resident memory with a 16-byte value
    /// (the B-tree slot, and the key, version and value allocations), so 10 M keys at RF = 3
    /// take about 7 GiB on top of the cluster itself (see BENCHMARKS.md). Time: about 2 µs per
    /// copy at that size, mostly cache misses descending the nodes' B-trees.
    pub fn preload(&mut self, keys: u64, value_bytes: usize) {
        let mode = self.config.node.conflict_mode;
        let timestamp = self.now.as_micros();
        let value = vec![b'x'; value_bytes];
        let ring = self.topology.ring();
        let mut key = String::new();
        for i in 0..keys {
            key.clear();
            {
                use std::fmt::Write;
                write!(key, "k{i}").expect("writing to a String cannot fail");
            }
            let token = token_for(key.as_bytes());
            let replicas = ring.replicas(token);
            let leader = replicas[0];
            // One lookup and one insertion per copy (`Storage::merge` looks an absent key up
            // three times), and the leader's lookup serves for its counter too.
            let mut leader_current =
                storage_mut(&mut self.nodes, leader).and_then(|s| get(s, token, &key));
            let counter = match mode {
                ConflictMode::VectorClock => {
                    leader_current.as_ref().map_or(0, |c| c.max_counter(leader)) + 1
                }
                ConflictMode::Lww => 0,
            };
            let version = Siblings::one(Version {
                dot: Dot { node: leader, counter },
                context: VClock::new(),
                timestamp,
                value: Some(value.clone()),
            });
            for (n, r) in replicas.iter().enumerate() {
                let Some(storage) = storage_mut(&mut self.nodes, *r) else { continue };
                let current =
                    if n == 0 { leader_current.take() } else { get(storage, token, &key) };
                let next = match current {
                    None => version.clone(),
                    Some(mut current) => {
                        if !current.merge(&version, mode) {
                            continue;
                        }
                        current
                    }
                };
                storage.put(token, key.as_bytes(), next).expect("in-memory storage cannot fail");
                // A completed write at ALL is durable; syncing per key also keeps MemStorage's
                // undo journal from growing to the size of the data set.
                storage.sync().expect("in-memory storage cannot fail");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consistency::ConsistencyLevel;
    use crate::history::OpFunction;
    use crate::node::{NodeConfig, Reply};
    use crate::sim::network::NetworkConfig;
    use crate::sim::workload::WorkloadConfig;
    use crate::sim::{SimConfig, Simulation};
    use crate::time::Instant;
    use rand::SeedableRng;
    use std::time::Duration;

    fn cluster(nodes: u32, mode: ConflictMode) -> Simulation {
        let ids: Vec<NodeId> = (0..nodes).map(NodeId).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let ring =
            crate::alloc::build_ring(&ids, 8, 3, crate::alloc::Allocation::Balanced, &mut rng)
                .expect("ring");
        Simulation::new(SimConfig {
            seed: 3,
            names: (0..nodes).map(|i| format!("n{i}")).collect(),
            ring,
            node: NodeConfig { conflict_mode: mode, ..NodeConfig::default() },
            network: NetworkConfig::default(),
            workload: WorkloadConfig { clients: 0, ..WorkloadConfig::default() },
            keep_trace: false,
            record_history: true,
        })
    }

    #[test]
    fn every_natural_replica_holds_each_key_and_no_other_node_does() {
        for mode in [ConflictMode::VectorClock, ConflictMode::Lww] {
            let mut sim = cluster(7, mode);
            let hash_before = sim.trace().hash();
            sim.preload(500, 10);
            assert_eq!(sim.trace().hash(), hash_before, "preload leaves no trace");
            assert_eq!(sim.stats().sent, 0, "preload sends nothing");
            for i in 0..500 {
                let key = format!("k{i}");
                let token = token_for(key.as_bytes());
                let replicas = sim.topology().ring().replicas(token).to_vec();
                assert_eq!(replicas.len(), 3);
                for n in 0..7 {
                    let stored =
                        sim.storage(NodeId(n)).unwrap().get(token, key.as_bytes()).unwrap();
                    if replicas.contains(&NodeId(n)) {
                        let stored = stored.expect("a replica holds the key");
                        assert_eq!(stored.0.len(), 1, "{mode:?}: one version");
                        assert_eq!(stored.values(), vec![vec![b'x'; 10]]);
                        assert_eq!(stored.0[0].dot.node, replicas[0]);
                    } else {
                        assert_eq!(stored, None, "{mode:?}: n{n} does not replicate {key}");
                    }
                }
            }
            let total: u64 = (0..7).map(|n| sim.storage(NodeId(n)).unwrap().key_count()).sum();
            assert_eq!(total, 500 * 3);
            assert!(sim.divergent_keys().is_empty());
        }
    }

    #[test]
    fn preloaded_keys_read_back_and_later_writes_continue_the_dot_chain() {
        let mut sim = cluster(5, ConflictMode::VectorClock);
        sim.preload(50, 4);
        sim.run_until(Instant::from_secs(2));
        let read = sim
            .client_op(NodeId(0), OpFunction::Read, "k7", None, ConsistencyLevel::All, None)
            .unwrap();
        sim.run_for(Duration::from_secs(1));
        let Some(Ok(Reply::Read { value, context, .. })) =
            sim.completion(read).and_then(|c| c.result.clone())
        else {
            panic!("read at ALL failed: {:?}", sim.completion(read));
        };
        assert_eq!(value.values(), vec![b"xxxx".to_vec()]);
        // A write that saw the preloaded version supersedes it on every replica; coordinated by
        // the first replica, it mints the next dot of that replica's chain for the key.
        let token = token_for(b"k7");
        let leader = sim.topology().ring().replicas(token)[0];
        let write = sim
            .client_op(leader, OpFunction::Write, "k7", Some("new"), ConsistencyLevel::All, {
                Some(context)
            })
            .unwrap();
        sim.run_for(Duration::from_secs(1));
        assert!(matches!(
            sim.completion(write).and_then(|c| c.result.clone()),
            Some(Ok(Reply::Written { .. }))
        ));
        assert_eq!(sim.durable_state("k7").values(), vec![b"new".to_vec()]);
        for r in sim.topology().ring().replicas(token) {
            let stored = sim.storage(*r).unwrap().get(token, b"k7").unwrap().unwrap();
            assert_eq!(stored.values(), vec![b"new".to_vec()], "replica {r}");
            assert_eq!(stored.0[0].dot, Dot { node: leader, counter: 2 });
        }
    }

    #[test]
    fn crashed_nodes_get_the_keys_too() {
        let mut sim = cluster(5, ConflictMode::VectorClock);
        sim.crash(NodeId(2)).unwrap();
        sim.preload(100, 1);
        let expected = (0..100)
            .filter(|i| {
                let t = token_for(format!("k{i}").as_bytes());
                sim.topology().ring().replicas(t).contains(&NodeId(2))
            })
            .count() as u64;
        assert!(expected > 0);
        assert_eq!(sim.storage(NodeId(2)).unwrap().key_count(), expected);
    }

    #[test]
    fn preloading_again_is_one_more_blind_write() {
        let mut sim = cluster(5, ConflictMode::VectorClock);
        sim.preload(20, 3);
        sim.preload(20, 3);
        let token = token_for(b"k3");
        let leader = sim.topology().ring().replicas(token)[0];
        for r in sim.topology().ring().replicas(token) {
            let stored = sim.storage(*r).unwrap().get(token, b"k3").unwrap().unwrap();
            let dots: Vec<Dot> = stored.0.iter().map(|v| v.dot).collect();
            assert_eq!(dots, [Dot { node: leader, counter: 1 }, Dot { node: leader, counter: 2 }]);
        }
        assert!(sim.divergent_keys().is_empty());

        let mut lww = cluster(5, ConflictMode::Lww);
        lww.preload(20, 3);
        let once: Vec<MemStorage> =
            (0..5).map(|n| lww.storage(NodeId(n)).unwrap().clone()).collect();
        lww.preload(20, 3);
        for (n, before) in once.iter().enumerate() {
            assert_eq!(lww.storage(NodeId(n as u32)).unwrap(), before, "the same version again");
        }
    }
}
