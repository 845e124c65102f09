//! The look-ups a person waits for, answered over core NATS request/reply
//! ([`service_kit::rpc`]): `rpc.okdesk.company.find_by_inn`, `rpc.okdesk.issue.list`,
//! `rpc.okdesk.issue.get`. Each answer is a [`RpcReply`]: Okdesk down or slow →
//! `unavailable` (the bot says "try later"), a key that may not search companies →
//! `forbidden`.

use domain::{
    Company, FindCompanyByInn, Issue, IssueGetRequest, IssueListRequest, RpcErrorKind, RpcReply,
    Source, Subject,
};
use okdesk_api::OkdeskError;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::announce;

/// Subject of the company look-up.
pub fn find_by_inn_subject() -> Subject {
    Subject::rpc(Source::Okdesk, "company.find_by_inn")
}

/// Subject of the issue list.
pub fn issue_list_subject() -> Subject {
    Subject::rpc(Source::Okdesk, "issue.list")
}

/// Subject of one issue.
pub fn issue_get_subject() -> Subject {
    Subject::rpc(Source::Okdesk, "issue.get")
}

fn invalid<T>(message: String) -> RpcReply<T> {
    RpcReply::Error {
        kind: RpcErrorKind::Invalid,
        message,
    }
}

fn failed<T>(what: &str, e: OkdeskError) -> RpcReply<T> {
    // A key that may not search companies is a 403 too.
    let kind = match e.status() {
        Some(403) => RpcErrorKind::Forbidden,
        Some(404) => RpcErrorKind::NotFound,
        _ => RpcErrorKind::Unavailable,
    };
    tracing::warn!(error = %e, what, "Okdesk look-up failed");
    RpcReply::Error {
        kind,
        message: format!("{what}: {e}"),
    }
}

/// Answers `rpc.okdesk.company.find_by_inn` until `stop`: the first company whose INN
/// parameter (`OKDESK_INN_PARAMETER_CODE`) equals the INN, or none.
pub async fn serve_find_by_inn(state: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let s = state.clone();
    service_kit::rpc::serve(
        state.bus.clone(),
        find_by_inn_subject(),
        stop,
        invalid,
        move |r: FindCompanyByInn| {
            let s = s.clone();
            async move {
                let inn = r.inn.trim().to_owned();
                match s
                    .okdesk
                    .find_companies_by_inn(&s.settings.inn_parameter_code, &inn)
                    .await
                {
                    Ok(found) => RpcReply::Ok(found.into_iter().next().map(|c| Company {
                        id: c.id,
                        name: c.name,
                    })),
                    Err(e) => failed("company search", e),
                }
            }
        },
    )
    .await
}

/// Answers `rpc.okdesk.issue.list` until `stop`: the contact's newest issues.
pub async fn serve_issue_list(state: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let s = state.clone();
    service_kit::rpc::serve(
        state.bus.clone(),
        issue_list_subject(),
        stop,
        invalid,
        move |r: IssueListRequest| {
            let s = s.clone();
            async move { issue_list(&s, &r).await }
        },
    )
    .await
}

async fn issue_list(s: &AppState, r: &IssueListRequest) -> RpcReply<Vec<Issue>> {
    let mut ids = match s.okdesk.issue_ids_of_contact(r.contact_id).await {
        Ok(ids) => ids,
        Err(e) => return failed("issue list", e),
    };
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let mut out = Vec::new();
    for id in ids.into_iter().take(r.limit.clamp(1, 20) as usize) {
        match s.okdesk.issue(id).await {
            Ok(Some(i)) => out.push(announce::issue(s, &i)),
            Ok(None) => {}
            Err(e) => return failed("issue get", e),
        }
    }
    RpcReply::Ok(out)
}

/// Answers `rpc.okdesk.issue.get` until `stop`: one issue, only the contact's own.
pub async fn serve_issue_get(state: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let s = state.clone();
    service_kit::rpc::serve(
        state.bus.clone(),
        issue_get_subject(),
        stop,
        invalid,
        move |r: IssueGetRequest| {
            let s = s.clone();
            async move {
                match s.okdesk.issue(r.issue_id).await {
                    Ok(Some(i)) if i.contact.as_ref().map(|c| c.id) == Some(r.contact_id) => {
                        RpcReply::Ok(announce::issue(&s, &i))
                    }
                    Ok(_) => RpcReply::Error {
                        kind: RpcErrorKind::NotFound,
                        message: format!("issue {} is not the contact's", r.issue_id),
                    },
                    Err(e) => failed("issue get", e),
                }
            }
        },
    )
    .await
}
