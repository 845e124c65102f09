//! Every text the bot itself writes, in Russian and English. A person gets Russian when their
//! Telegram `language_code` is Russian or unknown, English otherwise. The helpdesk's are in
//! [`helpdesk`].

pub mod helpdesk;

use domain::TextSpan;

use crate::telegram::utf16_len;

/// The language of a service text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Russian (the default).
    Ru,
    /// English, for everyone whose Telegram language is not Russian.
    En,
}

impl Lang {
    /// By Telegram `language_code` (`ru`, `ru-RU`, `en`, `de` …); unknown → Russian.
    pub fn of(code: Option<&str>) -> Self {
        match code.map(str::trim).filter(|c| !c.is_empty()) {
            None => Lang::Ru,
            Some(c) if c.to_ascii_lowercase().starts_with("ru") => Lang::Ru,
            Some(_) => Lang::En,
        }
    }

    fn pick(self, ru: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Ru => ru,
            Lang::En => en,
        }
    }
}

/// The answer to `/start`.
pub fn greeting(lang: Lang) -> &'static str {
    lang.pick(
        "Здравствуйте! Напишите ваш вопрос — оператор ответит здесь же. Можно присылать фото, голосовые и файлы.",
        "Hello! Write your question and an operator will answer right here. Photos, voice messages and files are welcome.",
    )
}

/// Who a customer is, for the card heading their topic.
#[derive(Debug, Clone)]
pub struct Customer<'a> {
    /// Telegram user id.
    pub id: i64,
    /// First and last name.
    pub name: &'a str,
    /// `@username` without `@`.
    pub username: Option<&'a str>,
    /// `language_code`.
    pub language: Option<&'a str>,
}

/// The card posted first in a customer's topic: name, @username, id, language and a link to
/// the profile (a `text_link` to `tg://user?id=…`, which opens the profile in every client).
/// The operators read Russian.
pub fn card(c: &Customer<'_>) -> (String, Vec<TextSpan>) {
    let mut text = format!("👤 {}\n", c.name);
    let mut spans = vec![TextSpan {
        kind: "bold".into(),
        offset: utf16_len("👤 ") as u32,
        length: utf16_len(c.name) as u32,
        url: None,
        language: None,
        custom_emoji_id: None,
    }];
    match c.username {
        Some(u) => text.push_str(&format!("@{u}\n")),
        None => text.push_str("без @username\n"),
    }
    text.push_str(&format!("ID: {}\n", c.id));
    text.push_str(&format!("Язык: {}\n", c.language.unwrap_or("не указан")));
    let link = "Открыть профиль";
    spans.push(TextSpan {
        kind: "text_link".into(),
        offset: utf16_len(&text) as u32,
        length: utf16_len(link) as u32,
        url: Some(format!("tg://user?id={}", c.id)),
        language: None,
        custom_emoji_id: None,
    });
    text.push_str(link);
    (text, spans)
}

/// The topic name of a customer: their name, or `User <id>` when it is blank.
pub fn topic_name(c: &Customer<'_>) -> String {
    let name = c.name.trim();
    if name.is_empty() {
        format!("User {}", c.id)
    } else {
        name.to_owned()
    }
}

/// Said in the topic after an operator's `/ban`.
pub fn banned(lang: Lang) -> &'static str {
    lang.pick(
        "🚫 Клиент заблокирован: его сообщения больше не пересылаются. /unban — снять блокировку.",
        "🚫 The customer is banned: their messages are no longer relayed. /unban lifts the ban.",
    )
}

/// Said in the topic after `/unban`.
pub fn unbanned(lang: Lang) -> &'static str {
    lang.pick(
        "✅ Блокировка снята: сообщения клиента снова пересылаются.",
        "✅ The ban is lifted: the customer's messages are relayed again.",
    )
}

/// Said in the topic before it is closed with `/close`.
pub fn closed(lang: Lang) -> &'static str {
    lang.pick(
        "🔒 Тема закрыта. Она откроется снова, когда клиент напишет.",
        "🔒 The topic is closed. It reopens when the customer writes again.",
    )
}

/// Said in the topic once when the customer blocked the bot.
pub fn customer_blocked_bot(lang: Lang) -> &'static str {
    lang.pick(
        "⚠️ Клиент заблокировал бота: ответы ему не доставляются, пока он не напишет снова.",
        "⚠️ The customer blocked the bot: replies cannot reach them until they write again.",
    )
}

/// Said at the top of a topic that replaces one deleted by hand.
pub fn topic_recreated(lang: Lang) -> &'static str {
    lang.pick(
        "♻️ Прежняя тема этого клиента была удалена; переписка продолжается здесь.",
        "♻️ This customer's previous topic was deleted; the conversation continues here.",
    )
}

/// Operator notice: the bot may not create or manage topics in the group.
pub fn notice_no_topic_rights(group_id: i64) -> String {
    format!(
        "⚠️ Бот не может создавать темы в группе {group_id}: сделайте его администратором с правом «Управление темами» и включите темы в группе. Сообщения клиентов ждут и будут доставлены.\n\n\
         The bot cannot create topics in group {group_id}: make it an administrator with the \"Manage topics\" right and enable topics. Customers' messages are waiting and will be delivered."
    )
}

/// Operator notice: the bot was removed from the group.
pub fn notice_removed_from_group(group_id: i64) -> String {
    format!(
        "⚠️ Бот удалён из группы {group_id} или не может в неё писать. Добавьте его обратно администратором; сообщения клиентов ждут и будут доставлены.\n\n\
         The bot was removed from group {group_id} or may not post there. Add it back as an administrator; customers' messages are waiting and will be delivered."
    )
}

/// Operator notice: another program polls with the same token, or a webhook is set.
pub fn notice_poll_conflict() -> &'static str {
    "⚠️ Telegram отвечает 409 Conflict: этим токеном уже пользуется другая программа (старый бот?) или установлен webhook. Остановите старого бота.\n\n\
     Telegram answers 409 Conflict: another program uses this token (the old bot?) or a webhook is set. Stop the old bot."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_unless_the_user_speaks_something_else() {
        assert_eq!(Lang::of(Some("ru")), Lang::Ru);
        assert_eq!(Lang::of(Some("ru-RU")), Lang::Ru);
        assert_eq!(Lang::of(None), Lang::Ru);
        assert_eq!(Lang::of(Some("en")), Lang::En);
        assert_eq!(Lang::of(Some("de")), Lang::En);
        assert!(greeting(Lang::En).starts_with("Hello"));
        assert!(greeting(Lang::Ru).starts_with("Здравствуйте"));
    }

    #[test]
    fn the_card_links_the_profile_with_utf16_offsets() {
        let (text, spans) = card(&Customer {
            id: 42,
            name: "Иван 😀",
            username: Some("ivan"),
            language: Some("ru"),
        });
        let link = spans.iter().find(|s| s.kind == "text_link").expect("link");
        assert_eq!(link.url.as_deref(), Some("tg://user?id=42"));
        let units: Vec<u16> = text.encode_utf16().collect();
        let linked =
            String::from_utf16(&units[link.offset as usize..(link.offset + link.length) as usize])
                .unwrap();
        assert_eq!(linked, "Открыть профиль");
        let bold = &spans[0];
        let named =
            String::from_utf16(&units[bold.offset as usize..(bold.offset + bold.length) as usize])
                .unwrap();
        assert_eq!(named, "Иван 😀");
        assert!(text.contains("@ivan") && text.contains("ID: 42"));
    }
}
