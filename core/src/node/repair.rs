//! Cleanup of ghost data and Merkle-tree repair runs: comparisons asked again with backoff, the
//! differing ranges streamed both ways, a report when the run completes.

use super::lifecycle::{AdminError, Lifecycle, RETRY, backoff};
use super::transfer::CHUNK_ATTEMPTS;
use super::{Node, NodeTrace, Timer};
use crate::gossip::Status;
use crate::id::NodeId;
use crate::merkle::{self, MerkleRequest, MerkleResponse, MerkleTree};
use crate::message::Message;
use crate::storage::{Storage, StorageError};
use crate::streaming::{OutStream, StreamCounters, StreamPurpose, entry_bytes};
use crate::time::Instant;
use crate::token::{Token, TokenRange};
use crate::topology::Topology;
use crate::version::Siblings;
use std::collections::{BTreeMap, BTreeSet};

/// A Merkle comparison waiting for the peer's tree.
#[derive(Clone, Debug)]
pub(super) struct RepairTask {
    request: MerkleRequest,
    tree: MerkleTree,
    peer: NodeId,
    sent_at: Instant,
    attempts: u32,
}

/// A repair run in progress: its comparisons are in `Node::repairs`; the streams of the
/// differing ranges are tracked here until every one finished.
#[derive(Clone, Debug, Default)]
pub(super) struct RepairRun {
    pub(super) report: super::RepairReport,
    /// Pull sessions (this node asked the peer for a differing range): peer, range, when
    /// asked (or, once accepted, when the last chunk came), asks so far, accepted.
    pub(super) pulls: BTreeMap<u64, (NodeId, TokenRange, Instant, u32, bool)>,
    /// Push sessions (this node streams a differing range to the peer).
    pub(super) pushes: BTreeSet<u64>,
}

impl<S: Storage> Node<S> {
    /// Removes every key this node no longer replicates (ghost data left by a join). Returns
    /// the keys and bytes removed.
    pub fn cleanup(&mut self, _now: Instant) -> Result<StreamCounters, AdminError> {
        if self.stopped {
            return Err(AdminError::Stopped);
        }
        if self.lifecycle != Lifecycle::Normal {
            return Err(AdminError::NotNormal(self.lifecycle.describe()));
        }
        // Cassandra's "Node is involved in cluster membership changes. Not safe to run cleanup":
        // a range this node is streaming out, or still written as the loser, is not ghost yet.
        if let Some((node, status)) = self.view.movement_in_progress() {
            return Err(AdminError::CleanupDuringMovement { node, status });
        }
        if let Some((to, _)) = self.out_streams.keys().next() {
            return Err(AdminError::CleanupDuringMovement {
                node: *to,
                status: self.view.status(*to).unwrap_or(Status::Boot),
            });
        }
        let Some(topology) = self.topology.clone() else {
            return Err(AdminError::NotNormal(self.lifecycle.describe()));
        };
        let whole = TokenRange { start: 0, end: 0 };
        let mut removed = StreamCounters::default();
        let mut after: Option<(Token, Vec<u8>)> = None;
        loop {
            let page = match self.storage.scan(
                whole,
                after.as_ref().map(|(t, k)| (*t, k.as_slice())),
                256,
            ) {
                Ok(p) => p,
                Err(e) => {
                    self.fatal(e);
                    return Err(AdminError::Stopped);
                }
            };
            let full = page.len() == 256;
            for e in page {
                after = Some((e.token, e.key.clone()));
                if !topology.holds(self.id, e.token) {
                    removed.keys += 1;
                    removed.bytes += entry_bytes(&e);
                    if let Err(err) = self.storage.put(e.token, &e.key, Siblings::new()) {
                        self.fatal(err);
                        return Err(AdminError::Stopped);
                    }
                }
            }
            if !full {
                break;
            }
        }
        self.trace(NodeTrace::Cleanup { keys: removed.keys, bytes: removed.bytes });
        Ok(removed)
    }

    /// Starts a Merkle-tree repair of every range this node replicates against each other live
    /// replica. Differing leaves are streamed both ways; [`NodeTrace::RepairCompared`] reports
    /// each comparison.
    pub fn repair(&mut self, now: Instant) -> Result<usize, AdminError> {
        if self.stopped {
            return Err(AdminError::Stopped);
        }
        if !matches!(self.lifecycle, Lifecycle::Normal) {
            return Err(AdminError::NotNormal(self.lifecycle.describe()));
        }
        let Some(topology) = self.topology.clone() else {
            return Err(AdminError::NotNormal(self.lifecycle.describe()));
        };
        let mut started = 0;
        let ranges: Vec<(TokenRange, Vec<NodeId>)> = topology
            .ring()
            .ranges()
            .filter(|(_, replicas)| replicas.contains(&self.id))
            .map(|(r, replicas)| (r, replicas.to_vec()))
            .collect();
        for (range, replicas) in ranges {
            let keys = match merkle::count_keys(&self.storage, range) {
                Ok(k) => k,
                Err(e) => {
                    self.fatal(e);
                    return Err(AdminError::Stopped);
                }
            };
            let depth = merkle::depth_for(keys);
            let tree = match MerkleTree::from_storage(&self.storage, range, depth) {
                Ok(t) => t,
                Err(e) => {
                    self.fatal(e);
                    return Err(AdminError::Stopped);
                }
            };
            for peer in replicas {
                if peer == self.id || !self.is_alive(peer) {
                    continue;
                }
                let session = self.next_session();
                let request = MerkleRequest { session, range, depth, epoch: topology.max_epoch() };
                self.repairs.insert(
                    session,
                    RepairTask {
                        request: request.clone(),
                        tree: tree.clone(),
                        peer,
                        sent_at: now,
                        attempts: 0,
                    },
                );
                self.send(peer, Message::MerkleRequest(request));
                started += 1;
            }
        }
        if started > 0 {
            self.repair_run.get_or_insert_with(RepairRun::default);
            self.timers.insert((now + RETRY, Timer::Repair));
        }
        Ok(started)
    }

    /// The repair run in progress (what it did so far), if any.
    pub fn repair_in_progress(&self) -> Option<super::RepairReport> {
        self.repair_run.as_ref().map(|r| r.report)
    }

    /// What the last completed repair run did.
    pub fn last_repair(&self) -> Option<super::RepairReport> {
        self.last_repair
    }

    /// Every RETRY while a run is in progress: comparisons and pulls not answered are asked
    /// again with backoff (given up after CHUNK_ATTEMPTS), then the run completes if nothing
    /// is left.
    pub(super) fn on_repair_tick(&mut self, now: Instant) {
        if self.repair_run.is_none() {
            return;
        }
        let due: Vec<u64> = self
            .repairs
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.sent_at) >= backoff(t.attempts))
            .map(|(s, _)| *s)
            .collect();
        for session in due {
            self.retry_merkle(now, session);
        }
        let epoch = self.topology.as_ref().map_or(0, Topology::max_epoch);
        let mut resend = Vec::new();
        if let Some(run) = &mut self.repair_run {
            let mut gone = Vec::new();
            for (session, (peer, range, at, attempts, accepted)) in &mut run.pulls {
                // An accepted pull whose source went quiet (it crashed mid-stream) is given up
                // after STREAM_STALL without a chunk; the source re-sends lost chunks itself.
                if *accepted {
                    if now.saturating_duration_since(*at) >= super::join::STREAM_STALL {
                        gone.push(*session);
                    }
                    continue;
                }
                if now.saturating_duration_since(*at) < backoff(*attempts) {
                    continue;
                }
                if *attempts >= CHUNK_ATTEMPTS {
                    gone.push(*session);
                    continue;
                }
                *attempts += 1;
                *at = now;
                resend.push((*peer, *session, *range));
            }
            for s in gone {
                run.pulls.remove(&s);
                run.report.unanswered += 1;
            }
        }
        for (peer, session, range) in resend {
            let purpose = StreamPurpose::Repair;
            self.send(peer, Message::StreamRequest { session, epoch, range, purpose });
        }
        if !self.check_repair_done() {
            self.timers.insert((now + RETRY, Timer::Repair));
        }
    }

    /// Asks a comparison again (its request or the answer was lost, or it was planned under an
    /// older epoch), or gives it up after CHUNK_ATTEMPTS.
    pub(super) fn retry_merkle(&mut self, now: Instant, session: u64) {
        let epoch = self.topology.as_ref().map_or(0, Topology::max_epoch);
        let Some(task) = self.repairs.get_mut(&session) else { return };
        if task.attempts >= CHUNK_ATTEMPTS {
            self.repairs.remove(&session);
            if let Some(run) = &mut self.repair_run {
                run.report.unanswered += 1;
            }
            return;
        }
        task.attempts += 1;
        task.sent_at = now;
        task.request.epoch = epoch;
        let (peer, request) = (task.peer, task.request.clone());
        self.send(peer, Message::MerkleRequest(request));
    }

    /// Completes the run when no comparison and no stream of it is left; returns whether the
    /// run is over.
    pub(super) fn check_repair_done(&mut self) -> bool {
        let Some(run) = &self.repair_run else { return true };
        if !self.repairs.is_empty() || !run.pulls.is_empty() || !run.pushes.is_empty() {
            return false;
        }
        let report = run.report;
        self.repair_run = None;
        self.last_repair = Some(report);
        self.trace(NodeTrace::RepairCompleted { report });
        true
    }

    pub(super) fn on_merkle_response(
        &mut self,
        now: Instant,
        from: NodeId,
        response: MerkleResponse,
    ) -> Result<(), StorageError> {
        let Some(task) = self.repairs.remove(&response.session) else { return Ok(()) };
        if let Some(run) = &mut self.repair_run {
            run.report.compared += 1;
        }
        let range = response.range;
        let Ok(theirs) = MerkleTree::from_response(&task.request, &response) else {
            self.trace(NodeTrace::Refused { from, reason: "malformed Merkle response".into() });
            return Ok(());
        };
        let differing = merkle::diff(&task.tree, &theirs);
        self.trace(NodeTrace::RepairCompared {
            peer: from,
            range,
            differing: differing.len() as u64,
        });
        for sub in differing {
            // Push ours, pull theirs: both end with the join of the two.
            let push = self.next_session();
            self.out_streams
                .insert((from, push), OutStream::new(from, push, sub, StreamPurpose::Repair, now));
            let pull = self.next_session();
            if let Some(run) = &mut self.repair_run {
                run.report.differing += 1;
                run.pushes.insert(push);
                run.pulls.insert(pull, (from, sub, now, 0, false));
            }
            self.send(
                from,
                Message::StreamRequest {
                    session: pull,
                    epoch: self.topology.as_ref().map_or(0, Topology::max_epoch),
                    range: sub,
                    purpose: StreamPurpose::Repair,
                },
            );
        }
        if let Some(t) = self.pump_out_streams(now) {
            self.schedule_lifecycle(t);
        }
        Ok(())
    }
}
