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
    pub values: Vec<CustomFieldValue>,
}

/// UTM marks of a lead (where the customer came from).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The deal's budget in the account's currency (amoCRM `price`, whole units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    /// The CRM's pipeline stage id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<i64>,
    /// Our status name for `status_id` (`new`, `contacted`, …, `won`, `lost`); `None` when the
    /// stage is not mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The stage it left, for a stage change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible_user_id: Option<i64>,
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
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
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible_user_id: Option<i64>,
    /// Phones in E.164 (`+79031453455`); a number that cannot be read as one is kept as given.
    /// `None` when the delivery carried no custom fields at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<String>>,
    /// E-mail addresses, trimmed and lower case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Vec<CustomField>>,
    /// Leads linked to the contact, when the delivery listed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lead_ids: Vec<i64>,
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
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<i64>,
    /// When it was deleted: the CRM's time when it gave one, else when the gateway heard of it.
    #[serde(with = "time::serde::rfc3339")]
    pub deleted_at: OffsetDateTime,
}
