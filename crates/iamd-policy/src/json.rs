//! Strict JSON with source locations.
//!
//! Policy documents are parsed into a syntax tree that remembers where every
//! value came from, so that an error can name the file, line and column. The
//! tree comes from `jsonc-parser` with every extension switched off (no
//! comments, no trailing commas, no single quotes, ...): what is accepted is
//! plain RFC 8259 JSON. Duplicate keys are kept in the tree and reported by the
//! policy reader, which is why `serde_json` (last key wins, no positions) is
//! not used for policy documents.

use std::fmt;

pub use jsonc_parser::ast::{Object, ObjectProp, Value};

/// A position in a source text, 1-based, as an editor shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// Line, starting at 1.
    pub line: u32,
    /// Column in characters, starting at 1.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A named source text and the offsets of its lines, to turn byte offsets
/// into line and column numbers.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    name: &'a str,
    text: &'a str,
    first_line: u32,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    /// A source named `name` (a file path, `<stdin>`, ...) holding `text`.
    pub fn new(name: &'a str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            name,
            text,
            first_line: 1,
            line_starts,
        }
    }

    /// The same source, for a text that starts at line `line` of its file
    /// (one line of a JSON-lines file, for example).
    pub fn starting_at_line(mut self, line: u32) -> Self {
        self.first_line = line.max(1);
        self
    }

    /// The source's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The source text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The line and column of a byte offset.
    pub fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        Location {
            line: u32::try_from(line)
                .unwrap_or(u32::MAX)
                .saturating_add(self.first_line),
            column: u32::try_from(column).unwrap_or(u32::MAX).saturating_add(1),
        }
    }
}

/// A JSON syntax error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset of the error in the text.
    pub offset: usize,
    /// What is wrong, lowercase.
    pub message: String,
}

/// Parses `text` as one strict JSON value.
pub fn parse(text: &str) -> Result<Value<'_>, SyntaxError> {
    let options = jsonc_parser::ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    let collect = jsonc_parser::CollectOptions::default();
    let parsed = jsonc_parser::parse_to_ast(text, &collect, &options);
    if parsed.is_ok()
        && let Some((offset, c)) = raw_control_in_string(text)
    {
        return Err(SyntaxError {
            offset,
            message: format!(
                "a string holds the raw control character U+{:04X}: JSON (RFC 8259) requires it escaped, as `\\u{:04x}`",
                u32::from(c),
                u32::from(c)
            ),
        });
    }
    match parsed {
        Ok(result) => result.value.ok_or_else(|| SyntaxError {
            offset: text.len(),
            message: "the document is empty: expected a JSON object".to_owned(),
        }),
        Err(e) => Err(SyntaxError {
            offset: e.range().start,
            message: lowercase_first(&e.kind().to_string()),
        }),
    }
}

/// The first control character (U+0000 to U+001F) written raw inside a
/// string of `text`, a valid JSON text otherwise: the parser takes them,
/// RFC 8259 does not (a literal NUL in a `Sid` once loaded).
fn raw_control_in_string(text: &str) -> Option<(usize, u8)> {
    let mut in_string = false;
    let mut escaped = false;
    for (i, b) in text.bytes().enumerate() {
        if !in_string {
            in_string = b == b'"';
        } else if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_string = false;
        } else if b < 0x20 {
            return Some((i, b));
        }
    }
    None
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The byte offset where a value starts.
pub fn start(value: &Value<'_>) -> usize {
    match value {
        Value::StringLit(v) => v.range.start,
        Value::NumberLit(v) => v.range.start,
        Value::BooleanLit(v) => v.range.start,
        Value::Object(v) => v.range.start,
        Value::Array(v) => v.range.start,
        Value::NullKeyword(v) => v.range.start,
    }
}

/// A short name of a value's JSON type, for error messages.
pub fn type_name(value: &Value<'_>) -> &'static str {
    match value {
        Value::StringLit(_) => "a string",
        Value::NumberLit(_) => "a number",
        Value::BooleanLit(_) => "a boolean",
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::NullKeyword(_) => "null",
    }
}

/// A scalar as text: strings as they are, numbers and booleans in their JSON
/// spelling (IAM reads `"Bool": {"aws:SecureTransport": true}` as `"true"`).
pub fn scalar_text<'v>(value: &'v Value<'_>) -> Option<std::borrow::Cow<'v, str>> {
    match value {
        Value::StringLit(s) => Some(std::borrow::Cow::Borrowed(s.value.as_ref())),
        Value::NumberLit(n) => Some(std::borrow::Cow::Borrowed(n.value)),
        Value::BooleanLit(b) => Some(std::borrow::Cow::Borrowed(if b.value {
            "true"
        } else {
            "false"
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_lines_and_character_columns() {
        let src = Source::new("p.json", "{\n  \"é\": 1,\n  \"b\": 2\n}");
        assert_eq!(src.location(0), Location { line: 1, column: 1 });
        let b = src.text().find("\"b\"").unwrap();
        assert_eq!(src.location(b), Location { line: 3, column: 3 });
        let one = src.text().find('1').unwrap();
        assert_eq!(src.location(one), Location { line: 2, column: 8 });
        let shifted = Source::new("x", "a\nb").starting_at_line(10);
        assert_eq!(
            shifted.location(2),
            Location {
                line: 11,
                column: 1
            }
        );
    }

    #[test]
    fn extensions_are_rejected() {
        for text in [
            "{\"a\": 1,}",
            "{// c\n}",
            "{'a': 1}",
            "{a: 1}",
            "[0x1]",
            "[+1]",
            "",
        ] {
            assert!(parse(text).is_err(), "{text} should not parse");
        }
        assert!(parse("{\"a\": [1, \"x\", true, null]}").is_ok());
    }

    #[test]
    fn raw_control_characters_in_strings_are_errors() {
        for (text, at) in [
            ("{\"Sid\": \"a\u{0}b\"}", 10),
            ("{\"a\tb\": 1}", 3),
            ("[\"x\", \"\\\"\u{1f}\"]", 9),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.offset, at, "{text:?}: {}", e.message);
            assert!(
                e.message
                    .starts_with("a string holds the raw control character U+"),
                "{}",
                e.message
            );
        }
        // Escaped, and between tokens, they are JSON.
        assert!(parse("{\"Sid\": \"a\\u0000\\tb\"}").is_ok());
        assert!(parse("{\n\t\"a\": 1\r\n}").is_ok());
    }

    #[test]
    fn errors_carry_an_offset() {
        let err = parse("{\n \"a\": }").unwrap_err();
        assert_eq!(
            Source::new("f", "{\n \"a\": }").location(err.offset).line,
            2
        );
    }
}
