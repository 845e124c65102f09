//! `vk-connector setup --url https://vk.example.com`: everything an operator would otherwise
//! click together in VK's community settings and Chatwoot's settings, idempotent and safe to
//! re-run.
//!
//! VK (<https://dev.vk.com/ru/api/callback/getting-started>): `groups.getCallbackServers`;
//! the server whose URL is ours (or an earlier `setup`'s under the same base URL) is edited
//! with `groups.editCallbackServer` when it differs, else one is added with
//! `groups.addCallbackServer` (a server of another deployment is never taken over); `groups.getCallbackConfirmationCode` gives `VK_CONFIRMATION`;
//! `groups.setCallbackSettings` turns on [`EVENTS`] with the API version. With
//! `VK_LONG_POLL=true` only `groups.setLongPollSettings` is called instead.
//!
//! Chatwoot: the API inbox is found by `CHATWOOT_INBOX_ID` or `CHATWOOT_INBOX_NAME` and
//! created when missing (`POST /inboxes`, channel `api`); the account webhook to
//! `{url}/chatwoot/webhook/{CHATWOOT_WEBHOOK_ID_VK}` with `message_created` is created, or an
//! earlier one (same URL, or an earlier id under the same base URL) updated.
//!
//! What is missing in `.env` (`VK_CALLBACK_ID`, `VK_SECRET`, `CHATWOOT_WEBHOOK_ID_VK`) is
//! generated; everything the operator must keep is printed as `.env` lines at the end.
//! `--dry-run` reads what is there and prints the calls it would make instead of making them.

use std::fmt::Write as _;

use chatwoot_api::ChatwootClient;
use service_kit::ConfigError;
use service_kit::config::{positive, required_str, secret};
use vk_api::VkClient;

use crate::config::{Config, InboxRef, MIN_PATH_SECRET_CHARS};

/// The title of the callback server `setup` registers (VK allows short titles only).
pub const SERVER_TITLE: &str = "gateway";

/// The Callback API / Long Poll events vk-connector handles
/// (<https://dev.vk.com/ru/method/groups.setCallbackSettings>).
pub const EVENTS: &[&str] = &[
    "message_new",
    "message_reply",
    "message_edit",
    "message_allow",
    "message_deny",
];

/// The Chatwoot webhook events vk-connector needs.
pub const WEBHOOK_EVENTS: &[&str] = &["message_created"];

/// What `setup` needs: the tokens and ids, and the values it generates when missing. Its
/// `Debug` shows no secret.
#[derive(Clone)]
pub struct SetupInput {
    /// Public base URL of vk-connector, without a trailing slash (`https://vk.example.com`).
    pub base_url: String,
    /// Print the writes instead of making them.
    pub dry_run: bool,
    /// `VK_GROUP_ID`.
    pub group_id: i64,
    /// `VK_API_VERSION`.
    pub api_version: String,
    /// `VK_LONG_POLL`: configure Long Poll instead of a callback server.
    pub long_poll: bool,
    /// `VK_CALLBACK_ID`, or generated.
    pub callback_id: Generated,
    /// `VK_SECRET`, or generated.
    pub vk_secret: Generated,
    /// `CHATWOOT_WEBHOOK_ID_VK`, or generated.
    pub webhook_id: Generated,
    /// The inbox to find (or create, by name).
    pub inbox: InboxRef,
    /// `CHATWOOT_INBOX_NAME`: the name of a created inbox.
    pub inbox_name: String,
}

impl std::fmt::Debug for SetupInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupInput")
            .field("base_url", &self.base_url)
            .field("dry_run", &self.dry_run)
            .field("group_id", &self.group_id)
            .field("long_poll", &self.long_poll)
            .field("inbox", &self.inbox)
            .finish_non_exhaustive()
    }
}

/// A value from the configuration, or one made now (the operator must save it). Its `Debug`
/// shows only whether it is new.
#[derive(Clone, PartialEq, Eq)]
pub struct Generated {
    /// The value.
    pub value: String,
    /// Made now: it was not configured.
    pub new: bool,
}

impl std::fmt::Debug for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Generated {{ value: [redacted], new: {} }}", self.new)
    }
}

/// VK's longest `secret_key` of a callback server (`groups.addCallbackServer`), in characters.
pub const MAX_SECRET_CHARS: usize = 50;

impl Generated {
    fn of(configured: &Option<String>, min_chars: usize) -> Self {
        match configured.as_deref().map(str::trim) {
            Some(v)
                if v.chars().count() >= min_chars
                    && service_kit::Secret::require(Some(v), "value").is_ok() =>
            {
                Self {
                    value: v.to_owned(),
                    new: false,
                }
            }
            _ => Self {
                value: uuid::Uuid::new_v4().simple().to_string(),
                new: true,
            },
        }
    }
}

impl SetupInput {
    /// From the configuration and `--url`. The tokens and ids must be set; the secrets
    /// `setup` hands out are generated when missing (or too short to be accepted by `serve`).
    ///
    /// Errors: a missing token or id, or a `--url` that is not `http(s)://host[:port][/path]`.
    pub fn from_config(c: &Config, url: &str, dry_run: bool) -> Result<Self, ConfigError> {
        let base_url = url.trim().trim_end_matches('/').to_owned();
        let valid = (base_url.starts_with("https://") || base_url.starts_with("http://"))
            && reqwest::Url::parse(&base_url).is_ok_and(|u| u.host_str().is_some());
        if !valid {
            return Err(ConfigError::Invalid {
                name: "--url",
                reason: "must be the public base URL of vk-connector, like https://vk.example.com"
                    .into(),
            });
        }
        positive(c.chatwoot_account_id, "CHATWOOT_ACCOUNT_ID")?;
        required_str(&c.chatwoot_base_url, "CHATWOOT_BASE_URL")?;
        secret(&c.chatwoot_api_access_token, "CHATWOOT_API_ACCESS_TOKEN")?;
        secret(&c.vk_access_token, "VK_ACCESS_TOKEN")?;
        Ok(Self {
            base_url,
            dry_run,
            group_id: positive(c.vk_group_id, "VK_GROUP_ID")?,
            api_version: c.vk_api_version.clone(),
            long_poll: c.vk_long_poll,
            callback_id: Generated::of(&c.vk_callback_id, MIN_PATH_SECRET_CHARS),
            vk_secret: {
                let g = Generated::of(&c.vk_secret, 1);
                if g.value.chars().count() > MAX_SECRET_CHARS {
                    return Err(ConfigError::Invalid {
                        name: "VK_SECRET",
                        reason: format!(
                            "VK takes at most {MAX_SECRET_CHARS} characters as a callback server's secret key; leave it empty and setup makes one"
                        ),
                    });
                }
                g
            },
            webhook_id: Generated::of(&c.chatwoot_webhook_id_vk, MIN_PATH_SECRET_CHARS),
            inbox: match c.chatwoot_inbox_id {
                Some(id) => InboxRef::Id(positive(Some(id), "CHATWOOT_INBOX_ID")?),
                None => InboxRef::Name(required_str(
                    &Some(c.chatwoot_inbox_name.clone()),
                    "CHATWOOT_INBOX_NAME",
                )?),
            },
            inbox_name: c.chatwoot_inbox_name.trim().to_owned(),
        })
    }

    /// `{base}/vk/callback/{VK_CALLBACK_ID}`.
    pub fn callback_url(&self) -> String {
        format!("{}/vk/callback/{}", self.base_url, self.callback_id.value)
    }

    /// `{base}/chatwoot/webhook/{CHATWOOT_WEBHOOK_ID_VK}`.
    pub fn webhook_url(&self) -> String {
        format!(
            "{}/chatwoot/webhook/{}",
            self.base_url, self.webhook_id.value
        )
    }
}

/// What `setup` did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupReport {
    /// The callback server id (None with Long Poll, or dry before it exists).
    pub callback_server_id: Option<i64>,
    /// The confirmation code VK expects (`VK_CONFIRMATION`).
    pub confirmation: Option<String>,
    /// The Chatwoot inbox (None: dry and it would be created).
    pub inbox_id: Option<i64>,
    /// The Chatwoot webhook (None: dry and it would be created).
    pub webhook_id: Option<i64>,
    /// The webhook's signing secret, when Chatwoot (≥ 4.11) shows one (`CHATWOOT_WEBHOOK_SECRET`).
    pub webhook_secret: Option<String>,
    /// The writes made (or, dry, that would be made), one line each.
    pub changes: Vec<String>,
    /// Everything to print, ending with the `.env` lines.
    pub output: String,
}

/// Runs `setup`; see the module docs.
///
/// Errors: a VK or Chatwoot call failing, with the method and VK's or Chatwoot's reason.
pub async fn run(
    vk: &VkClient,
    chatwoot: &ChatwootClient,
    input: &SetupInput,
) -> anyhow::Result<SetupReport> {
    let mut r = SetupReport::default();
    let dry = if input.dry_run {
        "[dry run] would "
    } else {
        ""
    };
    let mut out = String::new();
    if input.long_poll {
        let _ = writeln!(out, "VK community {} (Bots Long Poll)", input.group_id);
        let (flags, listed) = event_flags();
        let call = format!(
            "groups.setLongPollSettings(group_id={}, enabled=1, api_version={}, {listed})",
            input.group_id, input.api_version,
        );
        if !input.dry_run {
            vk.set_long_poll_settings(input.group_id, &input.api_version, &flags)
                .await
                .map_err(|e| anyhow::anyhow!("groups.setLongPollSettings: {e}"))?;
        }
        let _ = writeln!(out, "  {dry}call {call}");
        r.changes.push(call);
    } else {
        callback(vk, input, &mut r, &mut out, dry).await?;
    }
    inbox_and_webhook(chatwoot, input, &mut r, &mut out, dry).await?;

    let _ = writeln!(
        out,
        "\nPut these into .env (values marked «new» were generated now: keep them):"
    );
    let mut env = |name: &str, value: &str, new: bool| {
        let mark = if new { "   # new" } else { "" };
        let _ = writeln!(out, "{name}={value}{mark}");
    };
    if !input.long_poll {
        env(
            "VK_CALLBACK_ID",
            &input.callback_id.value,
            input.callback_id.new,
        );
        env("VK_SECRET", &input.vk_secret.value, input.vk_secret.new);
        match &r.confirmation {
            Some(code) => env("VK_CONFIRMATION", code, false),
            None => env("VK_CONFIRMATION", "<after a real run>", false),
        }
    } else {
        env("VK_LONG_POLL", "true", false);
    }
    match r.inbox_id {
        Some(id) => env("CHATWOOT_INBOX_ID", &id.to_string(), false),
        None => env("CHATWOOT_INBOX_ID", "<after a real run>", false),
    }
    env(
        "CHATWOOT_WEBHOOK_ID_VK",
        &input.webhook_id.value,
        input.webhook_id.new,
    );
    if let Some(secret) = &r.webhook_secret {
        env("CHATWOOT_WEBHOOK_SECRET", secret, false);
    }
    r.output = out;
    Ok(r)
}

/// [`EVENTS`] all on, as the settings methods take them and as printed (`message_new=1, …`).
fn event_flags() -> (Vec<(&'static str, bool)>, String) {
    let flags = EVENTS.iter().map(|e| (*e, true)).collect();
    let listed = EVENTS
        .iter()
        .map(|e| format!("{e}=1"))
        .collect::<Vec<_>>()
        .join(", ");
    (flags, listed)
}

async fn callback(
    vk: &VkClient,
    input: &SetupInput,
    r: &mut SetupReport,
    out: &mut String,
    dry: &str,
) -> anyhow::Result<()> {
    let group = input.group_id;
    let url = input.callback_url();
    let _ = writeln!(out, "VK community {group} (Callback API)");
    let servers = vk
        .callback_servers(group)
        .await
        .map_err(|e| anyhow::anyhow!("groups.getCallbackServers: {e}"))?;
    let prefix = format!("{}/vk/callback/", input.base_url);
    // Only ours: the exact URL, or an earlier setup's under the same base URL (another
    // deployment's server on the same community is left alone, whatever its title).
    let existing = servers
        .iter()
        .find(|s| s.url == url)
        .or_else(|| servers.iter().find(|s| s.url.starts_with(&prefix)));
    if let Some(s) = existing.filter(|s| s.status != "ok") {
        let _ = writeln!(
            out,
            "  note: VK reports the server's status as «{}»; it turns «ok» once VK has had a confirmation answer from the running connector",
            s.status
        );
    }
    let secret = input.vk_secret.value.as_str();
    let shown = redact_url(&url, &input.callback_id.value);
    let server_id = match existing {
        Some(s)
            if s.url == url
                && s.title == SERVER_TITLE
                && s.secret_key.as_deref() == Some(secret) =>
        {
            let _ = writeln!(out, "  callback server {} → {shown}: unchanged", s.id);
            Some(s.id)
        }
        Some(s) => {
            let call = format!(
                "groups.editCallbackServer(server_id={}, url={shown}, title={SERVER_TITLE}, secret_key=…)",
                s.id
            );
            if !input.dry_run {
                vk.edit_callback_server(group, s.id, &url, SERVER_TITLE, secret)
                    .await
                    .map_err(|e| anyhow::anyhow!("groups.editCallbackServer: {e}"))?;
            }
            let _ = writeln!(out, "  {dry}call {call} (was {})", redact_path(&s.url));
            r.changes.push(call);
            Some(s.id)
        }
        None => {
            let call = format!(
                "groups.addCallbackServer(url={shown}, title={SERVER_TITLE}, secret_key=…)"
            );
            let id = if input.dry_run {
                None
            } else {
                Some(
                    vk.add_callback_server(group, &url, SERVER_TITLE, secret)
                        .await
                        .map_err(|e| anyhow::anyhow!("groups.addCallbackServer: {e}"))?,
                )
            };
            let _ = writeln!(out, "  {dry}call {call}");
            r.changes.push(call);
            id
        }
    };
    r.callback_server_id = server_id;
    let code = vk
        .callback_confirmation_code(group)
        .await
        .map_err(|e| anyhow::anyhow!("groups.getCallbackConfirmationCode: {e}"))?;
    let _ = writeln!(out, "  confirmation code: {code}");
    r.confirmation = Some(code);
    let (flags, listed) = event_flags();
    let call = format!(
        "groups.setCallbackSettings(server_id={}, api_version={}, {listed})",
        server_id.map_or_else(|| "<new>".to_owned(), |id| id.to_string()),
        input.api_version,
    );
    if let (Some(id), false) = (server_id, input.dry_run) {
        vk.set_callback_settings(group, id, &input.api_version, &flags)
            .await
            .map_err(|e| anyhow::anyhow!("groups.setCallbackSettings: {e}"))?;
    }
    let _ = writeln!(out, "  {dry}call {call}");
    r.changes.push(call);
    Ok(())
}

async fn inbox_and_webhook(
    chatwoot: &ChatwootClient,
    input: &SetupInput,
    r: &mut SetupReport,
    out: &mut String,
    dry: &str,
) -> anyhow::Result<()> {
    let _ = writeln!(out, "Chatwoot account {}", chatwoot.account_id());
    let inboxes = chatwoot
        .inboxes()
        .await
        .map_err(|e| anyhow::anyhow!("listing Chatwoot inboxes: {e}"))?;
    let found = match &input.inbox {
        InboxRef::Id(id) => Some(
            inboxes
                .iter()
                .find(|i| i.id == *id)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "CHATWOOT_INBOX_ID={id} is not an inbox of account {}; leave it empty to find or create the inbox «{}»",
                        chatwoot.account_id(),
                        input.inbox_name
                    )
                })?,
        ),
        // The same rule as the service's start: one inbox of that name, or none (created).
        InboxRef::Name(name) => match crate::find_inbox(&inboxes, name) {
            Ok(i) => Some(i),
            Err(_) if !inboxes.iter().any(|i| i.name.to_lowercase() == name.to_lowercase()) => None,
            Err(e) => return Err(e),
        },
    };
    r.inbox_id = match found {
        Some(i) => {
            let _ = writeln!(
                out,
                "  inbox «{}» (id {}, {}): found",
                i.name, i.id, i.channel_type
            );
            if !i.channel_type.to_lowercase().contains("api") {
                let _ = writeln!(
                    out,
                    "  warning: the inbox is a {} inbox; VK conversations need an API channel inbox",
                    i.channel_type
                );
            }
            Some(i.id)
        }
        None => {
            let call = format!("POST /inboxes (name «{}», channel api)", input.inbox_name);
            let id = if input.dry_run {
                None
            } else {
                Some(
                    chatwoot
                        .create_api_inbox(&input.inbox_name)
                        .await
                        .map_err(|e| anyhow::anyhow!("creating the Chatwoot inbox: {e}"))?
                        .id,
                )
            };
            let _ = writeln!(out, "  {dry}create the inbox: {call}");
            r.changes.push(call);
            id
        }
    };

    let url = input.webhook_url();
    let shown = redact_url(&url, &input.webhook_id.value);
    let hooks = chatwoot
        .webhooks()
        .await
        .map_err(|e| anyhow::anyhow!("listing Chatwoot webhooks: {e}"))?;
    let prefix = format!("{}/chatwoot/webhook/", input.base_url);
    let existing = hooks
        .iter()
        .find(|h| h.url == url)
        .or_else(|| hooks.iter().find(|h| h.url.starts_with(&prefix)));
    let mut wanted: Vec<&str> = WEBHOOK_EVENTS.to_vec();
    let mut secret = None;
    r.webhook_id = match existing {
        Some(h)
            if h.url == url
                && WEBHOOK_EVENTS
                    .iter()
                    .all(|e| h.subscriptions.iter().any(|s| s == e)) =>
        {
            let _ = writeln!(out, "  webhook {} → {shown}: unchanged", h.id);
            secret = h.secret.clone();
            Some(h.id)
        }
        Some(h) => {
            // Keep what else it was subscribed to.
            for s in &h.subscriptions {
                if !wanted.contains(&s.as_str()) {
                    wanted.push(s);
                }
            }
            let call = format!(
                "PATCH /webhooks/{} (url {shown}, subscriptions {})",
                h.id,
                wanted.join(",")
            );
            secret = h.secret.clone();
            if !input.dry_run {
                let updated = chatwoot
                    .update_webhook(h.id, &url, &wanted)
                    .await
                    .map_err(|e| anyhow::anyhow!("updating the Chatwoot webhook: {e}"))?;
                secret = updated.secret.or(secret);
            }
            let _ = writeln!(out, "  {dry}update the webhook: {call}");
            r.changes.push(call);
            Some(h.id)
        }
        None => {
            let call = format!(
                "POST /webhooks (url {shown}, subscriptions {})",
                wanted.join(",")
            );
            let id = if input.dry_run {
                None
            } else {
                let created = chatwoot
                    .create_webhook(&url, &wanted)
                    .await
                    .map_err(|e| anyhow::anyhow!("creating the Chatwoot webhook: {e}"))?;
                secret = created.secret;
                Some(created.id)
            };
            let _ = writeln!(out, "  {dry}create the webhook: {call}");
            r.changes.push(call);
            id
        }
    };
    r.webhook_secret = secret.filter(|s| !s.is_empty());
    Ok(())
}

/// The URL with its secret path segment shown as `…` (the value itself goes only into the
/// `.env` lines).
fn redact_url(url: &str, secret: &str) -> String {
    url.replace(secret, "…")
}

/// Any earlier URL as its scheme and host only: its path or query may hold a secret.
fn redact_path(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "…".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_replace_missing_short_and_placeholder_ones() {
        let kept = Generated::of(&Some("0123456789abcdef0123".into()), 16);
        assert!(!kept.new);
        assert_eq!(kept.value, "0123456789abcdef0123");
        for configured in [
            None,
            Some("short".to_owned()),
            Some("change_me_please_now".to_owned()),
        ] {
            let g = Generated::of(&configured, 16);
            assert!(g.new, "{configured:?}");
            assert_eq!(g.value.len(), 32);
            assert!(g.value.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(Generated::of(&None, 16), Generated::of(&None, 16));
    }

    #[test]
    fn secrets_in_urls_are_not_printed() {
        assert_eq!(
            redact_url(
                "https://vk.example.com/vk/callback/abcdef0123456789",
                "abcdef0123456789"
            ),
            "https://vk.example.com/vk/callback/…"
        );
        assert_eq!(
            redact_path("https://old.example.com/callback/0123456789?secret=x"),
            "https://old.example.com/…"
        );
        let g = Generated::of(&Some("0123456789abcdef0123".into()), 16);
        assert!(!format!("{g:?}").contains("0123456789abcdef"));
    }
}
