//! Okdesk keeps comment and description text as HTML: "Текст комментария является
//! html-текстом … для переноса строк необходимо использовать тег `<br>`"
//! (<https://okdesk.ru/apidoc#!kommentarii-dobavlenie-kommentariya>). These two functions
//! convert between that and the plain text messengers carry.

/// Plain text → Okdesk HTML: `& < > " '` are escaped and every line break (`\n`, `\r\n`, `\r`)
/// becomes `<br>`.
pub fn text_to_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("<br>");
            }
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// Okdesk HTML → plain text: tags are dropped, `<br>` and the end of a block (`</p>`, `</div>`,
/// `</li>`, `</tr>`, `</h1>`…`</h6>`, `</blockquote>`, `</pre>`) become a line break, the
/// content of `<script>`/`<style>` is dropped, entities are decoded (named, `&#NNN;`, `&#xHH;`;
/// `&nbsp;` becomes a space). Source line breaks inside HTML are layout, not text, and count as
/// a space; spaces around line breaks, and the ends, are trimmed; at most one empty line is kept.
/// Text without any tag keeps its own line breaks.
pub fn html_to_text(html: &str) -> String {
    let has_tags = html.contains('<') && html.contains('>');
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        if c == '<'
            && rest[1..]
                .chars()
                .next()
                .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?'))
            && let Some(end) = rest.find('>')
        {
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            let (closing, name) = tag_name(tag);
            if !closing && (name == "script" || name == "style") {
                // Skip to the matching closing tag (or the end).
                let close = format!("</{name}");
                match find_ascii_ci(rest, &close) {
                    Some(i) => {
                        rest = &rest[i..];
                        rest = rest.find('>').map_or("", |j| &rest[j + 1..]);
                    }
                    None => rest = "",
                }
                continue;
            }
            if name == "br" || (closing && is_block(&name)) {
                out.push('\n');
            }
            continue;
        }
        if c == '&'
            && let Some((decoded, used)) = entity(rest)
        {
            out.push(decoded);
            rest = &rest[used..];
            continue;
        }
        if has_tags && (c == '\n' || c == '\r') {
            // Markup whitespace: a run containing a line break collapses into one space.
            let trimmed = out.trim_end_matches([' ', '\t']).len();
            out.truncate(trimmed);
            if !out.is_empty() && !out.ends_with('\n') {
                out.push(' ');
            }
            rest = rest.trim_start_matches([' ', '\t', '\n', '\r']);
            continue;
        }
        if c == '\r' {
            rest = &rest[1..];
            if !rest.starts_with('\n') {
                out.push('\n');
            }
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    tidy(&out)
}

fn tag_name(tag: &str) -> (bool, String) {
    let tag = tag.trim();
    let (closing, body) = match tag.strip_prefix('/') {
        Some(b) => (true, b),
        None => (false, tag),
    };
    let name: String = body
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    (closing, name)
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "li"
            | "tr"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "blockquote"
            | "pre"
            | "ul"
            | "ol"
            | "table"
    )
}

fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    (0..=h.len().checked_sub(n.len())?).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Decodes the entity at the start of `s` (which starts with `&`): the character and the bytes
/// used. Unknown entities are left as text.
fn entity(s: &str) -> Option<(char, usize)> {
    let end = s[1..].find(';').map(|i| i + 1)?;
    if end > 12 {
        return None;
    }
    let name = &s[1..end];
    let c = if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        match char::from_u32(code)? {
            '\u{a0}' => ' ',
            c => c,
        }
    } else {
        match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => ' ',
            "laquo" => '«',
            "raquo" => '»',
            "mdash" => '—',
            "ndash" => '–',
            "hellip" => '…',
            "copy" => '©',
            "reg" => '®',
            "trade" => '™',
            "euro" => '€',
            "bull" => '•',
            "middot" => '·',
            "ldquo" => '“',
            "rdquo" => '”',
            "lsquo" => '‘',
            "rsquo" => '’',
            "bdquo" => '„',
            "times" => '×',
            "deg" => '°',
            "numero" => '№',
            _ => return None,
        }
    };
    Some((c, end + 1))
}

/// Trims spaces around line breaks and the ends; keeps at most one empty line.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0;
    for line in s.split('\n') {
        let line = line.trim_matches([' ', '\t']);
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_matches(['\n', ' ']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_lines_become_br() {
        assert_eq!(
            text_to_html("a & b < c > d \"e\" 'f'\nline2\r\nline3"),
            "a &amp; b &lt; c &gt; d &quot;e&quot; &#39;f&#39;<br>line2<br>line3"
        );
        assert_eq!(text_to_html("Привет"), "Привет");
    }

    #[test]
    fn html_becomes_text() {
        assert_eq!(
            html_to_text("<p>Здравствуйте!</p><p>Инженер выедет <b>сегодня</b>.</p>"),
            "Здравствуйте!\nИнженер выедет сегодня."
        );
        assert_eq!(
            html_to_text("one<br>two<br/>three<BR />four</br>five"),
            "one\ntwo\nthree\nfour\nfive"
        );
        assert_eq!(
            html_to_text(
                "&lt;tag&gt; &amp; &quot;q&quot; &#39;s&#39; &#x41;&#66; &nbsp;x &unknown;"
            ),
            "<tag> & \"q\" 's' AB  x &unknown;"
        );
        assert_eq!(
            html_to_text("<div>\n  <p>a</p>\n  <p>b</p>\n</div>"),
            "a\nb"
        );
        assert_eq!(html_to_text("<p>a</p><p></p><p></p><p>b</p>"), "a\n\nb");
        assert_eq!(
            html_to_text("x<style>p{color:red}</style>y<script>alert(1)</script>z"),
            "xyz"
        );
        assert_eq!(html_to_text("plain\ntext"), "plain\ntext");
        assert_eq!(html_to_text("5 < 6 & 7"), "5 < 6 & 7");
        assert_eq!(html_to_text("<p>5 < 6 > 4</p>"), "5 < 6 > 4");
        assert_eq!(html_to_text(""), "");
    }

    #[test]
    fn round_trip() {
        for text in [
            "Hello",
            "Две строки\nи третья",
            "a  b",
            "<script>alert('x')</script> & \"quotes\"",
            "tabs\tand 😀 emoji",
        ] {
            assert_eq!(html_to_text(&text_to_html(text)), text, "{text:?}");
        }
    }
}
