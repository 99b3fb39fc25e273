//! Checkpoints for seeking backwards, and forking when the user intervenes in the past.
//!
//! A [`Timeline`] wraps a [`Simulation`] and snapshots it (a clone: the simulation is a plain
//! value) every `interval` of virtual time. Seeking to an earlier time restores the latest
//! checkpoint at or before it and replays forward — determinism makes the replay identical.
//! Intervening after a seek into the past discards the checkpoints after "now": the run forks.

use super::Simulation;
use crate::time::Instant;
use std::time::Duration;

/// A simulation with checkpoints.
#[derive(Clone, Debug)]
pub struct Timeline {
    sim: Simulation,
    interval: Duration,
    checkpoints: Vec<Simulation>,
    horizon: Instant,
}

impl Timeline {
    /// Wraps `sim`, checkpointing every `interval` (and at its current time).
    pub fn new(sim: Simulation, interval: Duration) -> Self {
        let horizon = sim.now();
        Timeline { checkpoints: vec![sim.clone()], sim, interval, horizon }
    }

    /// The current simulation.
    pub fn sim(&self) -> &Simulation {
        &self.sim
    }

    /// The current simulation, to intervene. Checkpoints later than now are dropped: the
    /// timeline forks here.
    pub fn intervene(&mut self) -> &mut Simulation {
        let now = self.sim.now();
        self.checkpoints.retain(|c| c.now() <= now);
        self.horizon = now;
        &mut self.sim
    }

    /// The furthest time this timeline has reached.
    pub fn horizon(&self) -> Instant {
        self.horizon
    }

    /// Checkpoint times.
    pub fn checkpoint_times(&self) -> Vec<Instant> {
        self.checkpoints.iter().map(Simulation::now).collect()
    }

    /// Runs forward to `t`, checkpointing on the way.
    pub fn advance_to(&mut self, t: Instant) {
        while self.sim.now() < t {
            let last = self.checkpoints.last().map_or(Instant::ZERO, Simulation::now);
            let next_checkpoint = last + self.interval;
            let stop = next_checkpoint.min(t);
            self.sim.run_until(stop);
            if self.sim.now() >= next_checkpoint {
                self.checkpoints.push(self.sim.clone());
            }
        }
        self.horizon = self.horizon.max(self.sim.now());
    }

    /// Moves to `t`, backwards (restore and replay) or forwards.
    pub fn seek(&mut self, t: Instant) {
        if t < self.sim.now() {
            let base = self
                .checkpoints
                .iter()
                .rev()
                .find(|c| c.now() <= t)
                .cloned()
                .unwrap_or_else(|| self.checkpoints[0].clone());
            self.sim = base;
            self.sim.run_until(t);
        } else {
            self.advance_to(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::{Allocation, build_ring};
    use crate::id::NodeId;
    use crate::node::NodeConfig;
    use crate::sim::SimConfig;
    use crate::sim::network::NetworkConfig;
    use crate::sim::workload::WorkloadConfig;
    use rand::SeedableRng;

    fn sim(seed: u64) -> Simulation {
        let ids: Vec<NodeId> = (0..4).map(NodeId).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let ring = build_ring(&ids, 4, 3, Allocation::Random, &mut rng).unwrap();
        Simulation::new(SimConfig {
            seed,
            names: ["A", "B", "C", "D"].iter().map(|s| s.to_string()).collect(),
            ring,
            node: NodeConfig::default(),
            network: NetworkConfig::default(),
            workload: WorkloadConfig { stop: Duration::from_secs(30), ..WorkloadConfig::default() },
            keep_trace: false,
            record_history: true,
        })
    }

    #[test]
    fn seeking_back_replays_the_same_run() {
        let mut t = Timeline::new(sim(3), Duration::from_secs(5));
        t.advance_to(Instant::from_secs(20));
        let at_20 = (t.sim().trace().hash(), t.sim().history().ops.len());
        t.seek(Instant::from_secs(7));
        assert_eq!(t.sim().now(), Instant::from_secs(7));
        assert!(t.sim().history().ops.len() < at_20.1);
        t.seek(Instant::from_secs(20));
        assert_eq!((t.sim().trace().hash(), t.sim().history().ops.len()), at_20);
        assert_eq!(t.horizon(), Instant::from_secs(20));
    }

    #[test]
    fn intervening_in_the_past_forks_the_timeline() {
        let mut t = Timeline::new(sim(4), Duration::from_secs(5));
        t.advance_to(Instant::from_secs(20));
        let original = t.sim().trace().hash();
        t.seek(Instant::from_secs(8));
        t.intervene().crash(NodeId(1)).unwrap();
        assert!(t.checkpoint_times().iter().all(|c| *c <= Instant::from_secs(8)));
        t.advance_to(Instant::from_secs(20));
        assert_ne!(t.sim().trace().hash(), original);
        assert!(!t.sim().is_up(NodeId(1)));
    }
}
