//! Message text the way the Bot API turns it into a stored message: `parse_mode` (`HTML`,
//! `MarkdownV2`, legacy `Markdown`) or explicit `entities`, leading and trailing whitespace
//! trimmed, and the entities Telegram finds on its own (`url`, `mention`, `hashtag`,
//! `bot_command`) added. Offsets and lengths are in UTF-16 code units, as in the Bot API.
//!
//! Parse errors carry TDLib's texts (`td/telegram/MessageEntity.cpp`), e.g.
//! `Bad Request: can't parse entities: Unsupported start tag "br" at byte offset 5` or
//! `Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the
//! preceding '\'`.

use serde_json::{Map, Value, json};

/// Length of `s` in UTF-16 code units, the unit of every Bot API offset and length limit.
pub(crate) fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Text with its entities (Bot API `MessageEntity` objects, sorted by offset).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Formatted {
    pub(crate) text: String,
    pub(crate) entities: Vec<Value>,
}

/// Builds the stored text from the request's text, `parse_mode` and explicit entities. `Err` is
/// the whole description (`Bad Request: …`).
pub(crate) fn format(
    raw: &str,
    parse_mode: Option<&str>,
    explicit: Option<Value>,
) -> Result<Formatted, String> {
    let mode = parse_mode.map(str::to_ascii_lowercase).unwrap_or_default();
    let (text, mut entities) = match mode.as_str() {
        "" | "none" => (raw.to_owned(), explicit_entities(explicit)),
        "html" => parse_html(raw).map_err(parse_error)?,
        "markdownv2" => parse_markdown_v2(raw).map_err(parse_error)?,
        "markdown" => parse_markdown(raw).map_err(parse_error)?,
        _ => return Err("Bad Request: unsupported parse_mode".to_owned()),
    };
    let text = trim(text, &mut entities);
    let mut entities = clip(&text, entities);
    detect(&text, &mut entities);
    sort(&mut entities);
    Ok(Formatted { text, entities })
}

/// Text Telegram stored as is (pushed updates): only the automatic entities are found.
pub(crate) fn detected_entities(text: &str) -> Vec<Value> {
    let mut entities = Vec::new();
    detect(text, &mut entities);
    sort(&mut entities);
    entities
}

fn parse_error(detail: String) -> String {
    format!("Bad Request: can't parse entities: {detail}")
}

/// The `entities` parameter: well-formed objects are kept, the rest dropped (TDLib ignores what it
/// cannot use).
fn explicit_entities(explicit: Option<Value>) -> Vec<Value> {
    let Some(Value::Array(items)) = explicit else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter(|e| {
            e.get("type").and_then(Value::as_str).is_some()
                && e.get("offset")
                    .and_then(Value::as_i64)
                    .is_some_and(|o| o >= 0)
                && e.get("length")
                    .and_then(Value::as_i64)
                    .is_some_and(|l| l > 0)
        })
        .collect()
}

fn offset(e: &Value) -> usize {
    e["offset"].as_u64().unwrap_or(0) as usize
}

fn length(e: &Value) -> usize {
    e["length"].as_u64().unwrap_or(0) as usize
}

/// Strips leading and trailing whitespace as Telegram does, moving the entities along.
fn trim(text: String, entities: &mut [Value]) -> String {
    let trimmed_start = text.trim_start();
    let lead = utf16_len(&text[..text.len() - trimmed_start.len()]);
    let result = trimmed_start.trim_end().to_owned();
    if lead > 0 {
        for e in entities.iter_mut() {
            let start = offset(e);
            let end = start + length(e);
            let (start, end) = (start.saturating_sub(lead), end.saturating_sub(lead));
            e["offset"] = json!(start);
            e["length"] = json!(end - start);
        }
    }
    result
}

/// Keeps the entities inside the text, cut to its end.
fn clip(text: &str, entities: Vec<Value>) -> Vec<Value> {
    let len = utf16_len(text);
    entities
        .into_iter()
        .filter_map(|mut e| {
            let start = offset(&e);
            let end = (start + length(&e)).min(len);
            (start < end).then(|| {
                e["length"] = json!(end - start);
                e
            })
        })
        .collect()
}

fn sort(entities: &mut [Value]) {
    entities.sort_by_key(|e| (offset(e), usize::MAX - length(e)));
}

fn entity(kind: &str, offset: usize, length: usize) -> Value {
    json!({"offset": offset, "length": length, "type": kind})
}

/// Entities that a found `url`/`mention`/… must not overlap.
const NON_FORMATTING: &[&str] = &[
    "code",
    "pre",
    "text_link",
    "text_mention",
    "custom_emoji",
    "url",
    "email",
    "mention",
    "hashtag",
    "cashtag",
    "bot_command",
];

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Adds the entities Telegram recognises by itself: `bot_command` (`/start`, `/start@bot`),
/// `mention` (`@username`, 5-32 characters), `hashtag` (`#tag`, not only digits) and `url`
/// (`http://…`, `https://…`).
fn detect(text: &str, entities: &mut Vec<Value>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    // UTF-16 offset of each char index.
    let mut u16_at = Vec::with_capacity(chars.len() + 1);
    let mut acc = 0;
    for (_, c) in &chars {
        u16_at.push(acc);
        acc += c.len_utf16();
    }
    u16_at.push(acc);
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let at_word_start = i == 0 || !(is_word_char(chars[i - 1].1) || chars[i - 1].1 == '/');
        if !at_word_start {
            i += 1;
            continue;
        }
        let run = |from: usize, ok: &dyn Fn(char) -> bool| {
            let mut j = from;
            while j < chars.len() && ok(chars[j].1) {
                j += 1;
            }
            j
        };
        let ascii_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let end = match c {
            '/' => {
                let mut j = run(i + 1, &ascii_word);
                if j - (i + 1) == 0 || j - (i + 1) > 64 {
                    None
                } else {
                    if j < chars.len() && chars[j].1 == '@' {
                        let k = run(j + 1, &ascii_word);
                        if (3..=32).contains(&(k - (j + 1))) {
                            j = k;
                        }
                    }
                    (j == chars.len() || !(is_word_char(chars[j].1) || chars[j].1 == '/'))
                        .then_some((j, "bot_command"))
                }
            }
            '@' => {
                let j = run(i + 1, &ascii_word);
                (5..=32).contains(&(j - (i + 1))).then_some((j, "mention"))
            }
            '#' => {
                let j = run(i + 1, &is_word_char);
                let tag = &chars[i + 1..j];
                (!tag.is_empty() && !tag.iter().all(|(_, c)| c.is_ascii_digit()))
                    .then_some((j, "hashtag"))
            }
            'h' if text[chars[i].0..].starts_with("http://")
                || text[chars[i].0..].starts_with("https://") =>
            {
                let mut j = run(i, &|c: char| !c.is_whitespace());
                while j > i && ".,;:!?)]'\"".contains(chars[j - 1].1) {
                    j -= 1;
                }
                let scheme_len = if text[chars[i].0..].starts_with("https://") {
                    8
                } else {
                    7
                };
                (j - i > scheme_len).then_some((j, "url"))
            }
            _ => None,
        };
        match end {
            Some((j, kind)) => {
                found.push(entity(kind, u16_at[i], u16_at[j] - u16_at[i]));
                i = j;
            }
            None => i += 1,
        }
    }
    for e in found {
        let (start, end) = (offset(&e), offset(&e) + length(&e));
        let overlaps = entities.iter().any(|other| {
            NON_FORMATTING.contains(&other["type"].as_str().unwrap_or_default())
                && offset(other) < end
                && start < offset(other) + length(other)
        });
        if !overlaps {
            entities.push(e);
        }
    }
}

/// Output under construction: text plus its UTF-16 length.
#[derive(Default)]
struct Out {
    text: String,
    u16: usize,
    entities: Vec<Value>,
}

impl Out {
    fn push(&mut self, c: char) {
        self.text.push(c);
        self.u16 += c.len_utf16();
    }

    fn push_str(&mut self, s: &str) {
        self.text.push_str(s);
        self.u16 += utf16_len(s);
    }

    fn close(&mut self, kind: &str, start: usize, extra: Map<String, Value>) {
        if self.u16 > start {
            let mut e = entity(kind, start, self.u16 - start);
            if let Some(obj) = e.as_object_mut() {
                obj.extend(extra);
            }
            self.entities.push(e);
        }
    }
}

/// One open HTML tag.
struct OpenTag {
    name: String,
    start: usize,
    /// Entity type and its extra fields (`url`, `language`, `custom_emoji_id`); `None` for a
    /// `<code>` inside a `<pre>` that only names the language.
    kind: Option<(&'static str, Map<String, Value>)>,
}

fn decode_html_entity(s: &str) -> Option<(char, usize)> {
    let end = s.find(';')?;
    let name = &s[1..end];
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let code =
                if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()?
                } else {
                    name.strip_prefix('#')?.parse::<u32>().ok()?
                };
            char::from_u32(code)?
        }
    };
    Some((c, end + 1))
}

fn decode_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if rest.starts_with('&')
            && let Some((c, used)) = decode_html_entity(rest)
        {
            out.push(c);
            i += used;
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// `parse_mode=HTML`: `b strong i em u ins s strike del tg-spoiler span.tg-spoiler a[href] code
/// pre blockquote[expandable] tg-emoji[emoji-id]`; `&lt; &gt; &amp; &quot;` and numeric entities.
fn parse_html(text: &str) -> Result<(String, Vec<Value>), String> {
    let mut out = Out::default();
    let mut stack: Vec<OpenTag> = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with('&') {
            if let Some((c, used)) = decode_html_entity(rest) {
                out.push(c);
                i += used;
            } else {
                out.push('&');
                i += 1;
            }
            continue;
        }
        if !rest.starts_with('<') {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let tag_begin = i;
        if rest.starts_with("</") {
            let Some(close) = rest.find('>') else {
                return Err(format!("Unclosed end tag at byte offset {tag_begin}"));
            };
            let name = rest[2..close].trim().to_ascii_lowercase();
            let Some(open) = stack.pop() else {
                return Err(format!("Unexpected end tag at byte offset {tag_begin}"));
            };
            if open.name != name {
                return Err(format!(
                    "Unmatched end tag at byte offset {tag_begin}, expected \"</{}>\", found \"</{name}>\"",
                    open.name
                ));
            }
            if let Some((kind, extra)) = open.kind {
                out.close(kind, open.start, extra);
            }
            i += close + 1;
            continue;
        }
        // A start tag: name, attributes, '>'.
        let mut j = i + 1;
        while j < text.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'-') {
            j += 1;
        }
        let name = text[i + 1..j].to_ascii_lowercase();
        if name.is_empty() {
            return Err(format!(
                "Unsupported start tag \"\" at byte offset {tag_begin}"
            ));
        }
        let mut attrs: Vec<(String, String)> = Vec::new();
        loop {
            while j < text.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if j >= text.len() {
                return Err(format!("Unclosed start tag at byte offset {tag_begin}"));
            }
            if bytes[j] == b'>' {
                j += 1;
                break;
            }
            let attr_start = j;
            while j < text.len()
                && !bytes[j].is_ascii_whitespace()
                && bytes[j] != b'='
                && bytes[j] != b'>'
            {
                j += 1;
            }
            let attr = text[attr_start..j].to_ascii_lowercase();
            if attr.is_empty() {
                return Err(format!(
                    "Empty attribute name in the tag \"{name}\" at byte offset {attr_start}"
                ));
            }
            while j < text.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            let mut value = String::new();
            if j < text.len() && bytes[j] == b'=' {
                j += 1;
                while j < text.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j >= text.len() {
                    return Err(format!("Unclosed start tag at byte offset {tag_begin}"));
                }
                if bytes[j] == b'"' || bytes[j] == b'\'' {
                    let quote = bytes[j] as char;
                    let Some(end) = text[j + 1..].find(quote) else {
                        return Err(format!(
                            "Unclosed start tag \"{name}\" at byte offset {tag_begin}"
                        ));
                    };
                    value = decode_html(&text[j + 1..j + 1 + end]);
                    j += end + 2;
                } else {
                    let v_start = j;
                    while j < text.len() && !bytes[j].is_ascii_whitespace() && bytes[j] != b'>' {
                        j += 1;
                    }
                    value = decode_html(&text[v_start..j]);
                }
            }
            attrs.push((attr, value));
        }
        let attr = |key: &str| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let none = Map::new;
        let kind: Option<(&'static str, Map<String, Value>)> = match name.as_str() {
            "b" | "strong" => Some(("bold", none())),
            "i" | "em" => Some(("italic", none())),
            "u" | "ins" => Some(("underline", none())),
            "s" | "strike" | "del" => Some(("strikethrough", none())),
            "tg-spoiler" => Some(("spoiler", none())),
            "span" => {
                if attr("class").as_deref() != Some("tg-spoiler") {
                    return Err(format!(
                        "Tag \"span\" must have class \"tg-spoiler\" at byte offset {tag_begin}"
                    ));
                }
                Some(("spoiler", none()))
            }
            "a" => match attr("href").filter(|h| !h.is_empty()) {
                Some(url) => {
                    let mut extra = none();
                    extra.insert("url".into(), json!(url));
                    Some(("text_link", extra))
                }
                None => None,
            },
            "code" => {
                let language = attr("class")
                    .and_then(|c| c.strip_prefix("language-").map(str::to_owned))
                    .filter(|l| !l.is_empty());
                match (stack.last_mut(), language) {
                    (Some(pre), Some(language)) if pre.name == "pre" && pre.start == out.u16 => {
                        if let Some((_, extra)) = pre.kind.as_mut() {
                            extra.insert("language".into(), json!(language));
                        }
                        None
                    }
                    _ => Some(("code", none())),
                }
            }
            "pre" => Some(("pre", none())),
            "blockquote" => Some((
                if attr("expandable").is_some() {
                    "expandable_blockquote"
                } else {
                    "blockquote"
                },
                none(),
            )),
            "tg-emoji" => {
                let mut extra = none();
                extra.insert(
                    "custom_emoji_id".into(),
                    json!(attr("emoji-id").unwrap_or_default()),
                );
                Some(("custom_emoji", extra))
            }
            _ => {
                return Err(format!(
                    "Unsupported start tag \"{name}\" at byte offset {tag_begin}"
                ));
            }
        };
        stack.push(OpenTag {
            name,
            start: out.u16,
            kind,
        });
        i = j;
    }
    if let Some(open) = stack.last() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            open.name
        ));
    }
    Ok((out.text, out.entities))
}

/// Characters MarkdownV2 reserves outside entities.
const RESERVED_V2: &str = "_*[]()~`>#+-=|{}.!";

/// One open MarkdownV2 entity.
struct OpenMd {
    kind: &'static str,
    /// TDLib's name for it in "Can't find end of … entity".
    name: &'static str,
    start: usize,
    byte: usize,
    language: Option<String>,
}

/// `parse_mode=MarkdownV2`: `*bold*`, `_italic_`, `__underline__`, `~strike~`, `||spoiler||`,
/// `` `code` ``, ```` ```lang\npre``` ````, `[text](url)`, `![👍](tg://emoji?id=…)`, `>quote` at
/// line starts, `\` escapes; any other reserved character is an error.
fn parse_markdown_v2(text: &str) -> Result<(String, Vec<Value>), String> {
    let mut out = Out::default();
    let mut stack: Vec<OpenMd> = Vec::new();
    let mut quote_start: Option<usize> = None;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |k: usize| chars.get(k).map(|(_, c)| *c);
    let mut k = 0;
    while k < chars.len() {
        let (byte, c) = chars[k];
        let in_code = stack
            .last()
            .is_some_and(|e| e.kind == "code" || e.kind == "pre");
        let line_start = k == 0 || at(k - 1) == Some('\n');
        if line_start && !in_code {
            match (c, quote_start) {
                ('>', None) => {
                    quote_start = Some(out.u16);
                    k += 1;
                    continue;
                }
                ('>', Some(_)) => {
                    k += 1;
                    continue;
                }
                (_, Some(start)) if k > 0 => {
                    // The quote ended with the previous line (its newline stays outside).
                    let end = out.u16 - 1;
                    if end > start {
                        out.entities.push(entity("blockquote", start, end - start));
                    }
                    quote_start = None;
                }
                _ => {}
            }
        }
        if c == '\\' {
            if let Some(next) = at(k + 1).filter(|n| (1..=126).contains(&(*n as u32))) {
                out.push(next);
                k += 2;
                continue;
            }
            if !in_code {
                return Err(
                    "Character '\\' is reserved and must be escaped with the preceding '\\'"
                        .to_owned(),
                );
            }
        }
        if in_code {
            let top = stack.last().map(|e| e.kind).unwrap_or_default();
            let closes = match top {
                "code" => c == '`',
                _ => c == '`' && at(k + 1) == Some('`') && at(k + 2) == Some('`'),
            };
            if closes {
                let open = stack
                    .pop()
                    .unwrap_or_else(|| unreachable!("in_code has a top"));
                let mut extra = Map::new();
                if let Some(language) = open.language {
                    extra.insert("language".into(), json!(language));
                }
                out.close(open.kind, open.start, extra);
                k += if top == "code" { 1 } else { 3 };
            } else {
                out.push(c);
                k += 1;
            }
            continue;
        }
        if !RESERVED_V2.contains(c) {
            out.push(c);
            k += 1;
            continue;
        }
        // Does it close the innermost entity?
        if let Some(top) = stack.last() {
            let closes = match top.kind {
                "bold" => c == '*',
                "italic" => c == '_' && at(k + 1) != Some('_'),
                "underline" => c == '_' && at(k + 1) == Some('_'),
                "strikethrough" => c == '~',
                "spoiler" => c == '|' && at(k + 1) == Some('|'),
                "text_link" | "custom_emoji" => c == ']',
                _ => false,
            };
            // `___` closes italic and underline at once: TDLib prefers the italic when it is
            // on top and the underline just below.
            let closes = closes
                || (top.kind == "italic"
                    && c == '_'
                    && at(k + 1) == Some('_')
                    && at(k + 2) != Some('_'));
            if closes {
                let open = stack.pop().unwrap_or_else(|| unreachable!("checked"));
                let mut step = match open.kind {
                    "underline" | "spoiler" => 2,
                    _ => 1,
                };
                let mut extra = Map::new();
                if open.kind == "text_link" || open.kind == "custom_emoji" {
                    // ](url)
                    let mut url = String::new();
                    if at(k + 1) == Some('(') {
                        let mut m = k + 2;
                        let mut closed = false;
                        while let Some(u) = at(m) {
                            if u == '\\' && matches!(at(m + 1), Some(')' | '\\')) {
                                url.push(at(m + 1).unwrap_or_default());
                                m += 2;
                                continue;
                            }
                            if u == ')' {
                                closed = true;
                                break;
                            }
                            url.push(u);
                            m += 1;
                        }
                        if !closed {
                            return Err(format!(
                                "Can't find end of a url at byte offset {}",
                                chars[k + 1].0
                            ));
                        }
                        step = m + 1 - k;
                    } else {
                        url = text
                            .get(open.byte + 1..byte)
                            .map(str::to_owned)
                            .unwrap_or_default();
                    }
                    if open.kind == "custom_emoji" {
                        let id = url.strip_prefix("tg://emoji?id=").unwrap_or_default();
                        if id.is_empty() {
                            return Err("Custom emoji entity must contain a tg://emoji URL".into());
                        }
                        extra.insert("custom_emoji_id".into(), json!(id));
                    } else {
                        extra.insert("url".into(), json!(url));
                    }
                }
                out.close(open.kind, open.start, extra);
                k += step;
                continue;
            }
        }
        let (kind, name, step) = match c {
            '_' if at(k + 1) == Some('_') => ("underline", "Underline", 2),
            '_' => ("italic", "Italic", 1),
            '*' => ("bold", "Bold", 1),
            '~' => ("strikethrough", "Strikethrough", 1),
            '|' if at(k + 1) == Some('|') => ("spoiler", "Spoiler", 2),
            '[' => ("text_link", "TextUrl", 1),
            '!' if at(k + 1) == Some('[') => ("custom_emoji", "CustomEmoji", 2),
            '`' if at(k + 1) == Some('`') && at(k + 2) == Some('`') => ("pre", "Pre", 3),
            '`' => ("code", "Code", 1),
            _ => {
                return Err(format!(
                    "Character '{c}' is reserved and must be escaped with the preceding '\\'"
                ));
            }
        };
        let mut language = None;
        let mut k_next = k + step;
        if kind == "pre" {
            // ```language\n
            let mut m = k_next;
            let mut lang = String::new();
            while let Some(l) = at(m) {
                if l == '\n' || l.is_whitespace() || l == '`' {
                    break;
                }
                lang.push(l);
                m += 1;
            }
            if at(m) == Some('\n') {
                if !lang.is_empty() {
                    language = Some(lang);
                }
                k_next = m + 1;
            }
        }
        stack.push(OpenMd {
            kind,
            name,
            start: out.u16,
            byte,
            language,
        });
        k = k_next;
    }
    if let Some(open) = stack.last() {
        return Err(format!(
            "Can't find end of {} entity at byte offset {}",
            open.name, open.byte
        ));
    }
    if let Some(start) = quote_start
        && out.u16 > start
    {
        out.entities
            .push(entity("blockquote", start, out.u16 - start));
    }
    Ok((out.text, out.entities))
}

/// Legacy `parse_mode=Markdown`: `*bold*`, `_italic_`, `` `code` ``, ```` ```pre``` ````,
/// `[text](url)`, no nesting; `\` escapes `_ * ` [`.
fn parse_markdown(text: &str) -> Result<(String, Vec<Value>), String> {
    let mut out = Out::default();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |k: usize| chars.get(k).map(|(_, c)| *c);
    let mut k = 0;
    while k < chars.len() {
        let (byte, c) = chars[k];
        if c == '\\' && matches!(at(k + 1), Some('_' | '*' | '`' | '[')) {
            out.push(at(k + 1).unwrap_or_default());
            k += 2;
            continue;
        }
        let unterminated =
            || format!("Can't find end of the entity starting at byte offset {byte}");
        match c {
            '*' | '_' | '`' => {
                let (kind, close, step) = match c {
                    '*' => ("bold", "*", 1),
                    '_' => ("italic", "_", 1),
                    _ if at(k + 1) == Some('`') && at(k + 2) == Some('`') => ("pre", "```", 3),
                    _ => ("code", "`", 1),
                };
                let body_start = byte + step;
                let Some(len) = text[body_start..].find(close) else {
                    return Err(unterminated());
                };
                let mut body = &text[body_start..body_start + len];
                let mut extra = Map::new();
                if kind == "pre"
                    && let Some((lang, rest)) = body.split_once('\n')
                    && !lang.is_empty()
                    && !lang.contains(char::is_whitespace)
                {
                    extra.insert("language".into(), json!(lang));
                    body = rest;
                }
                let start = out.u16;
                out.push_str(body);
                out.close(kind, start, extra);
                let resume = body_start + len + close.len();
                k = chars.partition_point(|(b, _)| *b < resume);
            }
            '[' => {
                let Some(close) = text[byte + 1..].find("](") else {
                    return Err(unterminated());
                };
                let label = &text[byte + 1..byte + 1 + close];
                let url_start = byte + 1 + close + 2;
                let Some(url_len) = text[url_start..].find(')') else {
                    return Err(unterminated());
                };
                let url = &text[url_start..url_start + url_len];
                let start = out.u16;
                out.push_str(label);
                let mut extra = Map::new();
                extra.insert("url".into(), json!(url));
                out.close("text_link", start, extra);
                let resume = url_start + url_len + 1;
                k = chars.partition_point(|(b, _)| *b < resume);
            }
            _ => {
                out.push(c);
                k += 1;
            }
        }
    }
    Ok((out.text, out.entities))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn utf16_counts_surrogate_pairs_twice() {
        assert_eq!(utf16_len("а"), 1);
        assert_eq!(utf16_len("😀"), 2);
    }

    #[test]
    fn html_tags_become_entities_with_utf16_offsets() {
        let f = format(
            "😀 <b>жирный</b> &amp; <a href=\"https://e.x/?a=1&amp;b=2\">link</a>",
            Some("HTML"),
            None,
        )
        .unwrap();
        assert_eq!(f.text, "😀 жирный & link");
        assert_eq!(
            f.entities,
            vec![
                json!({"offset": 3, "length": 6, "type": "bold"}),
                json!({"offset": 12, "length": 4, "type": "text_link", "url": "https://e.x/?a=1&b=2"}),
            ]
        );
    }

    #[test]
    fn html_errors_have_tdlib_texts() {
        let err = format("a<br>b", Some("html"), None).unwrap_err();
        assert_eq!(
            err,
            "Bad Request: can't parse entities: Unsupported start tag \"br\" at byte offset 1"
        );
        let err = format("<b>open", Some("html"), None).unwrap_err();
        assert!(
            err.ends_with("Can't find end tag corresponding to start tag \"b\""),
            "{err}"
        );
        let err = format("<b>x</i>", Some("html"), None).unwrap_err();
        assert!(err.contains("Unmatched end tag at byte offset 4"), "{err}");
    }

    #[test]
    fn markdown_v2_requires_escapes() {
        let err = format("Hello.", Some("MarkdownV2"), None).unwrap_err();
        assert_eq!(
            err,
            "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'"
        );
        let f = format(
            "*bold* __u__ \\. `a\\`b` [t](https://x.y)",
            Some("MarkdownV2"),
            None,
        )
        .unwrap();
        assert_eq!(f.text, "bold u . a`b t");
        let types: Vec<&str> = f
            .entities
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["bold", "underline", "code", "text_link"]);
        let err = format("*open", Some("MarkdownV2"), None).unwrap_err();
        assert!(
            err.ends_with("Can't find end of Bold entity at byte offset 0"),
            "{err}"
        );
    }

    #[test]
    fn trimming_moves_entities_and_commands_are_found() {
        let f = format("  /start@support_test_bot now ", None, None).unwrap();
        assert_eq!(f.text, "/start@support_test_bot now");
        assert_eq!(
            f.entities,
            vec![json!({"offset": 0, "length": 23, "type": "bot_command"})]
        );
        let f = format(
            "see https://example.com/a, @someone #tag",
            None,
            Some(json!([{"type": "bold", "offset": 0, "length": 3}])),
        )
        .unwrap();
        let types: Vec<&str> = f
            .entities
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["bold", "url", "mention", "hashtag"]);
        assert_eq!(f.entities[1]["length"], 21);
    }
}
