//! Topology barriers and range locks, the fencing of the `staged` and `sync-dual-write`
//! strategies. A node that announces a new status (BOOT, MID_JOIN, NORMAL, LEAVING, …) bumps its
//! placement epoch and waits until every live member acknowledged it; the members whose placement
//! the movement changes must acknowledge even when convicted down. The first barrier of a
//! movement takes the range lock: a majority of the owners must grant it, and a member holding
//! an overlapping movement refuses it. A member acknowledges only once the requests it planned
//! under the older placement have finished (`PendingBarrierAck`, drained in `fencing.rs`).

use super::lifecycle::{
    AdminError, JOIN_DONE_KEY, JOIN_TOKENS_KEY, JoinPhase, Lifecycle, Persisted, RETRY,
    SOURCE_GRACE, source_down,
};
use super::{Node, NodeTrace};
use crate::gossip::Status;
use crate::id::NodeId;
use crate::message::Message;
use crate::placement::RangeMovement;
use crate::storage::Storage;
use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet};

/// Range locks as one node knows them ([`Node::range_locks`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeLocks {
    /// Movements this node granted the range lock (it acknowledged their first barrier and
    /// refuses overlapping movements), with the epoch of the movement.
    pub granted: BTreeMap<NodeId, u64>,
    /// While this node's own movement asks for the lock: the members that refused it, each with
    /// the node whose movement it named as holding an overlapping range.
    pub refused_by: BTreeMap<NodeId, NodeId>,
    /// The epoch of this node's own movement once it holds the range lock (its first barrier
    /// completed) and until the movement ends or gives way, a failed or interrupted one
    /// included: the members keep the lock granted while it stays announced.
    pub holding: Option<u64>,
}

/// A topology barrier waiting for acknowledgements.
#[derive(Clone, Debug)]
pub(super) struct Barrier {
    pub(super) status: Status,
    pub(super) epoch: u64,
    pub(super) waiting: BTreeSet<NodeId>,
    /// Members whose placement the movement changes (the replicas losing ranges, the nodes
    /// gaining them): they must acknowledge even when convicted down, because a partitioned one
    /// would go on serving the old placement. Others convicted down are skipped; they catch up
    /// before they serve again.
    pub(super) involved: BTreeSet<NodeId>,
    pub(super) acked: usize,
    pub(super) acked_by: BTreeSet<NodeId>,
    pub(super) sent_at: Instant,
    /// When the barrier started.
    pub(super) started: Instant,
    /// The first barrier of a movement under a fenced strategy (BOOT, LEAVING) takes the range lock: it
    /// needs, besides every live member, a majority of the owners, and a member holding a
    /// conflicting movement refuses it. Two overlapping movements can then never both hold it.
    pub(super) lock: bool,
    /// The owners (members with tokens, this node excluded) of whom a majority must acknowledge
    /// a locking barrier.
    pub(super) owners: BTreeSet<NodeId>,
    /// Members that refused the lock, with the movement they named: this node waits for that
    /// movement to finish or give way.
    pub(super) refused_by: BTreeMap<NodeId, NodeId>,
}

/// A barrier this node applied and will acknowledge once the requests it had in flight then
/// (planned under the older placement) have finished or timed out (Scylla's
/// `barrier_and_drain`).
#[derive(Clone, Debug)]
pub(super) struct PendingBarrierAck {
    pub(super) from: NodeId,
    pub(super) epoch: u64,
    pub(super) waiting: BTreeSet<crate::id::RequestId>,
}

impl<S: Storage> Node<S> {
    pub(super) fn start_barrier(&mut self, now: Instant, status: Status) {
        let epoch = self.gossiper.local().max_version();
        let involved = self.involved_in_movement();
        let waiting: BTreeSet<NodeId> = self
            .view
            .live_members()
            .filter(|p| *p != self.id && (self.is_alive(*p) || involved.contains(p)))
            .collect();
        self.set_phase(JoinPhase::Barrier { status });
        let lock = self.config.join_strategy.uses_barriers()
            && matches!(status, Status::Boot | Status::Leaving);
        let owners = self
            .view
            .members
            .iter()
            .filter(|(n, m)| {
                **n != self.id
                    && matches!(m.status, Status::Normal | Status::Leaving | Status::MidLeave)
            })
            .map(|(n, _)| *n)
            .collect();
        self.barrier = Some(Barrier {
            status,
            epoch,
            waiting,
            involved,
            acked: 0,
            acked_by: BTreeSet::new(),
            sent_at: now,
            started: now,
            lock,
            owners,
            refused_by: BTreeMap::new(),
        });
        self.send_barrier();
        // Resent every RETRY to members that have not acknowledged (gossip may be off).
        self.schedule_lifecycle(now + RETRY);
        self.check_barrier(now);
    }

    /// The members whose placement this node's movement changes: the replicas losing the ranges
    /// a join gains, or the nodes gaining a leaver's ranges. Kept from the first barrier of the
    /// movement, whose plan the later ones share.
    pub(super) fn involved_in_movement(&mut self) -> BTreeSet<NodeId> {
        match self.view.movements(self.id) {
            Ok(moves) if !moves.is_empty() => {
                let involved: BTreeSet<NodeId> = moves
                    .iter()
                    .flat_map(|m| [m.source, Some(m.gainer)])
                    .flatten()
                    .filter(|n| *n != self.id)
                    .collect();
                self.movement_involved = involved.clone();
                involved
            }
            _ => self.movement_involved.clone(),
        }
    }

    pub(super) fn send_barrier(&mut self) {
        let Some(b) = &self.barrier else { return };
        // Everything this node knows, not only its own state: a member that missed earlier
        // changes (skipped while it was down) learns them with this one.
        let states = self.gossiper.snapshot();
        let (epoch, targets): (u64, Vec<NodeId>) = (b.epoch, b.waiting.iter().copied().collect());
        for t in targets {
            self.send(t, Message::Barrier { epoch, states: states.clone() });
        }
    }

    pub(super) fn on_barrier(
        &mut self,
        now: Instant,
        from: NodeId,
        epoch: u64,
        states: BTreeMap<NodeId, crate::gossip::EndpointState>,
    ) {
        if !self.apply_pushed(now, from, states) {
            return;
        }
        if let Some((holder, status, holder_epoch)) = self.lock_conflict(from) {
            self.send(from, Message::BarrierRefused { epoch, holder, status, holder_epoch });
            return;
        }
        // Drain: requests planned before this change must finish (or time out) before the
        // sender may act on the new placement.
        let waiting: BTreeSet<crate::id::RequestId> =
            self.writes.keys().chain(self.reads.keys()).copied().collect();
        if waiting.is_empty() {
            self.send(from, Message::BarrierAck { epoch });
        } else if !self.pending_barrier_acks.iter().any(|p| p.from == from && p.epoch == epoch) {
            self.pending_barrier_acks.push(PendingBarrierAck { from, epoch, waiting });
        }
    }

    /// For the first barrier of `from`'s movement (BOOT, LEAVING) under a fenced strategy: the movement
    /// holding ranges that one would change, unless this node already granted `from` the lock
    /// (a resent barrier). Grants the lock when there is none.
    pub(super) fn lock_conflict(&mut self, from: NodeId) -> Option<(NodeId, Status, u64)> {
        if !self.config.join_strategy.uses_barriers() {
            return None;
        }
        let view = &self.view;
        self.lock_granted.retain(|n, e| {
            view.member(*n).is_some_and(|m| {
                m.epoch == *e && matches!(m.status, Status::Boot | Status::Leaving)
            })
        });
        let member = self.view.member(from)?;
        if !matches!(member.status, Status::Boot | Status::Leaving) {
            return None;
        }
        let epoch = member.epoch;
        if self.lock_granted.get(&from) == Some(&epoch) {
            return None;
        }
        let moves = self.view.movements(from).unwrap_or_default();
        if let Some(conflict) = self.view.conflicting_movement(from, &moves) {
            return Some(conflict);
        }
        self.lock_granted.insert(from, epoch);
        None
    }

    pub(super) fn on_barrier_ack(&mut self, now: Instant, from: NodeId, epoch: u64) {
        if let Some(b) = &mut self.barrier
            && b.epoch == epoch
            && b.waiting.remove(&from)
        {
            b.acked += 1;
            b.acked_by.insert(from);
            b.refused_by.remove(&from);
            self.answered(now, from);
        }
        self.check_barrier(now);
    }

    /// A member refused this node's movement the range lock, naming the movement that holds it.
    /// Of two overlapping movements the earlier one (lower epoch, then lower node id) goes on:
    /// this one gives way (its placement is reversed and the movement fails with the holder's
    /// name) when the holder is earlier, and otherwise keeps asking until the holder gives way.
    pub(super) fn on_barrier_refused(
        &mut self,
        now: Instant,
        from: NodeId,
        epoch: u64,
        holder: NodeId,
        status: Status,
        holder_epoch: u64,
    ) {
        let Some(b) = &mut self.barrier else { return };
        if b.epoch != epoch || !b.lock {
            return;
        }
        self.answered(now, from);
        let mine = self.view.member(self.id).map_or(0, |m| m.epoch);
        let Some(b) = &mut self.barrier else { return };
        if (holder_epoch, holder) < (mine, self.id) {
            let what = if b.status == Status::Boot { "join" } else { "decommission" };
            self.give_way(format!(
                "{from} refused the range lock: {holder} is {status} over ranges this {what} would change (one movement per range at a time); {what} again when it is NORMAL or gone"
            ));
        } else {
            b.refused_by.insert(from, holder);
        }
    }

    /// Reverses a movement that has not taken its range lock yet: a joiner withdraws (LEFT
    /// without tokens: no member keeps it as a pending replica, and it may join again later);
    /// a leaver is NORMAL again. The movement fails with `reason`.
    pub(super) fn give_way(&mut self, reason: String) {
        self.barrier = None;
        match &mut self.lifecycle {
            Lifecycle::Joining(j) => {
                j.tokens.clear();
                j.done.clear();
                j.todo.clear();
                j.current = None;
                j.seed_view_at = None;
                if let Err(e) = self
                    .storage
                    .put_meta(JOIN_TOKENS_KEY, &[])
                    .and_then(|()| self.storage.put_meta(JOIN_DONE_KEY, &[]))
                {
                    return self.fatal(e);
                }
                if self.view.member(self.id).is_some() {
                    self.announce(Status::Left, &[]);
                }
                self.fail_movement(reason);
            }
            Lifecycle::Leaving(_) => {
                let tokens = self.own_tokens();
                self.announce(Status::Normal, &tokens);
                self.trace(NodeTrace::DecommissionFailed { reason });
                self.lifecycle = Lifecycle::Normal;
                self.persist_lifecycle(Persisted::Settled);
            }
            _ => {}
        }
    }

    /// The range locks this node knows of, for operators: the movements it granted the lock to
    /// that still ask for or hold it (BOOT or LEAVING at the epoch it granted), and, while this
    /// node's own first barrier asks for the lock, who refused it and which movement each named;
    /// and whether this node's own movement holds it. Empty outside the fenced strategies.
    pub fn range_locks(&self) -> RangeLocks {
        let granted = self
            .lock_granted
            .iter()
            .filter(|(n, e)| {
                self.view.member(**n).is_some_and(|m| {
                    m.epoch == **e && matches!(m.status, Status::Boot | Status::Leaving)
                })
            })
            .map(|(n, e)| (*n, *e))
            .collect();
        let refused_by = self
            .barrier
            .as_ref()
            .filter(|b| b.lock)
            .map(|b| b.refused_by.clone())
            .unwrap_or_default();
        let asking = self.barrier.as_ref().is_some_and(|b| b.lock);
        let moving = matches!(self.lifecycle, Lifecycle::Joining(_) | Lifecycle::Leaving(_));
        let holding = self
            .view
            .member(self.id)
            .filter(|m| {
                self.config.join_strategy.uses_barriers()
                    && moving
                    && !asking
                    && matches!(
                        m.status,
                        Status::Boot | Status::MidJoin | Status::Leaving | Status::MidLeave
                    )
            })
            .map(|m| m.epoch);
        RangeLocks { granted, refused_by, holding }
    }

    /// An operator's abort of this node's movement, idempotent. A join is withdrawn while no
    /// read has moved to it yet (BOOT or earlier); a decommission while it still owns its ranges
    /// (LEAVING). Later, the movement has handed reads over and must finish instead.
    pub fn abort_movement(&mut self, _now: Instant) -> Result<String, AdminError> {
        if self.stopped {
            return Err(AdminError::Stopped);
        }
        let status = self.view.status(self.id);
        match &self.lifecycle {
            Lifecycle::Joining(j) => {
                if matches!(status, Some(Status::MidJoin | Status::Normal)) {
                    return Err(AdminError::TooLateToAbort(self.lifecycle.describe()));
                }
                if j.tokens.is_empty() && matches!(j.phase, JoinPhase::Failed { .. }) {
                    return Ok("nothing to abort: the join already stopped".into());
                }
                self.give_way("aborted by the operator; join again to start over".into());
                Ok("join aborted: the node withdrew its tokens and may join again".into())
            }
            Lifecycle::Leaving(_) => {
                if status == Some(Status::MidLeave) {
                    return Err(AdminError::TooLateToAbort(self.lifecycle.describe()));
                }
                self.give_way("aborted by the operator".into());
                Ok("decommission aborted: the node is NORMAL again".into())
            }
            other => Ok(format!("nothing to abort: node is {}", other.describe())),
        }
    }

    pub(super) fn check_barrier(&mut self, now: Instant) {
        if self.catching_up {
            // The view may lack members: wait for it before deciding who must acknowledge.
            return;
        }
        // Members learned since the barrier started (a restarted joiner catching up) must
        // acknowledge too.
        let involved = self.involved_in_movement();
        let members: Vec<NodeId> = self.view.live_members().filter(|p| *p != self.id).collect();
        if let Some(b) = &mut self.barrier {
            b.involved.extend(involved);
            for m in members {
                if !b.acked_by.contains(&m) && !b.waiting.contains(&m) {
                    b.waiting.insert(m);
                }
            }
        }
        if let Err(reason) = self.check_sources_at_boot(now) {
            self.barrier = None;
            return self.fail_movement(reason);
        }
        let Some(b) = &self.barrier else { return };
        // A member convicted down need not acknowledge, unless the movement changes its
        // placement: it catches up before it serves again.
        let dead: Vec<NodeId> = b
            .waiting
            .iter()
            .copied()
            .filter(|p| !self.is_alive(*p) && !b.involved.contains(p))
            .collect();
        let Some(b) = &mut self.barrier else { return };
        for p in dead {
            b.waiting.remove(&p);
        }
        let majority = if b.owners.is_empty() { 0 } else { b.owners.len() / 2 + 1 };
        let short_of_majority = b.lock && b.acked_by.intersection(&b.owners).count() < majority;
        if !b.waiting.is_empty() || short_of_majority || !b.refused_by.is_empty() {
            if now.saturating_duration_since(b.sent_at) >= RETRY {
                b.sent_at = now;
                self.send_barrier();
            }
            return;
        }
        let b = self.barrier.take().expect("barrier");
        self.trace(NodeTrace::BarrierComplete { status: b.status, acked: b.acked });
        self.after_wait(now, b.status);
    }

    /// At a join's first barrier, the replicas that must stream its ranges (the ones losing
    /// them): one that stays silent past [`SOURCE_GRACE`] fails the join with what to do, rather
    /// than the barrier waiting for it with no word. When the operator allowed another source,
    /// the barrier does not wait for it either (that replica, if only partitioned, may serve
    /// the old placement: the consistency the operator gave up).
    pub(super) fn check_sources_at_boot(&mut self, now: Instant) -> Result<(), String> {
        let Some(b) = &self.barrier else { return Ok(()) };
        let Lifecycle::Joining(j) = &self.lifecycle else { return Ok(()) };
        if b.status != Status::Boot || now.saturating_duration_since(b.started) < SOURCE_GRACE {
            return Ok(());
        }
        let allow = j.allow_inconsistent_source;
        let moves = self.view.movements(self.id).unwrap_or_default();
        let down: Vec<(&RangeMovement, NodeId)> = moves
            .iter()
            .filter(|m| !j.done.contains(&m.range))
            .filter_map(|m| m.source.filter(|s| !self.is_alive(*s)).map(|s| (m, s)))
            .collect();
        if let Some((m, s)) = down.first().filter(|_| !allow) {
            return Err(source_down(m, *s));
        }
        let down: Vec<NodeId> = down.into_iter().map(|(_, s)| s).collect();
        if let Some(b) = &mut self.barrier {
            for s in down {
                b.involved.remove(&s);
            }
        }
        Ok(())
    }
}
