//! amoCRM's raw leads and contacts (webhook or API v4) → the gateway's [`domain::Lead`] and
//! [`domain::Contact`]: stage mapped to our status name, UTM marks and deal figures pulled out of
//! custom fields by id (or by amoCRM's `UTM_*` field codes), phones in E.164, e-mails lower case.

use amocrm_api::{RawContact, RawCustomField, RawLead};
use domain::{Contact, CustomField, CustomFieldValue, Lead, LinkedContact, Utm};
use time::OffsetDateTime;

use crate::mapping::Mapping;

/// Unix seconds → time; out of range or absent → `None`.
pub fn unix(t: Option<i64>) -> Option<OffsetDateTime> {
    t.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
}

/// A lead; `received_at` stands in for `updated_at` when amoCRM gave none.
pub fn lead(raw: &RawLead, m: &Mapping, received_at: OffsetDateTime) -> Lead {
    let fields = raw.custom_fields.as_deref();
    let f = &m.fields;
    let by = |id: i64, code: &str| fields.and_then(|fs| first_value(fs, id, code));
    let utm = Utm {
        source: by(f.utm_source, "UTM_SOURCE"),
        medium: by(f.utm_medium, "UTM_MEDIUM"),
        campaign: by(f.utm_campaign, "UTM_CAMPAIGN"),
        content: by(f.utm_content, "UTM_CONTENT"),
        term: by(f.utm_term, "UTM_TERM"),
    };
    Lead {
        id: raw.id,
        account_id: raw.account_id,
        name: raw.name.clone(),
        price: raw.price,
        status_id: raw.status_id,
        pipeline_id: raw.pipeline_id,
        status: raw.status_id.and_then(|s| m.status_name(s)),
        previous_status_id: raw.old_status_id,
        responsible_user_id: raw.responsible_user_id,
        utm,
        object_price: by(f.object_price, "").and_then(|v| decimal(&v)),
        commission: by(f.commission, "").and_then(|v| decimal(&v)),
        custom_fields: raw.custom_fields.as_deref().map(custom_fields),
        contacts: raw
            .contacts
            .iter()
            .map(|(id, is_main)| LinkedContact {
                id: *id,
                is_main: *is_main,
            })
            .collect(),
        tags: raw.tags.clone(),
        created_at: unix(raw.created_at),
        updated_at: unix(raw.updated_at).unwrap_or(received_at),
    }
}

/// A contact; `received_at` stands in for `updated_at` when amoCRM gave none.
pub fn contact(raw: &RawContact, m: &Mapping, received_at: OffsetDateTime) -> Contact {
    let fields = raw.custom_fields.as_deref();
    let values_of = |id: i64, code: &str| -> Option<Vec<String>> {
        fields.map(|fs| {
            fs.iter()
                .filter(|f| f.id == id || f.code.as_deref() == Some(code))
                .flat_map(|f| f.values.iter().map(|v| v.value.trim().to_owned()))
                .filter(|v| !v.is_empty())
                .collect()
        })
    };
    let mut phones: Option<Vec<String>> = values_of(m.fields.phone, "PHONE")
        .map(|ps| ps.iter().map(|p| phone(p, m.phone_region)).collect());
    let mut emails: Option<Vec<String>> =
        values_of(m.fields.email, "EMAIL").map(|es| es.iter().map(|e| e.to_lowercase()).collect());
    for list in [&mut phones, &mut emails].into_iter().flatten() {
        let mut seen = std::collections::HashSet::new();
        list.retain(|v| seen.insert(v.clone()));
    }
    Contact {
        id: raw.id,
        account_id: raw.account_id,
        name: raw.name.clone(),
        first_name: raw.first_name.clone(),
        last_name: raw.last_name.clone(),
        responsible_user_id: raw.responsible_user_id,
        phones,
        emails,
        custom_fields: raw.custom_fields.as_deref().map(custom_fields),
        lead_ids: raw.lead_ids.clone(),
        created_at: unix(raw.created_at),
        updated_at: unix(raw.updated_at).unwrap_or(received_at),
    }
}

fn custom_fields(raw: &[RawCustomField]) -> Vec<CustomField> {
    raw.iter()
        .map(|f| CustomField {
            id: f.id,
            code: f.code.clone(),
            name: f.name.clone(),
            values: f
                .values
                .iter()
                .map(|v| CustomFieldValue {
                    value: v.value.clone(),
                    enum_id: v.enum_id,
                    enum_code: v.enum_code.clone(),
                })
                .collect(),
        })
        .collect()
}

/// The first non-empty value of the field with this id (or, when `code` is not empty, this
/// code).
fn first_value(fields: &[RawCustomField], id: i64, code: &str) -> Option<String> {
    fields
        .iter()
        .filter(|f| f.id == id || (!code.is_empty() && f.code.as_deref() == Some(code)))
        .flat_map(|f| f.values.iter())
        .map(|v| v.value.trim())
        .find(|v| !v.is_empty())
        .map(str::to_owned)
}

/// `"12 500 000,50"`, `"1500000"`, `"3750.5 ₽"` → `"12500000.50"`, `"1500000"`, `"3750.5"`;
/// anything that is not a number → `None` (the raw value stays in `custom_fields`).
pub fn decimal(s: &str) -> Option<String> {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}' && *c != '₽')
        .map(|c| if c == ',' { '.' } else { c })
        .collect();
    let (int, frac) = cleaned.split_once('.').unwrap_or((&cleaned, ""));
    let int_ok = {
        let digits = int.strip_prefix('-').unwrap_or(int);
        !digits.is_empty() && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let frac_ok = frac.len() <= 2 && frac.bytes().all(|b| b.is_ascii_digit());
    (int_ok && frac_ok).then_some(cleaned)
}

/// E.164 when the number reads as one (`8 (903) 145-34-55` → `+79031453455` with region RU);
/// otherwise the trimmed input.
pub fn phone(raw: &str, region: phonenumber::country::Id) -> String {
    match phonenumber::parse(Some(region), raw) {
        Ok(n) if phonenumber::is_valid(&n) => n.format().mode(phonenumber::Mode::E164).to_string(),
        _ => raw.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use amocrm_api::RawFieldValue;

    use super::*;

    fn field(id: i64, code: Option<&str>, values: &[&str]) -> RawCustomField {
        RawCustomField {
            id,
            code: code.map(str::to_owned),
            name: None,
            values: values
                .iter()
                .map(|v| RawFieldValue {
                    value: (*v).to_owned(),
                    enum_id: None,
                    enum_code: None,
                })
                .collect(),
        }
    }

    #[test]
    fn lead_fields_are_pulled_out_by_id_and_code() {
        let raw = RawLead {
            id: 5,
            status_id: Some(3),
            old_status_id: Some(2),
            updated_at: Some(1_795_348_800),
            custom_fields: Some(vec![
                field(123_458, None, &["yandex"]),
                field(999, Some("UTM_MEDIUM"), &["cpc"]),
                field(123_463, None, &["12 500 000,50"]),
                field(123_464, None, &["не число"]),
            ]),
            ..RawLead::default()
        };
        let now = OffsetDateTime::now_utc();
        let lead = lead(&raw, &Mapping::default(), now);
        assert_eq!(lead.status.as_deref(), Some("presentation"));
        assert_eq!(lead.previous_status_id, Some(2));
        assert_eq!(lead.utm.source.as_deref(), Some("yandex"));
        assert_eq!(lead.utm.medium.as_deref(), Some("cpc"));
        assert_eq!(lead.object_price.as_deref(), Some("12500000.50"));
        assert_eq!(lead.commission, None);
        assert_eq!(lead.custom_fields.as_ref().map(Vec::len), Some(4));
        assert_eq!(lead.updated_at.unix_timestamp(), 1_795_348_800);
        let bare = RawLead {
            id: 6,
            ..RawLead::default()
        };
        let l = super::lead(&bare, &Mapping::default(), now);
        assert_eq!(l.updated_at, now);
        assert!(l.custom_fields.is_none());
    }

    #[test]
    fn phones_become_e164_and_emails_lower_case() {
        let raw = RawContact {
            id: 7,
            custom_fields: Some(vec![
                field(
                    54_667,
                    Some("PHONE"),
                    &["8 (903) 145-34-55", "+7 903 145 34 55", "доб. 12"],
                ),
                field(123_457, None, &[" Ivan.Petrov@Example.RU "]),
            ]),
            ..RawContact::default()
        };
        let c = contact(&raw, &Mapping::default(), OffsetDateTime::now_utc());
        assert_eq!(
            c.phones,
            Some(vec!["+79031453455".to_owned(), "доб. 12".to_owned()])
        );
        assert_eq!(c.emails, Some(vec!["ivan.petrov@example.ru".to_owned()]));
        let none = RawContact {
            id: 8,
            ..RawContact::default()
        };
        let c = contact(&none, &Mapping::default(), OffsetDateTime::now_utc());
        assert!(c.phones.is_none() && c.emails.is_none());
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal("1500000").as_deref(), Some("1500000"));
        assert_eq!(decimal("3 750,5 ₽").as_deref(), Some("3750.5"));
        assert_eq!(decimal("1.2.3"), None);
        assert_eq!(decimal(""), None);
        assert_eq!(decimal("0.125"), None);
    }
}
