//! A typed client for the VK API methods the gateway uses, and the VK Callback API / Bots
//! Long Poll event types.
//!
//! VK answers HTTP 200 for API errors, with `{"error":{"error_code":N,"error_msg":"…",
//! "request_params":[…]}}` (<https://dev.vk.com/ru/reference/errors>); [`VkError::Api`] carries
//! the code and [`VkError::class`] says whether to retry.

#![warn(missing_docs)]

pub mod callback;
mod client;
mod error;
pub mod groups;
pub mod upload;

pub use client::{Group, LongPollServer, LongPollUpdate, User, VkClient};
pub use error::{ErrorClass, VkError};
pub use groups::CallbackServer;
pub use upload::{DocType, PhotoUpload, SavedDoc, SavedPhoto, UploadServer};

/// VK's limit on the text of one message (`messages.send`, error 914 above it), in characters.
pub const MAX_MESSAGE_CHARS: usize = 4096;
