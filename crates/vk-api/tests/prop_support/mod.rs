//! Strategies shared by the `prop_*` property tests of the inbound parsers (see
//! `docs/fuzzing.md`): arbitrary JSON, mutations of a valid sample, and the run configuration.
//!
//! One copy for every crate: the other crates' `tests/prop_*.rs` include this file with
//! `#[path = "…/crates/vk-api/tests/prop_support/mod.rs"] mod prop_support;`. It is not a test
//! target of its own (cargo only builds `tests/*.rs` and `tests/*/main.rs`).

// Each test binary uses a different part of it.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use serde_json::{Map, Value};

/// The run configuration: `default_cases` cases unless `PROPTEST_CASES` is set (then that
/// many), and no `proptest-regressions/` files — a failure found is turned into a named
/// regression test with the minimal input proptest prints (see `docs/fuzzing.md`).
pub fn config(default_cases: u32) -> Config {
    // `Config::default()` reads the `PROPTEST_*` environment; `with_cases` would override it.
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default_cases;
    }
    c.failure_persistence = None;
    c
}

/// Text that is not only ASCII: letters, Cyrillic, emoji, controls, the SignalR record
/// separator, quotes and brackets.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_]{0,12}",
        "[а-яё \u{1e}\u{0}\\n\"'<>&%\\[\\]{}]{0,24}",
        any::<String>(),
        Just(String::new()),
    ]
}

/// A JSON number of any kind, the extremes included.
pub fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Non-finite floats become `null`, as serde_json does.
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            Value::from(0),
            Value::from(-1),
            Value::from(i64::MAX),
            Value::from(i64::MIN),
            Value::from(u64::MAX),
            Value::from(1.5),
            Value::from(1e300),
            Value::from(-1e300),
            Value::from(4_294_967_296_i64),
        ]),
    ]
}

/// Any JSON value up to `depth` levels of arrays and objects; object keys are drawn from
/// `keys` (the names the parser looks for) or are arbitrary.
pub fn json(keys: &'static [&'static str], depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(keys), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object key: one of `keys` most of the time.
pub fn key(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(keys).prop_map(str::to_owned),
        1 => text(),
    ]
}

/// What to do to one node of a valid sample.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Remove it from its object or array.
    Remove,
    /// Replace it with another value (a type swap, most of the time).
    Replace(Value),
    /// Its text as a string (`5` → `"5"`, `{…}` → `"{…}"`).
    Stringify,
    /// A string of `n` characters.
    Long(usize),
    /// Wrapped in `n` arrays (serde_json refuses more than 128 levels).
    Nest(usize),
}

/// A mutation, with replacement values keyed by `keys`.
pub fn mutation(keys: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::Remove),
        4 => json(keys, 2).prop_map(Mutation::Replace),
        2 => number().prop_map(Mutation::Replace),
        1 => Just(Mutation::Stringify),
        1 => (1usize..70_000).prop_map(Mutation::Long),
        1 => (1usize..200).prop_map(Mutation::Nest),
    ]
}

/// JSON pointers to every node of `v` (the root is `""`).
pub fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, here: String, out: &mut Vec<String>) {
        out.push(here.clone());
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    walk(c, format!("{here}/{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    walk(c, format!("{here}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

/// `sample` with `m` applied at the node `at` picks among [`pointers`].
pub fn apply(sample: &Value, at: &Index, m: &Mutation) -> Value {
    let mut v = sample.clone();
    let ptrs = pointers(&v);
    let ptr = at.get(&ptrs).clone();
    if let Mutation::Remove = m {
        if let Some((parent, last)) = ptr.rsplit_once('/') {
            let last = last.replace("~1", "/").replace("~0", "~");
            match v.pointer_mut(parent) {
                Some(Value::Object(o)) => {
                    o.remove(&last);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        a.remove(i);
                    }
                }
                _ => {}
            }
        } else {
            v = Value::Null;
        }
        return v;
    }
    let Some(node) = v.pointer_mut(&ptr) else {
        return v;
    };
    *node = match m {
        Mutation::Remove => unreachable!("handled above"),
        Mutation::Replace(r) => r.clone(),
        Mutation::Stringify => Value::String(match &*node {
            Value::String(s) => format!("\"{s}\""),
            other => other.to_string(),
        }),
        Mutation::Long(n) => Value::String("я".repeat(*n)),
        Mutation::Nest(n) => {
            let mut inner = node.take();
            for _ in 0..*n {
                inner = Value::Array(vec![inner]);
            }
            inner
        }
    };
    v
}

/// What to do to the bytes of the mutated sample.
#[derive(Debug, Clone)]
pub enum ByteEdit {
    /// Leave them.
    Keep,
    /// Cut at a position (unbalanced brackets, a string without its end).
    Truncate(Index),
    /// Insert a byte that is never valid UTF-8 (`0xff`, `0xc0`) or starts a sequence left
    /// unfinished (`0xe2`).
    Insert(Index, u8),
    /// Overwrite one byte.
    Flip(Index, u8),
}

/// A byte edit; most cases keep the bytes.
pub fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        6 => Just(ByteEdit::Keep),
        1 => any::<Index>().prop_map(ByteEdit::Truncate),
        1 => (any::<Index>(), prop::sample::select(vec![0xffu8, 0xc0, 0xe2, 0x80, 0x00, 0x1e]))
            .prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Flip(i, b)),
    ]
}

/// `bytes` with `e` applied.
pub fn edit(mut bytes: Vec<u8>, e: &ByteEdit) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    match e {
        ByteEdit::Keep => {}
        ByteEdit::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        ByteEdit::Insert(i, b) => {
            let at = i.index(bytes.len() + 1);
            bytes.insert(at, *b);
        }
        ByteEdit::Flip(i, b) => {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
    }
    bytes
}

/// The body of a valid `sample` after one mutation and perhaps one byte edit: the shape a
/// platform that changed its format, a broken proxy or an attacker with the secret would send.
pub fn mutated_body(
    sample: Value,
    keys: &'static [&'static str],
) -> impl Strategy<Value = (Value, Vec<u8>)> {
    (any::<Index>(), mutation(keys), byte_edit()).prop_map(move |(at, m, e)| {
        let v = apply(&sample, &at, &m);
        let bytes = edit(serde_json::to_vec(&v).expect("a Value serializes"), &e);
        (v, bytes)
    })
}

/// `n` levels of `{"<key>": …}` around `inner`, as JSON text (built as text: the parser under
/// test must meet the nesting itself).
pub fn nested_object(key: &str, n: usize, inner: &str) -> String {
    let mut s = String::with_capacity(n * (key.len() + 5) + inner.len());
    for _ in 0..n {
        s.push_str("{\"");
        s.push_str(key);
        s.push_str("\":");
    }
    s.push_str(inner);
    for _ in 0..n {
        s.push('}');
    }
    s
}
