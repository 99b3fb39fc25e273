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
