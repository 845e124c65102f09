//! amoCRM for the gateway: the webhook formats ([`webhook`]) and a client for OAuth 2.0 and API
//! v4 ([`AmoClient`]).
//!
//! References: webhooks <https://www.amocrm.ru/developers/content/crm_platform/webhooks-format>,
//! OAuth <https://www.amocrm.ru/developers/content/oauth/step-by-step>, leads
//! <https://www.amocrm.ru/developers/content/crm_platform/leads-api>, contacts
//! <https://www.amocrm.ru/developers/content/crm_platform/contacts-api>, limits
//! <https://developers.kommo.com/docs/limitations> (Kommo is amoCRM's international edition, same
//! API): at most 7 requests per second per integration, 429 beyond that, and an IP block for
//! clients that keep going.

#![warn(missing_docs)]

mod client;
mod error;
pub mod webhook;

pub use client::{AccountInfo, AmoClient, RetryPolicy, TokenResponse};
pub use error::AmoError;
pub use webhook::{RawContact, RawCustomField, RawFieldValue, RawLead};
