//! Normalized CRM records: sales leads (deals) and contacts, independent of the CRM they came
//! from (amoCRM today). The shapes are what the gateway agrees on, not an upstream's payload:
//! ids are the CRM's own, statuses carry both the CRM's stage id and our status name, money is a
//! decimal string, phones are E.164 and e-mails lower case.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One value of a CRM custom field, as the CRM holds it (text, number, date as unix seconds …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomFieldValue {
    /// The value as text, exactly as the CRM sent it.
    pub value: String,
    /// Id of the chosen option of a list field (amoCRM `enum` / `enum_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enum_id: Option<i64>,
    /// Code of the chosen option (amoCRM `enum_code`, e.g. `WORK` for a phone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enum_code: Option<String>,
}

/// A custom field of a lead or contact with all its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomField {
    /// The field's id in the CRM account.
    pub id: i64,
    /// The field's code for system fields (`PHONE`, `EMAIL`, `POSITION` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The field's name as the account calls it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The field's values; a multi-value field (several phones …) has more than one.
    pub values: Vec<CustomFieldValue>,
}

/// UTM marks of a lead (where the customer came from).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utm {
    /// `utm_source`: the traffic source (e.g. `yandex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `utm_medium`: the channel type (e.g. `cpc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    /// `utm_campaign`: the campaign name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// `utm_content`: the ad or link variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// `utm_term`: the search keyword.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
}

impl Utm {
    /// No mark is set.
    pub fn is_empty(&self) -> bool {
        self == &Utm::default()
    }
}

/// A contact linked to a lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedContact {
    /// The linked contact's id in the CRM.
    pub id: i64,
    /// The lead's main contact.
    #[serde(default)]
    pub is_main: bool,
}

/// A sales lead (amoCRM "сделка") as the CRM last described it.
///
/// Fields the delivery did not carry are `None` (a webhook is partial; the API is complete), so
/// a consumer keeps what it knew for them. `custom_fields: None` means "not sent", `Some([])`
/// means "none set".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lead {
    /// The lead's id in the CRM.
    pub id: i64,
    /// The CRM account the lead belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<i64>,
    /// The lead's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The deal's budget in the account's currency (amoCRM `price`, whole units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    /// The CRM's pipeline stage id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_id: Option<i64>,
    /// The CRM's id of the pipeline (sales funnel) `status_id` belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<i64>,
    /// Our status name for `status_id` (`new`, `contacted`, …, `won`, `lost`); `None` when the
    /// stage is not mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The stage it left, for a stage change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status_id: Option<i64>,
    /// The CRM user id of the manager in charge of the lead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible_user_id: Option<i64>,
    /// UTM marks, read from the lead's custom fields; empty when none is set.
    #[serde(default, skip_serializing_if = "Utm::is_empty")]
    pub utm: Utm,
    /// Price of the object sold, a decimal string such as `"12500000.00"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_price: Option<String>,
    /// Commission of the deal, a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commission: Option<String>,
    /// Every custom field as the CRM sent it; `None` when the delivery did not carry them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Vec<CustomField>>,
    /// Contacts linked to the lead, when the delivery listed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<LinkedContact>,
    /// Tag names, when the delivery listed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// When the lead was created in the CRM (RFC 3339 on the wire).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<OffsetDateTime>,
    /// When the CRM last changed it: the order of facts about one lead. An older fact never
    /// overwrites a newer one.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A contact (person) in the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The contact's id in the CRM.
    pub id: i64,
    /// The CRM account the contact belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<i64>,
    /// Full name as the CRM holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// The CRM user id of the manager in charge of the contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible_user_id: Option<i64>,
    /// Phones in E.164 (`+79031453455`); a number that cannot be read as one is kept as given.
    /// `None` when the delivery carried no custom fields at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<String>>,
    /// E-mail addresses, trimmed and lower case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<String>>,
    /// Every custom field as the CRM sent it; `None` when the delivery did not carry them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Vec<CustomField>>,
    /// Leads linked to the contact, when the delivery listed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lead_ids: Vec<i64>,
    /// When the contact was created in the CRM (RFC 3339 on the wire).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<OffsetDateTime>,
    /// When the CRM last changed it (see [`Lead::updated_at`]).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A lead or contact was deleted in the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    /// The deleted lead's or contact's id in the CRM.
    pub id: i64,
    /// The CRM account it belonged to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<i64>,
    /// When it was deleted: the CRM's time when it gave one, else when the gateway heard of it.
    #[serde(with = "time::serde::rfc3339")]
    pub deleted_at: OffsetDateTime,
}
