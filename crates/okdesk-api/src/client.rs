//! `OkdeskClient`: the Okdesk API v1 calls the gateway makes. Every call is one attempt; the
//! caller (a JetStream consumer) retries what [`OkdeskError::is_retriable`] says is worth it.
//!
//! Auth is the `api_token` query parameter on every request
//! (<https://okdesk.ru/apidoc>: "Во всех запросах должен присутствовать параметр api_token").
//! Because the token is in the URL, URLs are never logged nor put into errors.

use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::multipart::{Form, Part};
use reqwest::{RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{OkdeskError, error_message};
use crate::types::{
    Comment, Company, Contact, Issue, IssueStatus, NewComment, NewContact, NewIssue,
};

/// A client of one Okdesk account. Cheap to clone.
#[derive(Clone)]
pub struct OkdeskClient {
    http: reqwest::Client,
    api_url: String,
    web_url: String,
    api_token: String,
}

impl std::fmt::Debug for OkdeskClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OkdeskClient")
            .field("api_url", &self.api_url)
            .field("api_token", &"[redacted]")
            .finish()
    }
}

/// One HTTP answer, read whole.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl OkdeskClient {
    /// `http` is the gateway's one outbound client (`upstream_http::build`, whose timeout
    /// bounds every call); `api_url` is `OKDESK_API_URL`, e.g. `https://<account>.okdesk.ru/api/v1`
    /// (a trailing slash is fine); `api_token` is `OKDESK_API_TOKEN`, the key from
    /// Settings → API of an employee (a contact person's key cannot search companies).
    pub fn new(http: reqwest::Client, api_url: &str, api_token: &str) -> Self {
        let api_url = api_url.trim().trim_end_matches('/').to_owned();
        let web_url = api_url
            .strip_suffix("/api/v1")
            .unwrap_or(&api_url)
            .trim_end_matches('/')
            .to_owned();
        Self {
            http,
            api_url,
            web_url,
            api_token: api_token.to_owned(),
        }
    }

    /// The API base URL, without a trailing slash.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The web link of an issue, `https://<account>.okdesk.ru/issues/<id>`: the API URL without
    /// `/api/v1`, plus `/issues/<id>`.
    pub fn issue_url(&self, id: i64) -> String {
        format!("{}/issues/{id}", self.web_url)
    }

    /// Companies whose additional attribute `param_code` (`OKDESK_INN_PARAMETER_CODE`) equals
    /// `inn`: `GET /companies/list?custom_parameters[<code>]=<inn>`
    /// (<https://okdesk.ru/apidoc#!metod-polucheniya-spiska-kompanij-po-parametram-poluchenie-spiska-po-parametram>).
    /// Companies in the answer whose attribute is not exactly `inn` are dropped, so that a
    /// filter Okdesk ignored (a wrong attribute code) never yields a stranger's company.
    ///
    /// Errors: [`OkdeskError::CompanySearchNotAllowed`] when Okdesk answers 403 (a contact
    /// person's key, or an employee without access to the company list).
    pub async fn find_companies_by_inn(
        &self,
        param_code: &str,
        inn: &str,
    ) -> Result<Vec<Company>, OkdeskError> {
        const EP: &str = "companies/list";
        let key = format!("custom_parameters[{param_code}]");
        let req = self
            .request(reqwest::Method::GET, "/companies/list")
            .query(&[(key.as_str(), inn)]);
        let answer = self.send(req, EP).await?;
        if answer.status == StatusCode::FORBIDDEN {
            return Err(OkdeskError::CompanySearchNotAllowed {
                endpoint: EP,
                status: answer.status.as_u16(),
                detail: self.detail(&answer.body),
            });
        }
        let companies: Vec<Company> = self.ok_json(answer, EP)?;
        let inn = inn.trim();
        Ok(companies
            .into_iter()
            .filter(|c| c.parameter(param_code).is_some_and(|v| v.trim() == inn))
            .collect())
    }

    /// The contact with this phone, `GET /contacts/?phone=<phone>` (`+` is sent as `%2B`, as the
    /// docs require: "Символ + в поисковой строке можно использовать только в закодированном
    /// варианте %2B"). Okdesk answers one contact object; an empty answer, `{}`, `[]` or 404
    /// is `None`. A list answer yields its first contact.
    pub async fn find_contact_by_phone(
        &self,
        phone_e164: &str,
    ) -> Result<Option<Contact>, OkdeskError> {
        const EP: &str = "contacts";
        let req = self
            .request(reqwest::Method::GET, "/contacts/")
            .query(&[("phone", phone_e164)]);
        let answer = self.send(req, EP).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let v: Value = self.ok_json(answer, EP)?;
        let found = match v {
            Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
            Value::Object(ref map) if map.contains_key("id") => v,
            _ => return Ok(None),
        };
        decode(found, EP).map(Some)
    }

    /// Creates a contact person: `POST /contacts/` with `{"contact":{…}}`.
    pub async fn create_contact(&self, contact: NewContact) -> Result<Contact, OkdeskError> {
        const EP: &str = "contacts";
        let req = self
            .request(reqwest::Method::POST, "/contacts/")
            .json(&json!({ "contact": contact }));
        let answer = self.send(req, EP).await?;
        self.ok_json(answer, EP)
    }

    /// Creates an issue: `POST /issues/` with `{"issue":{…}}`
    /// (<https://okdesk.ru/apidoc#!sozdanie-zayavki-sozdanie-zayavki>). The answer carries at
    /// least the new `id`.
    pub async fn create_issue(&self, issue: NewIssue) -> Result<Issue, OkdeskError> {
        const EP: &str = "issues";
        let req = self
            .request(reqwest::Method::POST, "/issues/")
            .json(&json!({ "issue": issue }));
        let answer = self.send(req, EP).await?;
        self.ok_json(answer, EP)
    }

    /// `GET /issues/{id}`; `None` when Okdesk has no such issue (404).
    pub async fn issue(&self, id: i64) -> Result<Option<Issue>, OkdeskError> {
        const EP: &str = "issues/{id}";
        let req = self.request(reqwest::Method::GET, &format!("/issues/{id}"));
        let answer = self.send(req, EP).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.ok_json(answer, EP).map(Some)
    }

    /// Ids of the issues whose contact person is `contact_id`:
    /// `GET /issues/count?contact_ids[]=<id>`, which answers a plain array of ids
    /// (<https://okdesk.ru/apidoc#!poluchenie-spiska-po-parametram-poluchenie-spiska-po-parametram>).
    pub async fn issue_ids_of_contact(&self, contact_id: i64) -> Result<Vec<i64>, OkdeskError> {
        const EP: &str = "issues/count";
        let req = self
            .request(reqwest::Method::GET, "/issues/count")
            .query(&[("contact_ids[]", contact_id)]);
        let answer = self.send(req, EP).await?;
        let ids: Vec<Value> = self.ok_json(answer, EP)?;
        ids.iter()
            .map(|v| {
                crate::de::value_id(v).ok_or_else(|| OkdeskError::Decode {
                    endpoint: EP,
                    message: format!("not an issue id: {v}"),
                })
            })
            .collect()
    }

    /// The account's issue statuses, `GET /issues/statuses`.
    pub async fn statuses(&self) -> Result<Vec<IssueStatus>, OkdeskError> {
        const EP: &str = "issues/statuses";
        let req = self.request(reqwest::Method::GET, "/issues/statuses");
        let answer = self.send(req, EP).await?;
        self.ok_json(answer, EP)
    }

    /// Adds a comment on behalf of contact `author_id`: `POST /issues/{id}/comments` with
    /// `{"comment":{"content","author_id","author_type":"contact","public"}}`; with files as
    /// `multipart/form-data` with `comment[content]`, `comment[author_id]`,
    /// `comment[author_type]`, `comment[public]` and `comment[attachments][i][attachment]`
    /// (<https://okdesk.ru/apidoc#!kommentarii-dobavlenie-kommentariya>).
    pub async fn create_comment(
        &self,
        issue_id: i64,
        comment: NewComment,
    ) -> Result<Comment, OkdeskError> {
        const EP: &str = "issues/{id}/comments";
        let path = format!("/issues/{issue_id}/comments");
        let req = self.request(reqwest::Method::POST, &path);
        let req = if comment.attachments.is_empty() {
            req.json(&json!({
                "comment": {
                    "content": comment.content_html,
                    "author_id": comment.author_id,
                    "author_type": "contact",
                    "public": comment.public,
                }
            }))
        } else {
            let mut form = Form::new()
                .text("comment[content]", comment.content_html.clone())
                .text("comment[author_id]", comment.author_id.to_string())
                .text("comment[author_type]", "contact")
                .text("comment[public]", comment.public.to_string());
            for (i, a) in comment.attachments.iter().enumerate() {
                let part = Part::bytes(a.bytes.clone())
                    .file_name(a.file_name.clone())
                    .mime_str(&a.mime)
                    .map_err(|e| OkdeskError::Decode {
                        endpoint: EP,
                        message: format!("file {}: MIME type {:?}: {e}", a.file_name, a.mime),
                    })?;
                form = form.part(format!("comment[attachments][{i}][attachment]"), part);
            }
            req.multipart(form)
        };
        let answer = self.send(req, EP).await?;
        self.ok_json(answer, EP)
    }

    /// The issue's comments, oldest first: `GET /issues/{id}/comments`
    /// (<https://okdesk.ru/apidoc#!kommentarii-poluchenie-spiska-kommentariev>).
    pub async fn issue_comments(&self, issue_id: i64) -> Result<Vec<Comment>, OkdeskError> {
        const EP: &str = "issues/{id}/comments";
        let req = self.request(
            reqwest::Method::GET,
            &format!("/issues/{issue_id}/comments"),
        );
        let answer = self.send(req, EP).await?;
        self.ok_json(answer, EP)
    }

    /// Moves the issue to status `code`: `POST /issues/{id}/statuses` with `{"code":…}` and,
    /// when `skip_webhooks`, `"skip_options":["skip_webhooks"]` so that Okdesk does not send the
    /// change back to our own webhook (<https://okdesk.ru/apidoc#!status-zayavki-smena-statusa-zayavki>).
    /// The transition must be allowed in the account's settings; `delayed` needs a `delay_to`,
    /// which this call does not send (Okdesk answers 422).
    pub async fn change_status(
        &self,
        issue_id: i64,
        code: &str,
        skip_webhooks: bool,
    ) -> Result<Issue, OkdeskError> {
        const EP: &str = "issues/{id}/statuses";
        #[derive(Serialize)]
        struct Body<'a> {
            code: &'a str,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            skip_options: Vec<&'static str>,
        }
        let body = Body {
            code,
            skip_options: if skip_webhooks {
                vec!["skip_webhooks"]
            } else {
                Vec::new()
            },
        };
        let req = self
            .request(
                reqwest::Method::POST,
                &format!("/issues/{issue_id}/statuses"),
            )
            .json(&body);
        let answer = self.send(req, EP).await?;
        self.ok_json(answer, EP)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api_url))
            .query(&[("api_token", self.api_token.as_str())])
            .header(ACCEPT, "application/json")
    }

    async fn send(
        &self,
        req: RequestBuilder,
        endpoint: &'static str,
    ) -> Result<Answer, OkdeskError> {
        let res = req.send().await.map_err(|e| {
            metrics::counter!("okdesk_api_calls_total", "endpoint" => endpoint, "status" => "unreachable")
                .increment(1);
            OkdeskError::transport(endpoint, e)
        })?;
        let status = res.status();
        let retry_after = upstream_http::retry_after(res.headers());
        tracing::debug!(endpoint, status = status.as_u16(), "Okdesk answered");
        metrics::counter!("okdesk_api_calls_total", "endpoint" => endpoint, "status" => status.as_u16().to_string())
            .increment(1);
        let body = res
            .bytes()
            .await
            .map_err(|e| OkdeskError::transport(endpoint, e))?
            .to_vec();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    /// 2xx → the body as `T`; anything else → [`OkdeskError::Status`].
    fn ok_json<T: DeserializeOwned>(
        &self,
        answer: Answer,
        endpoint: &'static str,
    ) -> Result<T, OkdeskError> {
        if !answer.status.is_success() {
            return Err(OkdeskError::Status {
                endpoint,
                status: answer.status.as_u16(),
                detail: self.detail(&answer.body),
                retry_after: answer.retry_after,
            });
        }
        serde_json::from_slice(&answer.body).map_err(|e| OkdeskError::Decode {
            endpoint,
            message: e.to_string(),
        })
    }

    /// The error text of a body, with the token (should Okdesk ever echo it) redacted.
    fn detail(&self, body: &[u8]) -> String {
        let text = error_message(body).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                "(empty body)".to_owned()
            } else {
                upstream_http::truncate_body(text, 200)
            }
        });
        if self.api_token.is_empty() {
            text
        } else {
            text.replace(&self.api_token, "[redacted]")
        }
    }
}

fn decode<T: DeserializeOwned>(v: Value, endpoint: &'static str) -> Result<T, OkdeskError> {
    serde_json::from_value(v).map_err(|e| OkdeskError::Decode {
        endpoint,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_url_strips_the_api_path() {
        let http = reqwest::Client::new();
        let c = OkdeskClient::new(http.clone(), "https://acme.okdesk.ru/api/v1/", "t");
        assert_eq!(c.api_url(), "https://acme.okdesk.ru/api/v1");
        assert_eq!(c.issue_url(42), "https://acme.okdesk.ru/issues/42");
        let c = OkdeskClient::new(http, "http://127.0.0.1:9000/okdesk/api/v1", "t");
        assert_eq!(c.issue_url(1), "http://127.0.0.1:9000/okdesk/issues/1");
    }

    #[test]
    fn debug_hides_the_token() {
        let c = OkdeskClient::new(
            reqwest::Client::new(),
            "https://a.okdesk.ru/api/v1",
            "s3cr3t",
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(
            c.detail(br#"{"errors":"bad key s3cr3t"}"#),
            "bad key [redacted]"
        );
        assert_eq!(c.detail(b""), "(empty body)");
    }
}
