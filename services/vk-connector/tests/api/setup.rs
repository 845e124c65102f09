//! `vk-connector setup`: the callback server, its confirmation code and event settings, the
//! Chatwoot inbox and webhook, in one idempotent run; `--dry-run` changes nothing; Long Poll
//! configures the Long Poll settings instead.

use sandbox::Sandbox;
use vk_connector::config::Cli;
use vk_connector::setup::{self, SetupInput};

use crate::helpers::*;

const URL: &str = "https://vk.example.com";

/// A configuration as a new operator has it: tokens and ids, none of the values `setup` hands
/// out (`drop` names the variables left out), plus `extra`.
fn config(
    sandbox: &Sandbox,
    env: &testkit::TestEnv,
    drop: &[&str],
    extra: &[(&'static str, String)],
) -> vk_connector::config::Config {
    let mut vars: Vec<_> = vars_for(sandbox, env, &Options::default())
        .into_iter()
        .filter(|(k, _)| !drop.contains(k) && !extra.iter().any(|(e, _)| e == k))
        .collect();
    vars.extend_from_slice(extra);
    let cli: Cli = testkit::parse_config(&vars);
    cli.config
}

fn clients(sandbox: &Sandbox) -> (vk_api::VkClient, chatwoot_api::ChatwootClient) {
    let o = sandbox.options();
    let http = reqwest::Client::new();
    (
        vk_api::VkClient::new(
            http.clone(),
            sandbox.vk_api_url(),
            &o.vk_access_token,
            "5.199",
        ),
        chatwoot_api::ChatwootClient::new(
            http,
            sandbox.chatwoot_url(),
            &o.chatwoot_api_token,
            o.chatwoot_account_id,
        ),
    )
}

const FRESH: &[&str] = &[
    "VK_SECRET",
    "VK_CONFIRMATION",
    "VK_CALLBACK_ID",
    "CHATWOOT_INBOX_ID",
    "CHATWOOT_WEBHOOK_ID_VK",
];

#[tokio::test]
async fn setup_run_twice_leaves_one_callback_server_and_one_webhook() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    sandbox.set_vk_group(GROUP_ID, "Магазин");
    let env = test_env().await;
    let (vk, chatwoot) = clients(&sandbox);
    let inboxes_before = sandbox.chatwoot_inboxes().len();

    let first_config = config(
        &sandbox,
        &env,
        FRESH,
        &[("CHATWOOT_INBOX_NAME", "ВКонтакте".to_owned())],
    );
    let input = SetupInput::from_config(&first_config, URL, false).expect("input");
    assert!(input.callback_id.new && input.vk_secret.new && input.webhook_id.new);
    let first = setup::run(&vk, &chatwoot, &input)
        .await
        .expect("first setup");

    let servers = sandbox.vk_callback_servers();
    assert_eq!(servers.len(), 1, "{servers:?}");
    let server_id = first.callback_server_id.expect("a server id");
    assert_eq!(servers[0]["url"], input.callback_url());
    assert_eq!(servers[0]["secret_key"], input.vk_secret.value.as_str());
    let settings = sandbox
        .vk_callback_settings(server_id)
        .expect("settings recorded");
    assert_eq!(settings["api_version"], "5.199", "{settings}");
    for event in setup::EVENTS {
        assert_eq!(settings["events"][event], 1, "{event}: {settings}");
    }
    assert_eq!(
        first.confirmation.as_deref(),
        Some(sandbox.vk_confirmation_code().as_str())
    );
    // The inbox was created under its name, the webhook points at our route.
    let inboxes = sandbox.chatwoot_inboxes();
    assert_eq!(inboxes.len(), inboxes_before + 1);
    let inbox = inboxes
        .iter()
        .find(|i| i["name"] == "ВКонтакте")
        .expect("created");
    assert_eq!(first.inbox_id, inbox["id"].as_i64());
    let hooks = sandbox.chatwoot_webhooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["url"], input.webhook_url());
    // The .env lines carry what the operator must keep.
    for line in [
        format!("VK_CALLBACK_ID={}", input.callback_id.value),
        format!("VK_SECRET={}", input.vk_secret.value),
        format!("VK_CONFIRMATION={}", sandbox.vk_confirmation_code()),
        format!("CHATWOOT_INBOX_ID={}", first.inbox_id.unwrap()),
        format!("CHATWOOT_WEBHOOK_ID_VK={}", input.webhook_id.value),
    ] {
        assert!(
            first.output.contains(&line),
            "{line} missing:\n{}",
            first.output
        );
    }

    // Again, with the printed values in .env: nothing new, nothing changed.
    let second_config = config(
        &sandbox,
        &env,
        &["VK_CONFIRMATION"],
        &[
            ("VK_CALLBACK_ID", input.callback_id.value.clone()),
            ("VK_SECRET", input.vk_secret.value.clone()),
            ("CHATWOOT_WEBHOOK_ID_VK", input.webhook_id.value.clone()),
            ("CHATWOOT_INBOX_ID", first.inbox_id.unwrap().to_string()),
        ],
    );
    let again = SetupInput::from_config(&second_config, URL, false).expect("input");
    assert!(!again.callback_id.new && !again.vk_secret.new && !again.webhook_id.new);
    let second = setup::run(&vk, &chatwoot, &again)
        .await
        .expect("second setup");
    assert_eq!(sandbox.vk_callback_servers().len(), 1);
    assert_eq!(sandbox.chatwoot_webhooks().len(), 1);
    assert_eq!(sandbox.chatwoot_inboxes().len(), inboxes_before + 1);
    assert_eq!(second.callback_server_id, Some(server_id));
    assert!(
        second
            .changes
            .iter()
            .all(|c| c.starts_with("groups.setCallbackSettings")),
        "only the (idempotent) settings call: {:?}",
        second.changes
    );

    // A third run after a new VK_CALLBACK_ID (e.g. rotated): the same server is edited.
    let rotated = config(
        &sandbox,
        &env,
        &["VK_CONFIRMATION", "CHATWOOT_INBOX_ID"],
        &[
            ("VK_CALLBACK_ID", "rotated-0123456789abcdef".to_owned()),
            ("VK_SECRET", input.vk_secret.value.clone()),
            (
                "CHATWOOT_WEBHOOK_ID_VK",
                "rotated-hook-0123456789".to_owned(),
            ),
            ("CHATWOOT_INBOX_NAME", "ВКонтакте".to_owned()),
        ],
    );
    let third = SetupInput::from_config(&rotated, URL, false).expect("input");
    let report = setup::run(&vk, &chatwoot, &third)
        .await
        .expect("third setup");
    let servers = sandbox.vk_callback_servers();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["url"], third.callback_url());
    let hooks = sandbox.chatwoot_webhooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["url"], third.webhook_url());
    assert_eq!(report.inbox_id, first.inbox_id, "found by name this time");
    drop(env);
}

#[tokio::test]
async fn a_dry_run_reads_and_prints_but_changes_nothing() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    sandbox.set_vk_group(GROUP_ID, "Магазин");
    let env = test_env().await;
    let (vk, chatwoot) = clients(&sandbox);
    let inboxes = sandbox.chatwoot_inboxes().len();
    let c = config(
        &sandbox,
        &env,
        FRESH,
        &[("CHATWOOT_INBOX_NAME", "Новый VK".to_owned())],
    );
    let input = SetupInput::from_config(&c, URL, true).expect("input");
    let report = setup::run(&vk, &chatwoot, &input).await.expect("dry run");
    assert!(sandbox.vk_callback_servers().is_empty());
    assert!(sandbox.chatwoot_webhooks().is_empty());
    assert_eq!(sandbox.chatwoot_inboxes().len(), inboxes);
    assert_eq!(report.changes.len(), 4, "{:?}", report.changes);
    assert!(
        report
            .output
            .contains("[dry run] would call groups.addCallbackServer")
    );
    assert_eq!(
        report
            .output
            .matches(input.callback_id.value.as_str())
            .count(),
        1,
        "the callback id appears only in its .env line:\n{}",
        report.output
    );
    drop(env);
}

#[tokio::test]
async fn with_long_poll_setup_configures_long_poll_not_a_callback_server() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    sandbox.set_vk_group(GROUP_ID, "Магазин");
    sandbox.chatwoot_rename_inbox(sandbox.options().chatwoot_inbox_id, "VK");
    let env = test_env().await;
    let (vk, chatwoot) = clients(&sandbox);
    let c = config(
        &sandbox,
        &env,
        FRESH,
        &[("VK_LONG_POLL", "true".to_owned())],
    );
    let input = SetupInput::from_config(&c, URL, false).expect("input");
    let report = setup::run(&vk, &chatwoot, &input).await.expect("setup");
    assert!(sandbox.vk_callback_servers().is_empty());
    let lp = sandbox.vk_long_poll_settings().expect("long poll settings");
    assert_eq!(lp["api_version"], "5.199", "{lp}");
    assert_eq!(lp["is_enabled"], true, "{lp}");
    assert_eq!(lp["events"]["message_new"], 1, "{lp}");
    // The API inbox named "VK" (the default CHATWOOT_INBOX_NAME): found, not created.
    assert_eq!(report.inbox_id, Some(sandbox.options().chatwoot_inbox_id));
    assert!(report.output.contains("VK_LONG_POLL=true"));
    drop(env);
}

#[tokio::test]
async fn the_service_finds_its_inbox_by_name_when_no_id_is_set() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    // Names are compared exactly, then ignoring case.
    sandbox.chatwoot_rename_inbox(sandbox.options().chatwoot_inbox_id, "vk");
    let env = test_env().await;
    let vars: Vec<_> = vars_for(&sandbox, &env, &Options::default())
        .into_iter()
        .filter(|(k, _)| *k != "CHATWOOT_INBOX_ID")
        .collect();
    let cli: Cli = testkit::parse_config(&vars);
    let settings = vk_connector::config::Settings::from_config(&cli.config).expect("valid");
    let chatwoot = clients(&sandbox).1;
    let id = vk_connector::resolve_inbox(&chatwoot, &settings.chatwoot.inbox)
        .await
        .expect("found");
    assert_eq!(id, sandbox.options().chatwoot_inbox_id);
    let e = vk_connector::resolve_inbox(
        &chatwoot,
        &vk_connector::config::InboxRef::Name("Нет такого".into()),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no Chatwoot inbox is named «Нет такого»") && e.contains("setup"),
        "{e}"
    );
    drop(env);
}
