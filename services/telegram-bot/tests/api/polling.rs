//! Long polling: offsets across restarts, and Telegram's 429.

use sandbox::{Failure, Target};

use crate::helpers::*;

#[tokio::test]
async fn a_restart_in_polling_mode_neither_loses_nor_repeats_an_update() {
    let app = spawn_app().await;
    let user = ivan();
    for i in 1..=3 {
        app.customer_sends(&user, text(&format!("before {i}")));
    }
    let thread = app.wait_topic(1).await;
    app.wait_topic_len(thread, 4).await;
    let stored_before = app.state.store.poll_offset().await.unwrap();
    let (sandbox, env) = app.stop().await;
    // Written while the bot is down: Telegram keeps them until they are confirmed.
    for i in 1..=2 {
        sandbox.telegram_push_update(sandbox::telegram::private_message(
            &user,
            text(&format!("while down {i}")),
        ));
    }
    let app = start(sandbox, env, Options::default()).await;
    app.customer_sends(&user, text("after restart"));
    let msgs = app.wait_topic_len(thread, 7).await;
    let texts: Vec<_> = msgs[1..]
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "before 1",
            "before 2",
            "before 3",
            "while down 1",
            "while down 2",
            "after restart"
        ]
    );
    let stored_after = app.state.store.poll_offset().await.unwrap();
    assert!(
        stored_after >= stored_before + 3,
        "{stored_before} → {stored_after}"
    );
    // Nothing else arrives later (no repeat): one more message is the next one.
    app.customer_sends(&user, text("last"));
    let msgs = app.wait_topic_len(thread, 8).await;
    assert_eq!(msgs.len(), 8, "{msgs:?}");
    assert_eq!(app.sandbox.telegram_topics().len(), 1);
}

#[tokio::test]
async fn a_429_storm_delays_but_delivers_everything_in_order_per_chat() {
    let app = spawn_app().await;
    app.sandbox.fail_next(
        Target::Telegram,
        12,
        Failure::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    let users = [
        ivan(),
        anna(),
        sandbox::telegram::TgUser::new(5_000_003, "Petr"),
    ];
    for i in 1..=4 {
        for u in &users {
            app.customer_sends(u, text(&format!("{} {i}", u.first_name)));
        }
    }
    app.wait_topic(3).await;
    for t in app.sandbox.telegram_topics() {
        let msgs = app.wait_topic_len(t.message_thread_id, 5).await;
        let texts: Vec<_> = msgs[1..]
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect();
        let who = texts[0].split(' ').next().unwrap().to_owned();
        assert_eq!(
            texts,
            (1..=4).map(|i| format!("{who} {i}")).collect::<Vec<_>>(),
            "in order within topic {}",
            t.name
        );
    }
    assert!(
        app.state
            .dead_letters
            .list(10, true)
            .await
            .unwrap()
            .is_empty(),
        "a 429 is never a dead letter"
    );
}

#[tokio::test]
async fn two_replicas_poll_one_at_a_time_and_the_other_takes_over() {
    let app = spawn_app().await;
    // A second replica on the same database, streams and bot.
    let settings = settings_for(&app.sandbox, &app.env, &Options::default(), "");
    let second = telegram_bot::build(settings)
        .await
        .expect("second replica builds");
    let second_stop = tokio_util::sync::CancellationToken::new();
    let second_run = tokio::spawn(second.run_until(second_stop.clone()));
    let user = ivan();
    for i in 1..=3 {
        app.customer_sends(&user, text(&format!("m{i}")));
    }
    let thread = app.wait_topic(1).await;
    app.wait_topic_len(thread, 4).await;
    // Only one replica polls: the other's getUpdates would end the held poll with a 409.
    assert!(app.sandbox.telegram_polls_waiting() <= 1);
    // Stop the first replica: the second takes over the long poll from the stored offset.
    let (sandbox, env) = app.stop().await;
    sandbox.telegram_push_update(sandbox::telegram::private_message(&user, text("m4")));
    sandbox
        .wait_until(WAIT, |s| {
            s.telegram_bot_messages(s.options().telegram_group_id)
                .iter()
                .any(|m| m["text"] == "m4")
        })
        .await
        .expect("the stand-by replica took over");
    let texts: Vec<String> = sandbox
        .telegram_bot_messages(sandbox.options().telegram_group_id)
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .filter(|t| t.starts_with('m'))
        .collect();
    assert_eq!(texts, ["m1", "m2", "m3", "m4"], "each once, in order");
    second_stop.cancel();
    let _ = second_run.await;
    drop(env);
}
