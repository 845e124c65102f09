//! `cmd.okdesk.comment.create` → `POST /issues/{id}/comments`: a public comment whose author
//! is the person's contact, the text as HTML (escaped, line breaks kept), files attached.
//! Made once per command (`okdesk.created_comments`; a retry after a lost answer first looks
//! for the same text by the same author). The comment is marked as seen, so it is not
//! announced back to the person who wrote it.

use base64::Engine as _;
use domain::{Command, CommentRequest, Envelope, Subject};
use okdesk_api::{Attachment, NewComment};
use service_kit::consumer::{ConsumerSpec, HandleError};

use crate::AppState;
use crate::consumers::{db_failure, okdesk_failure};

/// Durable name.
pub const DURABLE: &str = "okdesk-comments";

/// `cmd.okdesk.comment.create`, in order per person.
pub fn spec() -> ConsumerSpec<Command> {
    ConsumerSpec::new(
        DURABLE,
        Subject::command(Command::OKDESK_COMMENT_CREATE),
        |env| env.payload.ordering_key(),
    )
}

/// Handles one command.
pub async fn handle(state: AppState, env: Envelope<Command>) -> Result<(), HandleError> {
    let Command::OkdeskCommentCreate(r) = &env.payload else {
        return Ok(());
    };
    let key = env.idempotency_key.as_str();
    let before = state
        .store
        .comment_attempt(key, r.issue_id)
        .await
        .map_err(db_failure)?;
    let html = okdesk_api::text_to_html(&r.text);
    if let Some(a) = &before {
        if a.made_id.is_some() {
            return Ok(());
        }
        if let Some(id) = made_before(&state, r, &html).await? {
            state
                .store
                .comment_made(key, r.issue_id, id)
                .await
                .map_err(db_failure)?;
            return Ok(());
        }
    }
    let files = decode_files(r)?;
    let c = state
        .okdesk
        .create_comment(
            r.issue_id,
            NewComment {
                content_html: html,
                author_id: r.contact_id,
                public: true,
                attachments: files,
            },
        )
        .await
        .map_err(|e| okdesk_failure("comment create", e))?;
    state
        .store
        .comment_made(key, r.issue_id, c.id)
        .await
        .map_err(db_failure)?;
    tracing::info!(
        issue_id = r.issue_id,
        comment_id = c.id,
        files = r.files.len(),
        "person's comment added"
    );
    Ok(())
}

fn decode_files(r: &CommentRequest) -> Result<Vec<Attachment>, HandleError> {
    r.files
        .iter()
        .map(|f| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&f.base64)
                .map_err(|e| HandleError::Fatal(format!("file {} is not base64: {e}", f.name)))?;
            Ok(Attachment {
                file_name: f.name.clone(),
                mime: f.mime.clone(),
                bytes,
            })
        })
        .collect()
}

/// The comment an attempt whose answer was lost made: same author, same content.
async fn made_before(
    state: &AppState,
    r: &CommentRequest,
    html: &str,
) -> Result<Option<i64>, HandleError> {
    let comments = state
        .okdesk
        .issue_comments(r.issue_id)
        .await
        .map_err(|e| okdesk_failure("comment list", e))?;
    Ok(comments
        .iter()
        .rev()
        .find(|c| {
            c.author
                .as_ref()
                .is_some_and(|a| a.is_contact() && a.id == Some(r.contact_id))
                && c.content.trim() == html.trim()
        })
        .map(|c| c.id))
}
