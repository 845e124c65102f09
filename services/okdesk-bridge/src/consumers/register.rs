//! `cmd.okdesk.contact.register` → the person's Okdesk contact: found by phone (a retry after
//! a timeout finds the one the first attempt created), else created (under the company for an
//! employee); answered with `events.okdesk.contact.registered`. Ordered per person.

use domain::{
    Command, ContactRegistered, ContactRegistration, Envelope, Event, IdempotencyKey, Source,
    Subject,
};
use okdesk_api::NewContact;
use service_kit::consumer::{ConsumerSpec, HandleError};
use time::OffsetDateTime;

use crate::AppState;
use crate::consumers::{db_failure, okdesk_failure};

/// Durable name.
pub const DURABLE: &str = "okdesk-register";

/// `cmd.okdesk.contact.register`, in order per person.
pub fn spec() -> ConsumerSpec<Command> {
    ConsumerSpec::new(
        DURABLE,
        Subject::command(Command::OKDESK_CONTACT_REGISTER),
        |env| env.payload.ordering_key(),
    )
}

/// Handles one command.
pub async fn handle(state: AppState, env: Envelope<Command>) -> Result<(), HandleError> {
    let Command::OkdeskContactRegister(r) = &env.payload else {
        return Ok(());
    };
    let contact = find_or_create(&state, r).await?;
    state
        .store
        .add_contact(contact.0)
        .await
        .map_err(db_failure)?;
    let event = Event::ContactRegistered(ContactRegistered {
        requester: r.requester.clone(),
        contact_id: contact.0,
        company: r.company.clone(),
        created: contact.1,
    });
    let key = IdempotencyKey::from_parts(&["okdesk", "registered", env.idempotency_key.as_str()]);
    state
        .bus
        .publish(&Envelope::new(
            Source::Okdesk,
            OffsetDateTime::now_utc(),
            key,
            event,
        ))
        .await
        .map_err(|e| HandleError::retry(format!("publishing contact.registered: {e}")))?;
    tracing::info!(
        contact_id = contact.0,
        created = contact.1,
        user_id = r.requester.user_id,
        "person registered as an Okdesk contact"
    );
    Ok(())
}

/// `(contact id, created)`.
async fn find_or_create(
    state: &AppState,
    r: &ContactRegistration,
) -> Result<(i64, bool), HandleError> {
    if let Some(phone) = &r.phone {
        match state.okdesk.find_contact_by_phone(phone).await {
            Ok(Some(c)) => return Ok((c.id, false)),
            Ok(None) => {}
            Err(e) => return Err(okdesk_failure("contact search", e)),
        }
    }
    let (last, first, middle) = split_name(&r.full_name);
    let new = NewContact {
        first_name: first,
        last_name: last,
        patronymic: middle,
        mobile_phone: r.phone.clone(),
        company_id: r.company.as_ref().map(|c| c.id),
        comment: Some(format!("Telegram user {}", r.requester.user_id)),
        ..NewContact::default()
    };
    let c = state
        .okdesk
        .create_contact(new)
        .await
        .map_err(|e| okdesk_failure("contact create", e))?;
    Ok((c.id, true))
}

/// «Иванов Иван Иванович» → (last, first, middle); one word is the first name (Okdesk needs a
/// last name: the first name is repeated rather than inventing one).
pub fn split_name(full: &str) -> (String, String, Option<String>) {
    let words: Vec<&str> = full.split_whitespace().collect();
    match words.as_slice() {
        [] => ("-".into(), "-".into(), None),
        [one] => ((*one).into(), (*one).into(), None),
        [last, first] => ((*last).into(), (*first).into(), None),
        [last, first, rest @ ..] => ((*last).into(), (*first).into(), Some(rest.join(" "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_split_russian_style() {
        assert_eq!(
            split_name("Иванов Иван Иванович"),
            ("Иванов".into(), "Иван".into(), Some("Иванович".into()))
        );
        assert_eq!(
            split_name(" Петров  Пётр "),
            ("Петров".into(), "Пётр".into(), None)
        );
        assert_eq!(split_name("Анна"), ("Анна".into(), "Анна".into(), None));
    }
}
