//! Messages that quote what they were given stay short: a value quoted in
//! an error (between backticks, the project's convention) is cut to its
//! first [`QUOTE_CHARS`] characters with its length beside it, so that a
//! one-megabyte user name makes a one-line error, not a one-megabyte log
//! line, status page or gRPC trailer.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters of a quoted value kept in a message.
pub const QUOTE_CHARS: usize = 64;

/// The longest message line kept, whatever it quotes (values holding
/// backticks of their own are not cut at their quotes).
pub const LINE_BYTES: usize = 2048;

/// `line` with every backtick-quoted value longer than [`QUOTE_CHARS`]
/// characters cut to its start and `…`, followed by its length in bytes
/// (`` `xxxx…` (1000000 bytes) ``), and the whole line cut to
/// [`LINE_BYTES`] (with its length) if it is still longer.
pub fn shorten(line: &str) -> Cow<'_, str> {
    let long_quote = line
        .split('`')
        .skip(1)
        .step_by(2)
        .any(|q| q.len() > QUOTE_CHARS);
    if !long_quote && line.len() <= LINE_BYTES {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len().min(LINE_BYTES + 64));
    let mut parts = line.split('`');
    let mut quoted = false;
    let mut first = true;
    let mut pending_length = None;
    for part in parts.by_ref() {
        if !first {
            out.push('`');
            if let Some(n) = pending_length.take() {
                let _ = write!(out, " ({n} bytes)");
            }
        }
        first = false;
        if quoted && part.chars().nth(QUOTE_CHARS).is_some() {
            out.extend(part.chars().take(QUOTE_CHARS));
            out.push('…');
            pending_length = Some(part.len());
        } else {
            out.push_str(part);
        }
        quoted = !quoted;
    }
    if let Some(n) = pending_length {
        // An unterminated quote: close it.
        let _ = write!(out, "` ({n} bytes)");
    }
    if out.len() > LINE_BYTES {
        let mut end = LINE_BYTES;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        let total = out.len();
        out.truncate(end);
        let _ = write!(out, "… (a line of {total} bytes, cut)");
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{LINE_BYTES, QUOTE_CHARS, shorten};

    #[test]
    fn short_messages_are_kept_as_they_are() {
        let m = "users.yaml:2:12: user `alice` is in unknown group `devs`: define it";
        assert_eq!(shorten(m), m);
        let exactly = format!("name `{}` is bad", "n".repeat(QUOTE_CHARS));
        assert_eq!(shorten(&exactly), exactly);
    }

    #[test]
    fn long_quoted_values_are_cut_with_their_length() {
        let name = "x".repeat(1_000_000);
        let m = format!(
            "users.yaml:20:9: user name `a{name}` is invalid: use `[\\w+=,.@-]`, at most 64"
        );
        let s = shorten(&m);
        assert_eq!(
            s,
            format!(
                "users.yaml:20:9: user name `a{}…` (1000001 bytes) is invalid: use `[\\w+=,.@-]`, at most 64",
                "x".repeat(QUOTE_CHARS - 1)
            )
        );
        // Characters, not bytes: a multibyte value is cut on a boundary.
        let m = format!("tag `{}`", "é".repeat(100));
        assert_eq!(
            shorten(&m),
            format!("tag `{}…` (200 bytes)", "é".repeat(QUOTE_CHARS))
        );
    }

    #[test]
    fn a_long_line_without_quotes_is_cut_too() {
        let m = format!("a{}", "c".repeat(10_000));
        let s = shorten(&m);
        assert!(s.len() < LINE_BYTES + 64, "{}", s.len());
        assert!(s.ends_with("… (a line of 10001 bytes, cut)"), "{s}");
        // An unterminated quote at the end of a line.
        let m = format!("value `{}", "v".repeat(100));
        assert_eq!(
            shorten(&m),
            format!("value `{}…` (100 bytes)", "v".repeat(QUOTE_CHARS))
        );
    }
}
