//! `cmd.okdesk.issue.create` → `POST /issues` under the person's contact (and company), then
//! `events.okdesk.issue.created` with the requester, so the person gets the number and link.
//!
//! Created once: the command's idempotency key is recorded in `okdesk.created_issues`; a
//! redelivery after success answers with the recorded issue. Okdesk has no idempotency key of
//! its own, so a retry after an attempt whose answer was lost (a timeout) first looks among the
//! contact's issues for one with the same title created since the first attempt.

use domain::{Command, Envelope, IssueRequest, Subject};
use okdesk_api::NewIssue;
use service_kit::consumer::{ConsumerSpec, HandleError};
use time::OffsetDateTime;

use crate::AppState;
use crate::announce;
use crate::consumers::{announce_failure, db_failure, okdesk_failure};

/// Durable name.
pub const DURABLE: &str = "okdesk-issues";

/// `cmd.okdesk.issue.create`, in order per person.
pub fn spec() -> ConsumerSpec<Command> {
    ConsumerSpec::new(
        DURABLE,
        Subject::command(Command::OKDESK_ISSUE_CREATE),
        |env| env.payload.ordering_key(),
    )
}

/// Handles one command.
pub async fn handle(state: AppState, env: Envelope<Command>) -> Result<(), HandleError> {
    let Command::OkdeskIssueCreate(r) = &env.payload else {
        return Ok(());
    };
    let key = env.idempotency_key.as_str();
    let before = state.store.issue_attempt(key).await.map_err(db_failure)?;
    let existing = match &before {
        Some(a) => match a.made_id {
            Some(id) => Some(id),
            None => made_since(&state, r, a.first_attempt).await?,
        },
        None => None,
    };
    let issue = match existing {
        Some(id) => match state.okdesk.issue(id).await {
            Ok(Some(i)) => i,
            Ok(None) => {
                return Err(HandleError::Fatal(format!(
                    "issue {id} vanished from Okdesk"
                )));
            }
            Err(e) => return Err(okdesk_failure("issue get", e)),
        },
        None => state
            .okdesk
            .create_issue(NewIssue {
                title: r.title.clone(),
                description: Some(okdesk_api::text_to_html(&r.description)),
                contact_id: Some(r.contact_id),
                company_id: r.company_id,
                ..NewIssue::default()
            })
            .await
            .map_err(|e| okdesk_failure("issue create", e))?,
    };
    state
        .store
        .issue_made(key, issue.id)
        .await
        .map_err(db_failure)?;
    let domain_issue = announce::issue(&state, &issue);
    announce::created(&state, domain_issue, Some(r.requester.clone()))
        .await
        .map_err(announce_failure)?;
    tracing::info!(
        issue_id = issue.id,
        contact_id = r.contact_id,
        reused = existing.is_some(),
        "issue opened for a person"
    );
    metrics::counter!("okdesk_issues_created_total").increment(1);
    Ok(())
}

/// An issue of the contact with the request's title created since `since`: what an attempt
/// whose answer was lost made.
async fn made_since(
    state: &AppState,
    r: &IssueRequest,
    since: OffsetDateTime,
) -> Result<Option<i64>, HandleError> {
    let ids = state
        .okdesk
        .issue_ids_of_contact(r.contact_id)
        .await
        .map_err(|e| okdesk_failure("issue list", e))?;
    // Newest first: ids grow.
    let mut ids = ids;
    ids.sort_unstable_by(|a, b| b.cmp(a));
    for id in ids.into_iter().take(10) {
        let Some(i) = state
            .okdesk
            .issue(id)
            .await
            .map_err(|e| okdesk_failure("issue get", e))?
        else {
            continue;
        };
        let created = announce::time_of(i.created_at.as_deref());
        if i.title == r.title && created.is_none_or(|c| c + time::Duration::seconds(5) >= since) {
            tracing::warn!(
                issue_id = id,
                "an earlier attempt had opened the issue; not opening another"
            );
            return Ok(Some(id));
        }
    }
    Ok(None)
}
