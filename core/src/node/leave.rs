//! Decommission: LEAVING, each range pushed to the node gaining it, hints handed over to live
//! peers, MID_LEAVE, LEFT.

use super::lifecycle::{AdminError, JoinPhase, LeaveState, Lifecycle, Persisted, RETRY, backoff};
use super::{Node, NodeTrace};
use crate::gossip::Status;
use crate::id::NodeId;
use crate::message::Message;
use crate::storage::{Hint, Storage, StorageError};
use crate::streaming::{MovementProgress, OutStream, StreamCounters, StreamPurpose};
use crate::time::Instant;
use std::collections::VecDeque;

/// A hint handed to a peer by a leaving node, not acknowledged yet.
#[derive(Clone, Debug)]
pub(super) struct Handoff {
    sent_at: Instant,
    attempts: u32,
}

impl<S: Storage> Node<S> {
    /// Starts decommissioning this node: LEAVING, stream every range to the node gaining it,
    /// hand hints over, LEFT.
    pub fn decommission(&mut self, now: Instant) -> Result<(), AdminError> {
        if self.stopped {
            return Err(AdminError::Stopped);
        }
        let resuming = matches!(&self.lifecycle, Lifecycle::Leaving(l) if matches!(l.phase, JoinPhase::Interrupted | JoinPhase::Failed { .. }));
        if !resuming {
            if self.lifecycle != Lifecycle::Normal {
                return Err(AdminError::NotNormal(self.lifecycle.describe()));
            }
            let conflict = if self.config.join_strategy.uses_barriers() {
                let moves = self.view.movements_if_leaving(self.id).unwrap_or_default();
                self.view.conflicting_movement(self.id, &moves).map(|(n, s, _)| (n, s))
            } else {
                self.view.movement_in_progress()
            };
            if let Some((node, status)) = conflict {
                return Err(AdminError::MovementInProgress { node, status });
            }
            let owners = self
                .view
                .members
                .values()
                .filter(|m| matches!(m.status, Status::Normal | Status::Leaving | Status::MidLeave))
                .count();
            if owners <= self.view.rf {
                return Err(AdminError::TooFewNodes { remaining: owners - 1, rf: self.view.rf });
            }
        }
        self.lifecycle = Lifecycle::Leaving(Box::new(LeaveState {
            phase: JoinPhase::Streaming,
            todo: VecDeque::new(),
            current: None,
            progress: MovementProgress::default(),
        }));
        self.persist_lifecycle(Persisted::Leaving);
        let tokens = self.own_tokens();
        if self.view.status(self.id) != Some(Status::Leaving) {
            self.announce(Status::Leaving, &tokens);
        }
        self.wait_for(now, Status::Leaving);
        Ok(())
    }

    pub(super) fn start_leave_streaming(&mut self, now: Instant) {
        let moves = match self.view.movements(self.id) {
            Ok(m) => m,
            Err(e) => return self.fail_movement(format!("cannot plan the decommission: {e}")),
        };
        if let Some(m) = moves.iter().find(|m| !self.is_alive(m.gainer)) {
            return self.fail_movement(format!(
                "{} gains {} but is down; bring it back and run decommission again",
                m.gainer, m.range
            ));
        }
        if let Lifecycle::Leaving(l) = &mut self.lifecycle {
            l.phase = JoinPhase::Streaming;
            l.progress.ranges_total = moves.len();
            l.progress.ranges_done = 0;
            l.todo = moves.iter().map(|m| (m.range, m.gainer)).collect();
        }
        self.next_leave_range(now);
    }

    fn next_leave_range(&mut self, now: Instant) {
        let session = self.next_session();
        let Lifecycle::Leaving(l) = &mut self.lifecycle else { return };
        match l.todo.pop_front() {
            Some((range, gainer)) => {
                l.current = Some((session, range, gainer));
                self.out_streams.insert(
                    (gainer, session),
                    OutStream::new(gainer, session, range, StreamPurpose::Leave, now),
                );
                if let Some(t) = self.pump_out_streams(now) {
                    self.schedule_lifecycle(t);
                }
            }
            None => {
                l.current = None;
                l.phase = JoinPhase::Handoff;
                self.hand_off_hints(now);
                self.schedule_lifecycle(now + RETRY);
            }
        }
    }

    pub(super) fn leave_range_done(&mut self, now: Instant, session: u64, sent: StreamCounters) {
        let Lifecycle::Leaving(l) = &mut self.lifecycle else { return };
        if l.current.is_some_and(|(s, _, _)| s == session) {
            l.progress.ranges_done += 1;
            l.progress.moved.keys += sent.keys;
            l.progress.moved.bytes += sent.bytes;
            self.next_leave_range(now);
        }
    }

    /// Sends every stored hint to a live peer that keeps it for its target; LEFT when none
    /// remain.
    pub(super) fn hand_off_hints(&mut self, now: Instant) {
        let hints = match self.storage.hints() {
            Ok(h) => h,
            Err(e) => return self.fatal(e),
        };
        if hints.is_empty() {
            // Reads switch to the gainers while this node still takes writes; LEFT once every
            // coordinator has switched.
            let tokens = self.own_tokens();
            self.announce(Status::MidLeave, &tokens);
            self.wait_for(now, Status::MidLeave);
            return;
        }
        let peers: Vec<NodeId> = self
            .view
            .members
            .iter()
            .filter(|(n, m)| **n != self.id && m.status == Status::Normal && self.is_alive(**n))
            .map(|(n, _)| *n)
            .collect();
        for (i, hint) in hints.into_iter().enumerate() {
            // An unanswered hint (the hint or its ack lost, the peer gone) is sent again after
            // a backoff, to the next peer: the receiver may store it twice, which replays the
            // same version twice, harmlessly.
            let attempts = match self.handoffs.get(&hint.id) {
                Some(h) if now.saturating_duration_since(h.sent_at) < backoff(h.attempts) => {
                    continue;
                }
                Some(h) => h.attempts + 1,
                None => 0,
            };
            let candidates: Vec<NodeId> =
                peers.iter().copied().filter(|p| *p != hint.target).collect();
            if candidates.is_empty() {
                continue;
            }
            let to = candidates[(i + attempts as usize) % candidates.len()];
            self.handoffs.insert(hint.id, Handoff { sent_at: now, attempts });
            self.send(to, Message::HandoffHint { hint });
        }
    }

    pub(super) fn on_handoff_hint(
        &mut self,
        _now: Instant,
        from: NodeId,
        hint: Hint,
    ) -> Result<(), StorageError> {
        let sender_id = hint.id;
        let id = self.hint_ids.next(&mut self.storage)?;
        self.storage.put_hint(&Hint { id, ..hint })?;
        self.send(from, Message::HandoffAck { id: sender_id });
        Ok(())
    }

    pub(super) fn on_handoff_ack(&mut self, now: Instant, id: u64) -> Result<(), StorageError> {
        if self.handoffs.remove(&id).is_some() {
            self.storage.remove_hint(id)?;
            if self.handoffs.is_empty()
                && matches!(&self.lifecycle, Lifecycle::Leaving(l) if l.phase == JoinPhase::Handoff)
            {
                self.hand_off_hints(now);
            }
        }
        Ok(())
    }

    pub(super) fn complete_leave(&mut self) {
        self.lifecycle = Lifecycle::Left;
        self.persist_lifecycle(Persisted::Left);
        self.trace(NodeTrace::Decommissioned);
    }
}
