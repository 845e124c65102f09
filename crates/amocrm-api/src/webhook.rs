//! amoCRM webhooks: the real form format and the JSON format, read into one tree and then, entry
//! by entry, into [`RawLead`] / [`RawContact`].
//!
//! # The form format amoCRM sends
//!
//! <https://www.amocrm.ru/developers/content/crm_platform/webhooks-format>: a `POST` with
//! `Content-Type: application/x-www-form-urlencoded` whose keys are PHP-style nested arrays,
//! `{entity}[{action}][{n}][{field}]`, brackets usually percent-encoded (`leads%5Badd%5D%5B0%5D%5Bid%5D`):
//!
//! ```text
//! leads[status][0][id]=10701093&leads[status][0][name]=Семинар&leads[status][0][status_id]=142
//! &leads[status][0][old_status_id]=20067736&leads[status][0][price]=22500
//! &leads[status][0][responsible_user_id]=2079676&leads[status][0][last_modified]=1539782664
//! &leads[status][0][date_create]=1539782209&leads[status][0][pipeline_id]=9217056
//! &leads[status][0][custom_fields][0][id]=66339&leads[status][0][custom_fields][0][name]=Источник
//! &leads[status][0][custom_fields][0][values][0][value]=Сайт&leads[status][0][custom_fields][0][values][0][enum]=139517
//! &leads[status][0][custom_fields][2][values][0]=1542067200            (a date field: a bare value)
//! &contacts[update][0][custom_fields][0][code]=PHONE
//! &contacts[update][0][linked_leads_id][9982719][ID]=9982719           (keyed by lead id, not 0..n)
//! &account[subdomain]=example&account[id]=17769199
//! ```
//!
//! Entities: `leads`, `contacts` (also `companies`, `task`, … which the gateway ignores).
//! Actions: `add`, `update`, `delete`, `restore`, `status` (stage change; carries
//! `old_status_id`), `responsible` (carries `old_responsible_user_id`), `note`. A `delete` entry
//! has little more than `id`. Times are unix seconds (`date_create`, `last_modified`).
//!
//! The form is parsed with serde_qs (`use_form_encoding(true)`, depth 10; the defaults would leave
//! `%5B…%5D` keys undecoded and stop at depth 5) into a tree whose lists stay objects keyed by
//! their index: amoCRM's indices are not always `0..n` (`linked_leads_id`), so treating them as
//! sequences would refuse real payloads.
//!
//! # The JSON format of the existing deployment
//!
//! `{"leads":{"add":[{…}],"update":[…],…},"contacts":{…},"account":{…}}`, entries either in the
//! webhook's field names above or in API v4's (`created_at`, `updated_at`,
//! `custom_fields_values[{field_id, field_code, values[{value, enum_id, enum_code}]}]`,
//! `_embedded.contacts[{id, is_main}]`). Both are read by the same code.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Nesting depth allowed in a form body: `leads[update][0][custom_fields][0][values][0][value]`
/// is 7 deep; 10 leaves room.
pub const FORM_MAX_DEPTH: usize = 10;

/// The kind of CRM entity an entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// A lead (deal), section `leads`.
    Lead,
    /// A contact, section `contacts`.
    Contact,
}

impl EntityKind {
    /// `lead` / `contact` (singular, as in event names and idempotency keys).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Lead => "lead",
            EntityKind::Contact => "contact",
        }
    }

    /// The webhook section: `leads` / `contacts`.
    pub fn section(self) -> &'static str {
        match self {
            EntityKind::Lead => "leads",
            EntityKind::Contact => "contacts",
        }
    }
}

/// What happened to the entity (the webhook's action key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Created (`add`).
    Add,
    /// Changed (`update`).
    Update,
    /// Leads only: moved to another pipeline stage.
    Status,
    /// Another user became responsible.
    Responsible,
    /// Deleted (`delete`); the entry carries little more than `id`.
    Delete,
    /// Restored after a deletion (`restore`).
    Restore,
}

impl Action {
    /// The wire name (`add`, `update`, `status`, `responsible`, `delete`, `restore`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Update => "update",
            Action::Status => "status",
            Action::Responsible => "responsible",
            Action::Delete => "delete",
            Action::Restore => "restore",
        }
    }

    fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "add" => Action::Add,
            "update" => Action::Update,
            "status" => Action::Status,
            "responsible" => Action::Responsible,
            "delete" => Action::Delete,
            "restore" => Action::Restore,
            _ => return None,
        })
    }
}

/// Why a body is not a webhook at all.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The form body does not parse (serde_qs's message).
    #[error("body is not a PHP-style form: {0}")]
    Form(String),
    /// The JSON body does not parse (serde_json's message).
    #[error("body is not JSON: {0}")]
    Json(String),
    /// The body parses, but its top level is not an object.
    #[error("body is not an object of entity sections")]
    NotAnObject,
}

/// Why one entry of a webhook was refused; the other entries are still taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {reason}")]
pub struct EntryError {
    /// Where the entry is, e.g. `leads[add][2]`.
    pub position: String,
    /// What is wrong with it, e.g. `id is missing`.
    pub reason: String,
}

/// A parsed webhook body: sections of entries plus the account.
#[derive(Debug, Clone)]
pub struct WebhookBody {
    root: Map<String, Value>,
}

/// `account[...]` of a webhook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// `account[id]`: the amoCRM account id.
    pub id: Option<i64>,
    /// `account[subdomain]`: as in `https://<subdomain>.amocrm.ru`.
    pub subdomain: Option<String>,
}

/// One entry: `{section}[{action}][{index}]`.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The section: lead or contact.
    pub kind: EntityKind,
    /// The action key the entry was listed under.
    pub action: Action,
    index: &'a str,
    raw: &'a Value,
}

impl<'a> Entry<'a> {
    /// `leads[add][0]`.
    pub fn position(&self) -> String {
        format!(
            "{}[{}][{}]",
            self.kind.section(),
            self.action.as_str(),
            self.index
        )
    }

    /// The entry as the upstream sent it.
    pub fn raw(&self) -> &'a Value {
        self.raw
    }

    fn error(&self, reason: impl Into<String>) -> EntryError {
        EntryError {
            position: self.position(),
            reason: reason.into(),
        }
    }

    /// Reads the entry as a lead.
    pub fn lead(&self) -> Result<RawLead, EntryError> {
        RawLead::from_value(self.raw).map_err(|r| self.error(r))
    }

    /// Reads the entry as a contact.
    pub fn contact(&self) -> Result<RawContact, EntryError> {
        RawContact::from_value(self.raw).map_err(|r| self.error(r))
    }
}

/// Parses an `application/x-www-form-urlencoded` body with PHP-style keys.
pub fn parse_form(body: &[u8]) -> Result<WebhookBody, ParseError> {
    let config = serde_qs::Config::new()
        .use_form_encoding(true)
        .max_depth(FORM_MAX_DEPTH);
    let Tree(tree) = config
        .deserialize_bytes(body)
        .map_err(|e| ParseError::Form(e.to_string()))?;
    match tree {
        Value::Object(root) => Ok(WebhookBody { root }),
        _ => Err(ParseError::NotAnObject),
    }
}

/// Parses a JSON body (`{"leads":{"add":[…]}, …}`).
pub fn parse_json(body: &[u8]) -> Result<WebhookBody, ParseError> {
    match serde_json::from_slice::<Value>(body).map_err(|e| ParseError::Json(e.to_string()))? {
        Value::Object(root) => Ok(WebhookBody { root }),
        _ => Err(ParseError::NotAnObject),
    }
}

impl WebhookBody {
    /// `account[id]` and `account[subdomain]`, when sent.
    pub fn account(&self) -> Account {
        let a = self.root.get("account");
        Account {
            id: a.and_then(|a| int(a.get("id")).ok().flatten()),
            subdomain: a.and_then(|a| text(a.get("subdomain"))),
        }
    }

    /// Every lead and contact entry in body order (leads first), plus the problems met on the
    /// way (a section or action that is not a list of entries). Unknown sections (`companies`,
    /// `task`, …) and actions (`note`) are skipped: see [`WebhookBody::skipped`].
    pub fn entries(&self) -> (Vec<Entry<'_>>, Vec<EntryError>) {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for kind in [EntityKind::Lead, EntityKind::Contact] {
            let Some(section) = self.root.get(kind.section()) else {
                continue;
            };
            let Value::Object(actions) = section else {
                if !is_empty(section) {
                    errors.push(EntryError {
                        position: kind.section().to_owned(),
                        reason: "expected an object of actions".into(),
                    });
                }
                continue;
            };
            for (action_name, list) in actions {
                let Some(action) = Action::from_wire(action_name) else {
                    continue;
                };
                match items(list) {
                    Some(items) => {
                        for (index, raw) in items {
                            entries.push(Entry {
                                kind,
                                action,
                                index,
                                raw,
                            });
                        }
                    }
                    None => errors.push(EntryError {
                        position: format!("{}[{action_name}]", kind.section()),
                        reason: "expected a list of entries".into(),
                    }),
                }
            }
        }
        (entries, errors)
    }

    /// Sections and actions present but not handled, e.g. `companies`, `leads[note]`.
    pub fn skipped(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, section) in &self.root {
            match name.as_str() {
                "account" => {}
                "leads" | "contacts" => {
                    if let Value::Object(actions) = section {
                        out.extend(
                            actions
                                .keys()
                                .filter(|a| Action::from_wire(a).is_none())
                                .map(|a| format!("{name}[{a}]")),
                        );
                    }
                }
                other => out.push(other.to_owned()),
            }
        }
        out
    }
}

/// The items of a list: a JSON array, or an object keyed by index (form), in index order.
fn items(v: &Value) -> Option<Vec<(&str, &Value)>> {
    match v {
        Value::Array(a) => Some(
            a.iter()
                .enumerate()
                .map(|(i, v)| (INDEX.get(i).copied().unwrap_or("n"), v))
                .collect(),
        ),
        Value::Object(m) => {
            let mut items: Vec<(&str, &Value)> = m.iter().map(|(k, v)| (k.as_str(), v)).collect();
            items.sort_by_key(|(k, _)| (k.len(), *k));
            Some(items)
        }
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

/// Index names for JSON arrays (positions in error messages); long lists say `n`.
const INDEX: [&str; 64] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48",
    "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63",
];

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A whole number from a JSON number or a string (`"22500"`, `"22500.00"`); empty means absent.
fn int(v: Option<&Value>) -> Result<Option<i64>, String> {
    let Some(v) = v.filter(|v| !is_empty(v)) else {
        return Ok(None);
    };
    let parsed = match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
        }
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| format!("`{v}` is not a whole number"))
}

/// A named whole-number field; the error names the field.
fn int_field(obj: &Value, name: &str) -> Result<Option<i64>, String> {
    int(obj.get(name)).map_err(|e| format!("{name}: {e}"))
}

/// The first of several names that is present.
fn int_of(obj: &Value, names: &[&str]) -> Result<Option<i64>, String> {
    for n in names {
        if let Some(v) = int_field(obj, n)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Text from a string, number or bool; empty means absent.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A value of a custom field as amoCRM sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFieldValue {
    /// The value as text (a date field holds unix seconds); empty when none was sent.
    pub value: String,
    /// Id of the chosen option of a list field (webhook `enum`, API v4 `enum_id`).
    pub enum_id: Option<i64>,
    /// Code of the chosen option (API v4 `enum_code`, or a webhook `enum` that is not a number,
    /// e.g. `WORK`).
    pub enum_code: Option<String>,
}

/// A custom field of an entry (`custom_fields[n]` of a webhook, `custom_fields_values[n]` of
/// API v4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCustomField {
    /// The field id (webhook `id`, API v4 `field_id`).
    pub id: i64,
    /// The field code for system fields (webhook `code`, API v4 `field_code`), e.g. `PHONE`.
    pub code: Option<String>,
    /// The field name (webhook `name`, API v4 `field_name`).
    pub name: Option<String>,
    /// The field's values, in order.
    pub values: Vec<RawFieldValue>,
}

impl RawCustomField {
    /// The first value, when there is one.
    pub fn first(&self) -> Option<&str> {
        self.values.first().map(|v| v.value.as_str())
    }
}

/// `custom_fields` (webhook) or `custom_fields_values` (API v4); `None` when neither is present.
fn custom_fields(obj: &Value) -> Result<Option<Vec<RawCustomField>>, String> {
    let (list, v4) = match (obj.get("custom_fields_values"), obj.get("custom_fields")) {
        (Some(v), _) => (v, true),
        (None, Some(v)) => (v, false),
        (None, None) => return Ok(None),
    };
    let Some(fields) = items(list).or_else(|| is_empty(list).then(Vec::new)) else {
        return Err("custom fields are not a list".into());
    };
    let mut out = Vec::with_capacity(fields.len());
    for (i, (_, f)) in fields.into_iter().enumerate() {
        let id_key = if v4 { "field_id" } else { "id" };
        let id = int(f.get(id_key).or_else(|| f.get("id")))
            .map_err(|e| format!("custom field {i}: {e}"))?
            .ok_or_else(|| format!("custom field {i} has no id"))?;
        let code = text(f.get(if v4 { "field_code" } else { "code" }));
        let name = text(f.get(if v4 { "field_name" } else { "name" }));
        let mut values = Vec::new();
        if let Some(vs) = f.get("values").and_then(items) {
            for (_, v) in vs {
                values.push(field_value(v));
            }
        }
        out.push(RawCustomField {
            id,
            code,
            name,
            values,
        });
    }
    Ok(Some(out))
}

fn field_value(v: &Value) -> RawFieldValue {
    match v {
        Value::Object(m) => {
            let value = match m.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other @ (Value::Object(_) | Value::Array(_))) => other.to_string(),
                Some(other) => other.to_string(),
            };
            // The webhook's `enum` is the option id (`114611`) or, in older accounts, its code
            // (`WORK`); API v4 says `enum_id` and `enum_code`.
            let legacy = m.get("enum");
            let enum_id = int(m.get("enum_id"))
                .ok()
                .flatten()
                .or_else(|| int(legacy).ok().flatten());
            let enum_code = text(m.get("enum_code")).or_else(|| {
                legacy
                    .filter(|l| int(Some(l)).is_err())
                    .and_then(|l| text(Some(l)))
            });
            RawFieldValue {
                value,
                enum_id,
                enum_code,
            }
        }
        other => RawFieldValue {
            value: text(Some(other)).unwrap_or_default(),
            enum_id: None,
            enum_code: None,
        },
    }
}

fn tags(obj: &Value) -> Vec<String> {
    let list = obj
        .get("tags")
        .or_else(|| obj.get("_embedded").and_then(|e| e.get("tags")));
    list.and_then(items)
        .map(|items| {
            items
                .into_iter()
                .filter_map(|(_, t)| text(t.get("name")).or_else(|| text(Some(t))))
                .collect()
        })
        .unwrap_or_default()
}

/// A lead as a webhook entry or API v4 describes it; every field but `id` may be missing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawLead {
    /// The lead id.
    pub id: i64,
    /// The account id.
    pub account_id: Option<i64>,
    /// The lead title.
    pub name: Option<String>,
    /// The budget, in whole units of the account's currency (`"22500"` and `22500.00` read
    /// alike).
    pub price: Option<i64>,
    /// The pipeline stage id (142 won, 143 lost).
    pub status_id: Option<i64>,
    /// The stage the lead left (`status` action).
    pub old_status_id: Option<i64>,
    /// The pipeline id.
    pub pipeline_id: Option<i64>,
    /// The pipeline the lead left, when it changed pipeline.
    pub old_pipeline_id: Option<i64>,
    /// The amoCRM user id of the manager in charge.
    pub responsible_user_id: Option<i64>,
    /// Unix seconds (`created_at` or `date_create`).
    pub created_at: Option<i64>,
    /// Unix seconds (`updated_at` or `last_modified`).
    pub updated_at: Option<i64>,
    /// `custom_fields` (webhook) or `custom_fields_values` (API v4); `None` when neither was sent.
    pub custom_fields: Option<Vec<RawCustomField>>,
    /// `_embedded.contacts` (API v4 `?with=contacts`): `(id, is_main)`.
    pub contacts: Vec<(i64, bool)>,
    /// Tag names (`tags` or `_embedded.tags`).
    pub tags: Vec<String>,
    /// `is_deleted` of API v4.
    pub is_deleted: bool,
}

impl RawLead {
    /// Reads a lead from a webhook entry or an API v4 lead object.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        if !v.is_object() {
            return Err("entry is not an object".into());
        }
        let id = int_field(v, "id")?.ok_or("id is missing")?;
        let contacts = v
            .get("_embedded")
            .and_then(|e| e.get("contacts"))
            .and_then(items)
            .map(|cs| {
                cs.into_iter()
                    .filter_map(|(_, c)| {
                        let id = int(c.get("id")).ok().flatten()?;
                        let main = matches!(c.get("is_main"), Some(Value::Bool(true)))
                            || text(c.get("is_main")).as_deref() == Some("1");
                        Some((id, main))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            id,
            account_id: int_field(v, "account_id")?,
            name: text(v.get("name")),
            price: int_field(v, "price")?,
            status_id: int_field(v, "status_id")?,
            old_status_id: int_field(v, "old_status_id")?,
            pipeline_id: int_field(v, "pipeline_id")?,
            old_pipeline_id: int_field(v, "old_pipeline_id")?,
            responsible_user_id: int_field(v, "responsible_user_id")?,
            created_at: int_of(v, &["created_at", "date_create"])?,
            updated_at: int_of(v, &["updated_at", "last_modified"])?,
            custom_fields: custom_fields(v)?,
            contacts,
            tags: tags(v),
            is_deleted: matches!(v.get("is_deleted"), Some(Value::Bool(true))),
        })
    }
}

/// A contact as a webhook entry or API v4 describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawContact {
    /// The contact id.
    pub id: i64,
    /// The account id.
    pub account_id: Option<i64>,
    /// Full name.
    pub name: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// The amoCRM user id of the manager in charge.
    pub responsible_user_id: Option<i64>,
    /// Unix seconds (`created_at` or `date_create`).
    pub created_at: Option<i64>,
    /// Unix seconds (`updated_at` or `last_modified`).
    pub updated_at: Option<i64>,
    /// `custom_fields` (webhook) or `custom_fields_values` (API v4); `None` when neither was sent.
    pub custom_fields: Option<Vec<RawCustomField>>,
    /// `linked_leads_id` (webhook, keyed by lead id) or `_embedded.leads` (API v4).
    pub lead_ids: Vec<i64>,
}

impl RawContact {
    /// Reads a contact from a webhook entry or an API v4 contact object.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        if !v.is_object() {
            return Err("entry is not an object".into());
        }
        let id = int_field(v, "id")?.ok_or("id is missing")?;
        let linked = v
            .get("linked_leads_id")
            .or_else(|| v.get("_embedded").and_then(|e| e.get("leads")));
        let lead_ids = linked
            .and_then(items)
            .map(|ls| {
                ls.into_iter()
                    .filter_map(|(key, l)| {
                        int(l.get("id"))
                            .ok()
                            .flatten()
                            .or_else(|| int(l.get("ID")).ok().flatten())
                            .or_else(|| int(Some(l)).ok().flatten())
                            .or_else(|| key.parse().ok())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            id,
            account_id: int_field(v, "account_id")?,
            name: text(v.get("name")),
            first_name: text(v.get("first_name")),
            last_name: text(v.get("last_name")),
            responsible_user_id: int_field(v, "responsible_user_id")?,
            created_at: int_of(v, &["created_at", "date_create"])?,
            updated_at: int_of(v, &["updated_at", "last_modified"])?,
            custom_fields: custom_fields(v)?,
            lead_ids,
        })
    }
}

/// The form tree: objects and strings only (see the module docs for why lists stay objects).
struct Tree(Value);

impl<'de> serde::Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TreeVisitor;
        impl<'de> Visitor<'de> for TreeVisitor {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a PHP-style form")
            }
            // serde_qs hands a leaf to `deserialize_map` as `{"": value}`; every other node is a
            // map of its keys.
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Tree, A::Error> {
                let mut out = Map::new();
                let mut leaf = None;
                while let Some(k) = m.next_key::<String>()? {
                    if k.is_empty() {
                        leaf = Some(m.next_value::<String>()?);
                    } else {
                        let Tree(v) = m.next_value()?;
                        out.insert(k, v);
                    }
                }
                Ok(Tree(match leaf {
                    Some(s) if out.is_empty() => Value::String(s),
                    _ => Value::Object(out),
                }))
            }
        }
        d.deserialize_map(TreeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `leads[status]` delivery (keys percent-encoded as amoCRM sends them, trimmed).
    const STATUS: &str = "leads%5Bstatus%5D%5B0%5D%5Bid%5D=10701093&leads%5Bstatus%5D%5B0%5D%5Bname%5D=%D0%A1%D0%B5%D0%BC%D0%B8%D0%BD%D0%B0%D1%80&leads%5Bstatus%5D%5B0%5D%5Bstatus_id%5D=142&leads%5Bstatus%5D%5B0%5D%5Bold_status_id%5D=20067736&leads%5Bstatus%5D%5B0%5D%5Bprice%5D=22500&leads%5Bstatus%5D%5B0%5D%5Bresponsible_user_id%5D=2079676&leads%5Bstatus%5D%5B0%5D%5Blast_modified%5D=1539782664&leads%5Bstatus%5D%5B0%5D%5Bdate_create%5D=1539782209&leads%5Bstatus%5D%5B0%5D%5Bpipeline_id%5D=9217056&leads%5Bstatus%5D%5B0%5D%5Btags%5D%5B0%5D%5Bid%5D=80147&leads%5Bstatus%5D%5B0%5D%5Btags%5D%5B0%5D%5Bname%5D=%D0%BF%D0%BE%D0%B2%D1%82%D0%BE%D1%80&leads%5Bstatus%5D%5B0%5D%5Baccount_id%5D=17769199&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B0%5D%5Bid%5D=66339&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B0%5D%5Bname%5D=%D0%98%D1%81%D1%82%D0%BE%D1%87%D0%BD%D0%B8%D0%BA&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B0%5D%5Bvalues%5D%5B0%5D%5Bvalue%5D=%D0%A1%D0%B0%D0%B9%D1%82&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B0%5D%5Bvalues%5D%5B0%5D%5Benum%5D=139517&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B1%5D%5Bid%5D=72333&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B1%5D%5Bvalues%5D%5B0%5D=1542067200&account%5Bsubdomain%5D=apfitness";

    #[test]
    fn a_real_status_delivery_is_read() {
        let body = parse_form(STATUS.as_bytes()).expect("parses");
        assert_eq!(body.account().subdomain.as_deref(), Some("apfitness"));
        let (entries, errors) = body.entries();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].action, Action::Status);
        assert_eq!(entries[0].position(), "leads[status][0]");
        let lead = entries[0].lead().expect("a lead");
        assert_eq!(lead.id, 10701093);
        assert_eq!(lead.name.as_deref(), Some("Семинар"));
        assert_eq!(
            (lead.old_status_id, lead.status_id),
            (Some(20067736), Some(142))
        );
        assert_eq!(lead.updated_at, Some(1539782664));
        assert_eq!(lead.created_at, Some(1539782209));
        assert_eq!(lead.tags, vec!["повтор".to_owned()]);
        let fields = lead.custom_fields.expect("fields");
        assert_eq!(fields[0].values[0].enum_id, Some(139517));
        assert_eq!(fields[0].first(), Some("Сайт"));
        // A date field carries a bare value.
        assert_eq!(fields[1].first(), Some("1542067200"));
    }

    #[test]
    fn contact_links_keyed_by_lead_id_and_legacy_enum_codes_are_read() {
        let form = "contacts[update][0][id]=22309159&contacts[update][0][name]=%D0%98%D0%BB%D1%8C%D1%8F\
            &contacts[update][0][custom_fields][0][id]=54667&contacts[update][0][custom_fields][0][code]=PHONE\
            &contacts[update][0][custom_fields][0][values][0][value]=89031453455\
            &contacts[update][0][custom_fields][0][values][0][enum]=WORK\
            &contacts[update][0][linked_leads_id][9982719][ID]=9982719\
            &contacts[update][0][linked_leads_id][10][ID]=10&account[subdomain]=apfitness";
        let body = parse_form(form.as_bytes()).expect("parses");
        let (entries, _) = body.entries();
        let c = entries[0].contact().expect("a contact");
        assert_eq!(c.name.as_deref(), Some("Илья"));
        assert_eq!(c.lead_ids, vec![10, 9982719]);
        let phone = &c.custom_fields.expect("fields")[0];
        assert_eq!(phone.code.as_deref(), Some("PHONE"));
        assert_eq!(phone.values[0].enum_code.as_deref(), Some("WORK"));
        assert_eq!(phone.values[0].enum_id, None);
    }

    #[test]
    fn api_v4_shapes_are_read_by_the_same_code() {
        let v = serde_json::json!({
            "id": 3912171, "name": "Сделка", "price": 12, "status_id": 143, "pipeline_id": 3104455,
            "created_at": 1585299171, "updated_at": 1590683337, "is_deleted": false,
            "custom_fields_values": [{"field_id": 3, "field_name": "Телефон", "field_code": "PHONE",
                "values": [{"value": "+79123", "enum_id": 1, "enum_code": "WORK"}]}],
            "_embedded": {"tags": [], "contacts": [{"id": 7, "is_main": true}, {"id": 8, "is_main": false}]}
        });
        let lead = RawLead::from_value(&v).expect("lead");
        assert_eq!(lead.contacts, vec![(7, true), (8, false)]);
        let f = &lead.custom_fields.expect("fields")[0];
        assert_eq!((f.id, f.values[0].enum_code.as_deref()), (3, Some("WORK")));
        assert_eq!(lead.updated_at, Some(1590683337));
    }

    #[test]
    fn bad_entries_are_named_and_the_rest_is_kept() {
        let body = parse_json(
            br#"{"leads":{"add":[{"id":1},{"id":"abc"},{"name":"no id"}],"note":[{"x":1}]},
                "contacts":{"update":"oops"},"companies":{"add":[{"id":3}]}}"#,
        )
        .expect("parses");
        let (entries, errors) = body.entries();
        assert_eq!(entries.len(), 3);
        assert_eq!(errors[0].position, "contacts[update]");
        let results: Vec<_> = entries.iter().map(|e| e.lead()).collect();
        assert!(results[0].is_ok());
        assert_eq!(
            results[1].as_ref().unwrap_err().to_string(),
            "leads[add][1]: id: `\"abc\"` is not a whole number"
        );
        assert_eq!(
            results[2].as_ref().unwrap_err().reason,
            "id is missing".to_owned()
        );
        assert_eq!(
            body.skipped(),
            vec!["companies".to_owned(), "leads[note]".to_owned()]
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse_form(b"leads[add][0][id=1").is_err());
        assert!(parse_json(b"[1,2]").is_err());
        assert!(parse_json(b"{").is_err());
    }
}
