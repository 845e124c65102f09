//! Operator notices: problems a person must fix (the bot removed from the group, no right to
//! manage topics, another program polling with the token) are sent to `BOT_DEV_ID` once, not
//! on every message, and may be sent again after the problem went away and came back. Which
//! notices were sent is kept in `telegram.operator_notices`, so a restart does not repeat them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::AppState;
use crate::texts;

/// A problem worth a person's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// createForumTopic: not enough rights (not an admin, or no "Manage topics").
    NoTopicRights,
    /// 403 from the group: the bot was removed or may not post.
    RemovedFromGroup,
    /// getUpdates 409: another poller, or a webhook, uses the token.
    PollConflict,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::NoTopicRights => "no_topic_rights",
            Kind::RemovedFromGroup => "removed_from_group",
            Kind::PollConflict => "poll_conflict",
        }
    }
}

/// What this process knows of the notices' state, so that a healthy loop does not write to
/// the database on every round: `Some(true)` raised, `Some(false)` clear, absent unknown.
#[derive(Debug, Clone, Default)]
pub struct Memory(Arc<Mutex<HashMap<Kind, bool>>>);

impl Memory {
    fn get(&self, k: Kind) -> Option<bool> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&k)
            .copied()
    }
    fn set(&self, k: Kind, raised: bool) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(k, raised);
    }
}

/// The problem `kind` is there: logs it, and tells `BOT_DEV_ID` unless told already.
pub async fn raise(state: &AppState, kind: Kind) {
    tracing::error!(
        notice = kind.as_str(),
        group_id = state.settings.group_id,
        "needs an operator"
    );
    if state.notices.get(kind) == Some(true) {
        return;
    }
    let Some(dev) = state.settings.dev_id else {
        state.notices.set(kind, true);
        return;
    };
    match state.store.claim_notice(kind.as_str()).await {
        Ok(false) => state.notices.set(kind, true),
        Ok(true) => {
            let text = match kind {
                Kind::NoTopicRights => texts::notice_no_topic_rights(state.settings.group_id),
                Kind::RemovedFromGroup => texts::notice_removed_from_group(state.settings.group_id),
                Kind::PollConflict => texts::notice_poll_conflict().to_owned(),
            };
            match state.telegram.send_text(dev, None, &text, &[], None).await {
                Ok(_) => {
                    tracing::info!(notice = kind.as_str(), "operator notice sent to BOT_DEV_ID");
                    state.notices.set(kind, true);
                }
                Err(e) => {
                    tracing::warn!(error = %e, notice = kind.as_str(), "operator notice could not be sent to BOT_DEV_ID");
                    let _ = state.store.clear_notice(kind.as_str()).await;
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "recording an operator notice failed"),
    }
}

/// The problem `kind` is gone: the notice may be sent again next time.
pub async fn resolved(state: &AppState, kind: Kind) {
    if state.notices.get(kind) == Some(false) {
        return;
    }
    if state.store.clear_notice(kind.as_str()).await.is_ok() {
        state.notices.set(kind, false);
    }
}
