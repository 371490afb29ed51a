//! A list file (`users.yaml`, `roles.yaml`) cut into the texts of its
//! entries, without parsing it: what lets a reload parse again only the
//! entries whose text changed ([`crate::cache`]).
//!
//! Only the plain shape is cut: a YAML block sequence whose entries start
//! at column 0 with `- ` (or a lone `-`), with blank lines and comments
//! between them. Anything else at column 0 (a document marker, a
//! directive, a flow sequence, JSON, a byte-order mark, text before the
//! first entry) and anything that looks like an alias (`*name`, which
//! would make one entry's value depend on another's anchor) leave the file
//! uncut: it is parsed whole, as always.
//!
//! Every entry of such a sequence starts a line with `- ` at column 0, so
//! the entries are among the pieces; a piece that is not an entry (inside
//! a multi-line quoted scalar or flow collection) makes more pieces than
//! the parser finds entries, which the loader checks: a file is cut only
//! when the counts agree.

use std::ops::Range;

use sha2::{Digest, Sha256};

/// The SHA-256 digest of an entry's text.
pub(crate) type Hash = [u8; 32];

/// An entry of a list file: where its text is, and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub range: Range<usize>,
    pub hash: Hash,
}

/// The entries of `text`, in order, each with the comments and blank lines
/// that follow it; `None` when the file is not of the plain shape.
pub(crate) fn split(text: &str) -> Option<Vec<Item>> {
    let bytes = text.as_bytes();
    if text.starts_with('\u{feff}') || alias_like(bytes) {
        return None;
    }
    let mut starts = Vec::new();
    let (mut pos, mut lines) = (0, 0u32);
    while pos < bytes.len() {
        let rest = bytes.get(pos..).unwrap_or_default();
        let end = memchr::memchr(b'\n', rest).map_or(bytes.len(), |i| pos + i + 1);
        let line = bytes.get(pos..end).unwrap_or_default();
        match line.first() {
            Some(b'-') if matches!(line.get(1), None | Some(b' ' | b'\n' | b'\r')) => {
                starts.push(pos);
            }
            None | Some(b'#' | b'\n' | b'\r') => {}
            // Before the first entry only white space and comments.
            Some(b' ') if starts.is_empty() => {
                match line.iter().find(|b| !b.is_ascii_whitespace()) {
                    None | Some(b'#') => {}
                    Some(_) => return None,
                }
            }
            Some(b' ') => {}
            Some(_) => return None,
        }
        pos = end;
        lines = lines.wrapping_add(1);
        if lines % 256 == 0 {
            crate::pace::point();
        }
    }
    let mut items = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(bytes.len());
        let range = start..end;
        crate::pace::point();
        let hash = Sha256::digest(bytes.get(range.clone())?).into();
        items.push(Item { range, hash });
    }
    Some(items)
}

/// Whether `text` may hold an alias: a `*` where a node can begin (after
/// white space, `[`, `{`, `,`, or at the start of a line). A `*` inside a
/// value (`docs:*`, `'*'`, `"s3:Get*"`) is not one; a false alarm only
/// leaves the file uncut.
fn alias_like(text: &[u8]) -> bool {
    memchr::memchr_iter(b'*', text).any(|i| {
        i.checked_sub(1)
            .and_then(|p| text.get(p))
            .is_none_or(|p| matches!(p, b' ' | b'\t' | b'[' | b'{' | b',' | b'\n'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Option<Vec<&str>> {
        split(text).map(|items| items.iter().map(|i| &text[i.range.clone()]).collect())
    }

    #[test]
    fn a_block_sequence_is_cut_at_its_entries() {
        let text = "# users\n\n- name: a\n  tags: {team: x}\n# b next\n- name: b\n-\n  name: c\n";
        assert_eq!(
            texts(text).unwrap(),
            [
                "- name: a\n  tags: {team: x}\n# b next\n",
                "- name: b\n",
                "-\n  name: c\n"
            ]
        );
        assert_eq!(texts("").unwrap(), Vec::<&str>::new());
        assert_eq!(texts("- a").unwrap(), ["- a"], "no final newline");
        let items = split("- a\n- a\n- b\n").unwrap();
        assert_eq!(
            items[0].hash, items[1].hash,
            "the same text, the same digest"
        );
        assert_ne!(items[0].hash, items[2].hash);
    }

    #[test]
    fn other_shapes_are_not_cut() {
        for text in [
            "---\n- name: a\n",
            "%YAML 1.2\n---\n- a\n",
            "[{\"name\": \"a\"}]",
            "\u{feff}- name: a\n",
            "  - name: a\n  - name: b\n",
            "- name: a\nb: c\n",
            "- name: a\n...\n",
            "-name: a\n",
            "- &base {name: a}\n- <<: *base\n",
            "- name: a\n  groups: [*g]\n",
        ] {
            assert_eq!(texts(text), None, "{text:?}");
        }
        // A star inside a value is not an alias.
        assert!(texts("- {Action: 'docs:*', Resource: \"*\", NotAction: [s3:Get*]}\n").is_some());
    }
}
