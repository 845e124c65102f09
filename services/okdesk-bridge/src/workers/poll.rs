//! Every `OKDESK_POLL_INTERVAL_SECS`: the issues of registered contacts, their status and
//! public comments, through the same [`crate::announce`] as the webhook — so a change a
//! webhook missed is announced once, and one the webhook already announced is not again.
//! An issue seen for the first time is a baseline (nothing announced); closed issues are not
//! polled any more. Runs on one replica at a time (lease `okdesk.poll`).

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::announce::{self, SeenComment};

/// Polls until `stop`.
///
/// Errors: none; failures are logged and the next round tries again.
pub async fn run(state: AppState, every: Duration, stop: CancellationToken) -> anyhow::Result<()> {
    let pool = state.store.pool().clone();
    service_kit::lease::run_exclusive(&pool, "okdesk.poll", stop, |held| {
        let state = state.clone();
        async move {
            loop {
                match round(&state).await {
                    Ok(n) => tracing::debug!(announced = n, "poll round done"),
                    Err(e) => tracing::warn!(
                        error = format!("{e:#}"),
                        "poll round failed; next round as usual"
                    ),
                }
                tokio::select! {
                    _ = held.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        }
    })
    .await;
    Ok(())
}

/// One round; returns how many changes were announced.
///
/// Errors: Okdesk or the database failed (the rest of the round is skipped).
pub async fn round(state: &AppState) -> anyhow::Result<usize> {
    let mut announced = 0;
    // Watched and open (known), then the contacts' issues not seen before (first sighting).
    let mut ids: Vec<(i64, bool)> = state
        .store
        .open_issues()
        .await?
        .into_iter()
        .map(|id| (id, false))
        .collect();
    let mut seen: HashSet<i64> = ids.iter().map(|(id, _)| *id).collect();
    for contact in state.store.contacts().await? {
        for id in state.okdesk.issue_ids_of_contact(contact).await? {
            if !seen.insert(id) {
                continue;
            }
            match state.store.issue_closed(id).await? {
                Some(true) => {}
                Some(false) => ids.push((id, false)),
                None => ids.push((id, true)),
            }
        }
    }
    for (id, first_sighting) in ids {
        let Some(raw) = state.okdesk.issue(id).await? else {
            continue;
        };
        let issue = announce::issue(state, &raw);
        if announce::status(state, &issue, None, true).await? {
            announced += 1;
        }
        let comments = state.okdesk.issue_comments(id).await?;
        if first_sighting {
            let all: Vec<i64> = comments.iter().map(|c| c.id).collect();
            state.store.mark_comments_seen(id, &all).await?;
            continue;
        }
        for c in &comments {
            if announce::comment(state, &issue, &SeenComment::from_api(c)).await? {
                announced += 1;
            }
        }
    }
    metrics::counter!("okdesk_poll_rounds_total").increment(1);
    Ok(announced)
}
