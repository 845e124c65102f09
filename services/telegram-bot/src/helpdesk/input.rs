//! What a person typed, read once: a command, a button, an INN, a phone number, a name, an
//! issue title made from a description. Parse, don't validate: a value of these types is
//! known good.

use domain::{AttachmentKind, InboundMessage};

use crate::consumers::command;
use crate::normalize::TEL_URL_PREFIX;
use crate::texts::helpdesk::{Choice, MenuItem};

/// Longest issue title, in characters.
pub const MAX_TITLE_CHARS: usize = 80;

/// Longest full name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A message, as the helpdesk reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `/name` (without `@botname`), lower case.
    Command(String),
    /// A menu button (or its label typed).
    Menu(MenuItem),
    /// Another button of a dialog (or its label typed).
    Choice(Choice),
    /// Anything else: text, media, a contact.
    Other,
}

impl Input {
    /// Reads `m`: only a message without attachments can be a command or a button.
    pub fn of(m: &InboundMessage) -> Self {
        if !m.attachments.is_empty() {
            return Input::Other;
        }
        if let Some(c) = command(m.text.as_deref()) {
            return Input::Command(c);
        }
        let Some(text) = m.text.as_deref() else {
            return Input::Other;
        };
        let typed = label_key(text);
        if typed.is_empty() {
            return Input::Other;
        }
        let is = |(ru, en): (&str, &str)| label_key(ru) == typed || label_key(en) == typed;
        if let Some(item) = MenuItem::ALL.into_iter().find(|i| is(i.labels())) {
            return Input::Menu(item);
        }
        if let Some(choice) = Choice::ALL.into_iter().find(|c| is(c.labels())) {
            return Input::Choice(choice);
        }
        Input::Other
    }
}

/// A label as compared: emoji and punctuation around it dropped, case and spacing ignored
/// («📋 Мои заявки», "мои  заявки" and "Мои заявки!" are the same).
fn label_key(s: &str) -> String {
    let kept: String = s
        .trim_matches(|c: char| !c.is_alphanumeric())
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    kept.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A Russian taxpayer number (ИНН) whose check digits are right: 10 digits (a company) or 12
/// (a person, or an individual entrepreneur).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inn(String);

/// Why a text is not an INN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InnError {
    /// Not 10 or 12 digits.
    Shape,
    /// The digits are there but a check digit is wrong.
    Checksum,
}

impl Inn {
    /// Reads an INN (spaces allowed between digits) and checks its control digits: for 10
    /// digits the 10th is `(Σ dᵢ·wᵢ mod 11) mod 10` with weights 2,4,10,3,5,9,4,6,8; for 12,
    /// the 11th with 7,2,4,10,3,5,9,4,6,8 and the 12th with 3,7,2,4,10,3,5,9,4,6,8.
    ///
    /// Errors: [`InnError`].
    pub fn parse(raw: &str) -> Result<Self, InnError> {
        let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        if !compact.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InnError::Shape);
        }
        let d: Vec<u32> = compact.bytes().map(|b| u32::from(b - b'0')).collect();
        let check = |digits: &[u32], weights: &[u32]| {
            digits.iter().zip(weights).map(|(d, w)| d * w).sum::<u32>() % 11 % 10
        };
        let ok = match d.len() {
            10 => check(&d[..9], &[2, 4, 10, 3, 5, 9, 4, 6, 8]) == d[9],
            12 => {
                check(&d[..10], &[7, 2, 4, 10, 3, 5, 9, 4, 6, 8]) == d[10]
                    && check(&d[..11], &[3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]) == d[11]
            }
            _ => return Err(InnError::Shape),
        };
        if ok {
            Ok(Self(compact))
        } else {
            Err(InnError::Checksum)
        }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.164 (`+79001234567`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// A typed number, read with Russia as the default region (`8 900 123-45-67`,
    /// `+7 (900) 123-45-67`, `9001234567`); only digits, spaces, `+ - ( ) .` are allowed.
    pub fn typed(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.is_empty()
            || !raw
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().\u{a0}".contains(c))
        {
            return None;
        }
        Self::parse(raw)
    }

    /// The `phone_number` of a contact shared with Telegram's button: international, often
    /// without the `+`.
    pub fn shared(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.starts_with('+') {
            Self::parse(raw)
        } else {
            Self::parse(&format!("+{raw}"))
        }
    }

    /// The phone of a message: a shared contact (`tel:` attachment), else the typed text.
    pub fn of(m: &InboundMessage) -> Option<Self> {
        let shared = m.attachments.iter().find_map(|a| {
            (a.kind == AttachmentKind::Other)
                .then_some(())
                .and(a.url.as_deref()?.strip_prefix(TEL_URL_PREFIX))
        });
        match shared {
            Some(p) => Self::shared(p),
            None if m.attachments.is_empty() => Self::typed(m.text.as_deref()?),
            None => None,
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        let n = phonenumber::parse(Some(phonenumber::country::Id::RU), raw).ok()?;
        phonenumber::is_valid(&n)
            .then(|| Self(n.format().mode(phonenumber::Mode::E164).to_string()))
    }

    /// `+79001234567`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's name as they typed it, spaces collapsed: 2–200 characters with a letter in it.
pub fn full_name(raw: &str) -> Option<String> {
    let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let n = name.chars().count();
    ((2..=MAX_NAME_CHARS).contains(&n)
        && name.chars().any(char::is_alphabetic)
        && !name.starts_with('/'))
    .then_some(name)
}

/// The title of an issue made from its description: the first sentence (up to `.`, `!`, `?`
/// or `…` followed by a space, or the end of the first line), spaces collapsed, a final `.`
/// dropped; longer than [`MAX_TITLE_CHARS`] it is cut at the last word boundary that leaves
/// room for `…` (in the middle of a word only when the first word alone is too long).
pub fn issue_title(description: &str) -> String {
    let first_line = description
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let chars: Vec<char> = first_line.chars().collect();
    let mut end = chars.len();
    for (i, c) in chars.iter().enumerate() {
        if matches!(c, '.' | '!' | '?' | '…') && chars.get(i + 1).is_none_or(|n| n.is_whitespace())
        {
            end = i + 1;
            break;
        }
    }
    let sentence: String = chars[..end].iter().collect();
    let mut title = sentence.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.ends_with('.') && !title.ends_with("..") {
        title.pop();
    }
    if title.chars().count() <= MAX_TITLE_CHARS {
        return title;
    }
    let room: String = title.chars().take(MAX_TITLE_CHARS - 1).collect();
    // The next character after `room` tells whether `room` ends at a word's end.
    let next = title.chars().nth(MAX_TITLE_CHARS - 1);
    let cut = if next.is_some_and(char::is_whitespace) {
        room.trim_end().to_owned()
    } else {
        match room.rfind(char::is_whitespace) {
            Some(at) if at > 0 => room[..at].trim_end().to_owned(),
            _ => room,
        }
    };
    let cut = cut.trim_end_matches([',', ';', ':', '-', '—', '(', '«']);
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use domain::{Attachment, ConversationKind, ConversationRef, Sender};
    use time::OffsetDateTime;

    use super::*;

    fn message(text: Option<&str>, attachments: Vec<Attachment>) -> InboundMessage {
        InboundMessage {
            message_id: "1".into(),
            sender: Sender {
                id: "42".into(),
                display_name: None,
                username: None,
                language: None,
            },
            conversation: ConversationRef {
                id: "42".into(),
                kind: ConversationKind::Private,
                thread_id: None,
            },
            text: text.map(str::to_owned),
            attachments,
            formatting: Vec::new(),
            reply_to: None,
            sent_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn inn_checksums_follow_the_official_rule() {
        for valid in ["7830002293", "7707083893", "500100732259", "7707 083 893"] {
            assert!(Inn::parse(valid).is_ok(), "{valid} is valid");
        }
        assert_eq!(Inn::parse("7707 083 893").unwrap().as_str(), "7707083893");
        for bad in ["1234567895", "123456789037", "7830002294", "500100732258"] {
            assert_eq!(Inn::parse(bad), Err(InnError::Checksum), "{bad}");
        }
        for not_inn in ["", "12345", "78300022930", "78300022a3", "ООО Ромашка"] {
            assert_eq!(Inn::parse(not_inn), Err(InnError::Shape), "{not_inn}");
        }
    }

    #[test]
    fn phones_become_e164_with_russia_as_the_default_region() {
        for typed in [
            "+7 900 123-45-67",
            "8 (900) 123-45-67",
            "89001234567",
            "9001234567",
        ] {
            assert_eq!(
                Phone::typed(typed).map(|p| p.0).as_deref(),
                Some("+79001234567"),
                "{typed}"
            );
        }
        assert_eq!(
            Phone::shared("79001234567").unwrap().as_str(),
            "+79001234567"
        );
        assert_eq!(
            Phone::typed("+44 20 7946 0958").unwrap().as_str(),
            "+442079460958"
        );
        assert_eq!(Phone::typed("позвоните мне"), None);
        assert_eq!(Phone::typed("123"), None);
        let contact = Attachment {
            kind: AttachmentKind::Other,
            url: Some("tel:79001234567".into()),
            mime: None,
            name: Some("contact Ivan 79001234567".into()),
            size: None,
            preview_url: None,
        };
        assert_eq!(
            Phone::of(&message(None, vec![contact])).unwrap().as_str(),
            "+79001234567"
        );
        assert_eq!(
            Phone::of(&message(Some("8-900-123-45-67"), vec![]))
                .unwrap()
                .as_str(),
            "+79001234567"
        );
    }

    #[test]
    fn the_title_is_the_first_sentence_cut_at_a_word_boundary() {
        assert_eq!(
            issue_title("Не работает принтер в бухгалтерии. Горит красная лампочка."),
            "Не работает принтер в бухгалтерии"
        );
        assert_eq!(
            issue_title("Почему не приходит почта? С утра ни одного письма"),
            "Почему не приходит почта?"
        );
        assert_eq!(
            issue_title("  Сломался ноутбук\nподробности во вложении"),
            "Сломался ноутбук"
        );
        // A dot inside a number or an abbreviation without a space does not end the sentence.
        assert_eq!(
            issue_title("Версия 1.5 не запускается на т.е. всех машинах"),
            "Версия 1.5 не запускается на т.е"
        );
        let long = "После обновления операционной системы на компьютере главного бухгалтера \
                    перестала запускаться программа 1С и не печатаются счета";
        let t = issue_title(long);
        assert!(t.chars().count() <= MAX_TITLE_CHARS, "{t}");
        assert!(t.ends_with('…'), "{t}");
        let body = t.trim_end_matches('…');
        assert!(
            long.starts_with(body) && long[body.len()..].starts_with(' '),
            "cut at a word boundary: {t}"
        );
        assert_eq!(
            t,
            "После обновления операционной системы на компьютере главного бухгалтера…"
        );
        // Exactly 80 characters stays whole.
        let eighty: String = "а".repeat(MAX_TITLE_CHARS);
        assert_eq!(issue_title(&eighty), eighty);
        // One endless word is cut inside it.
        let word = "я".repeat(120);
        let t = issue_title(&word);
        assert_eq!(t.chars().count(), MAX_TITLE_CHARS);
    }

    #[test]
    fn buttons_are_recognised_by_label_in_either_language() {
        let input = |t: &str| Input::of(&message(Some(t), vec![]));
        assert_eq!(input("📋 Мои заявки"), Input::Menu(MenuItem::MyIssues));
        assert_eq!(input("мои заявки"), Input::Menu(MenuItem::MyIssues));
        assert_eq!(input("📝 Create issue"), Input::Menu(MenuItem::CreateIssue));
        assert_eq!(
            input("🔄 Проверить статус"),
            Input::Menu(MenuItem::CheckStatus)
        );
        assert_eq!(
            input("💬 Добавить комментарий"),
            Input::Menu(MenuItem::AddComment)
        );
        assert_eq!(input("Да"), Input::Choice(Choice::Yes));
        assert_eq!(input("no"), Input::Choice(Choice::No));
        assert_eq!(input("❌ Отмена"), Input::Choice(Choice::Cancel));
        assert_eq!(
            input("/cancel@support_bot"),
            Input::Command("cancel".into())
        );
        assert_eq!(input("Мои заявки не работают"), Input::Other);
        assert_eq!(input("👍"), Input::Other);
    }

    #[test]
    fn names_are_text_with_letters() {
        assert_eq!(
            full_name("  Иванов   Иван Иванович ").as_deref(),
            Some("Иванов Иван Иванович")
        );
        assert_eq!(full_name("1"), None);
        assert_eq!(full_name("12345"), None);
        assert_eq!(full_name(&"я".repeat(201)), None);
    }
}
