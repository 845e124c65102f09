//! The look-ups a person waits for, over core NATS request/reply.

use std::time::Duration;

use domain::{
    Company, FindCompanyByInn, Issue, IssueGetRequest, IssueListRequest, RpcErrorKind, RpcReply,
};
use okdesk_bridge::rpc::{find_by_inn_subject, issue_get_subject, issue_list_subject};
use service_kit::rpc::{RpcError, request};

use crate::helpers::*;

async fn ask<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
    app: &TestApp,
    subject: &domain::Subject,
    req: &Req,
) -> Resp {
    // The responders subscribe at start: ask until one answers.
    for _ in 0..100 {
        match request(&app.state.bus, subject, req, Duration::from_secs(5)).await {
            Ok(r) => return r,
            Err(RpcError::NoResponders(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("nobody answers {subject}");
}

#[tokio::test]
async fn a_company_is_found_by_its_inn_or_not_and_a_contact_key_is_forbidden() {
    let app = spawn_app().await;
    let id = app
        .sandbox
        .okdesk_add_company("ООО «Ромашка»", "7707083893");
    let r: RpcReply<Option<Company>> = ask(
        &app,
        &find_by_inn_subject(),
        &FindCompanyByInn {
            inn: "7707083893".into(),
        },
    )
    .await;
    assert_eq!(
        r,
        RpcReply::Ok(Some(Company {
            id,
            name: "ООО «Ромашка»".into()
        }))
    );
    let r: RpcReply<Option<Company>> = ask(
        &app,
        &find_by_inn_subject(),
        &FindCompanyByInn {
            inn: "7830002293".into(),
        },
    )
    .await;
    assert_eq!(r, RpcReply::Ok(None));
    app.sandbox.okdesk_deny_company_search(true);
    let r: RpcReply<Option<Company>> = ask(
        &app,
        &find_by_inn_subject(),
        &FindCompanyByInn {
            inn: "7707083893".into(),
        },
    )
    .await;
    assert!(
        matches!(
            r,
            RpcReply::Error {
                kind: RpcErrorKind::Forbidden,
                ..
            }
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn okdesk_down_is_unavailable_not_a_hang() {
    let app = spawn_app().await;
    app.sandbox
        .fail_next(sandbox::Target::Okdesk, 5, sandbox::Failure::Status(502));
    let r: RpcReply<Option<Company>> = ask(
        &app,
        &find_by_inn_subject(),
        &FindCompanyByInn {
            inn: "7707083893".into(),
        },
    )
    .await;
    assert!(
        matches!(
            r,
            RpcReply::Error {
                kind: RpcErrorKind::Unavailable,
                ..
            }
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_contact_lists_and_gets_only_their_own_issues() {
    let app = spawn_app().await;
    let mine = app.add_contact("Иван", "Иванов", "+79001234567").await;
    let other = app.add_contact("Пётр", "Петров", "+79007654321").await;
    let a = app.add_issue("Первая", mine).await;
    let b = app.add_issue("Вторая", mine).await;
    let theirs = app.add_issue("Чужая", other).await;
    let r: RpcReply<Vec<Issue>> = ask(
        &app,
        &issue_list_subject(),
        &IssueListRequest {
            contact_id: mine,
            limit: 10,
        },
    )
    .await;
    let RpcReply::Ok(list) = r else {
        panic!("{r:?}")
    };
    let ids: Vec<i64> = list.iter().map(|i| i.id).collect();
    assert_eq!(ids, [b, a], "newest first, only theirs");
    assert!(list.iter().all(|i| !i.status.name.is_empty()));
    let r: RpcReply<Issue> = ask(
        &app,
        &issue_get_subject(),
        &IssueGetRequest {
            issue_id: a,
            contact_id: mine,
        },
    )
    .await;
    assert!(
        matches!(&r, RpcReply::Ok(i) if i.id == a && i.title == "Первая"),
        "{r:?}"
    );
    let r: RpcReply<Issue> = ask(
        &app,
        &issue_get_subject(),
        &IssueGetRequest {
            issue_id: theirs,
            contact_id: mine,
        },
    )
    .await;
    assert!(
        matches!(
            r,
            RpcReply::Error {
                kind: RpcErrorKind::NotFound,
                ..
            }
        ),
        "{r:?}"
    );
}
