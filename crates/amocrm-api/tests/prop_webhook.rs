//! Property tests of the amoCRM webhook parsers
//! (<https://www.amocrm.ru/developers/content/crm_platform/webhooks-format>): the PHP-style form
//! ([`parse_form`], serde_qs underneath) and the JSON format ([`parse_json`]), then every entry
//! read as a lead or a contact. Whatever the bytes — percent-encoding garbage, unbalanced
//! brackets (`leads[add][0`), nesting past the depth limit, invalid UTF-8 — nothing panics; a
//! body that is not a webhook is a [`ParseError`], a bad entry an [`EntryError`] naming it.
//! See `docs/fuzzing.md` for longer runs.

#[path = "../../vk-api/tests/prop_support/mod.rs"]
mod prop_support;

use amocrm_api::webhook::{EntityKind, WebhookBody, parse_form, parse_json};
use prop_support::{config, json, mutated_body, text};
use proptest::prelude::*;
use serde_json::Value;

/// Section, action and field names of both formats.
const KEYS: &[&str] = &[
    "leads",
    "contacts",
    "account",
    "companies",
    "add",
    "update",
    "status",
    "delete",
    "restore",
    "responsible",
    "note",
    "id",
    "name",
    "price",
    "status_id",
    "old_status_id",
    "pipeline_id",
    "responsible_user_id",
    "date_create",
    "last_modified",
    "created_at",
    "updated_at",
    "custom_fields",
    "custom_fields_values",
    "field_id",
    "code",
    "values",
    "value",
    "enum",
    "enum_id",
    "tags",
    "_embedded",
    "linked_leads_id",
    "ID",
    "is_main",
    "subdomain",
    "0",
    "1",
];

/// A real `leads[status]` and `contacts[update]` delivery, brackets percent-encoded as amoCRM
/// sends them.
const FORM: &str = "leads%5Bstatus%5D%5B0%5D%5Bid%5D=10701093&leads%5Bstatus%5D%5B0%5D%5Bname%5D=%D0%A1%D0%B5%D0%BC%D0%B8%D0%BD%D0%B0%D1%80&leads%5Bstatus%5D%5B0%5D%5Bstatus_id%5D=142&leads%5Bstatus%5D%5B0%5D%5Bold_status_id%5D=20067736&leads%5Bstatus%5D%5B0%5D%5Bprice%5D=22500&leads%5Bstatus%5D%5B0%5D%5Blast_modified%5D=1539782664&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B0%5D%5Bid%5D=66339&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B0%5D%5Bvalues%5D%5B0%5D%5Bvalue%5D=%D0%A1%D0%B0%D0%B9%D1%82&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B0%5D%5Bvalues%5D%5B0%5D%5Benum%5D=139517&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B1%5D%5Bid%5D=72333&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B1%5D%5Bvalues%5D%5B0%5D=1542067200&contacts[update][0][id]=22309159&contacts[update][0][custom_fields][0][id]=54667&contacts[update][0][custom_fields][0][code]=PHONE&contacts[update][0][custom_fields][0][values][0][value]=89031453455&contacts[update][0][custom_fields][0][values][0][enum]=WORK&contacts[update][0][linked_leads_id][9982719][ID]=9982719&account%5Bsubdomain%5D=apfitness&account%5Bid%5D=17769199";

/// The same delivery in the JSON format of the existing deployment (API v4 field names).
fn json_sample() -> Value {
    serde_json::json!({
        "leads": {"add": [{"id": 3912171, "name": "Сделка", "price": "12.00", "status_id": 143,
            "created_at": 1585299171,
            "custom_fields_values": [{"field_id": 3, "field_code": "PHONE",
                "values": [{"value": "+79123", "enum_id": 1, "enum_code": "WORK"}]}],
            "_embedded": {"tags": [{"name": "vip"}], "contacts": [{"id": 7, "is_main": true}]}}]},
        "contacts": {"update": [{"id": 7, "first_name": "Анна", "_embedded": {"leads": [{"id": 3912171}]}}]},
        "account": {"id": 17769199, "subdomain": "apfitness"}
    })
}

/// Everything the sync service reads from a parsed body; returns the number of entries read.
fn walk(body: &WebhookBody) -> usize {
    let _ = body.account();
    let _ = body.skipped();
    let (entries, errors) = body.entries();
    for e in &errors {
        assert!(!e.position.is_empty() && !e.reason.is_empty(), "{e:?}");
    }
    let mut read = 0;
    for entry in &entries {
        let _ = entry.raw();
        let got = match entry.kind {
            EntityKind::Lead => entry.lead().map(|l| l.id),
            EntityKind::Contact => entry.contact().map(|c| c.id),
        };
        match got {
            Ok(_) => read += 1,
            Err(e) => assert!(
                e.position == entry.position() && !e.reason.is_empty(),
                "{e:?}"
            ),
        }
    }
    read
}

/// Percent-encodes everything but unreserved characters (what a browser form does).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One key segment of a PHP-style form, well formed or not.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(|k| format!("[{k}]")),
        2 => prop::sample::select(KEYS).prop_map(|k| format!("%5B{k}%5D")),
        1 => "[0-9]{1,20}".prop_map(|n| format!("[{n}]")),
        1 => Just("[]".to_owned()),
        1 => prop::sample::select(vec!["[", "]", "%5B", "%5D", "%5", "%", "%ZZ", "[[", "]]", "[]]", "%5B%5B", "=", "&", "+", "%00", "%FF", "%C0%AF", "%E2%82"])
            .prop_map(str::to_owned),
        1 => text(),
    ]
}

/// A form body: pairs of a key (a section, then up to 14 segments: past the depth of 10)
/// and a value, some without `=`, some empty.
fn form() -> impl Strategy<Value = String> {
    let pair = (
        prop::sample::select(vec![
            "leads",
            "contacts",
            "account",
            "companies",
            "",
            "leads%5B",
        ]),
        prop::collection::vec(segment(), 0..14),
        prop_oneof![
            text().prop_map(|t| format!("={}", encode(&t))),
            text().prop_map(|t| format!("={t}")),
            "=-?[0-9]{1,22}(\\.[0-9]{0,3})?",
            Just(String::new()),
            Just("=".to_owned()),
        ],
    )
        .prop_map(|(head, segs, value)| format!("{head}{}{value}", segs.concat()));
    prop::collection::vec(pair, 0..12).prop_map(|p| p.join("&"))
}

/// The real form with pairs dropped, repeated, cut or garbled.
fn mutated_form() -> impl Strategy<Value = String> {
    let pairs: Vec<String> = FORM.split('&').map(str::to_owned).collect();
    let n = pairs.len();
    (
        prop::collection::vec(0..n, 1..n + 4),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        segment(),
    )
        .prop_map(move |(pick, cut_pair, cut_at, junk)| {
            let mut chosen: Vec<String> = pick.iter().map(|&i| pairs[i].clone()).collect();
            let i = cut_pair.index(chosen.len());
            let p = &chosen[i];
            let at = cut_at.index(p.len() + 1);
            // Cut inside the pair (never inside a character: the form is ASCII) and append junk.
            chosen[i] = format!("{}{junk}", &p[..at]);
            chosen.join("&")
        })
}

#[test]
fn the_samples_are_read() {
    let form = parse_form(FORM.as_bytes()).expect("the form parses");
    assert_eq!(walk(&form), 2);
    let json =
        parse_json(&serde_json::to_vec(&json_sample()).expect("serializes")).expect("parses");
    assert_eq!(walk(&json), 2);
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prop_amocrm_arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        match parse_form(&bytes) {
            Ok(b) => { walk(&b); }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        match parse_json(&bytes) {
            Ok(b) => { walk(&b); }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn prop_amocrm_php_forms_do_not_panic(body in form()) {
        match parse_form(body.as_bytes()) {
            Ok(b) => { walk(&b); }
            Err(e) => prop_assert!(!e.to_string().is_empty(), "{body}"),
        }
    }

    #[test]
    fn prop_amocrm_mutated_form_does_not_panic(body in mutated_form()) {
        match parse_form(body.as_bytes()) {
            Ok(b) => { walk(&b); }
            Err(e) => prop_assert!(!e.to_string().is_empty(), "{body}"),
        }
    }

    #[test]
    fn prop_amocrm_forms_of_leads_are_read_back(
        leads in prop::collection::vec((any::<i64>(), text()), 1..8),
        encoded in any::<bool>(),
    ) {
        let (open, close) = if encoded { ("%5B", "%5D") } else { ("[", "]") };
        let body: Vec<String> = leads
            .iter()
            .enumerate()
            .flat_map(|(i, (id, name))| {
                [
                    format!("leads{open}add{close}{open}{i}{close}{open}id{close}={id}"),
                    format!("leads{open}add{close}{open}{i}{close}{open}name{close}={}", encode(name)),
                ]
            })
            .collect();
        let parsed = parse_form(body.join("&").as_bytes()).expect("a well-formed form parses");
        let (entries, errors) = parsed.entries();
        prop_assert!(errors.is_empty(), "{errors:?}");
        let ids: Vec<i64> = entries.iter().map(|e| e.lead().expect("a lead").id).collect();
        prop_assert_eq!(ids, leads.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    }

    #[test]
    fn prop_amocrm_arbitrary_json_does_not_panic(v in json(KEYS, 6)) {
        match parse_json(&serde_json::to_vec(&v).expect("serializes")) {
            Ok(b) => { walk(&b); }
            Err(e) => {
                prop_assert!(!v.is_object(), "an object was refused: {e}");
            }
        }
    }

    #[test]
    fn prop_amocrm_mutated_json_does_not_panic((v, bytes) in mutated_body(json_sample(), KEYS)) {
        match parse_json(&bytes) {
            Ok(b) => { walk(&b); }
            Err(e) => prop_assert!(!e.to_string().is_empty(), "{v}"),
        }
    }
}
