//! `events.okdesk.>` → the people they concern, in their private chats (only with
//! `OKDESK_ENABLED`).
//!
//! | event | who hears | what |
//! |---|---|---|
//! | `contact.registered` | the requester, when this bot's | the contact is stored; «Готово: вы зарегистрированы…» and the menu |
//! | `issue.created` | the requester, when this bot's (issues opened in Okdesk have none) | «Заявка №N создана: `url`» |
//! | `issue.status_changed` | every registered person of the issue's contact | «Статус заявки №N: `name`» |
//! | `comment.created` | the same, unless the contact wrote it (`by_contact`) | «Комментарий к заявке №N: …» |
//!
//! okdesk-bridge publishes public comments only; private ones never leave Okdesk. A
//! notification is sent once per event and person (`notice:<idempotency key>:<user id>` in
//! `telegram.helpdesk_done`), however often the event is delivered. That key is written after
//! the send and retried in place ([`record_sent`]), so a Postgres restart does not repeat the
//! notification: only a kill between Telegram's answer and the write can. A person who
//! blocked the bot is skipped.
//!
//! Ordered by [`Event::ordering_key`]: per issue (`issue:<id>`), so a status change and a
//! comment reach the person in the order Okdesk made them; `contact.registered` per person.

use domain::{Envelope, Event, Issue, Requester, Source, Subject};
use frankenstein::types::ReplyMarkup;
use service_kit::consumer::{ConsumerSpec, HandleError};

use crate::AppState;
use crate::consumers::{db_failure, record_sent, tg_failure};
use crate::helpdesk::{keyboards, okdesk};
use crate::store::Person;
use crate::texts::Lang;
use crate::texts::helpdesk as t;

/// Durable name, shared by all replicas.
pub const DURABLE: &str = "telegram-helpdesk-notify";

/// `events.okdesk.>`, in order per issue (and per person for registrations).
pub fn spec() -> ConsumerSpec<Event> {
    ConsumerSpec::new(DURABLE, Subject::event(Source::Okdesk, ">"), |env| {
        env.payload.ordering_key()
    })
}

/// Handles one envelope.
pub async fn handle(state: AppState, env: Envelope<Event>) -> Result<(), HandleError> {
    let key = env.idempotency_key.as_str();
    match &env.payload {
        Event::ContactRegistered(r) => {
            if !ours(&state, &r.requester) {
                return Ok(());
            }
            let company = r.company.as_ref().map(|c| (c.id, c.name.as_str()));
            let person = state
                .store
                .registered(r.requester.user_id, r.contact_id, company)
                .await
                .map_err(db_failure)?;
            tracing::info!(
                user_id = person.user_id,
                contact_id = r.contact_id,
                created = r.created,
                "person registered as an Okdesk contact"
            );
            let lang = lang_of(&person);
            let text = t::registered(lang, person.company_name.as_deref());
            notify(
                &state,
                key,
                person.user_id,
                &text,
                Some(keyboards::menu(lang)),
            )
            .await
        }
        Event::IssueCreated(c) => {
            let Some(r) = c.requester.as_ref().filter(|r| ours(&state, r)) else {
                return Ok(());
            };
            let person = state.store.person(r.user_id).await.map_err(db_failure)?;
            let lang = person.as_ref().map_or(Lang::Ru, lang_of);
            notify(
                &state,
                key,
                r.user_id,
                &t::issue_created(lang, &c.issue),
                None,
            )
            .await
        }
        Event::IssueStatusChanged(s) => {
            to_contact(&state, key, &s.issue, |lang| {
                t::status_changed(lang, &s.issue)
            })
            .await
        }
        Event::CommentCreated(c) if c.by_contact => {
            tracing::debug!(issue = c.issue.id, "the person's own comment; not echoed");
            Ok(())
        }
        Event::CommentCreated(c) => {
            to_contact(&state, key, &c.issue, |lang| {
                t::comment_added(lang, &c.issue, c.author.as_deref(), &c.text)
            })
            .await
        }
        other => {
            tracing::debug!(r#type = other.type_name(), "not a helpdesk notification");
            Ok(())
        }
    }
}

fn ours(state: &AppState, r: &Requester) -> bool {
    r.system == okdesk::SYSTEM && r.bot_id == state.settings.bot_id
}

fn lang_of(p: &Person) -> Lang {
    Lang::of(p.language.as_deref())
}

/// Tells every person registered as the issue's contact.
async fn to_contact(
    state: &AppState,
    key: &str,
    issue: &Issue,
    text: impl Fn(Lang) -> String,
) -> Result<(), HandleError> {
    let Some(contact) = issue.contact_id else {
        tracing::debug!(issue = issue.id, "issue without a contact; nobody to tell");
        return Ok(());
    };
    let people = state
        .store
        .people_of_contact(contact)
        .await
        .map_err(db_failure)?;
    for p in &people {
        notify(state, key, p.user_id, &text(lang_of(p)), None).await?;
    }
    Ok(())
}

/// Sends `text` to `user_id` once per event `key`.
async fn notify(
    state: &AppState,
    key: &str,
    user_id: i64,
    text: &str,
    markup: Option<ReplyMarkup>,
) -> Result<(), HandleError> {
    let done = format!("notice:{key}:{user_id}");
    if state.store.is_done(&done).await.map_err(db_failure)? {
        tracing::info!(user_id, key, "notified already");
        return Ok(());
    }
    match state.telegram.send_with_markup(user_id, text, markup).await {
        Ok(_) => {
            tracing::info!(user_id, key, "helpdesk notification sent");
            metrics::counter!("telegram_helpdesk_notifications_total", "outcome" => "sent")
                .increment(1);
        }
        Err(e) if e.is_blocked_by_user() => {
            tracing::info!(user_id, key, "the person blocked the bot; not notified");
            metrics::counter!("telegram_helpdesk_notifications_total", "outcome" => "blocked")
                .increment(1);
        }
        Err(e) => return Err(tg_failure("helpdesk notification", e)),
    }
    let done = &done;
    record_sent("helpdesk notification", || state.store.mark_done(done))
        .await
        .map_err(db_failure)
}
