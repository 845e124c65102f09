//! Turning what Okdesk says (a webhook, or the poll) into events, each change once.
//!
//! - A status change is the n-th change of its issue (`okdesk.issues.status_seq`) and is
//!   published with key `okdesk:issue:<id>:status:<n>`; the issue's row is locked while that
//!   is decided, so the webhook and the poll seeing the same change publish it once (and a
//!   JetStream duplicate window catches a crash between publish and commit).
//! - A public comment is published once with key `okdesk:comment:<id>`; private comments
//!   never leave Okdesk.
//! - An issue seen for the first time by the poll is a baseline: its status and comments are
//!   recorded without announcing them.

use domain::{
    CommentCreated, Envelope, Event, IdempotencyKey, Issue, IssueCreated, IssueStatus,
    IssueStatusChanged, Requester, Source,
};
use service_kit::bus::PublishError;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AppState;
use crate::store::Store;

/// Why an announcement did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// JetStream did not store the event.
    #[error(transparent)]
    Bus(#[from] PublishError),
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] sqlx::Error),
}

/// Status codes after which an issue is no longer polled.
pub fn is_closed(code: &str) -> bool {
    code == "closed"
}

/// An Okdesk status as the gateway shows it: the name, or the code when Okdesk gave none.
pub fn status_of(code: &str, name: Option<&str>) -> IssueStatus {
    IssueStatus {
        code: code.to_owned(),
        name: name.filter(|n| !n.is_empty()).unwrap_or(code).to_owned(),
    }
}

/// An issue without a status yet is `opened`.
pub fn opened() -> IssueStatus {
    status_of("opened", None)
}

/// Okdesk's RFC 3339 time, when it parses.
pub fn time_of(t: Option<&str>) -> Option<OffsetDateTime> {
    t.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

/// The gateway's view of an Okdesk issue.
pub fn issue(state: &AppState, i: &okdesk_api::Issue) -> Issue {
    Issue {
        id: i.id,
        title: i.title.clone(),
        status: i
            .status
            .as_ref()
            .map_or_else(opened, |s| status_of(&s.code, Some(&s.name))),
        url: state.okdesk.issue_url(i.id),
        contact_id: i.contact.as_ref().map(|c| c.id),
        company_id: i.company_id,
        created_at: time_of(i.created_at.as_deref()),
    }
}

async fn publish(
    state: &AppState,
    key: IdempotencyKey,
    event: Event,
) -> Result<bool, PublishError> {
    let env = Envelope::new(Source::Okdesk, OffsetDateTime::now_utc(), key, event);
    let published = state.bus.publish(&env).await?;
    Ok(!published.duplicate)
}

/// An issue to watch from now on: its current status is the baseline, nothing is announced.
pub async fn watch(state: &AppState, issue: &Issue) -> Result<(), AnnounceError> {
    let (tx, _, _) = state
        .store
        .lock_issue(issue.id, issue.contact_id, &issue.status.code)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A new issue: recorded as watched (its status is the baseline) and announced once with key
/// `okdesk:issue:<id>:created`.
pub async fn created(
    state: &AppState,
    issue: Issue,
    requester: Option<Requester>,
) -> Result<(), AnnounceError> {
    watch(state, &issue).await?;
    let key = IdempotencyKey::from_parts(&["okdesk", "issue", &issue.id.to_string(), "created"]);
    let id = issue.id;
    let fresh = publish(
        state,
        key,
        Event::IssueCreated(IssueCreated { issue, requester }),
    )
    .await?;
    tracing::info!(issue_id = id, fresh, "issue created announced");
    Ok(())
}

/// The issue's status as Okdesk says it now. `baseline_if_new`: an issue seen for the first
/// time is recorded without an announcement (the poll); otherwise a first sighting with a
/// status other than `opened` is announced (a webhook about an issue opened elsewhere).
/// Returns whether a change was announced.
pub async fn status(
    state: &AppState,
    issue: &Issue,
    old_status: Option<IssueStatus>,
    baseline_if_new: bool,
) -> Result<bool, AnnounceError> {
    let code = &issue.status.code;
    let (mut tx, before, new_row) = state
        .store
        .lock_issue(issue.id, issue.contact_id, code)
        .await?;
    let changed = if new_row {
        !baseline_if_new && code != "opened"
    } else {
        before.status_code != *code
    };
    if !changed {
        if new_row && is_closed(code) {
            Store::set_status(&mut tx, issue.id, code, before.status_seq, true).await?;
        }
        tx.commit().await?;
        return Ok(false);
    }
    let seq = before.status_seq + 1;
    let key = IdempotencyKey::from_parts(&[
        "okdesk",
        "issue",
        &issue.id.to_string(),
        "status",
        &seq.to_string(),
    ]);
    let old_status = old_status.or_else(|| {
        (!new_row).then(|| IssueStatus {
            code: before.status_code.clone(),
            name: before.status_code.clone(),
        })
    });
    publish(
        state,
        key,
        Event::IssueStatusChanged(IssueStatusChanged {
            issue: issue.clone(),
            old_status,
        }),
    )
    .await?;
    Store::set_status(&mut tx, issue.id, code, seq, is_closed(code)).await?;
    tx.commit().await?;
    tracing::info!(issue_id = issue.id, status = %code, seq, "status change announced");
    metrics::counter!("okdesk_announced_total", "kind" => "status").increment(1);
    Ok(true)
}

/// A comment as either source (webhook or API) tells it.
#[derive(Debug, Clone)]
pub struct SeenComment {
    /// Okdesk's comment id.
    pub id: i64,
    /// Its content, HTML.
    pub html: String,
    /// Public (REST `public`, webhook `is_public`).
    pub public: bool,
    /// Who wrote it.
    pub author: Option<String>,
    /// Written by a contact (the person's own comment).
    pub by_contact: bool,
}

impl SeenComment {
    /// From the REST API's comment.
    pub fn from_api(c: &okdesk_api::Comment) -> Self {
        Self {
            id: c.id,
            html: c.content.clone(),
            public: c.public,
            author: c.author.as_ref().and_then(|a| a.name.clone()),
            by_contact: c.author.as_ref().is_some_and(|a| a.is_contact()),
        }
    }
}

/// A comment on `issue`: announced once when public; private ones are only logged.
/// Returns whether it was announced now.
pub async fn comment(
    state: &AppState,
    issue: &Issue,
    c: &SeenComment,
) -> Result<bool, AnnounceError> {
    if !c.public {
        tracing::debug!(
            issue_id = issue.id,
            comment_id = c.id,
            "private comment; stays in Okdesk"
        );
        return Ok(false);
    }
    if state.store.comment_seen(c.id).await? {
        return Ok(false);
    }
    let key = IdempotencyKey::from_parts(&["okdesk", "comment", &c.id.to_string()]);
    publish(
        state,
        key,
        Event::CommentCreated(CommentCreated {
            issue: issue.clone(),
            comment_id: c.id,
            text: okdesk_api::html_to_text(&c.html),
            author: c.author.clone(),
            by_contact: c.by_contact,
        }),
    )
    .await?;
    state.store.mark_comments_seen(issue.id, &[c.id]).await?;
    tracing::info!(
        issue_id = issue.id,
        comment_id = c.id,
        by_contact = c.by_contact,
        "public comment announced"
    );
    metrics::counter!("okdesk_announced_total", "kind" => "comment").increment(1);
    Ok(true)
}
