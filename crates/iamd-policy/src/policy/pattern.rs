//! Compiled string patterns: literal text, `*` and `?` wildcards, and policy
//! variables (`${aws:username}`), each pattern sorted at compile time into the
//! cheapest way to match it.

use crate::arn::Arn;
use crate::context::{Context, Values};

/// Policy variables resolved once, on the stack, before a match: a value
/// with more (AWS sets no limit) resolves each one where the match reads
/// it, also without allocating.
pub(crate) const INLINE_VARIABLES: usize = 8;

/// How a pattern's text is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syntax {
    /// `*` and `?` are wildcards (otherwise literal characters).
    pub wildcards: bool,
    /// `${...}` are policy variables (otherwise literal text).
    pub variables: bool,
    /// Matching ignores case.
    pub fold: bool,
}

/// A policy variable reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variable {
    /// The key, lowercase, as the context stores it.
    pub key: Box<str>,
    /// The default (`${key, 'default'}`), used when the key has no value.
    pub default: Option<Box<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(Box<str>),
    Star,
    One,
    Var(u32),
}

#[derive(Debug, Clone, Copy)]
enum P<'a> {
    Lit(&'a str),
    Star,
    One,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Strategy {
    Any,
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Glob,
    Template,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    pieces: Box<[Piece]>,
    variables: Box<[Variable]>,
    strategy: Strategy,
    fold: bool,
}

/// Why a pattern's text is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// `${}`.
    EmptyVariable,
    /// A variable that is not a key name or a special character (`${*}`).
    BadVariable(String),
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EmptyVariable => write!(
                f,
                "empty policy variable `${{}}`: name a key, as in `${{aws:username}}`"
            ),
            Self::BadVariable(v) => write!(
                f,
                "invalid policy variable `${{{v}}}`: write `${{key}}` or `${{key, 'default'}}`"
            ),
        }
    }
}

impl Pattern {
    /// Compiles `text` read with `syntax`.
    pub(crate) fn new(text: &str, syntax: Syntax) -> Result<Self, PatternError> {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut variables: Vec<Variable> = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if syntax.variables
                && rest.starts_with("${")
                && let Some(end) = rest.find('}')
            {
                let inner = rest.get(2..end).unwrap_or_default();
                rest = rest.get(end + 1..).unwrap_or_default();
                match inner {
                    "*" | "?" | "$" => lit.push_str(inner),
                    _ => {
                        let var = parse_variable(inner)?;
                        flush(&mut lit, &mut pieces, syntax.fold);
                        // A value is at most a policy's size: far fewer
                        // than u32::MAX variables.
                        pieces.push(Piece::Var(
                            u32::try_from(variables.len()).unwrap_or(u32::MAX),
                        ));
                        variables.push(var);
                    }
                }
                continue;
            }
            rest = rest.get(c.len_utf8()..).unwrap_or_default();
            match c {
                '*' if syntax.wildcards => {
                    flush(&mut lit, &mut pieces, syntax.fold);
                    if pieces.last() != Some(&Piece::Star) {
                        pieces.push(Piece::Star);
                    }
                }
                '?' if syntax.wildcards => {
                    flush(&mut lit, &mut pieces, syntax.fold);
                    pieces.push(Piece::One);
                }
                _ => lit.push(c),
            }
        }
        flush(&mut lit, &mut pieces, syntax.fold);
        let strategy = choose_strategy(&pieces, syntax.fold);
        Ok(Self {
            pieces: pieces.into(),
            variables: variables.into(),
            strategy,
            fold: syntax.fold,
        })
    }

    /// The literal text, when the pattern has no wildcard and no variable.
    pub(crate) fn as_literal(&self) -> Option<&str> {
        match &self.strategy {
            Strategy::Exact(s) => Some(s),
            _ => None,
        }
    }

    /// The literal text every match starts with (case-sensitive patterns
    /// only; empty when the pattern starts with a wildcard or a variable).
    pub(crate) fn literal_prefix(&self) -> Option<&str> {
        if self.fold {
            return None;
        }
        match self.pieces.first() {
            Some(Piece::Lit(s)) => Some(s),
            _ => Some(""),
        }
    }

    /// Whether the pattern holds policy variables.
    pub(crate) fn has_variables(&self) -> bool {
        !self.variables.is_empty()
    }

    /// Whether `text` matches. A variable with no value and no default
    /// matches nothing, so the pattern does not match.
    pub(crate) fn matches(&self, text: &str, ctx: &Context) -> bool {
        match &self.strategy {
            Strategy::Any => true,
            Strategy::Exact(s) => eq(text, s, self.fold),
            Strategy::Prefix(s) => {
                text.len() >= s.len()
                    && text
                        .get(..s.len())
                        .is_some_and(|head| eq(head, s, self.fold))
            }
            Strategy::Suffix(s) => {
                text.len() >= s.len()
                    && text
                        .get(text.len() - s.len()..)
                        .is_some_and(|tail| eq(tail, s, self.fold))
            }
            Strategy::Glob => glob(&Plain(&self.pieces), text, self.fold),
            Strategy::Template if self.variables.len() <= INLINE_VARIABLES => {
                let mut resolved: [&str; INLINE_VARIABLES] = [""; INLINE_VARIABLES];
                for (slot, var) in resolved.iter_mut().zip(self.variables.iter()) {
                    match resolve(var, ctx) {
                        Some(v) => *slot = v,
                        None => return false,
                    }
                }
                glob(
                    &Resolved {
                        pieces: &self.pieces,
                        values: VarValues::Inline(&resolved),
                    },
                    text,
                    self.fold,
                )
            }
            Strategy::Template => {
                if self.variables.iter().any(|v| resolve(v, ctx).is_none()) {
                    return false;
                }
                glob(
                    &Resolved {
                        pieces: &self.pieces,
                        values: VarValues::Lazy {
                            variables: &self.variables,
                            ctx,
                        },
                    },
                    text,
                    self.fold,
                )
            }
        }
    }
}

/// The value of a variable: the key's single value, else its default.
/// Multivalued keys cannot be variables, so they count as no value.
pub(crate) fn resolve<'c>(var: &'c Variable, ctx: &'c Context) -> Option<&'c str> {
    match ctx.get_folded(&var.key) {
        Some(Values::Single(v)) => Some(v),
        _ => var.default.as_deref(),
    }
}

fn parse_variable(inner: &str) -> Result<Variable, PatternError> {
    let (key, default) = match inner.split_once(',') {
        Some((key, default)) => {
            let d = default.trim();
            let quoted = d
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .filter(|_| d.len() >= 2)
                .ok_or_else(|| PatternError::BadVariable(inner.to_owned()))?;
            (key.trim(), Some(quoted))
        }
        None => (inner.trim(), None),
    };
    if key.is_empty() {
        return Err(if default.is_none() {
            PatternError::EmptyVariable
        } else {
            PatternError::BadVariable(inner.to_owned())
        });
    }
    if key
        .chars()
        .any(|c| c.is_whitespace() || c == '$' || c == '{')
    {
        return Err(PatternError::BadVariable(inner.to_owned()));
    }
    Ok(Variable {
        key: crate::context::fold(key).into(),
        default: default.map(Into::into),
    })
}

fn flush(lit: &mut String, pieces: &mut Vec<Piece>, fold: bool) {
    if lit.is_empty() {
        return;
    }
    let text = std::mem::take(lit);
    // Folded literals are stored lowercase so that the ASCII fast paths
    // compare one side only.
    let text = if fold { text.to_lowercase() } else { text };
    pieces.push(Piece::Lit(text.into()));
}

fn choose_strategy(pieces: &[Piece], fold: bool) -> Strategy {
    if pieces.iter().any(|p| matches!(p, Piece::Var(_))) {
        return Strategy::Template;
    }
    let ascii_ok = |s: &str| !fold || s.is_ascii();
    match pieces {
        [] => Strategy::Exact("".into()),
        [Piece::Star] => Strategy::Any,
        [Piece::Lit(s)] => {
            if ascii_ok(s) {
                Strategy::Exact(s.clone())
            } else {
                Strategy::Glob
            }
        }
        [Piece::Lit(s), Piece::Star] if ascii_ok(s) => Strategy::Prefix(s.clone()),
        [Piece::Star, Piece::Lit(s)] if ascii_ok(s) => Strategy::Suffix(s.clone()),
        _ => Strategy::Glob,
    }
}

/// Compares with a literal of the `Exact`, `Prefix` or `Suffix` strategies,
/// which are ASCII when folded (see `choose_strategy`).
fn eq(text: &str, lit: &str, fold: bool) -> bool {
    if fold {
        text.eq_ignore_ascii_case(lit)
    } else {
        text == lit
    }
}

// === glob matching ===

trait Pieces<'a> {
    fn len(&self) -> usize;
    fn get(&self, i: usize) -> P<'a>;
}

struct Plain<'a>(&'a [Piece]);

impl<'a> Pieces<'a> for Plain<'a> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, i: usize) -> P<'a> {
        match self.0.get(i) {
            Some(Piece::Lit(s)) => P::Lit(s),
            Some(Piece::One) => P::One,
            // Var never occurs in a plain pattern; a star is the safe reading.
            Some(Piece::Star | Piece::Var(_)) | None => P::Star,
        }
    }
}

/// A template's pieces with its variables' values: resolved once on the
/// stack (up to [`INLINE_VARIABLES`]), or looked up in the context when the
/// match reads them (more; every one is known to resolve).
struct Resolved<'a> {
    pieces: &'a [Piece],
    values: VarValues<'a>,
}

enum VarValues<'a> {
    Inline(&'a [&'a str]),
    Lazy {
        variables: &'a [Variable],
        ctx: &'a Context,
    },
}

impl<'a> Pieces<'a> for Resolved<'a> {
    fn len(&self) -> usize {
        self.pieces.len()
    }
    fn get(&self, i: usize) -> P<'a> {
        match self.pieces.get(i) {
            Some(Piece::Lit(s)) => P::Lit(s),
            Some(Piece::One) => P::One,
            Some(Piece::Var(v)) => {
                let v = usize::try_from(*v).unwrap_or(usize::MAX);
                let value = match &self.values {
                    VarValues::Inline(values) => values.get(v).copied(),
                    VarValues::Lazy { variables, ctx } => {
                        variables.get(v).and_then(|var| resolve(var, ctx))
                    }
                };
                P::Lit(value.unwrap_or(""))
            }
            Some(Piece::Star) | None => P::Star,
        }
    }
}

/// Matches `text` against pieces separated by stars: the first group is
/// anchored at the start, the last at the end, and the groups between take
/// their leftmost match, which is enough for `*` and `?` patterns.
fn glob<'a>(p: &impl Pieces<'a>, text: &str, fold: bool) -> bool {
    let n = p.len();
    let next_star = |from: usize| {
        (from..n)
            .find(|&i| matches!(p.get(i), P::Star))
            .unwrap_or(n)
    };
    let first_end = next_star(0);
    let Some(mut pos) = group_at(p, 0, first_end, text, 0, fold) else {
        return false;
    };
    if first_end == n {
        return pos == text.len();
    }
    let mut start = first_end + 1;
    loop {
        let end = next_star(start);
        if end == n {
            if start == n {
                return true;
            }
            // The last group ends the text: when its length in bytes is
            // known, it can only start at one place (one try, not one per
            // position: the scan made a long text cost its length times
            // the group's for every statement).
            if let Some(len) = fixed_len(p, start, end, text, fold) {
                return text.len().checked_sub(len).is_some_and(|s| {
                    s >= pos
                        && text.is_char_boundary(s)
                        && group_at(p, start, end, text, s, fold) == Some(text.len())
                });
            }
            return starts(text, pos)
                .any(|s| group_at(p, start, end, text, s, fold) == Some(text.len()));
        }
        if start < end {
            let found = match (end - start, p.get(start)) {
                // One literal compared exactly (resources, most values):
                // the standard library's substring search, linear in the
                // text, instead of a try at every position.
                (1, P::Lit(lit)) if !fold => text
                    .get(pos..)
                    .and_then(|rest| rest.find(lit))
                    .map(|i| pos + i + lit.len()),
                _ => starts(text, pos).find_map(|s| group_at(p, start, end, text, s, fold)),
            };
            match found {
                Some(e) => pos = e,
                None => return false,
            }
        }
        start = end + 1;
    }
}

/// The length in bytes of what the pieces `start..end` (no star among
/// them) match in `text`, when it does not depend on where: literals
/// compared exactly or ASCII ones ignoring case, and `?` when `text` is
/// ASCII (one byte a character). `None` otherwise (a literal compared
/// ignoring case beyond ASCII may match a text of another length).
fn fixed_len<'a>(
    p: &impl Pieces<'a>,
    start: usize,
    end: usize,
    text: &str,
    fold: bool,
) -> Option<usize> {
    let mut len = 0;
    let mut ascii = None;
    for i in start..end {
        len += match p.get(i) {
            P::Lit(s) if !fold || s.is_ascii() => s.len(),
            P::One if *ascii.get_or_insert_with(|| text.is_ascii()) => 1,
            _ => return None,
        };
    }
    Some(len)
}

/// The character boundaries of `text` from `from` to its end, inclusive.
fn starts(text: &str, from: usize) -> impl Iterator<Item = usize> + '_ {
    (from..=text.len()).filter(move |&i| text.is_char_boundary(i))
}

/// Matches the pieces `start..end` (no star among them) at `at`; returns
/// where the match ends.
fn group_at<'a>(
    p: &impl Pieces<'a>,
    start: usize,
    end: usize,
    text: &str,
    at: usize,
    fold: bool,
) -> Option<usize> {
    let mut pos = at;
    for i in start..end {
        match p.get(i) {
            P::Lit(s) => pos = lit_at(text, pos, s, fold)?,
            P::One => pos += text.get(pos..)?.chars().next()?.len_utf8(),
            P::Star => return None,
        }
    }
    Some(pos)
}

/// Matches literal `lit` in `text` at byte `at`; returns the end.
fn lit_at(text: &str, at: usize, lit: &str, fold: bool) -> Option<usize> {
    let rest = text.get(at..)?;
    if !fold {
        return rest.starts_with(lit).then_some(at + lit.len());
    }
    if lit.is_ascii() {
        let head = rest.get(..lit.len())?;
        return head.eq_ignore_ascii_case(lit).then_some(at + lit.len());
    }
    let mut t = rest.char_indices();
    for lc in lit.chars() {
        let (_, tc) = t.next()?;
        if !lc.to_lowercase().eq(tc.to_lowercase()) {
            return None;
        }
    }
    Some(at + t.next().map_or(rest.len(), |(i, _)| i))
}

#[cfg(test)]
mod tests;

// === ARN patterns ===

/// A compiled ARN pattern: five components after `arn:`, each matched on its
/// own, so that a wildcard never crosses a `:` between components; the last
/// (resource) component may itself hold `:` and `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnPattern {
    parts: [Pattern; 5],
    /// `partition:service:region:account` when all four are literal.
    head: Option<Box<str>>,
}

/// Why an ARN pattern is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArnPatternError {
    /// Fewer than six components.
    NotAnArn,
    /// A component's pattern is not valid.
    Part(PatternError),
    /// A variable outside the resource component, where the syntax forbids it.
    VariableOutsideResource,
    /// `*` or `?` in the service component, where the syntax forbids it.
    WildcardInService,
}

impl std::fmt::Display for ArnPatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAnArn => write!(
                f,
                "not an ARN: write `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` (components may be empty or hold `*`), or `*`"
            ),
            Self::Part(e) => e.fmt(f),
            Self::VariableOutsideResource => write!(
                f,
                "policy variables are allowed only in the resource part of an ARN (after the fifth `:`)"
            ),
            Self::WildcardInService => write!(
                f,
                "wildcards are not allowed in the service component of an ARN"
            ),
        }
    }
}

/// Which parts of an ARN pattern may hold what.
#[derive(Debug, Clone, Copy)]
pub struct ArnSyntax {
    /// Policy variables are read (Version 2012-10-17).
    pub variables: bool,
    /// Variables may stand in any component (ARN condition values), not only
    /// in the resource component (the `Resource` element).
    pub variables_anywhere: bool,
    /// `*` or `?` in the service component is an error (the `Resource`
    /// element).
    pub literal_service: bool,
}

impl ArnPattern {
    /// Compiles `text` under `syntax`.
    pub fn new(text: &str, syntax: ArnSyntax) -> Result<Self, ArnPatternError> {
        let [arn, partition, service, region, account, resource] =
            split_arn_pattern(text, syntax.variables).ok_or(ArnPatternError::NotAnArn)?;
        if arn != "arn" {
            return Err(ArnPatternError::NotAnArn);
        }
        if syntax.literal_service && (service.contains('*') || service.contains('?')) {
            return Err(ArnPatternError::WildcardInService);
        }
        let head_vars = syntax.variables && syntax.variables_anywhere;
        let head = Syntax {
            wildcards: true,
            variables: head_vars,
            fold: false,
        };
        let tail = Syntax {
            wildcards: true,
            variables: syntax.variables,
            fold: false,
        };
        let part = |t: &str, s| Pattern::new(t, s).map_err(ArnPatternError::Part);
        let parts = [
            part(partition, head)?,
            part(service, head)?,
            part(region, head)?,
            part(account, head)?,
            part(resource, tail)?,
        ];
        if syntax.variables
            && !syntax.variables_anywhere
            && [partition, service, region, account]
                .iter()
                .any(|p| has_variable(p))
        {
            return Err(ArnPatternError::VariableOutsideResource);
        }
        let head = match [&parts[0], &parts[1], &parts[2], &parts[3]].map(Pattern::as_literal) {
            [Some(a), Some(b), Some(c), Some(d)] => Some(format!("{a}:{b}:{c}:{d}").into()),
            _ => None,
        };
        Ok(Self { parts, head })
    }

    /// `partition:service:region:account` when those are literal, and the
    /// literal text the resource component starts with: what every match
    /// must begin with, for the evaluator's prefilter.
    pub(crate) fn literal_start(&self) -> Option<(&str, &str)> {
        Some((self.head.as_deref()?, self.parts[4].literal_prefix()?))
    }

    /// Matches a parsed ARN. The resource component, the most selective,
    /// is compared first.
    pub fn matches(&self, arn: &Arn<'_>, ctx: &Context) -> bool {
        let [p0, p1, p2, p3, p4] = &self.parts;
        let [_, t0, t1, t2, t3, t4] = arn.parts;
        if !p4.matches(t4, ctx) {
            return false;
        }
        match &self.head {
            Some(head) => arn.head == &**head,
            None => {
                p0.matches(t0, ctx)
                    && p1.matches(t1, ctx)
                    && p2.matches(t2, ctx)
                    && p3.matches(t3, ctx)
            }
        }
    }
}

fn has_variable(text: &str) -> bool {
    text.find("${")
        .is_some_and(|i| text.get(i..).is_some_and(|t| t.contains('}')))
}

/// Splits an ARN pattern at its first five colons, skipping colons inside
/// `${...}` when variables are read.
fn split_arn_pattern(text: &str, variables: bool) -> Option<[&str; 6]> {
    let mut cuts = [0usize; 5];
    let mut found = 0;
    let mut in_var = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() && found < 5 {
        match bytes.get(i) {
            Some(b'$') if variables && !in_var && bytes.get(i + 1) == Some(&b'{') => {
                in_var = text.get(i..).is_some_and(|t| t.contains('}'));
            }
            Some(b'}') if in_var => in_var = false,
            Some(b':') if !in_var => {
                if let Some(c) = cuts.get_mut(found) {
                    *c = i;
                }
                found += 1;
            }
            _ => {}
        }
        i += 1;
    }
    if found < 5 {
        return None;
    }
    crate::arn::cut_at(text, cuts)
}
