//! Condition operators: names, pre-parsed operands and evaluation.
//!
//! A condition block is `{ Operator: { Key: value | [values] } }`. Several
//! values of one key are OR'd (NOR for negated operators), several keys and
//! several operators are AND'd. Operands are parsed once at compile time
//! (numbers, dates, CIDRs, base64, patterns) so that evaluation only reads.

use std::cmp::Ordering;
use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;

use super::pattern::{ArnPattern, ArnSyntax, Pattern, Syntax};
use crate::context::{Context, Values};

/// The operator families and comparisons, without negation or qualifiers:
/// the one model of condition operators, read by the engine and by the
/// authoring tools alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// `StringEquals` (negated: `StringNotEquals`).
    StringEquals,
    /// `StringEqualsIgnoreCase` (`StringNotEqualsIgnoreCase`).
    StringEqualsIgnoreCase,
    /// `StringLike` (`StringNotLike`).
    StringLike,
    /// `NumericEquals`, `NumericLessThan`... (`NumericNotEquals`).
    Numeric(Cmp),
    /// `DateEquals`, `DateLessThan`... (`DateNotEquals`).
    Date(Cmp),
    /// `Bool`.
    Bool,
    /// `BinaryEquals`.
    BinaryEquals,
    /// `IpAddress` (`NotIpAddress`).
    IpAddress,
    /// `ArnEquals` and `ArnLike`, which AWS makes the same
    /// (`ArnNotEquals`, `ArnNotLike`).
    Arn,
    /// `Null`.
    Null,
}

/// How a request value compares with a policy value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// Equal.
    Eq,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
}

impl Cmp {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Self::Eq => o == Ordering::Equal,
            Self::Lt => o == Ordering::Less,
            Self::Le => o != Ordering::Greater,
            Self::Gt => o == Ordering::Greater,
            Self::Ge => o != Ordering::Less,
        }
    }
}

/// `ForAllValues:` or `ForAnyValue:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    /// Every value of the request's key must match.
    ForAllValues,
    /// Some value of the request's key must match.
    ForAnyValue,
}

/// A parsed operator name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    /// The family and comparison.
    pub base: Base,
    /// `Not` in the name (`StringNotEquals`, `NotIpAddress`).
    pub negated: bool,
    /// The `IfExists` suffix.
    pub if_exists: bool,
    /// The set qualifier, if any.
    pub qualifier: Option<SetQualifier>,
}

/// The base operators by name, with whether each is negated.
const OPERATORS: &[(&str, Base, bool)] = &[
    ("StringEquals", Base::StringEquals, false),
    ("StringNotEquals", Base::StringEquals, true),
    (
        "StringEqualsIgnoreCase",
        Base::StringEqualsIgnoreCase,
        false,
    ),
    (
        "StringNotEqualsIgnoreCase",
        Base::StringEqualsIgnoreCase,
        true,
    ),
    ("StringLike", Base::StringLike, false),
    ("StringNotLike", Base::StringLike, true),
    ("NumericEquals", Base::Numeric(Cmp::Eq), false),
    ("NumericNotEquals", Base::Numeric(Cmp::Eq), true),
    ("NumericLessThan", Base::Numeric(Cmp::Lt), false),
    ("NumericLessThanEquals", Base::Numeric(Cmp::Le), false),
    ("NumericGreaterThan", Base::Numeric(Cmp::Gt), false),
    ("NumericGreaterThanEquals", Base::Numeric(Cmp::Ge), false),
    ("DateEquals", Base::Date(Cmp::Eq), false),
    ("DateNotEquals", Base::Date(Cmp::Eq), true),
    ("DateLessThan", Base::Date(Cmp::Lt), false),
    ("DateLessThanEquals", Base::Date(Cmp::Le), false),
    ("DateGreaterThan", Base::Date(Cmp::Gt), false),
    ("DateGreaterThanEquals", Base::Date(Cmp::Ge), false),
    ("Bool", Base::Bool, false),
    ("BinaryEquals", Base::BinaryEquals, false),
    ("IpAddress", Base::IpAddress, false),
    ("NotIpAddress", Base::IpAddress, true),
    ("ArnEquals", Base::Arn, false),
    ("ArnLike", Base::Arn, false),
    ("ArnNotEquals", Base::Arn, true),
    ("ArnNotLike", Base::Arn, true),
    ("Null", Base::Null, false),
];

impl Operator {
    /// Reads an operator name such as `ForAnyValue:StringLikeIfExists`.
    /// Names are case-sensitive, as AWS spells them; the error suggests the
    /// right spelling when only the case differs.
    pub fn parse(name: &str) -> Result<Self, String> {
        let (qualifier, rest) = if let Some(r) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), r)
        } else if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), r)
        } else {
            (None, name)
        };
        let (if_exists, base_name) = match rest.strip_suffix("IfExists") {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let Some(&(_, base, negated)) = OPERATORS.iter().find(|(n, _, _)| *n == base_name) else {
            return Err(unknown_operator(name));
        };
        if base == Base::Null && (if_exists || qualifier.is_some()) {
            return Err(format!(
                "`{name}` is not an operator: `Null` takes no `IfExists` suffix and no `ForAllValues:`/`ForAnyValue:` qualifier"
            ));
        }
        Ok(Self {
            base,
            negated,
            if_exists,
            qualifier,
        })
    }

    /// Whether the operator is true only when the request has the key
    /// (unless `IfExists`): not a negated one, not `Null`.
    pub fn needs_the_key(self) -> bool {
        !self.negated && self.base != Base::Null
    }

    /// Whether the operator compares without case (its values are folded
    /// before they are compared): `StringEqualsIgnoreCase`, its negation,
    /// and `Bool`.
    pub fn ignores_case(self) -> bool {
        matches!(self.base, Base::StringEqualsIgnoreCase | Base::Bool)
    }

    fn accepts_variables(self) -> bool {
        matches!(
            self.base,
            Base::StringEquals
                | Base::StringEqualsIgnoreCase
                | Base::StringLike
                | Base::Arn
                | Base::Bool
        )
    }
}

fn unknown_operator(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let mut candidates = Vec::new();
    for (n, base, _) in OPERATORS {
        candidates.push(n.to_string());
        if *base != Base::Null {
            candidates.push(format!("{n}IfExists"));
        }
    }
    let prefixed: Vec<String> = candidates
        .iter()
        .filter(|c| !c.starts_with("Null"))
        .flat_map(|c| [format!("ForAllValues:{c}"), format!("ForAnyValue:{c}")])
        .collect();
    candidates.extend(prefixed);
    match candidates.iter().find(|c| c.to_ascii_lowercase() == lower) {
        Some(c) => format!(
            "unknown condition operator `{name}`: operator names are case-sensitive, write `{c}`"
        ),
        None => format!(
            "unknown condition operator `{name}`: see the operator list in docs/semantics.md (e.g. `StringEquals`, `ArnLike`, `IpAddress`, `ForAnyValue:StringLike`)"
        ),
    }
}

/// Pre-parsed policy values of one condition key.
#[derive(Debug, Clone, PartialEq)]
enum Operands {
    Strings(Box<[Pattern]>),
    Arns(Box<[ArnPattern]>),
    Numbers(Box<[Decimal]>),
    Dates(Box<[Timestamp]>),
    Binary(Box<[Box<str>]>),
    Ips(Box<[IpNet]>),
    Null(Box<[bool]>),
}

/// One compiled condition: an operator, a key and the key's policy values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    op: Operator,
    key: Box<str>,
    operands: Operands,
    /// The operator and key as written, for explanations.
    label: (Box<str>, Box<str>),
    /// The values as written, for explanations.
    written: Box<[Box<str>]>,
}

impl Condition {
    /// Compiles one `Operator: { key: values }` entry. `variables` says
    /// whether policy variables are read (Version 2012-10-17).
    pub(crate) fn new(
        op: Operator,
        key: &str,
        values: &[&str],
        variables: bool,
    ) -> Result<Self, String> {
        let vars = variables && op.accepts_variables();
        if values.is_empty() {
            return Err(format!(
                "condition key `{key}` has no values: give at least one"
            ));
        }
        let no_vars_hint = |v: &str| {
            if variables && v.contains("${") {
                " (policy variables are allowed only with String, Arn and Bool operators)"
            } else {
                ""
            }
        };
        let operands = match op.base {
            Base::StringEquals | Base::StringEqualsIgnoreCase | Base::StringLike => {
                let syntax = Syntax {
                    wildcards: op.base == Base::StringLike,
                    variables: vars,
                    fold: op.base == Base::StringEqualsIgnoreCase,
                };
                Operands::Strings(
                    values
                        .iter()
                        .map(|v| Pattern::new(v, syntax).map_err(|e| format!("value `{v}`: {e}")))
                        .collect::<Result<_, _>>()?,
                )
            }
            Base::Bool => {
                let syntax = Syntax { wildcards: false, variables: vars, fold: true };
                let mut pats = Vec::with_capacity(values.len());
                for v in values {
                    let p = Pattern::new(v, syntax).map_err(|e| format!("value `{v}`: {e}"))?;
                    if !p.has_variables() && !matches!(p.as_literal(), Some("true" | "false")) {
                        return Err(format!("`{v}` is not a boolean: write `true` or `false`"));
                    }
                    pats.push(p);
                }
                Operands::Strings(pats.into())
            }
            Base::Arn => {
                let syntax =
                    ArnSyntax { variables: vars, variables_anywhere: true, literal_service: false };
                Operands::Arns(
                    values
                        .iter()
                        .map(|v| ArnPattern::new(v, syntax).map_err(|e| format!("value `{v}`: {e}")))
                        .collect::<Result<_, _>>()?,
                )
            }
            Base::Numeric(_) => Operands::Numbers(
                values
                    .iter()
                    .map(|v| {
                        Decimal::parse(v).ok_or_else(|| {
                            format!("`{v}` is not a number: write an integer or a decimal such as `10` or `2.5`{}", no_vars_hint(v))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Base::Date(_) => Operands::Dates(
                values
                    .iter()
                    .map(|v| {
                        parse_date(v).ok_or_else(|| {
                            format!("`{v}` is not a date: write ISO 8601 (`2026-01-31T12:00:00Z`, `2026-01-31`) or epoch seconds{}", no_vars_hint(v))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Base::BinaryEquals => {
                use base64::Engine as _;
                let engine = base64::engine::general_purpose::STANDARD;
                Operands::Binary(
                    values
                        .iter()
                        .map(|v| {
                            engine.decode(v).map(|bytes| engine.encode(bytes).into()).map_err(|_| {
                                format!("`{v}` is not base64: BinaryEquals values are base64-encoded bytes{}", no_vars_hint(v))
                            })
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            Base::IpAddress => Operands::Ips(
                values
                    .iter()
                    .map(|v| {
                        parse_cidr(v).ok_or_else(|| {
                            format!("`{v}` is not an IP address or CIDR block: write `203.0.113.0/24`, `2001:db8::/32` or a single address{}", no_vars_hint(v))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Base::Null => Operands::Null(
                values
                    .iter()
                    .map(|v| match v.to_ascii_lowercase().as_str() {
                        "true" => Ok(true),
                        "false" => Ok(false),
                        _ => Err(format!("`{v}` is not a boolean: `Null` takes `true` (the key is absent) or `false` (the key is present)")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Self {
            op,
            key: crate::context::fold(key).into(),
            operands,
            label: ("".into(), key.into()),
            written: values.iter().map(|v| Box::from(*v)).collect(),
        })
    }

    /// The same condition, knowing the operator's name as written.
    pub(crate) fn named(mut self, operator: &str) -> Self {
        self.label.0 = operator.into();
        self
    }

    /// The operator's name and the key, as written.
    pub(crate) fn label(&self) -> (&str, &str) {
        (&self.label.0, &self.label.1)
    }

    /// The values as written.
    pub(crate) fn written(&self) -> &[Box<str>] {
        &self.written
    }

    /// The key, lowercase.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Evaluates the condition against the request context.
    pub(crate) fn eval(&self, ctx: &Context) -> bool {
        let values = ctx.get_folded(&self.key);
        if let Operands::Null(expect) = &self.operands {
            let absent = values.is_none();
            return expect.contains(&absent);
        }
        match self.op.qualifier {
            None => match values {
                None => self.op.if_exists || self.op.negated,
                Some(Values::Multi(_)) => false,
                Some(Values::Single(v)) => self.eval_value(v, ctx),
            },
            Some(SetQualifier::ForAllValues) => match values {
                None => true,
                Some(Values::Single(v)) => self.eval_value(v, ctx),
                Some(Values::Multi(vs)) => {
                    vs.iter().all(|v| v.is_empty()) || vs.iter().all(|v| self.eval_value(v, ctx))
                }
            },
            Some(SetQualifier::ForAnyValue) => match values {
                None => self.op.if_exists,
                Some(Values::Single(v)) => self.eval_value(v, ctx),
                Some(Values::Multi(vs)) => vs.iter().any(|v| self.eval_value(v, ctx)),
            },
        }
    }

    /// One request value: does it match a policy value (positive operators),
    /// or match none of them (negated operators)?
    fn eval_value(&self, v: &str, ctx: &Context) -> bool {
        self.matches_any(v, ctx) != self.op.negated
    }

    fn matches_any(&self, v: &str, ctx: &Context) -> bool {
        match &self.operands {
            Operands::Strings(pats) => pats.iter().any(|p| p.matches(v, ctx)),
            Operands::Arns(pats) => {
                crate::arn::Arn::parse(v).is_some_and(|a| pats.iter().any(|p| p.matches(&a, ctx)))
            }
            Operands::Numbers(ns) => {
                let Base::Numeric(cmp) = self.op.base else {
                    return false;
                };
                DecimalRef::parse(v).is_some_and(|x| ns.iter().any(|n| cmp.holds(x.cmp_owned(n))))
            }
            Operands::Dates(ds) => {
                let Base::Date(cmp) = self.op.base else {
                    return false;
                };
                parse_date(v).is_some_and(|t| ds.iter().any(|d| cmp.holds(t.cmp(d))))
            }
            Operands::Binary(bs) => bs.iter().any(|b| **b == *v),
            Operands::Ips(nets) => v
                .parse::<IpAddr>()
                .is_ok_and(|ip| nets.iter().any(|n| n.contains(&ip))),
            Operands::Null(_) => false,
        }
    }
}

// === operand parsing ===

fn parse_cidr(v: &str) -> Option<IpNet> {
    if let Ok(net) = v.parse::<IpNet>() {
        return Some(net.trunc());
    }
    v.parse::<IpAddr>().ok().map(IpNet::from)
}

/// Reads a date: epoch seconds (`1700000000`, `1700000000.5`), an ISO 8601
/// instant with an offset, or a date and time without one (taken as UTC), or a
/// date alone (midnight UTC).
pub(crate) fn parse_date(v: &str) -> Option<Timestamp> {
    let v = v.trim();
    if let Some(d) = DecimalRef::parse(v) {
        let secs: i64 = d.int.parse().ok()?;
        let secs = if d.neg { -secs } else { secs };
        // Nanoseconds from up to nine fraction digits, without allocating:
        // dates are compared on the hot path.
        let digits = d.frac.get(..d.frac.len().min(9))?;
        let mut nanos: i32 = 0;
        for b in digits.bytes() {
            nanos = nanos * 10 + i32::from(b - b'0');
        }
        for _ in digits.len()..9 {
            nanos *= 10;
        }
        let nanos = if d.neg { -nanos } else { nanos };
        return Timestamp::new(secs, nanos).ok();
    }
    if let Ok(t) = v.parse::<Timestamp>() {
        return Some(t);
    }
    if let Ok(dt) = v.parse::<jiff::civil::DateTime>() {
        return jiff::tz::Offset::UTC.to_timestamp(dt).ok();
    }
    if let Ok(d) = v.parse::<jiff::civil::Date>() {
        return jiff::tz::Offset::UTC.to_timestamp(d.at(0, 0, 0, 0)).ok();
    }
    None
}

/// An exact decimal number, normalized: no leading zeros in the integer
/// part, no trailing zeros in the fraction, and no negative zero. Compared
/// digit by digit, so `10000000000000001` and `1e16`-sized values stay exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal {
    neg: bool,
    int: Box<str>,
    frac: Box<str>,
}

impl Decimal {
    fn parse(v: &str) -> Option<Self> {
        let d = DecimalRef::parse(v)?;
        Some(Self {
            neg: d.neg,
            int: d.int.into(),
            frac: d.frac.into(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct DecimalRef<'a> {
    neg: bool,
    int: &'a str,
    frac: &'a str,
}

impl<'a> DecimalRef<'a> {
    fn parse(v: &'a str) -> Option<Self> {
        let v = v.trim();
        let (neg, digits) = match v.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, v.strip_prefix('+').unwrap_or(v)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if digits.contains('.') && (frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        let int = int.trim_start_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        let frac = frac.trim_end_matches('0');
        let neg = neg && !(int == "0" && frac.is_empty());
        Some(Self { neg, int, frac })
    }

    fn cmp_owned(self, other: &Decimal) -> Ordering {
        let magnitude = self
            .int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac));
        match (self.neg, other.neg) {
            (false, false) => magnitude,
            (true, true) => magnitude.reverse(),
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
        }
    }
}

#[cfg(test)]
mod tests;
