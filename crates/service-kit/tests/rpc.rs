//! Request/reply over the real NATS: an answer, no responder, a request that does not decode,
//! and replicas sharing the requests.

use std::time::Duration;

use domain::{Source, Subject};
use serde::{Deserialize, Serialize};
use service_kit::bus::Bus;
use service_kit::rpc::{self, RpcError};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Ask {
    n: i64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum Answer {
    Double(i64),
    Invalid(String),
}

async fn bus(prefix: &str) -> Bus {
    Bus::connect(&testkit::nats_url(), prefix, "rpc-test")
        .await
        .expect("NATS")
}

#[tokio::test]
async fn a_request_gets_the_handlers_answer_and_bad_input_the_invalid_one() {
    let prefix = testkit::unique_prefix();
    let bus = bus(&prefix).await;
    let subject = Subject::rpc(Source::Okdesk, "test.double");
    let stop = CancellationToken::new();
    let server = tokio::spawn(rpc::serve(
        bus.clone(),
        subject.clone(),
        stop.clone(),
        Answer::Invalid,
        |a: Ask| async move { Answer::Double(a.n * 2) },
    ));
    // The subscription is made inside `serve`: ask until it answers.
    let mut answer = Err(RpcError::Timeout(Duration::ZERO));
    for _ in 0..100 {
        answer =
            rpc::request::<_, Answer>(&bus, &subject, &Ask { n: 21 }, Duration::from_secs(2)).await;
        if !matches!(answer, Err(RpcError::NoResponders(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer.unwrap(), Answer::Double(42));
    let bad: Answer = rpc::request(&bus, &subject, &"not an Ask", Duration::from_secs(2))
        .await
        .unwrap();
    assert!(
        matches!(bad, Answer::Invalid(ref m) if m.contains("does not decode")),
        "{bad:?}"
    );
    stop.cancel();
    server.await.unwrap().unwrap();
    testkit::delete_streams(&prefix).await;
}

#[tokio::test]
async fn nobody_answering_is_said_at_once() {
    let prefix = testkit::unique_prefix();
    let bus = bus(&prefix).await;
    let subject = Subject::rpc(Source::Okdesk, "test.nobody");
    let r = rpc::request::<_, Answer>(&bus, &subject, &Ask { n: 1 }, Duration::from_secs(5)).await;
    assert!(matches!(r, Err(RpcError::NoResponders(_))), "{r:?}");
    testkit::delete_streams(&prefix).await;
}
