//! What the helpdesk says to a person, and the labels of its buttons, in Russian and English.
//! Button labels of both languages are understood whatever the person's language.

use domain::Issue;

use super::Lang;

/// The buttons of the menu (a reply keyboard, two rows of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuItem {
    /// «📝 Создать заявку».
    CreateIssue,
    /// «📋 Мои заявки».
    MyIssues,
    /// «🔄 Проверить статус».
    CheckStatus,
    /// «💬 Добавить комментарий».
    AddComment,
}

impl MenuItem {
    /// In menu order.
    pub const ALL: [MenuItem; 4] = [
        MenuItem::CreateIssue,
        MenuItem::MyIssues,
        MenuItem::CheckStatus,
        MenuItem::AddComment,
    ];

    /// The button's label.
    pub fn label(self, lang: Lang) -> &'static str {
        let (ru, en) = self.labels();
        lang.pick(ru, en)
    }

    /// Russian and English labels.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            MenuItem::CreateIssue => ("📝 Создать заявку", "📝 Create issue"),
            MenuItem::MyIssues => ("📋 Мои заявки", "📋 My issues"),
            MenuItem::CheckStatus => ("🔄 Проверить статус", "🔄 Check status"),
            MenuItem::AddComment => ("💬 Добавить комментарий", "💬 Add comment"),
        }
    }
}

/// The other reply-keyboard buttons of the dialogs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Registering as a private person.
    PrivatePerson,
    /// Registering as an employee of a company.
    CompanyEmployee,
    /// «Да».
    Yes,
    /// «Нет».
    No,
    /// Leaves the dialog, like `/cancel`.
    Cancel,
    /// Shares the person's phone number (`request_contact`).
    SharePhone,
}

impl Choice {
    /// Every choice.
    pub const ALL: [Choice; 6] = [
        Choice::PrivatePerson,
        Choice::CompanyEmployee,
        Choice::Yes,
        Choice::No,
        Choice::Cancel,
        Choice::SharePhone,
    ];

    /// The button's label.
    pub fn label(self, lang: Lang) -> &'static str {
        let (ru, en) = self.labels();
        lang.pick(ru, en)
    }

    /// Russian and English labels.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Choice::PrivatePerson => ("👤 Частное лицо", "👤 Private person"),
            Choice::CompanyEmployee => ("🏢 Сотрудник компании", "🏢 Company employee"),
            Choice::Yes => ("Да", "Yes"),
            Choice::No => ("Нет", "No"),
            Choice::Cancel => ("❌ Отмена", "❌ Cancel"),
            Choice::SharePhone => ("📱 Отправить номер", "📱 Share my number"),
        }
    }
}

/// The answer to `/start` with the helpdesk on.
pub fn greeting(lang: Lang) -> String {
    format!(
        "{}\n\n{}",
        super::greeting(lang),
        lang.pick(
            "Заявки в Okdesk — через меню внизу. Ещё не зарегистрированы? Отправьте /register.",
            "Okdesk issues are in the menu below. Not registered yet? Send /register.",
        )
    )
}

/// `/menu`, and after leaving a dialog with a menu button.
pub fn menu(lang: Lang) -> &'static str {
    lang.pick(
        "Меню — на клавиатуре внизу.",
        "The menu is on the keyboard below.",
    )
}

/// `/cancel` in a dialog.
pub fn cancelled(lang: Lang) -> &'static str {
    lang.pick("Отменено.", "Cancelled.")
}

/// `/cancel` outside a dialog.
pub fn nothing_to_cancel(lang: Lang) -> &'static str {
    lang.pick("Сейчас нечего отменять.", "There is nothing to cancel.")
}

/// Registration, first question.
pub fn ask_kind(lang: Lang) -> &'static str {
    lang.pick(
        "Регистрация в Okdesk. Вы частное лицо или сотрудник компании?",
        "Registering with Okdesk. Are you a private person or a company employee?",
    )
}

/// The answer to the first question was neither button.
pub fn pick_a_button(lang: Lang) -> &'static str {
    lang.pick(
        "Выберите вариант кнопкой внизу или отправьте /cancel.",
        "Choose with a button below, or send /cancel.",
    )
}

/// Asks for the company's INN.
pub fn ask_inn(lang: Lang) -> &'static str {
    lang.pick(
        "Введите ИНН вашей компании: 10 или 12 цифр.",
        "Enter your company's INN (Russian taxpayer number): 10 or 12 digits.",
    )
}

/// The INN is not 10 or 12 digits.
pub fn inn_shape(lang: Lang) -> &'static str {
    lang.pick(
        "ИНН — это 10 или 12 цифр. Введите ещё раз.",
        "An INN is 10 or 12 digits. Please enter it again.",
    )
}

/// The INN's check digit is wrong.
pub fn inn_checksum(lang: Lang) -> &'static str {
    lang.pick(
        "Такого ИНН не бывает: не сходится контрольная цифра. Проверьте и введите ещё раз.",
        "This INN cannot exist: its check digit is wrong. Please check it and enter it again.",
    )
}

/// The company was found: is it theirs?
pub fn company_found(lang: Lang, name: &str) -> String {
    match lang {
        Lang::Ru => format!("Нашлась компания «{name}». Это ваша компания?"),
        Lang::En => format!("Found the company \"{name}\". Is it yours?"),
    }
}

/// No company with that INN.
pub fn company_not_found(lang: Lang, inn: &str) -> String {
    match lang {
        Lang::Ru => format!(
            "Компания с ИНН {inn} в Okdesk не найдена. Проверьте ИНН и введите ещё раз, или отправьте /register и зарегистрируйтесь как частное лицо."
        ),
        Lang::En => format!(
            "No company with INN {inn} was found in Okdesk. Check the INN and enter it again, or send /register to register as a private person."
        ),
    }
}

/// Okdesk refused the company search (an API key that may not search companies).
pub fn company_search_refused(lang: Lang) -> &'static str {
    lang.pick(
        "Поиск компаний в Okdesk сейчас недоступен. Сообщите об этом оператору или зарегистрируйтесь как частное лицо: /register.",
        "Company search in Okdesk is not available right now. Please tell an operator, or register as a private person: /register.",
    )
}

/// Neither «Да» nor «Нет».
pub fn yes_or_no(lang: Lang) -> &'static str {
    lang.pick(
        "Ответьте «Да» или «Нет».",
        "Please answer \"Yes\" or \"No\".",
    )
}

/// «Нет» to the company found.
pub fn inn_again(lang: Lang) -> &'static str {
    lang.pick(
        "Хорошо. Введите ИНН ещё раз.",
        "All right. Please enter the INN again.",
    )
}

/// Asks for the full name.
pub fn ask_full_name(lang: Lang) -> &'static str {
    lang.pick(
        "Как вас зовут? Напишите фамилию, имя и отчество.",
        "What is your name? Please write your full name.",
    )
}

/// The name is empty, too long, or not a name.
pub fn full_name_bad(lang: Lang) -> &'static str {
    lang.pick(
        "Напишите фамилию, имя и отчество текстом (до 200 символов).",
        "Please write your full name as text (up to 200 characters).",
    )
}

/// Asks for the phone number.
pub fn ask_phone(lang: Lang) -> &'static str {
    lang.pick(
        "Ваш номер телефона: нажмите «📱 Отправить номер» или напишите его.",
        "Your phone number: press \"📱 Share my number\" or type it.",
    )
}

/// Not a phone number.
pub fn phone_bad(lang: Lang) -> &'static str {
    lang.pick(
        "Не похоже на номер телефона. Пример: +7 900 123-45-67.",
        "That does not look like a phone number. Example: +7 900 123-45-67.",
    )
}

/// The registration went to okdesk-bridge.
pub fn registration_sent(lang: Lang) -> &'static str {
    lang.pick(
        "Регистрация отправлена… Как только Okdesk её подтвердит, я напишу.",
        "Registration sent… I will write as soon as Okdesk confirms it.",
    )
}

/// `events.okdesk.contact.registered`.
pub fn registered(lang: Lang, company: Option<&str>) -> String {
    match (lang, company) {
        (Lang::Ru, Some(c)) => format!(
            "Готово: вы зарегистрированы в Okdesk как сотрудник «{c}». Заявки — через меню внизу."
        ),
        (Lang::Ru, None) => {
            "Готово: вы зарегистрированы в Okdesk. Заявки — через меню внизу.".to_owned()
        }
        (Lang::En, Some(c)) => format!(
            "Done: you are registered with Okdesk as an employee of \"{c}\". Issues are in the menu below."
        ),
        (Lang::En, None) => {
            "Done: you are registered with Okdesk. Issues are in the menu below.".to_owned()
        }
    }
}

/// A menu item that needs a registration, before one.
pub fn register_first(lang: Lang) -> &'static str {
    lang.pick(
        "Сначала нужно зарегистрироваться — это займёт минуту.",
        "You need to register first; it takes a minute.",
    )
}

/// A menu item that needs a registration, while it waits for Okdesk.
pub fn registration_pending(lang: Lang) -> &'static str {
    lang.pick(
        "Регистрация ещё не подтверждена Okdesk. Подождите немного и попробуйте снова.",
        "Okdesk has not confirmed your registration yet. Please wait a little and try again.",
    )
}

/// After «📝 Создать заявку».
pub fn ask_description(lang: Lang) -> &'static str {
    lang.pick(
        "Опишите проблему одним сообщением. Первое предложение станет заголовком заявки.",
        "Describe the problem in one message. Its first sentence becomes the issue's title.",
    )
}

/// The description message has no text.
pub fn description_needed(lang: Lang) -> &'static str {
    lang.pick(
        "Нужно описание текстом (можно подписью к фото). Файлы добавите комментарием, когда заявка будет создана.",
        "Please describe it as text (a photo caption works too). Files can be added as a comment once the issue exists.",
    )
}

/// `cmd.okdesk.issue.create` published.
pub fn issue_queued(lang: Lang, title: &str) -> String {
    match lang {
        Lang::Ru => format!(
            "Заявка «{title}» принята и поставлена в очередь. Номер пришлю, как только Okdesk её создаст."
        ),
        Lang::En => format!(
            "The issue \"{title}\" is accepted and queued. I will send its number as soon as Okdesk creates it."
        ),
    }
}

/// `events.okdesk.issue.created` for the person's request.
pub fn issue_created(lang: Lang, issue: &Issue) -> String {
    match lang {
        Lang::Ru => format!("Заявка №{} создана: {}", issue.id, issue.url),
        Lang::En => format!("Issue #{} is created: {}", issue.id, issue.url),
    }
}

/// The issue list is empty.
pub fn no_issues(lang: Lang) -> &'static str {
    lang.pick("У вас пока нет заявок.", "You have no issues yet.")
}

/// «📋 Мои заявки»: one line per issue, the buttons under it.
pub fn issue_list(lang: Lang, issues: &[Issue]) -> String {
    let mut text = lang.pick("Ваши заявки:", "Your issues:").to_owned();
    for i in issues {
        text.push_str(&format!(
            "\n{} — {}: {}",
            number(lang, i.id),
            i.status.name,
            i.title
        ));
    }
    text.push_str(lang.pick(
        "\n\nНажмите на заявку, чтобы увидеть её статус и ссылку.",
        "\n\nPress an issue to see its status and link.",
    ));
    text
}

/// «🔄 Проверить статус».
pub fn choose_for_status(lang: Lang) -> &'static str {
    lang.pick(
        "Выберите заявку, чтобы узнать её статус:",
        "Choose an issue to see its status:",
    )
}

/// «💬 Добавить комментарий».
pub fn choose_for_comment(lang: Lang) -> &'static str {
    lang.pick(
        "К какой заявке добавить комментарий?",
        "Which issue is the comment for?",
    )
}

/// The label of an issue's inline button: number and the start of the title.
pub fn issue_button(lang: Lang, issue: &Issue) -> String {
    let title: String = issue.title.chars().take(32).collect();
    let cut = if title.chars().count() < issue.title.chars().count() {
        "…"
    } else {
        ""
    };
    format!("{} · {title}{cut}", number(lang, issue.id))
}

/// One issue, after its button was pressed.
pub fn issue_details(lang: Lang, issue: &Issue) -> String {
    match lang {
        Lang::Ru => format!(
            "Заявка №{}: {}\nСтатус: {}\n{}",
            issue.id, issue.title, issue.status.name, issue.url
        ),
        Lang::En => format!(
            "Issue #{}: {}\nStatus: {}\n{}",
            issue.id, issue.title, issue.status.name, issue.url
        ),
    }
}

/// An issue that does not exist, or is not theirs.
pub fn issue_not_found(lang: Lang) -> &'static str {
    lang.pick("Заявка не найдена.", "Issue not found.")
}

/// An issue was chosen for a comment.
pub fn ask_comment(lang: Lang, issue: &Issue) -> String {
    match lang {
        Lang::Ru => format!(
            "Напишите комментарий к заявке №{} «{}». Можно приложить фото или файл (до 5 МБ). /cancel — закончить.",
            issue.id, issue.title
        ),
        Lang::En => format!(
            "Write your comment on issue #{} \"{}\". You can attach a photo or a file (up to 5 MB). /cancel to finish.",
            issue.id, issue.title
        ),
    }
}

/// Text while the bot waits for a press on the issue list.
pub fn pick_an_issue(lang: Lang) -> &'static str {
    lang.pick(
        "Выберите заявку кнопкой под списком или отправьте /cancel.",
        "Choose an issue with a button under the list, or send /cancel.",
    )
}

/// `cmd.okdesk.comment.create` published.
pub fn comment_sent(lang: Lang, issue_id: i64) -> String {
    match lang {
        Lang::Ru => format!(
            "Комментарий к заявке №{issue_id} отправлен. Можно написать ещё или отправить /cancel."
        ),
        Lang::En => {
            format!("Your comment on issue #{issue_id} is sent. Write more, or send /cancel.")
        }
    }
}

/// A comment message with nothing to send.
pub fn comment_empty(lang: Lang) -> &'static str {
    lang.pick(
        "Пришлите текст, фото или файл — или /cancel.",
        "Send text, a photo or a file, or /cancel.",
    )
}

/// A file over the limit.
pub fn file_too_large(lang: Lang, name: &str) -> String {
    match lang {
        Lang::Ru => format!("Файл «{name}» больше 5 МБ — его не получится приложить."),
        Lang::En => format!("The file \"{name}\" is over 5 MB and cannot be attached."),
    }
}

/// A sticker, location, contact … in a comment.
pub fn attachment_not_supported(lang: Lang) -> &'static str {
    lang.pick(
        "К комментарию можно приложить только фото, файлы, аудио и видео.",
        "Only photos, files, audio and video can be attached to a comment.",
    )
}

/// No answer from okdesk-bridge, or Okdesk itself is down.
pub fn okdesk_down(lang: Lang) -> &'static str {
    lang.pick(
        "Okdesk не отвечает, попробуйте позже.",
        "Okdesk is not answering, please try again later.",
    )
}

/// `events.okdesk.issue.status_changed`.
pub fn status_changed(lang: Lang, issue: &Issue) -> String {
    match lang {
        Lang::Ru => format!("Статус заявки №{}: {}", issue.id, issue.status.name),
        Lang::En => format!("Status of issue #{}: {}", issue.id, issue.status.name),
    }
}

/// `events.okdesk.comment.created` (a public comment by someone else than the person).
pub fn comment_added(lang: Lang, issue: &Issue, author: Option<&str>, text: &str) -> String {
    let by = author
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| format!("\n— {a}"))
        .unwrap_or_default();
    match lang {
        Lang::Ru => format!("Комментарий к заявке №{}:\n{text}{by}", issue.id),
        Lang::En => format!("Comment on issue #{}:\n{text}{by}", issue.id),
    }
}

/// The short notice of a button that no longer does anything.
pub fn stale_button(lang: Lang) -> &'static str {
    lang.pick(
        "Эта кнопка больше не действует.",
        "This button no longer works.",
    )
}

fn number(lang: Lang, id: i64) -> String {
    match lang {
        Lang::Ru => format!("№{id}"),
        Lang::En => format!("#{id}"),
    }
}
