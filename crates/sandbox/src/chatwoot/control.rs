//! [`Sandbox`] methods for tests of the Chatwoot fake's files, inboxes, webhooks and seeded
//! records (the older Chatwoot methods are in the crate root).

use serde_json::Value;
use time::OffsetDateTime;

use super::files::Upload;
use super::model::{Contact, Conversation};
use super::{NewMessage, store_message};
use crate::Sandbox;

impl Sandbox {
    /// Simulates an agent replying in the Chatwoot UI with files: an `outgoing` message from the
    /// agent with one attachment per `(file name, MIME type, bytes)`, whose `file_type` follows the
    /// MIME type like Chatwoot's (`image/png` → `image`, `audio/*` → `audio`, `video/mp4` →
    /// `video`, the rest `file`), and fires the `message_created` webhook with the attachments'
    /// `data_url`s. Returns the message id.
    ///
    /// # Errors
    /// The conversation does not exist, or a file is above the attachment limit.
    pub async fn chatwoot_agent_reply_with_files(
        &self,
        conversation_id: i64,
        text: &str,
        files: Vec<(String, String, Vec<u8>)>,
    ) -> anyhow::Result<i64> {
        let new = NewMessage {
            message_type: 1,
            content: (!text.trim().is_empty()).then(|| text.to_owned()),
            files: files
                .into_iter()
                .map(|(file_name, content_type, bytes)| Upload {
                    file_name,
                    content_type,
                    bytes,
                })
                .collect(),
            ..NewMessage::default()
        };
        store_message(&self.shared, conversation_id, new).map_err(|e| {
            anyhow::anyhow!("sandbox: Chatwoot refused the reply in {conversation_id}: {e:?}")
        })
    }

    /// The files of a message, in upload order: `(file_type, file name, bytes)`. Empty for a
    /// message without files (or an unknown one).
    pub fn chatwoot_attachment_bytes(&self, message_id: i64) -> Vec<(String, String, Vec<u8>)> {
        self.shared
            .read()
            .cw
            .attachments_of(message_id)
            .map(|a| {
                (
                    a.file_type.to_owned(),
                    a.file_name.clone(),
                    a.bytes.as_ref().clone(),
                )
            })
            .collect()
    }

    /// Every download of the file behind `data_url` (or its `thumb_url`) answers `status` from
    /// now on — the redirect and the disk URL alike; `200` serves it again. Files are matched by
    /// their blob's signed id in the URL, so the host part does not matter.
    ///
    /// # Panics
    /// When no file has that URL: that is a bug in the test.
    pub fn chatwoot_fail_file(&self, data_url: &str, status: u16) {
        let found = self.shared.mutate(|s| {
            let attachment =
                s.cw.attachments
                    .iter_mut()
                    .find(|a| data_url.contains(&format!("/{}/", a.signed_id)))?;
            attachment.fail_status = (status != 200).then_some(status);
            Some(())
        });
        assert!(found.is_some(), "sandbox: no Chatwoot file at {data_url}");
    }

    /// Lowers (or raises) the largest attachment the fake accepts, in bytes; default 40 MB
    /// (`40.megabytes`). Bodies above 4 MiB never reach the fake (413 from the recording
    /// layer), so tests of the 422 refusal use a smaller limit.
    pub fn chatwoot_set_attachment_limit(&self, bytes: u64) {
        self.shared.mutate(|s| s.cw.attachment_limit = bytes);
    }

    /// Inboxes as `GET /inboxes` renders each one; the first is the seeded API inbox
    /// ([`SandboxOptions::chatwoot_inbox_id`](crate::SandboxOptions), "VK (sandbox)").
    pub fn chatwoot_inboxes(&self) -> Vec<Value> {
        let state = self.shared.read();
        state
            .cw
            .inboxes
            .iter()
            .map(|i| state.cw.inbox_json(i))
            .collect()
    }

    /// Renames an inbox, as an administrator would in the settings.
    ///
    /// # Panics
    /// When the inbox does not exist: that is a bug in the test.
    pub fn chatwoot_rename_inbox(&self, id: i64, name: &str) {
        let found = self.shared.mutate(|s| {
            let inbox = s.cw.inboxes.iter_mut().find(|i| i.id == id)?;
            inbox.name = name.to_owned();
            Some(())
        });
        assert!(found.is_some(), "sandbox: no Chatwoot inbox {id}");
    }

    /// Account webhooks registered through the API, as `GET /webhooks` renders each one (with
    /// `secret`).
    pub fn chatwoot_webhooks(&self) -> Vec<Value> {
        let state = self.shared.read();
        state
            .cw
            .webhooks
            .iter()
            .map(|w| state.cw.webhook_json(w))
            .collect()
    }

    /// A contact created before the gateway existed (no uniqueness checks: seeds are the test's
    /// own). Returns its id.
    pub fn chatwoot_seed_contact(
        &self,
        name: &str,
        identifier: Option<&str>,
        email: Option<&str>,
        custom_attributes: Value,
    ) -> i64 {
        self.shared.mutate(|s| {
            let id = s.cw.next_id();
            s.cw.contacts.push(Contact {
                id,
                name: name.to_owned(),
                email: email.map(str::to_lowercase),
                phone_number: None,
                identifier: identifier.map(str::to_owned),
                additional_attributes: serde_json::json!({}),
                custom_attributes: object_or_empty(custom_attributes),
                created_at: OffsetDateTime::now_utc(),
                last_activity_at: None,
            });
            id
        })
    }

    /// An open conversation of `contact_id` in the seeded API inbox, through a contact inbox with
    /// `source_id` (found or created), as an earlier gateway would have left it. Returns the
    /// conversation's display id.
    ///
    /// # Panics
    /// When the contact does not exist, or `source_id` belongs to another contact in that inbox:
    /// bugs in the test.
    pub fn chatwoot_seed_conversation(
        &self,
        contact_id: i64,
        source_id: &str,
        additional_attributes: Value,
        custom_attributes: Value,
    ) -> i64 {
        let id = self.shared.mutate(|s| {
            let cw = &mut s.cw;
            cw.contact(contact_id)?;
            let inbox_id = cw.inbox_id;
            let contact_inbox_id = cw
                .link_contact(contact_id, inbox_id, Some(source_id.to_owned()))
                .ok()?;
            let id = cw.next_id();
            let now = OffsetDateTime::now_utc();
            cw.conversations.push(Conversation {
                id,
                uuid: uuid::Uuid::new_v4().to_string(),
                inbox_id,
                contact_id,
                contact_inbox_id,
                status: "open".into(),
                additional_attributes: object_or_empty(additional_attributes),
                custom_attributes: object_or_empty(custom_attributes),
                created_at: now,
                updated_at: now,
                last_activity_at: now,
                waiting_since: Some(now),
                first_reply_created_at: None,
            });
            Some(id)
        });
        id.unwrap_or_else(|| {
            panic!("sandbox: cannot seed a conversation of contact {contact_id} as {source_id}")
        })
    }
}

/// jsonb attributes are objects; anything else is stored as `{}`.
fn object_or_empty(value: Value) -> Value {
    if value.is_object() {
        value
    } else {
        serde_json::json!({})
    }
}
