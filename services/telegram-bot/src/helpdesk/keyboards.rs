//! The keyboards of the helpdesk: the menu and the dialogs' buttons as reply keyboards, issue
//! lists as inline buttons with `callback_data` `issue:<id>` / `comment:<id>`
//! ([`Press`]).

use domain::Issue;
use frankenstein::types::{
    InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup,
    ReplyKeyboardRemove, ReplyMarkup,
};

use crate::texts::Lang;
use crate::texts::helpdesk::{self as t, Choice, MenuItem};

/// What an inline button of the helpdesk asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    /// `issue:<id>`: show the issue's status and link.
    Issue(i64),
    /// `comment:<id>`: the next messages are comments on the issue.
    Comment(i64),
}

impl Press {
    /// The `callback_data` (well under Telegram's 64 bytes).
    pub fn data(self) -> String {
        match self {
            Press::Issue(id) => format!("issue:{id}"),
            Press::Comment(id) => format!("comment:{id}"),
        }
    }

    /// Reads `callback_data`; `None` for anything this build did not send.
    pub fn parse(data: &str) -> Option<Self> {
        let (kind, id) = data.split_once(':')?;
        let id = id.parse().ok()?;
        match kind {
            "issue" => Some(Press::Issue(id)),
            "comment" => Some(Press::Comment(id)),
            _ => None,
        }
    }
}

fn reply_keyboard(rows: Vec<Vec<KeyboardButton>>) -> ReplyMarkup {
    ReplyMarkup::ReplyKeyboardMarkup(
        ReplyKeyboardMarkup::builder()
            .keyboard(rows)
            .resize_keyboard(true)
            .build(),
    )
}

fn button(label: &str) -> KeyboardButton {
    KeyboardButton::builder().text(label).build()
}

/// The menu: two rows of two.
pub fn menu(lang: Lang) -> ReplyMarkup {
    let [a, b, c, d] = MenuItem::ALL.map(|i| button(i.label(lang)));
    reply_keyboard(vec![vec![a, b], vec![c, d]])
}

/// The dialog's buttons, one row, and «❌ Отмена» under them.
pub fn choices(lang: Lang, choices: &[Choice]) -> ReplyMarkup {
    let mut rows = Vec::new();
    if !choices.is_empty() {
        rows.push(choices.iter().map(|c| button(c.label(lang))).collect());
    }
    rows.push(vec![button(Choice::Cancel.label(lang))]);
    reply_keyboard(rows)
}

/// «📱 Отправить номер» (Telegram asks the person to share their contact) and «❌ Отмена».
pub fn phone(lang: Lang) -> ReplyMarkup {
    let share = KeyboardButton::builder()
        .text(Choice::SharePhone.label(lang))
        .request_contact(true)
        .build();
    reply_keyboard(vec![vec![share], vec![button(Choice::Cancel.label(lang))]])
}

/// No keyboard.
pub fn remove() -> ReplyMarkup {
    ReplyMarkup::ReplyKeyboardRemove(ReplyKeyboardRemove::builder().remove_keyboard(true).build())
}

/// One inline button per issue, one per row.
pub fn issues(lang: Lang, issues: &[Issue], press: fn(i64) -> Press) -> ReplyMarkup {
    let rows = issues
        .iter()
        .map(|i| {
            vec![
                InlineKeyboardButton::builder()
                    .text(t::issue_button(lang, i))
                    .callback_data(press(i.id).data())
                    .build(),
            ]
        })
        .collect();
    ReplyMarkup::InlineKeyboardMarkup(
        InlineKeyboardMarkup::builder()
            .inline_keyboard(rows)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presses_round_trip_and_unknown_data_is_none() {
        for p in [Press::Issue(12), Press::Comment(7)] {
            assert_eq!(Press::parse(&p.data()), Some(p));
        }
        assert_eq!(Press::parse("issue:x"), None);
        assert_eq!(Press::parse("vote:1"), None);
        assert_eq!(Press::parse(""), None);
    }

    #[test]
    fn the_phone_keyboard_asks_for_the_contact() {
        let json = serde_json::to_value(phone(Lang::Ru)).unwrap();
        assert_eq!(json["keyboard"][0][0]["request_contact"], true);
        assert_eq!(json["keyboard"][0][0]["text"], "📱 Отправить номер");
        let json = serde_json::to_value(menu(Lang::En)).unwrap();
        assert_eq!(json["keyboard"][1][1]["text"], "💬 Add comment");
    }
}
