//! Joining: discovery of the ring, [`Node::join`] (tokens, BOOT, the wait), and the joiner's side
//! of streaming: one gained range at a time from the replica losing it, asked again when the
//! source stays silent (the chunks are received in `transfer`), then MID_JOIN and NORMAL.

use super::lifecycle::{
    AdminError, JOIN_TOKENS_KEY, JoinPhase, JoinRequest, JoinState, Lifecycle, Persisted, RETRY,
    backoff, encode_u64s, source_down,
};
use super::{Node, NodeTrace};
use crate::gossip::Status;
use crate::id::NodeId;
use crate::membership::JoinStrategy;
use crate::message::Message;
use crate::placement::plan_join;
use crate::storage::Storage;
use crate::streaming::{MovementProgress, StreamCounters, StreamPurpose};
use crate::time::Instant;
use crate::topology::Topology;
use std::collections::VecDeque;
use std::time::Duration;

/// A stream that made no progress for this long is restarted from the start of its range
/// (chunks merge idempotently, so re-sending is safe).
pub(super) const STREAM_STALL: Duration = Duration::from_secs(30);
/// A joiner that has not learned any member from its seeds in this long gives up.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(60);

impl<S: Storage> Node<S> {
    /// Starts (or resumes) this node's join. Progress is reported as trace events
    /// ([`NodeTrace::StatusChanged`], [`NodeTrace::RangeStreamed`], [`NodeTrace::JoinCompleted`]
    /// or [`NodeTrace::JoinFailed`]) and in [`Node::lifecycle`].
    pub fn join(&mut self, now: Instant, request: JoinRequest) -> Result<(), AdminError> {
        if self.stopped {
            return Err(AdminError::Stopped);
        }
        match &mut self.lifecycle {
            Lifecycle::Fresh if !request.resume => {
                self.lifecycle = Lifecycle::Joining(Box::new(JoinState {
                    phase: JoinPhase::Discovering { since: now },
                    tokens: Vec::new(),
                    requested: request.tokens,
                    allow_inconsistent_source: request.allow_inconsistent_source,
                    started: now,
                    done: Vec::new(),
                    todo: VecDeque::new(),
                    current: None,
                    progress: MovementProgress::default(),
                    seed_view_at: None,
                }));
                self.persist_lifecycle(Persisted::Joining);
                self.on_lifecycle_tick(now);
                Ok(())
            }
            // Failed before it chose tokens (discovery, or another movement in progress): nothing
            // was announced or streamed, so a join or a resume starts over.
            Lifecycle::Joining(j)
                if j.tokens.is_empty()
                    && matches!(j.phase, JoinPhase::Failed { .. } | JoinPhase::Interrupted)
                    && matches!(self.view.status(self.id), None | Some(Status::Left)) =>
            {
                j.phase = JoinPhase::Discovering { since: now };
                j.allow_inconsistent_source = request.allow_inconsistent_source;
                if request.tokens.is_some() {
                    j.requested = request.tokens;
                }
                j.started = now;
                j.seed_view_at = None;
                self.persist_lifecycle(Persisted::Joining);
                self.on_lifecycle_tick(now);
                Ok(())
            }
            Lifecycle::Joining(j)
                if request.resume
                    && matches!(j.phase, JoinPhase::Interrupted | JoinPhase::Failed { .. }) =>
            {
                j.allow_inconsistent_source = request.allow_inconsistent_source;
                if j.started == Instant::ZERO {
                    j.started = now;
                }
                if self.config.join_strategy.uses_barriers()
                    && self.view.status(self.id) == Some(Status::Boot)
                {
                    self.start_barrier(now, Status::Boot);
                } else {
                    self.start_join_streaming(now);
                }
                Ok(())
            }
            Lifecycle::Joining(j) if matches!(j.phase, JoinPhase::Interrupted) => {
                Err(AdminError::MustResume)
            }
            other if request.resume => Err(AdminError::NothingToResume(other.describe())),
            other => Err(AdminError::AlreadyMember(other.describe())),
        }
    }

    /// Discovery: wait until gossip taught us a ring (two rounds after the first member was
    /// learned), then pick tokens and announce. Returns the next wake-up.
    pub(super) fn discover(&mut self, now: Instant, since: Instant) -> Option<Instant> {
        let interval = self.config.heartbeat_interval.unwrap_or(RETRY);
        let ring = match self.view.ring() {
            Ok(r) => r,
            Err(e) => {
                self.fail_movement(format!("the ring learned from gossip is invalid: {e}"));
                return None;
            }
        };
        let Some(ring) = ring else {
            if now.saturating_duration_since(since) > DISCOVERY_TIMEOUT {
                self.fail_movement(format!(
                    "learned no member from seeds {:?} in {}s: check the seed list and that they run cluster {:?}",
                    self.config.seeds,
                    DISCOVERY_TIMEOUT.as_secs(),
                    self.config.cluster_name
                ));
                return None;
            }
            return Some(now + interval);
        };
        if self.config.heartbeat_interval.is_some() {
            // Gossip only answers about the nodes a digest names, so a joiner knows its seeds
            // long before it knows everyone: ask a seed for its whole view, then give the echoes
            // to the members learned from it one more round before announcing.
            let seed_view_at = match &self.lifecycle {
                Lifecycle::Joining(j) => j.seed_view_at,
                _ => None,
            };
            let Some(at) = seed_view_at else {
                for seed in self.config.seeds.clone() {
                    if seed != self.id {
                        self.send(seed, Message::ViewRequest);
                    }
                }
                return Some(now + RETRY);
            };
            let ready = (since + interval * 3).max(at + interval);
            if now < ready {
                return Some(ready);
            }
        }
        // One range movement at a time is Cassandra's rule (and staged's); the naive strategies
        // of the reference documents track concurrent migrations and allow them.
        // Under the fenced strategies (`staged`, `sync-dual-write`), only movements of overlapping
        // ranges exclude each other: checked once the tokens are chosen (and again by every
        // member when the barrier asks for the lock).
        let one_at_a_time = self.config.join_strategy == JoinStrategy::PendingRanges;
        if let Some((node, status)) =
            self.view.movement_in_progress().filter(|(n, _)| *n != self.id && one_at_a_time)
        {
            self.fail_movement(format!(
                "{node} is {status}: one range movement at a time; join again when it is NORMAL or gone"
            ));
            return None;
        }
        let requested = match &self.lifecycle {
            Lifecycle::Joining(j) => j.requested.clone(),
            _ => None,
        };
        let tokens = match requested {
            Some(mut t) => {
                t.sort_unstable();
                t.dedup();
                if let Some(taken) = t.iter().find(|t| ring.tokens().binary_search(t).is_ok()) {
                    self.fail_movement(format!(
                        "token {taken} is already owned by {}; choose other tokens or let the node allocate them",
                        ring.owners()[ring.tokens().binary_search(taken).expect("found")]
                    ));
                    return None;
                }
                t
            }
            None => crate::alloc::allocate_tokens(
                Some(&ring),
                self.id,
                self.config.num_tokens.max(1),
                self.view.rf,
                self.config.allocation,
                &mut self.rng,
            ),
        };
        if let Err(e) = self.storage.put_meta(JOIN_TOKENS_KEY, &encode_u64s(tokens.iter().copied()))
        {
            self.fatal(e);
            return None;
        }
        if self.config.join_strategy.uses_barriers() {
            let moves = crate::placement::plan_join(&ring, self.id, &tokens).unwrap_or_default();
            if let Some((node, status, _)) = self.view.conflicting_movement(self.id, &moves) {
                self.fail_movement(format!(
                    "{node} is {status} over ranges this join would change: one movement per range at a time; join again when it is NORMAL or gone"
                ));
                return None;
            }
        }
        if let Lifecycle::Joining(j) = &mut self.lifecycle {
            j.tokens = tokens.clone();
        }
        let strategy = self.config.join_strategy;
        if strategy == JoinStrategy::Immediate {
            // Reference doc 000's "approach 3": the joiner owns its ranges at once, empty.
            self.announce(Status::Normal, &tokens);
            self.start_join_streaming(now);
            return None;
        }
        self.announce(Status::Boot, &tokens);
        if strategy.steps_through_mid_join() {
            self.wait_for(now, Status::Boot);
        } else {
            self.start_join_streaming(now);
        }
        None
    }

    /// Plans the ranges to stream (skipping finished ones) and starts the first.
    pub(super) fn start_join_streaming(&mut self, now: Instant) {
        let Lifecycle::Joining(j) = &self.lifecycle else { return };
        let (tokens, done, allow) = (j.tokens.clone(), j.done.clone(), j.allow_inconsistent_source);
        if tokens.is_empty() {
            return self.fail_movement("no tokens were chosen: run join again".into());
        }
        // The ring the joiner enters: every owning member but itself.
        let mut base = self.view.clone();
        base.members.remove(&self.id);
        let ring = match base.ring() {
            Ok(Some(r)) => r,
            Ok(None) => return self.fail_movement("no member owns tokens: nothing to join".into()),
            Err(e) => return self.fail_movement(format!("invalid ring: {e}")),
        };
        let moves = match plan_join(&ring, self.id, &tokens) {
            Ok(m) => m,
            Err(e) => return self.fail_movement(format!("cannot place tokens: {e}")),
        };
        let mut todo = VecDeque::new();
        for m in &moves {
            if done.contains(&m.range) {
                continue;
            }
            let source = match m.source {
                Some(s) if self.is_alive(s) => s,
                Some(s) if !allow => return self.fail_movement(source_down(m, s)),
                _ => {
                    let candidates: Vec<NodeId> = match m.source {
                        Some(_) => m.alternative_sources(),
                        None => m.old.clone(),
                    };
                    match candidates.into_iter().find(|n| *n != self.id && self.is_alive(*n)) {
                        Some(n) => n,
                        None => {
                            return self.fail_movement(format!(
                                "no live replica holds {}; bring one back and resume the join",
                                m.range
                            ));
                        }
                    }
                }
            };
            todo.push_back((m.range, source));
        }
        if let Lifecycle::Joining(j) = &mut self.lifecycle {
            j.phase = JoinPhase::Streaming;
            j.progress.ranges_total = moves.len();
            j.progress.ranges_done = moves.len() - todo.len();
            j.todo = todo;
            j.current = None;
        }
        self.next_join_range(now);
        self.schedule_lifecycle(now + RETRY);
    }

    pub(super) fn next_join_range(&mut self, now: Instant) {
        let session = self.next_session();
        let epoch = self.topology.as_ref().map_or(0, Topology::max_epoch);
        let Lifecycle::Joining(j) = &mut self.lifecycle else { return };
        match j.todo.pop_front() {
            Some((range, source)) => {
                j.current = Some((session, range, source, now));
                self.trace(NodeTrace::StreamStarted {
                    peer: source,
                    range,
                    purpose: StreamPurpose::Join,
                });
                self.send(
                    source,
                    Message::StreamRequest { session, epoch, range, purpose: StreamPurpose::Join },
                );
            }
            None => {
                j.current = None;
                self.join_streaming_done(now);
            }
        }
    }

    /// The session of the join stream under way, if any.
    pub(super) fn join_stream_session(&self) -> Option<u64> {
        match &self.lifecycle {
            Lifecycle::Joining(j) => j.current.map(|(session, ..)| session),
            _ => None,
        }
    }

    /// A join stream that made no progress: a request not accepted yet is asked again with
    /// backoff (the request, or its acceptance, was lost); an accepted one only after
    /// STREAM_STALL, since the source re-sends lost chunks itself and may be throttled.
    pub(super) fn check_stalled_join_stream(&mut self, now: Instant) {
        let Lifecycle::Joining(j) = &self.lifecycle else { return };
        let Some((session, ..)) = j.current else { return };
        let wait = if self.stream_accepted == Some(session) {
            STREAM_STALL
        } else {
            backoff(self.stream_request_attempts)
        };
        let mut asked = false;
        self.restart_join_stream(now, |last| {
            asked = now.saturating_duration_since(last) >= wait;
            asked
        });
        if asked {
            self.stream_request_attempts += 1;
        }
    }

    /// A stream source refused the request as planned under an older epoch: ask again with the
    /// epoch just learned.
    pub(super) fn on_stream_rejected(&mut self, now: Instant, from: NodeId, session: u64) {
        let current = match &self.lifecycle {
            Lifecycle::Joining(j) => {
                j.current.is_some_and(|(s, _, src, _)| s == session && src == from)
            }
            _ => false,
        };
        if current {
            self.restart_join_stream(now, |_| true);
        }
    }

    fn restart_join_stream(&mut self, now: Instant, mut due: impl FnMut(Instant) -> bool) {
        let session = self.next_session();
        let epoch = self.topology.as_ref().map_or(0, Topology::max_epoch);
        let Lifecycle::Joining(j) = &mut self.lifecycle else { return };
        if let Some((s, range, source, last)) = &mut j.current
            && due(*last)
        {
            // Lost chunk or acknowledgement, or a source that did not know us yet: ask again.
            *s = session;
            *last = now;
            let (range, source) = (*range, *source);
            self.send(
                source,
                Message::StreamRequest { session, epoch, range, purpose: StreamPurpose::Join },
            );
        }
    }

    fn join_streaming_done(&mut self, now: Instant) {
        let tokens = self.own_tokens();
        let strategy = self.config.join_strategy;
        if strategy.steps_through_mid_join() {
            // Reads switch first while the replicas losing ranges still take writes, until
            // every coordinator has switched (a barrier, or RING_DELAY); only then NORMAL.
            self.announce(Status::MidJoin, &tokens);
            self.wait_for(now, Status::MidJoin);
        } else {
            if strategy != JoinStrategy::Immediate {
                self.announce(Status::Normal, &tokens);
            }
            self.complete_join(now);
        }
    }

    pub(super) fn complete_join(&mut self, _now: Instant) {
        let moved = match &self.lifecycle {
            Lifecycle::Joining(j) => j.progress.moved,
            _ => StreamCounters::default(),
        };
        self.lifecycle = Lifecycle::Normal;
        self.persist_lifecycle(Persisted::Settled);
        self.trace(NodeTrace::JoinCompleted { keys: moved.keys, bytes: moved.bytes });
    }

    pub(super) fn on_refused(&mut self, _now: Instant, from: NodeId, reason: String) {
        if let Lifecycle::Joining(j) = &self.lifecycle
            && matches!(j.phase, JoinPhase::Discovering { .. })
            && reason.contains("cluster mismatch")
        {
            self.fail_movement(format!("seed {from} refused us: {reason}"));
        }
    }
}
