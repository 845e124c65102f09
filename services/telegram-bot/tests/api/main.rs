//! Integration tests of telegram-bot: the real service on port 0 with a fresh database, unique
//! NATS streams and the sandbox's Telegram Bot API fake.

mod helpers;

mod binary;
mod helpdesk;
mod polling;
mod relay;
mod webhook;
