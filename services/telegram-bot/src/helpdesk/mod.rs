//! The Okdesk helpdesk in the customers' private chats (`OKDESK_ENABLED`): registration as an
//! Okdesk contact, an issue from one message, the person's issues with their statuses, and
//! comments with photos and files. okdesk-bridge does the Okdesk side; the two talk only
//! through NATS ([`okdesk`]).
//!
//! It hooks into the relay to the topic (`consumers::to_topic`), which is ordered per private
//! chat: a customer's message goes to [`on_message`] first, and only what it leaves alone
//! ([`Outcome::Relay`]: free text outside a dialog) reaches the operators. Presses of its
//! inline buttons (`message.button_pressed`) come in the same lane ([`on_button`]).
//!
//! | the person sends | the bot |
//! |---|---|
//! | `/start` | the greeting and the menu (a reply keyboard) |
//! | `/register` | registration: private person (name, phone) or employee (INN → company found by okdesk-bridge → «Да»/«Нет» → name → phone), then `cmd.okdesk.contact.register` |
//! | «📝 Создать заявку» | the next message (text or caption) is the description: `cmd.okdesk.issue.create`, title = its first sentence, ≤ 80 characters |
//! | «📋 Мои заявки», «🔄 Проверить статус» | `rpc.okdesk.issue.list` → the list with a button per issue; a press → `rpc.okdesk.issue.get` → status and link |
//! | «💬 Добавить комментарий» | the list; a press → the next messages (text, photos, files ≤ 5 MB) are `cmd.okdesk.comment.create` |
//! | `/menu` | the menu |
//! | `/cancel` (or «❌ Отмена») | leaves any dialog |
//!
//! Each turn reads the person's dialog ([`dialog::Step`]), answers, and stores the new step
//! together with the handled message in one transaction (`Store::finish_turn`): a restart
//! resumes where the person was, and a redelivered message is not handled twice (its link,
//! kind `helpdesk`, says it was). A command published before a crash is published again with
//! the same idempotency key, which JetStream stores once. The answers from okdesk-bridge
//! (registered, issue created, status changed, public comment) are the notification consumer's
//! (`consumers::notify`).

pub mod dialog;
pub mod files;
pub mod input;
pub mod keyboards;
pub mod okdesk;

use domain::{
    ButtonPress, Command, CommentRequest, Company, ContactRegistration, InboundMessage, Issue,
    IssueRequest,
};
use frankenstein::types::ReplyMarkup;
use service_kit::consumer::HandleError;
use time::OffsetDateTime;

use crate::AppState;
use crate::consumers::{db_failure, id, record_sent, tg_failure};
use crate::store::{Done, Person, TurnRecord};
use crate::texts::Lang;
use crate::texts::helpdesk::{self as t, Choice, MenuItem};
use dialog::Step;
use input::{Inn, InnError, Input, Phone};
use keyboards::Press;
use okdesk::Lookup;

/// What became of a customer's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The helpdesk answered it; it is not relayed.
    Handled,
    /// Not the helpdesk's: relay it to the operators.
    Relay,
}

/// Hands a customer's private message to the helpdesk.
///
/// Errors: Telegram, NATS or the database failing (retried by the consumer).
pub async fn on_message(state: &AppState, m: &InboundMessage) -> Result<Outcome, HandleError> {
    let chat_id = id("chat id", &m.conversation.id)?;
    let user_id = id("user id", &m.sender.id)?;
    let message_id = id("message id", &m.message_id)?;
    let mut turn = Turn::load(state, chat_id, user_id, m.sender.language.as_deref()).await?;
    let input = Input::of(m);
    if !turn.on_input(&input, m, message_id).await? {
        return Ok(Outcome::Relay);
    }
    tracing::info!(
        user_id,
        message_id,
        step = turn.step.name(),
        "helpdesk turn"
    );
    metrics::counter!("telegram_helpdesk_turns_total", "step" => turn.step.name()).increment(1);
    let answer_ids = turn.sent.clone();
    turn.finish(Done::Message {
        chat_id,
        message_id,
        answer_ids,
    })
    .await?;
    Ok(Outcome::Handled)
}

/// Handles the press of one of the helpdesk's inline buttons. Every press is answered
/// (answerCallbackQuery) first, so the person's client stops waiting.
///
/// Errors: Telegram, the database failing (retried by the consumer).
pub async fn on_button(state: &AppState, b: &ButtonPress) -> Result<(), HandleError> {
    let lang = Lang::of(b.sender.language.as_deref());
    let press = Press::parse(&b.data);
    let note = press.is_none().then(|| t::stale_button(lang));
    if let Err(e) = state.telegram.answer_callback(&b.callback_id, note).await {
        // Too old (a redelivery after 15 s…): the press itself still counts.
        tracing::info!(error = %e, "answerCallbackQuery failed");
    }
    let Some(press) = press else {
        tracing::info!(data = %b.data, "a button this build does not know; ignored");
        return Ok(());
    };
    let key = format!("press:{}", b.callback_id);
    if state.store.is_done(&key).await.map_err(db_failure)? {
        tracing::info!(callback_id = %b.callback_id, "press handled already");
        return Ok(());
    }
    let chat_id = id("chat id", &b.conversation.id)?;
    let user_id = id("user id", &b.sender.id)?;
    let mut turn = Turn::load(state, chat_id, user_id, b.sender.language.as_deref()).await?;
    turn.on_press(press).await?;
    tracing::info!(user_id, data = %b.data, step = turn.step.name(), "helpdesk button pressed");
    turn.finish(Done::Key(key)).await
}

/// One turn of a person's dialog: their step before, and what the bot did.
struct Turn<'a> {
    state: &'a AppState,
    chat_id: i64,
    user_id: i64,
    lang: Lang,
    language: Option<String>,
    step: Step,
    registrations: i32,
    /// The bot's answers, in order.
    sent: Vec<i64>,
}

impl<'a> Turn<'a> {
    async fn load(
        state: &'a AppState,
        chat_id: i64,
        user_id: i64,
        language: Option<&str>,
    ) -> Result<Self, HandleError> {
        let row = state.store.dialog(user_id).await.map_err(db_failure)?;
        let (step, registrations) = match row {
            Some(r) => (Step::of(&r, OffsetDateTime::now_utc()), r.registrations),
            None => (Step::Idle, 0),
        };
        Ok(Self {
            state,
            chat_id,
            user_id,
            lang: Lang::of(language),
            language: language.map(str::to_owned),
            step,
            registrations,
            sent: Vec::new(),
        })
    }

    /// Sends `text` (with `markup`; `None` keeps the keyboard the person has). A person who
    /// blocked the bot gets nothing, and the turn goes on.
    async fn say(&mut self, text: &str, markup: Option<ReplyMarkup>) -> Result<(), HandleError> {
        match self
            .state
            .telegram
            .send_with_markup(self.chat_id, text, markup)
            .await
        {
            Ok(ids) => {
                self.sent.extend(ids.into_iter().map(i64::from));
                Ok(())
            }
            Err(e) if e.is_blocked_by_user() => {
                tracing::info!(
                    user_id = self.user_id,
                    "the person blocked the bot; not answered"
                );
                Ok(())
            }
            Err(e) => Err(tg_failure("helpdesk answer", e)),
        }
    }

    /// Records the turn (the dialog step, the update done). Written after the answers went
    /// out, so it is retried in place while Postgres is unreachable ([`record_sent`]): the
    /// update handled again would answer twice.
    async fn finish(self, done: Done) -> Result<(), HandleError> {
        let data = self.step.data();
        let record = TurnRecord {
            user_id: self.user_id,
            step: self.step.name(),
            data: data.as_ref(),
            language: self.language.as_deref(),
            registrations: self.registrations,
            done,
        };
        let store = &self.state.store;
        record_sent("helpdesk turn", || store.finish_turn(&record))
            .await
            .map_err(db_failure)
    }

    fn menu(&self) -> Option<ReplyMarkup> {
        Some(keyboards::menu(self.lang))
    }

    fn choices(&self, choices: &[Choice]) -> Option<ReplyMarkup> {
        Some(keyboards::choices(self.lang, choices))
    }

    /// `true` when the helpdesk handled the message.
    async fn on_input(
        &mut self,
        input: &Input,
        m: &InboundMessage,
        message_id: i64,
    ) -> Result<bool, HandleError> {
        let lang = self.lang;
        match input {
            Input::Command(c) if c == "start" => {
                self.step = Step::Idle;
                self.say(&t::greeting(lang), self.menu()).await?;
            }
            Input::Command(c) if c == "menu" => {
                self.step = Step::Idle;
                self.say(t::menu(lang), self.menu()).await?;
            }
            Input::Command(c) if c == "register" => self.start_registration().await?,
            Input::Command(c) if c == "cancel" => self.cancel().await?,
            Input::Choice(Choice::Cancel) => self.cancel().await?,
            Input::Menu(item) => {
                self.step = Step::Idle;
                self.menu_item(*item).await?;
            }
            _ if self.step.is_idle() => return Ok(false),
            _ => self.continue_dialog(input, m, message_id).await?,
        }
        Ok(true)
    }

    async fn cancel(&mut self) -> Result<(), HandleError> {
        let text = if self.step.is_idle() {
            t::nothing_to_cancel(self.lang)
        } else {
            t::cancelled(self.lang)
        };
        self.step = Step::Idle;
        self.say(text, self.menu()).await
    }

    async fn start_registration(&mut self) -> Result<(), HandleError> {
        self.step = Step::RegisterKind;
        let kb = self.choices(&[Choice::PrivatePerson, Choice::CompanyEmployee]);
        self.say(t::ask_kind(self.lang), kb).await
    }

    /// The registered person's contact and company; otherwise says what is missing (and
    /// starts the registration when there is none) and gives `None`.
    async fn contact(&mut self) -> Result<Option<(i64, Option<i64>)>, HandleError> {
        let person = self
            .state
            .store
            .person(self.user_id)
            .await
            .map_err(db_failure)?;
        match person {
            Some(Person {
                contact_id: Some(contact),
                company_id,
                ..
            }) => Ok(Some((contact, company_id))),
            Some(_) => {
                self.step = Step::Idle;
                self.say(t::registration_pending(self.lang), self.menu())
                    .await?;
                Ok(None)
            }
            None => {
                self.say(t::register_first(self.lang), None).await?;
                self.start_registration().await?;
                Ok(None)
            }
        }
    }

    async fn menu_item(&mut self, item: MenuItem) -> Result<(), HandleError> {
        let lang = self.lang;
        let Some((contact, _)) = self.contact().await? else {
            return Ok(());
        };
        match item {
            MenuItem::CreateIssue => {
                self.step = Step::IssueDescription;
                self.say(t::ask_description(lang), self.menu()).await
            }
            MenuItem::MyIssues => self
                .list(contact, Press::Issue, t::issue_list)
                .await
                .map(drop),
            MenuItem::CheckStatus => self
                .list(contact, Press::Issue, |l, _| {
                    t::choose_for_status(l).to_owned()
                })
                .await
                .map(drop),
            MenuItem::AddComment => {
                let shown = self
                    .list(contact, Press::Comment, |l, _| {
                        t::choose_for_comment(l).to_owned()
                    })
                    .await?;
                if shown {
                    self.step = Step::CommentPick;
                }
                Ok(())
            }
        }
    }

    /// Asks for the contact's issues and shows them with a button each; `true` when there
    /// was a list to show.
    async fn list(
        &mut self,
        contact: i64,
        press: fn(i64) -> Press,
        text: fn(Lang, &[Issue]) -> String,
    ) -> Result<bool, HandleError> {
        let lang = self.lang;
        match okdesk::issues(self.state, contact).await {
            Lookup::Found(issues) if !issues.is_empty() => {
                let kb = keyboards::issues(lang, &issues, press);
                self.say(&text(lang, &issues), Some(kb)).await?;
                Ok(true)
            }
            Lookup::Found(_) | Lookup::NotFound => {
                self.say(t::no_issues(lang), self.menu()).await?;
                Ok(false)
            }
            Lookup::Refused | Lookup::Down => {
                self.say(t::okdesk_down(lang), self.menu()).await?;
                Ok(false)
            }
        }
    }

    async fn continue_dialog(
        &mut self,
        input: &Input,
        m: &InboundMessage,
        message_id: i64,
    ) -> Result<(), HandleError> {
        let lang = self.lang;
        let text = m.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let plain = text.filter(|_| m.attachments.is_empty());
        match self.step.clone() {
            Step::Idle => Ok(()),
            Step::RegisterKind => match input {
                Input::Choice(Choice::PrivatePerson) => {
                    self.step = Step::RegisterName { company: None };
                    self.say(t::ask_full_name(lang), self.choices(&[])).await
                }
                Input::Choice(Choice::CompanyEmployee) => {
                    self.step = Step::RegisterInn;
                    self.say(t::ask_inn(lang), self.choices(&[])).await
                }
                _ => {
                    let kb = self.choices(&[Choice::PrivatePerson, Choice::CompanyEmployee]);
                    self.say(t::pick_a_button(lang), kb).await
                }
            },
            Step::RegisterInn => match plain.map(Inn::parse) {
                None | Some(Err(InnError::Shape)) => self.say(t::inn_shape(lang), None).await,
                Some(Err(InnError::Checksum)) => self.say(t::inn_checksum(lang), None).await,
                Some(Ok(inn)) => self.company(&inn).await,
            },
            Step::RegisterCompany { company } => match input {
                Input::Choice(Choice::Yes) => {
                    self.step = Step::RegisterName {
                        company: Some(company),
                    };
                    self.say(t::ask_full_name(lang), self.choices(&[])).await
                }
                Input::Choice(Choice::No) => {
                    self.step = Step::RegisterInn;
                    self.say(t::inn_again(lang), self.choices(&[])).await
                }
                _ => {
                    let kb = self.choices(&[Choice::Yes, Choice::No]);
                    self.say(t::yes_or_no(lang), kb).await
                }
            },
            Step::RegisterName { company } => match plain.and_then(input::full_name) {
                Some(full_name) => {
                    self.step = Step::RegisterPhone { company, full_name };
                    self.say(t::ask_phone(lang), Some(keyboards::phone(lang)))
                        .await
                }
                None => self.say(t::full_name_bad(lang), None).await,
            },
            Step::RegisterPhone { company, full_name } => match Phone::of(m) {
                Some(phone) => self.register(company, full_name, phone).await,
                None => {
                    self.say(t::phone_bad(lang), Some(keyboards::phone(lang)))
                        .await
                }
            },
            Step::IssueDescription => match text {
                Some(description) => self.create_issue(description, message_id).await,
                None => self.say(t::description_needed(lang), None).await,
            },
            Step::CommentPick => self.say(t::pick_an_issue(lang), None).await,
            Step::CommentText { issue_id } => self.comment(issue_id, m, message_id).await,
        }
    }

    /// A checked INN: the company behind it, for the person to confirm.
    async fn company(&mut self, inn: &Inn) -> Result<(), HandleError> {
        let lang = self.lang;
        match okdesk::company_by_inn(self.state, inn.as_str()).await {
            Lookup::Found(Some(company)) => {
                let text = t::company_found(lang, &company.name);
                self.step = Step::RegisterCompany { company };
                let kb = self.choices(&[Choice::Yes, Choice::No]);
                self.say(&text, kb).await
            }
            Lookup::Found(None) | Lookup::NotFound => {
                self.say(&t::company_not_found(lang, inn.as_str()), None)
                    .await
            }
            Lookup::Refused => self.say(t::company_search_refused(lang), None).await,
            Lookup::Down => self.say(t::okdesk_down(lang), None).await,
        }
    }

    async fn register(
        &mut self,
        company: Option<Company>,
        full_name: String,
        phone: Phone,
    ) -> Result<(), HandleError> {
        // Stored before the command goes out: the answer may come back before this turn ends.
        let person = Person {
            user_id: self.user_id,
            contact_id: None,
            company_id: company.as_ref().map(|c| c.id),
            company_name: company.as_ref().map(|c| c.name.clone()),
            full_name: full_name.clone(),
            phone: Some(phone.as_str().to_owned()),
            language: self.language.clone(),
        };
        self.state
            .store
            .registration_sent(&person)
            .await
            .map_err(db_failure)?;
        let n = self.registrations + 1;
        let command = Command::OkdeskContactRegister(ContactRegistration {
            requester: okdesk::requester(self.state, self.user_id),
            full_name,
            phone: Some(phone.as_str().to_owned()),
            company,
        });
        okdesk::publish(
            self.state,
            okdesk::registration_key(self.state, self.user_id, n),
            command,
        )
        .await?;
        self.registrations = n;
        self.step = Step::Idle;
        self.say(t::registration_sent(self.lang), Some(keyboards::remove()))
            .await
    }

    async fn create_issue(
        &mut self,
        description: &str,
        message_id: i64,
    ) -> Result<(), HandleError> {
        let Some((contact_id, company_id)) = self.contact().await? else {
            return Ok(());
        };
        let title = input::issue_title(description);
        let command = Command::OkdeskIssueCreate(IssueRequest {
            requester: okdesk::requester(self.state, self.user_id),
            contact_id,
            company_id,
            title: title.clone(),
            description: description.to_owned(),
        });
        let key = okdesk::message_key(self.state, self.chat_id, message_id, "issue");
        okdesk::publish(self.state, key, command).await?;
        self.step = Step::Idle;
        self.say(&t::issue_queued(self.lang, &title), self.menu())
            .await
    }

    async fn comment(
        &mut self,
        issue_id: i64,
        m: &InboundMessage,
        message_id: i64,
    ) -> Result<(), HandleError> {
        let lang = self.lang;
        let Some((contact_id, _)) = self.contact().await? else {
            return Ok(());
        };
        let fetched = files::fetch(self.state, m).await?;
        let mut notes: Vec<String> = fetched
            .too_large
            .iter()
            .map(|n| t::file_too_large(lang, n))
            .collect();
        if fetched.unsupported > 0 {
            notes.push(t::attachment_not_supported(lang).to_owned());
        }
        let text = m.text.as_deref().unwrap_or_default().trim().to_owned();
        if text.is_empty() && fetched.files.is_empty() {
            notes.push(t::comment_empty(lang).to_owned());
            return self.say(&notes.join("\n"), None).await;
        }
        let command = Command::OkdeskCommentCreate(CommentRequest {
            requester: okdesk::requester(self.state, self.user_id),
            contact_id,
            issue_id,
            text,
            files: fetched.files,
        });
        let key = okdesk::message_key(self.state, self.chat_id, message_id, "comment");
        okdesk::publish(self.state, key, command).await?;
        // The step stays: the next messages (an album's other photos) are comments too.
        notes.push(t::comment_sent(lang, issue_id));
        self.say(&notes.join("\n"), None).await
    }

    async fn on_press(&mut self, press: Press) -> Result<(), HandleError> {
        let lang = self.lang;
        let Some((contact, _)) = self.contact().await? else {
            return Ok(());
        };
        let issue_id = match press {
            Press::Issue(id) | Press::Comment(id) => id,
        };
        match okdesk::issue(self.state, contact, issue_id).await {
            Lookup::Found(issue) => match press {
                Press::Issue(_) => self.say(&t::issue_details(lang, &issue), None).await,
                Press::Comment(_) => {
                    self.step = Step::CommentText { issue_id };
                    self.say(&t::ask_comment(lang, &issue), self.menu()).await
                }
            },
            Lookup::NotFound => self.say(t::issue_not_found(lang), None).await,
            Lookup::Refused | Lookup::Down => self.say(t::okdesk_down(lang), None).await,
        }
    }
}
