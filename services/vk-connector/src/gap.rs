//! Whether agent replies may have been missed, so that the replies after a gap keep their order.
//!
//! Chatwoot sends each `message_created` webhook once. A reply whose webhook failed (this
//! process answered 5xx: NATS or Postgres down) or came while the process was not running is
//! picked up by the reconciliation sweep ([`crate::workers::reconcile`]), which publishes it
//! *after* whatever newer replies came by webhook meanwhile. So while a gap is *suspected* —
//! from the start of the process, and from each failed webhook, until a sweep that began after
//! it has gone through every conversation — and while an earlier webhook is still in hand (its
//! publish may be hanging on a NATS that just died), the webhook marks its commands
//! [`after_gap`](domain::OutboundMessage::after_gap), and the sender first delivers the
//! conversation's earlier undelivered replies ([`crate::consumers::sender`]). A failed webhook
//! also wakes the sweep ([`GAP_SWEEP_DELAY`] later) instead of leaving the missed reply to the
//! next periodic one.
//!
//! The state is per process: a replica that saw no failure does not mark its commands.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// How long after a failed webhook the sweep runs, and how soon it runs again while a gap is
/// still suspected (the previous sweep failed: NATS, Postgres or Chatwoot not back yet).
pub const GAP_SWEEP_DELAY: Duration = Duration::from_secs(2);

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
    /// Tickets of the webhooks in hand ([`Gap::guard`]), in arrival order.
    in_hand: BTreeSet<u64>,
    next_ticket: u64,
}

impl Default for Gap {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                epoch: 0,
                suspected: true,
                in_hand: BTreeSet::new(),
                next_ticket: 0,
            }),
            wake: Notify::new(),
        }
    }
}

impl Gap {
    /// A webhook could not be taken (or may have been lost): suspect a gap and wake the sweep.
    pub fn suspect(&self) {
        {
            let mut s = self.lock();
            s.epoch += 1;
            if !s.suspected {
                tracing::info!(
                    "a Chatwoot webhook failed: replies may have been missed; marking the next ones and sweeping soon"
                );
            }
            s.suspected = true;
        }
        self.wake.notify_one();
    }

    /// Whether replies may have been missed and no complete sweep ran since.
    pub fn is_suspected(&self) -> bool {
        self.lock().suspected
    }

    /// Call when a sweep starts; hand the value to [`Gap::swept`] when it went through every
    /// conversation.
    pub fn sweep_started(&self) -> u64 {
        self.lock().epoch
    }

    /// A sweep that started at `epoch` ([`Gap::sweep_started`]) queued every missed reply it
    /// could see: the gap is closed unless another webhook failed meanwhile.
    pub fn swept(&self, epoch: u64) {
        let mut s = self.lock();
        if s.epoch == epoch && s.suspected {
            s.suspected = false;
            tracing::info!("reconciliation caught up: replies are no longer marked");
        }
    }

    /// A guard for one webhook: unless [`WebhookGuard::taken`] is called, dropping it
    /// suspects a gap — the webhook failed, or Chatwoot gave up waiting and the handler was
    /// dropped in the middle (its reply may not be stored, and Chatwoot will not send it again).
    pub fn guard(&self) -> WebhookGuard<'_> {
        let ticket = {
            let mut s = self.lock();
            let t = s.next_ticket;
            s.next_ticket += 1;
            s.in_hand.insert(t);
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
    /// Whether this webhook's reply must be marked `after_gap`: a gap is suspected, or a
    /// webhook that came before this one is still in hand (it may yet fail).
    pub fn after_gap(&self) -> bool {
        let s = self.gap.lock();
        s.suspected || s.in_hand.first().is_some_and(|&t| t < self.ticket)
    }

    /// The webhook was handled: its reply is stored (or there was nothing to relay).
    pub fn taken(mut self) {
        self.taken = true;
    }
}

impl Drop for WebhookGuard<'_> {
    fn drop(&mut self) {
        self.gap.lock().in_hand.remove(&self.ticket);
        if !self.taken {
            self.gap.suspect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_closes_the_gap_only_when_nothing_failed_while_it_ran() {
        let gap = Gap::default();
        assert!(gap.is_suspected(), "a process starts suspecting a gap");
        let e = gap.sweep_started();
        gap.swept(e);
        assert!(!gap.is_suspected());

        gap.suspect();
        assert!(gap.is_suspected());
        let e = gap.sweep_started();
        gap.suspect(); // a webhook failed during the sweep
        gap.swept(e);
        assert!(gap.is_suspected(), "the sweep may have missed that one");
        let e = gap.sweep_started();
        gap.swept(e);
        assert!(!gap.is_suspected());
    }

    #[test]
    fn a_webhook_not_taken_suspects_a_gap() {
        let gap = Gap::default();
        gap.swept(gap.sweep_started());
        gap.guard().taken();
        assert!(!gap.is_suspected(), "a handled webhook");
        drop(gap.guard());
        assert!(gap.is_suspected(), "a failed or abandoned one");
    }

    #[test]
    fn a_reply_behind_a_webhook_still_in_hand_is_marked() {
        let gap = Gap::default();
        gap.swept(gap.sweep_started());
        let first = gap.guard();
        let second = gap.guard();
        assert!(!first.after_gap(), "nothing before it");
        assert!(second.after_gap(), "the first one may yet fail");
        first.taken();
        assert!(!second.after_gap());
        second.taken();
        assert!(!gap.is_suspected());
    }

    #[tokio::test]
    async fn a_suspicion_wakes_the_sweep() {
        let gap = std::sync::Arc::new(Gap::default());
        let g = gap.clone();
        let waiter = tokio::spawn(async move { g.woken().await });
        gap.suspect();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
    }
}
