//! Whether agent replies may have been missed, so that the replies after a gap keep their order.
//!
//! Chatwoot sends each `message_created` webhook once. A reply whose webhook failed (this
//! process answered 5xx: NATS or Postgres down; or Chatwoot hung up while the publish waited)
//! or came while the process was not running is picked up by the reconciliation sweep
//! ([`crate::workers::reconcile`]), which publishes it *after* whatever newer replies came by
//! webhook meanwhile. So the webhook marks its reply
//! [`after_gap`](domain::OutboundMessage::after_gap), and the sender first delivers the
//! conversation's earlier undelivered replies ([`crate::consumers::sender`]), while:
//!
//! - a gap is *suspected*: from the start of the process, and from each failed webhook, until a
//!   sweep that began after it has listed every conversation it covers — the recently active
//!   ones (`RECONCILE_LOOKBACK_SECS`) and those of the failed webhooks that could be read;
//! - or an earlier webhook of the same conversation (or one not read yet) is still in hand:
//!   its publish may be hanging on a NATS that just died.
//!
//! A failed webhook also wakes the sweep ([`GAP_SWEEP_DELAY`] later) instead of leaving the
//! missed reply to the next periodic one.
//!
//! The state is per process: a replica that saw no failure does not mark its replies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// How long after a failed webhook the sweep runs, and the first wait before it runs again
/// while a gap is still suspected (the previous sweep failed: NATS, Postgres or Chatwoot not
/// back yet); the wait doubles up to [`GAP_SWEEP_MAX_DELAY`].
pub const GAP_SWEEP_DELAY: Duration = Duration::from_secs(2);

/// The longest wait between the sweeps of a suspected gap.
pub const GAP_SWEEP_MAX_DELAY: Duration = Duration::from_secs(60);

/// The gap state of this process; see the module docs. Starts suspected.
#[derive(Debug)]
pub struct Gap {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Debug)]
struct State {
    /// Bumped by every [`Gap::suspect`]: a sweep clears the suspicion only if no new one came
    /// while it ran.
    epoch: u64,
    suspected: bool,
    /// The webhooks in hand ([`Gap::guard`]) by ticket (arrival order), with their Chatwoot
    /// conversation once read.
    in_hand: BTreeMap<u64, Option<i64>>,
    next_ticket: u64,
    /// Chatwoot conversations of failed webhooks, for the next sweep to list even when they
    /// are not among the recently active ones.
    missed: BTreeSet<i64>,
}

/// What a sweep must cover to close the gap; from [`Gap::sweep_started`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepStart {
    epoch: u64,
    /// Chatwoot conversations of failed webhooks, to list besides the recently active ones.
    pub missed: Vec<i64>,
}

impl Default for Gap {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                epoch: 0,
                suspected: true,
                in_hand: BTreeMap::new(),
                next_ticket: 0,
                missed: BTreeSet::new(),
            }),
            wake: Notify::new(),
        }
    }
}

impl Gap {
    /// A webhook could not be taken (or may have been lost), in Chatwoot conversation
    /// `conversation` when it was read that far: suspect a gap and wake the sweep.
    pub fn suspect(&self, conversation: Option<i64>) {
        {
            let mut s = self.lock();
            s.epoch += 1;
            if !s.suspected {
                tracing::info!(
                    chatwoot_conversation_id = conversation,
                    "a Chatwoot webhook failed: replies may have been missed; marking the next ones and sweeping soon"
                );
            }
            s.suspected = true;
            s.missed.extend(conversation);
        }
        self.wake.notify_one();
    }

    /// Whether replies may have been missed and no complete sweep ran since.
    pub fn is_suspected(&self) -> bool {
        self.lock().suspected
    }

    /// Call when a sweep starts; it must list [`SweepStart::missed`] too, and hand the value
    /// to [`Gap::swept`].
    pub fn sweep_started(&self) -> SweepStart {
        let s = self.lock();
        SweepStart {
            epoch: s.epoch,
            missed: s.missed.iter().copied().collect(),
        }
    }

    /// The sweep of `start` ended; `complete`: it listed every conversation it covers (none
    /// failed for a reason that can pass). Then its missed conversations are done, and the gap
    /// is closed unless another webhook failed meanwhile.
    pub fn swept(&self, start: &SweepStart, complete: bool) {
        if !complete {
            return;
        }
        let mut s = self.lock();
        for c in &start.missed {
            s.missed.remove(c);
        }
        if s.epoch == start.epoch && s.missed.is_empty() && s.suspected {
            s.suspected = false;
            tracing::info!("reconciliation caught up: replies are no longer marked");
        }
    }

    /// A guard for one webhook: unless [`WebhookGuard::taken`] is called, dropping it
    /// suspects a gap — the webhook failed, or Chatwoot gave up waiting and the handler was
    /// dropped in the middle (its reply may not be published, and Chatwoot will not send it
    /// again).
    pub fn guard(&self) -> WebhookGuard<'_> {
        let ticket = {
            let mut s = self.lock();
            let t = s.next_ticket;
            s.next_ticket += 1;
            s.in_hand.insert(t, None);
            t
        };
        WebhookGuard {
            gap: self,
            ticket,
            taken: false,
        }
    }

    /// Resolves at the next [`Gap::suspect`] (or at once if one came since the last wait).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// See [`Gap::guard`].
#[derive(Debug)]
pub struct WebhookGuard<'a> {
    gap: &'a Gap,
    ticket: u64,
    taken: bool,
}

impl WebhookGuard<'_> {
    /// The webhook was read: its reply is in Chatwoot conversation `id`.
    pub fn conversation(&self, id: i64) {
        self.gap.lock().in_hand.insert(self.ticket, Some(id));
    }

    /// Whether this webhook's reply must be marked `after_gap`: a gap is suspected, or a
    /// webhook that came before this one is still in hand, of the same conversation or not
    /// read yet (it may yet fail).
    pub fn after_gap(&self) -> bool {
        let s = self.gap.lock();
        let mine = s.in_hand.get(&self.ticket).copied().flatten();
        s.suspected
            || s.in_hand
                .range(..self.ticket)
                .any(|(_, c)| c.is_none() || *c == mine)
    }

    /// The webhook was handled: its reply is published (or there was nothing to relay).
    pub fn taken(mut self) {
        self.taken = true;
    }
}

impl Drop for WebhookGuard<'_> {
    fn drop(&mut self) {
        let conversation = self.gap.lock().in_hand.remove(&self.ticket).flatten();
        if !self.taken {
            self.gap.suspect(conversation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(gap: &Gap) {
        let start = gap.sweep_started();
        gap.swept(&start, true);
    }

    #[test]
    fn a_sweep_closes_the_gap_only_when_nothing_failed_while_it_ran() {
        let gap = Gap::default();
        assert!(gap.is_suspected(), "a process starts suspecting a gap");
        close(&gap);
        assert!(!gap.is_suspected());

        gap.suspect(None);
        assert!(gap.is_suspected());
        let start = gap.sweep_started();
        gap.suspect(None); // a webhook failed during the sweep
        gap.swept(&start, true);
        assert!(gap.is_suspected(), "the sweep may have missed that one");
        let start = gap.sweep_started();
        gap.swept(&start, false);
        assert!(gap.is_suspected(), "an incomplete sweep closes nothing");
        close(&gap);
        assert!(!gap.is_suspected());
    }

    #[test]
    fn the_conversation_of_a_failed_webhook_is_swept_before_the_gap_closes() {
        let gap = Gap::default();
        close(&gap);
        let g = gap.guard();
        g.conversation(42);
        drop(g);
        let start = gap.sweep_started();
        assert_eq!(start.missed, [42]);
        gap.swept(&start, true);
        assert!(!gap.is_suspected());
        assert!(gap.sweep_started().missed.is_empty());
    }

    #[test]
    fn a_webhook_not_taken_suspects_a_gap() {
        let gap = Gap::default();
        close(&gap);
        gap.guard().taken();
        assert!(!gap.is_suspected(), "a handled webhook");
        drop(gap.guard());
        assert!(gap.is_suspected(), "a failed or abandoned one");
    }

    #[test]
    fn a_reply_behind_a_webhook_of_its_conversation_still_in_hand_is_marked() {
        let gap = Gap::default();
        close(&gap);
        let first = gap.guard();
        let second = gap.guard();
        assert!(!first.after_gap(), "nothing before it");
        assert!(second.after_gap(), "the first one is not read yet");
        first.conversation(1);
        second.conversation(2);
        assert!(!second.after_gap(), "another conversation");
        let third = gap.guard();
        third.conversation(1);
        assert!(
            third.after_gap(),
            "the first one, same conversation, may yet fail"
        );
        first.taken();
        assert!(!third.after_gap());
        second.taken();
        third.taken();
        assert!(!gap.is_suspected());
    }

    #[tokio::test]
    async fn a_suspicion_wakes_the_sweep() {
        let gap = std::sync::Arc::new(Gap::default());
        let g = gap.clone();
        let waiter = tokio::spawn(async move { g.woken().await });
        gap.suspect(None);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
    }
}
