//! NATS subject names and idempotency keys, built by typed constructors so that no service
//! spells a subject by hand.

use std::fmt;

use crate::envelope::Source;

/// A NATS subject such as `events.vk.message.received` or `cmd.vk.message.send`.
///
/// Shapes (lower case, dot separated):
/// - events: `events.<source>.<noun>.<verb>` ([`Subject::event`]),
/// - commands: `cmd.<target>.<noun>.<verb>` ([`Subject::command`]),
/// - request/reply look-ups: `rpc.<target>.<noun>.<verb>` ([`Subject::rpc`]).
///
/// Deployments and tests may put a prefix in front (`<prefix>.events.…`); that is the bus's
/// job ([`Subject::with_prefix`]), not the domain's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(String);

impl Subject {
    /// `events.<source>.<event_type>`, e.g. `events.vk.message.received`.
    pub fn event(source: Source, event_type: &str) -> Self {
        Self(format!("events.{}.{event_type}", source.as_str()))
    }

    /// `cmd.<command_type>` where the command type starts with its target,
    /// e.g. `cmd.vk.message.send`.
    pub fn command(command_type: &str) -> Self {
        Self(format!("cmd.{command_type}"))
    }

    /// `rpc.<target>.<noun>.<verb>`, e.g. `rpc.okdesk.company.find_by_inn`.
    pub fn rpc(target: Source, noun_verb: &str) -> Self {
        Self(format!("rpc.{}.{noun_verb}", target.as_str()))
    }

    /// Core-NATS fan-out between the replicas of one service, never stored in a stream:
    /// `fanout.<source>.<rest>`, e.g. `fanout.messenger.chat.<chat id>` (the messenger hub
    /// pushes what one replica accepted to the clients connected to the others).
    pub fn fanout(source: Source, rest: &str) -> Self {
        Self(format!("fanout.{}.{rest}", source.as_str()))
    }

    /// Every fan-out subject of a source: `fanout.<source>.>`.
    pub fn all_fanout(source: Source) -> Self {
        Self(format!("fanout.{}.>", source.as_str()))
    }

    /// Every event: `events.>` (the subjects of the `EVENTS` stream).
    pub fn all_events() -> Self {
        Self("events.>".to_owned())
    }

    /// Every command: `cmd.>` (the subjects of the `COMMANDS` stream).
    pub fn all_commands() -> Self {
        Self("cmd.>".to_owned())
    }

    /// This subject behind a deployment prefix: `demo` + `events.vk.x` → `demo.events.vk.x`.
    /// An empty prefix leaves the subject as it is.
    pub fn with_prefix(&self, prefix: &str) -> String {
        if prefix.is_empty() {
            self.0.clone()
        } else {
            format!("{prefix}.{}", self.0)
        }
    }

    /// The subject as NATS sees it (without prefix).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key that makes one upstream delivery one effect. It is the envelope's
/// `idempotency_key` and the `Nats-Msg-Id` header of its publish, so JetStream stores a
/// delivery that was published twice within the duplicate window only once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A VK Callback/Long Poll event: `vk:<group_id>:<event_id>`.
    pub fn vk_event(group_id: i64, event_id: &str) -> Self {
        Self(format!("vk:{group_id}:{event_id}"))
    }

    /// A Telegram update received by one bot: `tg:<bot_id>:<update_id>` (update ids are
    /// per bot, so the bot id keeps two bots sharing a stream apart).
    pub fn telegram_update(bot_id: i64, update_id: i64) -> Self {
        Self(format!("tg:{bot_id}:{update_id}"))
    }

    /// A Chatwoot message: `chatwoot:<account_id>:<message_id>`.
    pub fn chatwoot_message(account_id: i64, message_id: i64) -> Self {
        Self(format!("chatwoot:{account_id}:{message_id}"))
    }

    /// A message posted in the own messenger: `messenger:message:<message_id>`.
    pub fn messenger_message(message_id: i64) -> Self {
        Self(format!("messenger:message:{message_id}"))
    }

    /// One amoCRM webhook entry:
    /// `amocrm:<account>:<entity>:<id>:<action>:<updated_at unix seconds, or "-">`, e.g.
    /// `amocrm:example:lead:4821:status:1763812800`. The same delivery repeated gives the same
    /// key; a later change of the same entity (newer `updated_at`) gives a new one.
    pub fn amocrm_entity(
        account: &str,
        entity: &str,
        id: i64,
        action: &str,
        updated_at: Option<i64>,
    ) -> Self {
        let at = updated_at.map_or_else(|| "-".to_owned(), |t| t.to_string());
        Self(format!("amocrm:{account}:{entity}:{id}:{action}:{at}"))
    }

    /// An amoCRM webhook entry that carries no `updated_at`:
    /// `amocrm:<account>:<entity>:<id>:<action>:h<digest>`, where `digest` is a short hash of
    /// the entry's content. The same entry delivered again gives the same key; a different
    /// change of the same entity gives another one (a `-` here would make JetStream drop it as
    /// a duplicate).
    pub fn amocrm_entity_digest(
        account: &str,
        entity: &str,
        id: i64,
        action: &str,
        digest: &str,
    ) -> Self {
        Self(format!("amocrm:{account}:{entity}:{id}:{action}:h{digest}"))
    }

    /// A key from parts that have no constructor of their own yet (`<system>:<id>…`).
    pub fn from_parts(parts: &[&str]) -> Self {
        Self(parts.join(":"))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_built_from_parts() {
        assert_eq!(
            Subject::event(Source::Vk, "message.received").as_str(),
            "events.vk.message.received"
        );
        assert_eq!(
            Subject::command("vk.message.send").as_str(),
            "cmd.vk.message.send"
        );
        assert_eq!(
            Subject::rpc(Source::Okdesk, "company.find_by_inn").as_str(),
            "rpc.okdesk.company.find_by_inn"
        );
        assert_eq!(
            Subject::all_events().with_prefix("t1"),
            "t1.events.>".to_owned()
        );
        assert_eq!(Subject::all_commands().with_prefix(""), "cmd.>".to_owned());
        assert_eq!(
            Subject::fanout(Source::Messenger, "chat.42").as_str(),
            "fanout.messenger.chat.42"
        );
        assert_eq!(
            Subject::all_fanout(Source::Messenger).with_prefix("t1"),
            "t1.fanout.messenger.>".to_owned()
        );
    }

    #[test]
    fn idempotency_keys_follow_the_contract() {
        assert_eq!(
            IdempotencyKey::vk_event(227000001, "a1b2c3").as_str(),
            "vk:227000001:a1b2c3"
        );
        assert_eq!(
            IdempotencyKey::chatwoot_message(1, 42).as_str(),
            "chatwoot:1:42"
        );
        assert_eq!(
            IdempotencyKey::amocrm_entity("example", "lead", 4821, "status", Some(1_763_812_800))
                .as_str(),
            "amocrm:example:lead:4821:status:1763812800"
        );
        assert_eq!(
            IdempotencyKey::amocrm_entity("example", "contact", 7, "delete", None).as_str(),
            "amocrm:example:contact:7:delete:-"
        );
        assert_eq!(
            IdempotencyKey::amocrm_entity_digest(
                "example",
                "lead",
                9,
                "update",
                "0f1e2d3c4b5a6978"
            )
            .as_str(),
            "amocrm:example:lead:9:update:h0f1e2d3c4b5a6978"
        );
        assert_eq!(
            IdempotencyKey::messenger_message(4521).as_str(),
            "messenger:message:4521"
        );
    }
}
