//! The Okdesk helpdesk in the private chat (`OKDESK_ENABLED=true`), against the real Postgres,
//! NATS and the sandbox's Telegram. okdesk-bridge is played by [`FakeBridge`]: the three
//! `rpc.okdesk.*` look-ups answered with canned data, and a reader of `cmd.okdesk.>` on the
//! app's COMMANDS stream that answers registrations and issues with the events the bridge
//! publishes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use domain::{
    Command, CommentCreated, Company, ContactRegistered, Envelope, Event, FindCompanyByInn,
    IdempotencyKey, Issue, IssueCreated, IssueGetRequest, IssueListRequest, IssueStatus,
    IssueStatusChanged, RpcErrorKind, RpcReply, Source, Subject,
};
use futures::StreamExt;
use sandbox::telegram::{self, TgUser};
use serde_json::{Value, json};
use service_kit::bus::Bus;
use service_kit::rpc;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

const CONTACT: i64 = 77;

fn opts() -> Options {
    Options {
        okdesk: true,
        ..Options::default()
    }
}

fn status(code: &str, name: &str) -> IssueStatus {
    IssueStatus {
        code: code.into(),
        name: name.into(),
    }
}

fn issue(id: i64, contact: i64, title: &str, st: IssueStatus) -> Issue {
    Issue {
        id,
        title: title.into(),
        status: st,
        url: format!("https://demo.okdesk.ru/issues/{id}"),
        contact_id: Some(contact),
        company_id: None,
        created_at: None,
    }
}

/// okdesk-bridge as the bot sees it over NATS. Its tasks end with the test's runtime.
#[derive(Clone)]
struct FakeBridge {
    bus: Bus,
    stop: CancellationToken,
    companies: Arc<Mutex<HashMap<String, Company>>>,
    issues: Arc<Mutex<Vec<Issue>>>,
    commands: Arc<Mutex<Vec<Command>>>,
    rpc_calls: Arc<Mutex<Vec<String>>>,
    /// The look-ups take longer than any timeout.
    silent: Arc<AtomicBool>,
    next_id: Arc<AtomicI64>,
}

fn invalid<T>(message: String) -> RpcReply<T> {
    RpcReply::Error {
        kind: RpcErrorKind::Invalid,
        message,
    }
}

impl FakeBridge {
    async fn start(app: &TestApp) -> FakeBridge {
        let b = FakeBridge {
            bus: app.state.bus.clone(),
            stop: CancellationToken::new(),
            companies: Arc::default(),
            issues: Arc::default(),
            commands: Arc::default(),
            rpc_calls: Arc::default(),
            silent: Arc::default(),
            next_id: Arc::new(AtomicI64::new(1000)),
        };
        b.companies.lock().unwrap().insert(
            "7707083893".into(),
            Company {
                id: 5,
                name: "ПАО Сбербанк".into(),
            },
        );
        let me = b.clone();
        tokio::spawn(rpc::serve(
            b.bus.clone(),
            Subject::rpc(Source::Okdesk, "company.find_by_inn"),
            b.stop.clone(),
            invalid,
            move |r: FindCompanyByInn| {
                let me = me.clone();
                async move {
                    me.called("company.find_by_inn").await;
                    let c = me.companies.lock().unwrap().get(&r.inn).cloned();
                    RpcReply::Ok(c)
                }
            },
        ));
        let me = b.clone();
        tokio::spawn(rpc::serve(
            b.bus.clone(),
            Subject::rpc(Source::Okdesk, "issue.list"),
            b.stop.clone(),
            invalid,
            move |r: IssueListRequest| {
                let me = me.clone();
                async move {
                    me.called("issue.list").await;
                    let mut list: Vec<Issue> = me
                        .issues
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|i| i.contact_id == Some(r.contact_id))
                        .cloned()
                        .collect();
                    list.sort_by_key(|i| -i.id);
                    list.truncate(r.limit as usize);
                    RpcReply::Ok(list)
                }
            },
        ));
        let me = b.clone();
        tokio::spawn(rpc::serve(
            b.bus.clone(),
            Subject::rpc(Source::Okdesk, "issue.get"),
            b.stop.clone(),
            invalid,
            move |r: IssueGetRequest| {
                let me = me.clone();
                async move {
                    me.called("issue.get").await;
                    let found = me
                        .issues
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|i| i.id == r.issue_id && i.contact_id == Some(r.contact_id))
                        .cloned();
                    match found {
                        Some(i) => RpcReply::Ok(i),
                        None => RpcReply::Error {
                            kind: RpcErrorKind::NotFound,
                            message: "not the contact's".into(),
                        },
                    }
                }
            },
        ));
        let me = b.clone();
        let stream = b
            .bus
            .jetstream()
            .get_stream(b.bus.commands_stream())
            .await
            .expect("COMMANDS exists");
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject: b.bus.wire_subject(&Subject::command("okdesk.>")),
                ..Default::default()
            })
            .await
            .expect("command reader");
        tokio::spawn(async move {
            let mut msgs = consumer.messages().await.expect("messages");
            loop {
                let m = tokio::select! {
                    _ = me.stop.cancelled() => return,
                    m = msgs.next() => match m { Some(Ok(m)) => m, _ => return },
                };
                let _ = m.ack().await;
                let env: Envelope<Command> = Envelope::decode(&m.payload).expect("a command");
                me.answer(&env.payload).await;
                me.commands.lock().unwrap().push(env.payload);
            }
        });
        b
    }

    async fn called(&self, what: &str) {
        self.rpc_calls.lock().unwrap().push(what.to_owned());
        if self.silent.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }

    fn calls(&self) -> Vec<String> {
        self.rpc_calls.lock().unwrap().clone()
    }

    /// What the bridge publishes for a command.
    async fn answer(&self, cmd: &Command) {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        match cmd {
            Command::OkdeskContactRegister(r) => {
                let contact_id = if r.company.is_some() {
                    CONTACT + 1
                } else {
                    CONTACT
                };
                self.publish(
                    &format!("contact:{n}"),
                    Event::ContactRegistered(ContactRegistered {
                        requester: r.requester.clone(),
                        contact_id,
                        company: r.company.clone(),
                        created: true,
                    }),
                )
                .await;
            }
            Command::OkdeskIssueCreate(r) => {
                let i = Issue {
                    company_id: r.company_id,
                    ..issue(n, r.contact_id, &r.title, status("opened", "Открыта"))
                };
                self.issues.lock().unwrap().push(i.clone());
                self.publish(
                    &format!("issue:{n}:created"),
                    Event::IssueCreated(IssueCreated {
                        issue: i,
                        requester: Some(r.requester.clone()),
                    }),
                )
                .await;
            }
            _ => {}
        }
    }

    async fn publish(&self, key: &str, event: Event) {
        let env = Envelope::new(
            Source::Okdesk,
            OffsetDateTime::now_utc(),
            IdempotencyKey::from_parts(&["okdesk", key]),
            event,
        );
        self.bus.publish(&env).await.expect("event published");
    }

    /// Waits until `n` commands came.
    async fn wait_commands(&self, n: usize) -> Vec<Command> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.commands.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "wanted {n} commands, got {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl TestApp {
    /// The bot's text messages to `user`, oldest first.
    fn texts_to(&self, user: i64) -> Vec<String> {
        self.to_customer(user)
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits for a message of the bot to `user` that contains `needle`, sent after the first
    /// `after` messages; returns it.
    async fn wait_reply(&self, user: i64, after: usize, needle: &str) -> Value {
        let found = |s: &sandbox::Sandbox| {
            s.telegram_bot_messages(user)
                .into_iter()
                .skip(after)
                .find(|m| m["text"].as_str().is_some_and(|t| t.contains(needle)))
        };
        self.sandbox
            .wait_until(WAIT, |s| found(s).is_some())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no message with {needle:?} to {user} after {after}: {:#?}",
                    self.texts_to(user)
                )
            });
        found(&self.sandbox).expect("found")
    }

    /// The person says `text` and the bot answers with `needle`.
    async fn says(&self, user: &TgUser, content: Value, needle: &str) -> Value {
        let before = self.to_customer(user.id).len();
        self.customer_sends(user, content);
        self.wait_reply(user.id, before, needle).await
    }

    /// Registers `user` as contact `contact` without the dialog (for tests about what comes
    /// after).
    async fn registered(&self, user: &TgUser, contact: i64) {
        self.state
            .store
            .registered(user.id, contact, None)
            .await
            .expect("stored");
    }

    fn keyboard(&self, user: i64) -> Vec<Vec<String>> {
        self.sandbox.telegram_reply_keyboard_texts(user)
    }
}

fn menu_ru() -> Vec<Vec<String>> {
    vec![
        vec!["📝 Создать заявку".into(), "📋 Мои заявки".into()],
        vec![
            "🔄 Проверить статус".into(),
            "💬 Добавить комментарий".into(),
        ],
    ]
}

/// The inline buttons under a message: (text, callback_data).
fn inline_buttons(m: &Value) -> Vec<(String, String)> {
    m["reply_markup"]["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .map(|b| {
            (
                b["text"].as_str().unwrap_or_default().to_owned(),
                b["callback_data"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_private_person_registers_with_a_typed_phone_and_gets_the_menu() {
    let app = spawn_app_with(opts()).await;
    let bridge = FakeBridge::start(&app).await;
    let user = ivan();
    app.says(&user, text("/start"), "Здравствуйте").await;
    assert_eq!(app.keyboard(user.id), menu_ru(), "/start shows the menu");
    app.says(&user, text("/register"), "частное лицо или сотрудник")
        .await;
    assert_eq!(
        app.keyboard(user.id),
        vec![
            vec![
                "👤 Частное лицо".to_owned(),
                "🏢 Сотрудник компании".to_owned()
            ],
            vec!["❌ Отмена".to_owned()]
        ]
    );
    app.says(&user, text("👤 Частное лицо"), "Как вас зовут")
        .await;
    app.says(&user, text("Иванов Иван Иванович"), "номер телефона")
        .await;
    let kb = app
        .sandbox
        .telegram_reply_keyboard(user.id)
        .expect("keyboard");
    assert_eq!(kb["keyboard"][0][0]["request_contact"], true, "{kb}");
    app.says(&user, text("8 (900) 123-45-67"), "Регистрация отправлена")
        .await;
    let cmds = bridge.wait_commands(1).await;
    let Command::OkdeskContactRegister(r) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    assert_eq!(r.full_name, "Иванов Иван Иванович");
    assert_eq!(r.phone.as_deref(), Some("+79001234567"));
    assert_eq!(r.company, None);
    assert_eq!(
        (r.requester.system.as_str(), r.requester.user_id),
        ("telegram", user.id)
    );
    assert_eq!(r.requester.bot_id, app.state.settings.bot_id);
    // The bridge answers: the person is told, with the menu.
    app.wait_reply(user.id, 0, "вы зарегистрированы в Okdesk")
        .await;
    assert_eq!(app.keyboard(user.id), menu_ru());
    let person = app
        .state
        .store
        .person(user.id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(person.contact_id, Some(CONTACT));
    assert_eq!(person.phone.as_deref(), Some("+79001234567"));
    // None of it went to the operators.
    assert!(app.sandbox.telegram_topics().is_empty());
    assert!(app.sandbox.telegram_bot_messages(app.group()).is_empty());
}

#[tokio::test]
async fn a_phone_shared_with_the_contact_button_is_taken_as_e164() {
    let app = spawn_app_with(opts()).await;
    let bridge = FakeBridge::start(&app).await;
    let user = ivan();
    app.says(&user, text("/register"), "частное лицо").await;
    app.says(&user, text("👤 Частное лицо"), "Как вас зовут")
        .await;
    app.says(&user, text("Петров Пётр"), "номер телефона").await;
    // What Telegram sends for the request_contact button: the person's own contact, the
    // number without `+`.
    let shared = json!({"contact": {"phone_number": "79161234567", "first_name": "Pyotr",
                                    "user_id": user.id}});
    app.says(&user, shared, "Регистрация отправлена").await;
    let cmds = bridge.wait_commands(1).await;
    let Command::OkdeskContactRegister(r) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    assert_eq!(r.phone.as_deref(), Some("+79161234567"));
    assert_eq!(r.full_name, "Петров Пётр");
    assert!(app.sandbox.telegram_topics().is_empty());
}

#[tokio::test]
async fn a_company_employee_confirms_the_company_found_by_its_inn() {
    let app = spawn_app_with(opts()).await;
    let bridge = FakeBridge::start(&app).await;
    let user = ivan();
    app.says(&user, text("/register"), "частное лицо").await;
    app.says(&user, text("🏢 Сотрудник компании"), "ИНН").await;
    let found = app
        .says(
            &user,
            text("7707 083 893"),
            "Нашлась компания «ПАО Сбербанк»",
        )
        .await;
    assert!(
        found["text"]
            .as_str()
            .unwrap()
            .contains("Это ваша компания?")
    );
    assert_eq!(
        app.keyboard(user.id)[0],
        vec!["Да".to_owned(), "Нет".to_owned()]
    );
    assert_eq!(bridge.calls(), ["company.find_by_inn"]);
    app.says(&user, text("Да"), "Как вас зовут").await;
    app.says(&user, text("Сидорова Анна"), "номер телефона")
        .await;
    app.says(&user, text("+7 916 765-43-21"), "Регистрация отправлена")
        .await;
    let cmds = bridge.wait_commands(1).await;
    let Command::OkdeskContactRegister(r) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        r.company,
        Some(Company {
            id: 5,
            name: "ПАО Сбербанк".into()
        })
    );
    app.wait_reply(user.id, 0, "как сотрудник «ПАО Сбербанк»")
        .await;
    let person = app.state.store.person(user.id).await.unwrap().unwrap();
    assert_eq!(
        (person.contact_id, person.company_id),
        (Some(CONTACT + 1), Some(5))
    );
}

#[tokio::test]
async fn an_unknown_inn_is_not_found_and_a_bad_checksum_is_caught_before_any_lookup() {
    let app = spawn_app_with(opts()).await;
    let bridge = FakeBridge::start(&app).await;
    let user = ivan();
    app.says(&user, text("/register"), "частное лицо").await;
    app.says(&user, text("🏢 Сотрудник компании"), "ИНН").await;
    app.says(&user, text("1234567895"), "не сходится контрольная цифра")
        .await;
    app.says(&user, text("123456789037"), "не сходится контрольная цифра")
        .await;
    app.says(&user, text("12345"), "10 или 12 цифр").await;
    assert!(
        bridge.calls().is_empty(),
        "no look-up for a bad INN: {:?}",
        bridge.calls()
    );
    // Valid, but no such company in Okdesk; the person may try again.
    app.says(
        &user,
        text("7830002293"),
        "ИНН 7830002293 в Okdesk не найдена",
    )
    .await;
    assert_eq!(bridge.calls(), ["company.find_by_inn"]);
    app.says(&user, text("7707083893"), "ПАО Сбербанк").await;
    app.says(&user, text("Нет"), "ИНН ещё раз").await;
    assert!(bridge.commands.lock().unwrap().is_empty());
    assert!(app.sandbox.telegram_topics().is_empty());
}

#[tokio::test]
async fn a_restart_mid_dialog_resumes_where_the_person_was() {
    let app = spawn_app_with(opts()).await;
    let user = ivan();
    app.says(&user, text("/register"), "частное лицо").await;
    app.says(&user, text("👤 Частное лицо"), "Как вас зовут")
        .await;
    app.says(&user, text("Иванов Иван"), "номер телефона").await;
    let (sandbox, env) = app.stop().await;
    let app = start(sandbox, env, opts()).await;
    let bridge = FakeBridge::start(&app).await;
    app.says(&user, text("+79001234567"), "Регистрация отправлена")
        .await;
    let cmds = bridge.wait_commands(1).await;
    let Command::OkdeskContactRegister(r) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        r.full_name, "Иванов Иван",
        "the name given before the restart"
    );
    app.wait_reply(user.id, 0, "вы зарегистрированы").await;
}

#[tokio::test]
async fn an_issue_from_one_message_gets_a_short_title_and_then_its_number_and_link() {
    let app = spawn_app_with(opts()).await;
    let bridge = FakeBridge::start(&app).await;
    let user = ivan();
    app.registered(&user, CONTACT).await;
    app.says(&user, text("📝 Создать заявку"), "Опишите проблему")
        .await;
    let description = "После обновления операционной системы на компьютере главного бухгалтера \
                       перестала запускаться программа 1С. Ошибка появляется сразу.";
    app.says(&user, text(description), "поставлена в очередь")
        .await;
    let cmds = bridge.wait_commands(1).await;
    let Command::OkdeskIssueCreate(r) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        r.title,
        "После обновления операционной системы на компьютере главного бухгалтера…"
    );
    assert!(r.title.chars().count() <= 80);
    assert_eq!(r.description, description);
    assert_eq!(r.contact_id, CONTACT);
    let created = app
        .wait_reply(
            user.id,
            0,
            "Заявка №1000 создана: https://demo.okdesk.ru/issues/1000",
        )
        .await;
    assert!(created["text"].is_string());
    // The next free text is the operators' again.
    app.customer_sends(&user, text("А ещё вопрос по счёту"));
    let thread = app.wait_topic(1).await;
    let msgs = app.wait_topic_len(thread, 2).await;
    assert_eq!(msgs[1]["text"], "А ещё вопрос по счёту");
}

#[tokio::test]
async fn my_issues_are_listed_with_buttons_and_a_press_shows_status_and_link() {
    let app = spawn_app_with(opts()).await;
    let bridge = FakeBridge::start(&app).await;
    let user = ivan();
    app.registered(&user, CONTACT).await;
    bridge.issues.lock().unwrap().extend([
        issue(
            11,
            CONTACT,
            "Не печатает принтер",
            status("in_progress", "В работе"),
        ),
        issue(
            12,
            CONTACT,
            "Нет доступа к почте",
            status("opened", "Открыта"),
        ),
        issue(13, CONTACT + 5, "Чужая заявка", status("opened", "Открыта")),
    ]);
    let list = app.says(&user, text("📋 Мои заявки"), "Ваши заявки").await;
    let body = list["text"].as_str().unwrap();
    assert!(
        body.contains("№12 — Открыта: Нет доступа к почте")
            && body.contains("№11 — В работе: Не печатает принтер"),
        "{body}"
    );
    assert!(!body.contains("Чужая"), "{body}");
    let buttons = inline_buttons(&list);
    assert_eq!(
        buttons.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>(),
        ["issue:12", "issue:11"]
    );
    assert_eq!(buttons[1].0, "№11 · Не печатает принтер");
    let before = app.to_customer(user.id).len();
    let message_id = list["message_id"].as_i64().unwrap();
    app.sandbox
        .telegram_press_button(&user, user.id, message_id, "issue:11");
    let details = app.wait_reply(user.id, before, "Статус: В работе").await;
    assert!(
        details["text"]
            .as_str()
            .unwrap()
            .contains("https://demo.okdesk.ru/issues/11"),
        "{details}"
    );
    assert_eq!(
        app.sandbox.telegram_callback_answers().len(),
        1,
        "the press is answered"
    );
    // «Проверить статус» shows the same buttons.
    let pick = app
        .says(&user, text("🔄 Проверить статус"), "Выберите заявку")
        .await;
    assert_eq!(inline_buttons(&pick).len(), 2);
    assert!(app.sandbox.telegram_topics().is_empty());
}

#[tokio::test]
async fn a_comment_goes_out_as_a_command_with_its_text_and_photo() {
    let app = spawn_app_with(opts()).await;
    let bridge = FakeBridge::start(&app).await;
    let user = ivan();
    app.registered(&user, CONTACT).await;
    bridge.issues.lock().unwrap().push(issue(
        21,
        CONTACT,
        "Не печатает принтер",
        status("in_progress", "В работе"),
    ));
    let pick = app
        .says(&user, text("💬 Добавить комментарий"), "К какой заявке")
        .await;
    assert_eq!(inline_buttons(&pick)[0].1, "comment:21");
    let before = app.to_customer(user.id).len();
    app.sandbox.telegram_press_button(
        &user,
        user.id,
        pick["message_id"].as_i64().unwrap(),
        "comment:21",
    );
    app.wait_reply(user.id, before, "Напишите комментарий к заявке №21")
        .await;
    app.says(&user, text("Горит красная лампочка"), "отправлен")
        .await;
    // A photo with a caption: the largest size, fetched through getFile and the file URL.
    let photo = telegram::with(telegram::photo(), json!({"caption": "Вот фото"}));
    let file_id = photo["photo"][2]["file_id"].as_str().unwrap().to_owned();
    app.customer_sends(&user, photo);
    app.wait_reply(user.id, before + 2, "отправлен").await;
    // A document over 5 MB is refused, and nothing is sent for it.
    app.says(
        &user,
        telegram::document_named("backup.zip", "application/zip", 6 * 1024 * 1024),
        "больше 5 МБ",
    )
    .await;
    let cmds = bridge.wait_commands(2).await;
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    let Command::OkdeskCommentCreate(first) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        (first.issue_id, first.contact_id, first.text.as_str()),
        (21, CONTACT, "Горит красная лампочка")
    );
    assert!(first.files.is_empty());
    let Command::OkdeskCommentCreate(second) = &cmds[1] else {
        panic!("{cmds:?}")
    };
    assert_eq!(second.text, "Вот фото");
    assert_eq!(second.files.len(), 1);
    assert_eq!(second.files[0].mime, "image/jpeg");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&second.files[0].base64)
        .unwrap();
    assert_eq!(bytes, app.sandbox.telegram_file(&file_id).unwrap());
    assert!(
        app.sandbox
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/telegram/file/bot")),
        "downloaded from the file URL"
    );
    assert!(app.sandbox.telegram_topics().is_empty());
}

#[tokio::test]
async fn status_changes_and_public_comments_reach_every_person_of_the_contact_once() {
    let app = spawn_app_with(opts()).await;
    let bridge = FakeBridge::start(&app).await;
    let (user, other) = (ivan(), anna());
    let colleague = TgUser::new(5_000_003, "Olga").language_code("ru");
    app.registered(&user, CONTACT).await;
    app.registered(&colleague, CONTACT).await;
    app.registered(&other, CONTACT + 9).await;
    // They wrote to the bot before (so it may write to them).
    for u in [&user, &colleague, &other] {
        app.says(u, text("/menu"), "").await;
    }
    let i = issue(
        31,
        CONTACT,
        "Не печатает принтер",
        status("completed", "Решена"),
    );
    let changed = Event::IssueStatusChanged(IssueStatusChanged {
        issue: i.clone(),
        old_status: Some(status("in_progress", "В работе")),
    });
    bridge.publish("issue:31:status:1", changed.clone()).await;
    bridge.publish("issue:31:status:1", changed).await; // the same delivery again
    bridge
        .publish(
            "comment:900",
            Event::CommentCreated(CommentCreated {
                issue: i.clone(),
                comment_id: 900,
                text: "Заменили картридж".into(),
                author: Some("Инженер Петров".into()),
                by_contact: false,
            }),
        )
        .await;
    bridge
        .publish(
            "comment:901",
            Event::CommentCreated(CommentCreated {
                issue: i.clone(),
                comment_id: 901,
                text: "Спасибо!".into(),
                author: Some("Иван".into()),
                by_contact: true,
            }),
        )
        .await;
    for u in [&user, &colleague] {
        app.wait_reply(u.id, 0, "Статус заявки №31: Решена").await;
        let c = app
            .wait_reply(u.id, 0, "Комментарий к заявке №31:\nЗаменили картридж")
            .await;
        assert!(c["text"].as_str().unwrap().ends_with("— Инженер Петров"));
    }
    // A last event in the same lane: once it is in, everything before it was handled.
    bridge
        .publish(
            "issue:31:status:2",
            Event::IssueStatusChanged(IssueStatusChanged {
                issue: issue(
                    31,
                    CONTACT,
                    "Не печатает принтер",
                    status("closed", "Закрыта"),
                ),
                old_status: None,
            }),
        )
        .await;
    app.wait_reply(user.id, 0, "Статус заявки №31: Закрыта")
        .await;
    let texts = app.texts_to(user.id);
    assert_eq!(
        texts.iter().filter(|t| t.contains("Решена")).count(),
        1,
        "{texts:#?}"
    );
    assert!(!texts.iter().any(|t| t.contains("Спасибо")), "{texts:#?}");
    assert!(
        !app.texts_to(other.id).iter().any(|t| t.contains("№31")),
        "another contact hears nothing"
    );
}

#[tokio::test]
async fn okdesk_not_answering_is_try_later() {
    let app = spawn_app_with(Options {
        rpc_timeout_secs: Some(1),
        ..opts()
    })
    .await;
    let user = ivan();
    let english = anna();
    app.registered(&user, CONTACT).await;
    // Nobody answers rpc.okdesk.* at all (okdesk-bridge is down).
    app.says(
        &user,
        text("📋 Мои заявки"),
        "Okdesk не отвечает, попробуйте позже",
    )
    .await;
    // The bridge is there but Okdesk behind it hangs: the timeout.
    let bridge = FakeBridge::start(&app).await;
    bridge.silent.store(true, Ordering::SeqCst);
    app.says(&user, text("🔄 Проверить статус"), "Okdesk не отвечает")
        .await;
    assert_eq!(bridge.calls(), ["issue.list"]);
    app.says(&english, text("/register"), "private person")
        .await;
    app.says(&english, text("🏢 Company employee"), "INN").await;
    app.says(
        &english,
        text("7707083893"),
        "Okdesk is not answering, please try again later",
    )
    .await;
    // Still at the INN step: the next try goes through once Okdesk answers.
    bridge.silent.store(false, Ordering::SeqCst);
    app.says(&english, text("7707083893"), "Found the company")
        .await;
}

#[tokio::test]
async fn cancel_leaves_any_dialog_and_free_text_reaches_the_operators_again() {
    let app = spawn_app_with(opts()).await;
    let _bridge = FakeBridge::start(&app).await;
    let user = ivan();
    app.says(&user, text("/cancel"), "нечего отменять").await;
    app.says(&user, text("/register"), "частное лицо").await;
    app.says(&user, text("👤 Частное лицо"), "Как вас зовут")
        .await;
    app.says(&user, text("/cancel"), "Отменено").await;
    assert_eq!(app.keyboard(user.id), menu_ru());
    app.customer_sends(&user, text("Иванов Иван"));
    let thread = app.wait_topic(1).await;
    let msgs = app.wait_topic_len(thread, 2).await;
    assert_eq!(msgs[1]["text"], "Иванов Иван", "not taken as a name");
    // «❌ Отмена» works like /cancel.
    app.registered(&user, CONTACT).await;
    app.says(&user, text("📝 Создать заявку"), "Опишите проблему")
        .await;
    app.says(&user, text("❌ Отмена"), "Отменено").await;
    app.customer_sends(&user, text("Не заявка, просто вопрос"));
    let msgs = app.wait_topic_len(thread, 3).await;
    assert_eq!(msgs[2]["text"], "Не заявка, просто вопрос");
    let stored = app
        .state
        .store
        .dialog(user.id)
        .await
        .unwrap()
        .expect("dialog");
    assert_eq!(stored.step, "idle");
}

#[tokio::test]
async fn with_the_helpdesk_on_free_text_still_reaches_the_topic() {
    let app = spawn_app_with(opts()).await;
    let _bridge = FakeBridge::start(&app).await;
    let user = ivan();
    app.says(&user, text("/start"), "/register").await;
    app.customer_sends(&user, text("Здравствуйте, заказ не пришёл"));
    app.customer_sends(&user, telegram::photo());
    let thread = app.wait_topic(1).await;
    let msgs = app.wait_topic_len(thread, 3).await;
    assert_eq!(msgs[1]["text"], "Здравствуйте, заказ не пришёл");
    assert!(msgs[2]["photo"].is_array(), "{}", msgs[2]);
    // The greeting and the menu are the helpdesk's; /start is not relayed.
    assert!(!msgs.iter().any(|m| m["text"] == "/start"), "{msgs:#?}");
    // Operators' replies still reach the customer.
    app.operator_sends(thread, text("Добрый день!"));
    app.wait_reply(user.id, 0, "Добрый день!").await;
}

#[tokio::test]
async fn a_file_fetched_for_a_comment_keeps_the_token_out_of_the_logs() {
    let logs = capture_logs();
    let app = spawn_app_with(opts()).await;
    let bridge = FakeBridge::start(&app).await;
    let user = ivan();
    app.registered(&user, CONTACT).await;
    bridge.issues.lock().unwrap().push(issue(
        41,
        CONTACT,
        "Не печатает принтер",
        status("opened", "Открыта"),
    ));
    let pick = app
        .says(&user, text("💬 Добавить комментарий"), "К какой заявке")
        .await;
    let before = app.to_customer(user.id).len();
    app.sandbox.telegram_press_button(
        &user,
        user.id,
        pick["message_id"].as_i64().unwrap(),
        "comment:41",
    );
    app.wait_reply(user.id, before, "Напишите комментарий")
        .await;
    // Telegram's nginx fails a few calls (getFile, the download or the long poll): retried.
    app.sandbox
        .fail_next(sandbox::Target::Telegram, 2, sandbox::Failure::Status(502));
    app.says(&user, telegram::document(), "отправлен").await;
    let cmds = bridge.wait_commands(1).await;
    let Command::OkdeskCommentCreate(c) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        (c.files[0].name.as_str(), c.files[0].mime.as_str()),
        ("report.pdf", "application/pdf")
    );
    let token = app.sandbox.options().telegram_bot_token.clone();
    let secret = token.split_once(':').unwrap().1.to_owned();
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(text.len() > 1000, "logs were captured");
    let leaks: Vec<String> = text
        .lines()
        .filter(|l| l.contains(&secret))
        .map(|l| l.replace(&secret, "<TOKEN>"))
        .take(3)
        .collect();
    assert!(
        leaks.is_empty(),
        "the bot token leaked into the logs: {leaks:#?}"
    );
}

/// The real okdesk-bridge on the app's database and NATS prefix, against the sandbox's
/// Okdesk, with its webhook pointed at it.
async fn real_bridge(
    app: &TestApp,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let o = app.sandbox.options();
    let token = "okdesk-hook-e2e-7a1c9f3b5d";
    let mut vars = app.env.runtime_overrides();
    vars.extend([
        ("LOG_LEVEL", "warn".to_owned()),
        ("OKDESK_API_URL", app.sandbox.okdesk_api_url()),
        ("OKDESK_API_TOKEN", o.okdesk_api_token.clone()),
        ("OKDESK_WEBHOOK_TOKEN", token.to_owned()),
        ("OKDESK_POLL_INTERVAL_SECS", "0".to_owned()),
    ]);
    let cli: okdesk_bridge::config::Cli = testkit::parse_config(&vars);
    let settings = okdesk_bridge::config::Settings::from_config(&cli.config).expect("valid");
    let bridge = okdesk_bridge::build(settings).await.expect("bridge builds");
    app.sandbox.okdesk_set_webhook(Some(format!(
        "http://127.0.0.1:{}/okdesk/webhook/{token}",
        bridge.port()
    )));
    let stop = CancellationToken::new();
    let run = tokio::spawn(bridge.run_until(stop.clone()));
    (stop, run)
}

#[tokio::test]
async fn end_to_end_with_the_real_bridge_register_open_an_issue_and_hear_of_its_status() {
    let app = spawn_app_with(opts()).await;
    let (stop, run) = real_bridge(&app).await;
    let user = ivan();
    app.says(&user, text("/register"), "частное лицо или сотрудник")
        .await;
    app.says(&user, text("👤 Частное лицо"), "Как вас зовут")
        .await;
    app.says(&user, text("Иванов Иван Иванович"), "номер телефона")
        .await;
    app.says(&user, text("+7 900 123-45-67"), "Регистрация отправлена")
        .await;
    app.wait_reply(user.id, 0, "вы зарегистрированы в Okdesk")
        .await;
    let contacts = app.sandbox.okdesk_contacts();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    app.says(&user, text("📝 Создать заявку"), "Опишите проблему")
        .await;
    app.says(
        &user,
        text("Не печатает принтер в бухгалтерии. Горит красная лампа."),
        "поставлена в очередь",
    )
    .await;
    let created = app.wait_reply(user.id, 0, "создана: http").await;
    let issues = app.sandbox.okdesk_issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    let id = issues[0]["id"].as_i64().unwrap();
    assert_eq!(issues[0]["title"], "Не печатает принтер в бухгалтерии");
    assert!(
        created["text"]
            .as_str()
            .unwrap()
            .contains(&format!("№{id}")),
        "{created}"
    );
    // An engineer works in Okdesk: the status and a public comment reach the person, a
    // private comment does not.
    let before = app.to_customer(user.id).len();
    app.sandbox.okdesk_change_status(id, "in_progress");
    app.wait_reply(user.id, before, &format!("Статус заявки №{id}"))
        .await;
    app.sandbox
        .okdesk_add_comment(id, "Внутренняя заметка", false);
    app.sandbox
        .okdesk_add_comment(id, "Картридж заменили", true);
    app.wait_reply(user.id, before, "Картридж заменили").await;
    assert!(
        !app.texts_to(user.id)
            .iter()
            .any(|t| t.contains("Внутренняя заметка")),
        "{:#?}",
        app.texts_to(user.id)
    );
    stop.cancel();
    let _ = run.await;
}
