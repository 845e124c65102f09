//! Keyboards and button presses: what a person sees under the bot's messages and what pressing
//! a button sends the bot.
//!
//! - **Reply keyboards** (`reply_markup` with `keyboard`, <https://core.telegram.org/bots/api#replykeyboardmarkup>)
//!   are not part of a `Message`, as on Telegram; the fake remembers the last one shown in each
//!   chat until a `ReplyKeyboardRemove` (`{"remove_keyboard":true}`) or a new keyboard replaces
//!   it ([`Sandbox::telegram_reply_keyboard`]). Pressing one of its buttons is the person sending
//!   its text (or, for a `request_contact` button, their contact).
//! - **Inline keyboards** stay on the stored message (`reply_markup.inline_keyboard`); a
//!   `callback_data` longer than 64 bytes is refused with `BUTTON_DATA_INVALID`, as on the server.
//!   [`Sandbox::telegram_press_button`] queues the `callback_query` update Telegram sends for a
//!   press, and `answerCallbackQuery` (<https://core.telegram.org/bots/api#answercallbackquery>)
//!   must answer it once: an unknown or already answered id is `query is too old and response
//!   timeout expired or query ID is invalid`.

use serde::Serialize;
use serde_json::{Value, json};

use super::{ApiError, Params, PushedUpdate, TelegramState, TgUser, change, push_update};
use crate::Sandbox;

/// Longest `callback_data` of an inline button, in bytes.
pub const CALLBACK_DATA_MAX_BYTES: usize = 64;

/// Longest `text` of `answerCallbackQuery`, in characters.
const ANSWER_TEXT_MAX_CHARS: usize = 200;

const QUERY_INVALID: &str = "query is too old and response timeout expired or query ID is invalid";

/// One `answerCallbackQuery` the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TelegramCallbackAnswer {
    /// The `callback_query.id` answered.
    pub callback_query_id: String,
    /// The notification text shown to the person, if any.
    pub text: Option<String>,
    /// Shown as an alert instead of a notification at the top of the chat.
    pub show_alert: bool,
}

impl TelegramState {
    /// `reply_markup` of a send that went through: remembers a reply keyboard, forgets it on
    /// `remove_keyboard`. Inline keyboards belong to the message and are kept there.
    pub(crate) fn track_reply_keyboard(&mut self, chat_id: i64, params: &Params) {
        let Some(markup) = params.json("reply_markup") else {
            return;
        };
        if markup.get("keyboard").is_some() {
            self.keyboards.insert(chat_id, markup);
        } else if markup["remove_keyboard"] == true {
            self.keyboards.remove(&chat_id);
        }
    }

    /// `BUTTON_DATA_INVALID` for an inline button whose `callback_data` is empty or too long.
    pub(crate) fn check_inline_markup(params: &Params) -> Result<(), ApiError> {
        let Some(markup) = params.json("reply_markup") else {
            return Ok(());
        };
        let rows = markup["inline_keyboard"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for button in rows.iter().filter_map(Value::as_array).flatten() {
            if let Some(data) = button.get("callback_data").and_then(Value::as_str)
                && (data.is_empty() || data.len() > CALLBACK_DATA_MAX_BYTES)
            {
                return Err(ApiError::bad("BUTTON_DATA_INVALID"));
            }
        }
        Ok(())
    }

    /// `answerCallbackQuery`.
    pub(crate) fn answer_callback_query(&mut self, params: &Params) -> Result<Value, ApiError> {
        let id = params
            .str("callback_query_id")
            .ok_or_else(|| ApiError::bad("parameter \"callback_query_id\" is required"))?;
        let text = params.str("text");
        if text
            .as_ref()
            .is_some_and(|t| t.chars().count() > ANSWER_TEXT_MAX_CHARS)
        {
            return Err(ApiError::bad("MESSAGE_TOO_LONG"));
        }
        match self.callback_queries.get_mut(&id) {
            Some(answered @ false) => *answered = true,
            _ => return Err(ApiError::bad(QUERY_INVALID)),
        }
        self.callback_answers.push(TelegramCallbackAnswer {
            callback_query_id: id,
            text,
            show_alert: params.bool("show_alert"),
        });
        Ok(json!(true))
    }

    /// The `callback_query` of `user` pressing the button with `data` under message
    /// `message_id` of `chat_id`; `Err` says why there is no such button.
    fn press(
        &mut self,
        user: &TgUser,
        chat_id: i64,
        message_id: i64,
        data: &str,
    ) -> Result<Value, String> {
        let stored = self
            .stored(chat_id, message_id)
            .ok_or_else(|| format!("no message {message_id} in chat {chat_id}"))?;
        let message = stored.message.clone();
        let has_button = message["reply_markup"]["inline_keyboard"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .any(|b| b["callback_data"] == data);
        if !has_button {
            return Err(format!(
                "message {message_id} of chat {chat_id} has no inline button with callback_data {data:?}: {message}"
            ));
        }
        self.next_callback += 1;
        // Shaped like Telegram's: long decimal strings.
        let id = format!("{}{:08}", 4_382_045_912_u64, self.next_callback);
        self.callback_queries.insert(id.clone(), false);
        Ok(json!({"callback_query": {
            "id": id,
            "from": user.to_json(),
            "message": message,
            "chat_instance": format!("-{}", 5_000_000_000_000_000_000_u64 + chat_id.unsigned_abs()),
            "data": data,
        }}))
    }
}

impl Sandbox {
    /// `user` presses the inline button with `callback_data` `data` under the bot's message
    /// `message_id` in `chat_id`: queues the `callback_query` update (with the message as it is
    /// now). The bot must answer it with `answerCallbackQuery`
    /// ([`Sandbox::telegram_callback_answers`]).
    ///
    /// # Panics
    /// When there is no such message or button: a bug in the test.
    pub fn telegram_press_button(
        &self,
        user: &TgUser,
        chat_id: i64,
        message_id: i64,
        data: &str,
    ) -> PushedUpdate {
        let update = change(&self.shared, |t| t.press(user, chat_id, message_id, data))
            .unwrap_or_else(|problem| panic!("sandbox: {problem}"));
        push_update(&self.shared, update)
    }

    /// Every `answerCallbackQuery` accepted so far, in order.
    pub fn telegram_callback_answers(&self) -> Vec<TelegramCallbackAnswer> {
        self.shared.read().telegram.callback_answers.clone()
    }

    /// The reply keyboard the person currently sees in `chat_id` (the last `ReplyKeyboardMarkup`
    /// sent there, until a `ReplyKeyboardRemove`), as sent.
    pub fn telegram_reply_keyboard(&self, chat_id: i64) -> Option<Value> {
        self.shared.read().telegram.keyboards.get(&chat_id).cloned()
    }

    /// The texts of the buttons of [`Sandbox::telegram_reply_keyboard`], row by row.
    pub fn telegram_reply_keyboard_texts(&self, chat_id: i64) -> Vec<Vec<String>> {
        self.telegram_reply_keyboard(chat_id)
            .map(|k| button_texts(&k["keyboard"]))
            .unwrap_or_default()
    }
}

/// The `text` of every button of a keyboard (`[[button…]…]`), row by row.
pub fn button_texts(rows: &Value) -> Vec<Vec<String>> {
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            row.as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b["text"].as_str().map(str::to_owned))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::Sandbox;
    use crate::telegram::{TgUser, private_message};

    async fn call(sandbox: &Sandbox, method: &str, params: Value) -> (u16, Value) {
        let url = format!(
            "{}/bot{}/{method}",
            sandbox.telegram_api_url(),
            sandbox.options().telegram_bot_token
        );
        let r = reqwest::Client::new()
            .post(url)
            .json(&params)
            .send()
            .await
            .expect("answers");
        (r.status().as_u16(), r.json().await.expect("JSON"))
    }

    #[tokio::test]
    async fn keyboards_are_remembered_and_a_press_is_answered_once() {
        let sandbox = Sandbox::start().await.expect("starts");
        let user = TgUser::new(42, "Ivan");
        sandbox.telegram_push_update(private_message(&user, json!({"text": "/start"})));
        let keyboard =
            json!({"keyboard": [[{"text": "A"}, {"text": "B"}]], "resize_keyboard": true});
        let (status, _) = call(
            &sandbox,
            "sendMessage",
            json!({"chat_id": 42, "text": "menu", "reply_markup": keyboard}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(sandbox.telegram_reply_keyboard_texts(42), [["A", "B"]]);
        let inline = json!({"inline_keyboard": [[{"text": "№1", "callback_data": "issue:1"}]]});
        let (_, sent) = call(
            &sandbox,
            "sendMessage",
            json!({"chat_id": 42, "text": "list", "reply_markup": inline}),
        )
        .await;
        assert_eq!(sent["result"]["reply_markup"], inline);
        assert_eq!(
            sandbox.telegram_reply_keyboard_texts(42),
            [["A", "B"]],
            "an inline keyboard leaves the reply keyboard as it is"
        );
        let too_long =
            json!({"inline_keyboard": [[{"text": "x", "callback_data": "x".repeat(65)}]]});
        let (status, body) = call(
            &sandbox,
            "sendMessage",
            json!({"chat_id": 42, "text": "list", "reply_markup": too_long}),
        )
        .await;
        assert_eq!(
            (status, body["description"].as_str()),
            (400, Some("Bad Request: BUTTON_DATA_INVALID"))
        );
        let message_id = sent["result"]["message_id"].as_i64().unwrap();
        let pushed = sandbox.telegram_press_button(&user, 42, message_id, "issue:1");
        let query = &pushed.update["callback_query"];
        assert_eq!(query["data"], "issue:1");
        assert_eq!(query["message"]["message_id"], message_id);
        let id = query["id"].as_str().unwrap().to_owned();
        let answer = json!({"callback_query_id": id, "text": "ok"});
        assert_eq!(
            call(&sandbox, "answerCallbackQuery", answer.clone())
                .await
                .0,
            200
        );
        let (status, body) = call(&sandbox, "answerCallbackQuery", answer).await;
        assert_eq!(status, 400, "answered twice: {body}");
        assert_eq!(sandbox.telegram_callback_answers().len(), 1);
        call(
            &sandbox,
            "sendMessage",
            json!({"chat_id": 42, "text": "bye", "reply_markup": {"remove_keyboard": true}}),
        )
        .await;
        assert_eq!(sandbox.telegram_reply_keyboard(42), None);
    }
}
