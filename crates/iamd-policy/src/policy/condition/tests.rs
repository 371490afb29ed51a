use super::*;
use crate::context::ContextValue;

fn cond(op: &str, key: &str, values: &[&str]) -> Condition {
    Condition::new(Operator::parse(op).unwrap(), key, values, true).unwrap()
}

fn ctx(pairs: &[(&str, ContextValue)]) -> Context {
    let mut c = Context::new();
    for (k, v) in pairs {
        c.insert(*k, v.clone()).unwrap();
    }
    c
}

fn one(v: &str) -> ContextValue {
    ContextValue::Single(v.into())
}

#[test]
fn operator_names() {
    let op = Operator::parse("ForAnyValue:StringNotLikeIfExists").unwrap();
    assert_eq!(op.base, Base::StringLike);
    assert!(op.negated && op.if_exists);
    assert_eq!(op.qualifier, Some(SetQualifier::ForAnyValue));
    assert!(Operator::parse("NullIfExists").is_err());
    assert!(Operator::parse("ForAllValues:Null").is_err());
    let err = Operator::parse("stringequals").unwrap_err();
    assert!(err.contains("write `StringEquals`"), "{err}");
    assert!(
        Operator::parse("StringMatches")
            .unwrap_err()
            .contains("unknown condition operator")
    );
}

#[test]
fn decimals_compare_exactly() {
    let c = cond("NumericLessThan", "k:n", &["10000000000000001"]);
    assert!(c.eval(&ctx(&[("k:n", one("10000000000000000"))])));
    assert!(!c.eval(&ctx(&[("k:n", one("10000000000000001"))])));
    let c = cond("NumericEquals", "k:n", &["1.50"]);
    assert!(c.eval(&ctx(&[("k:n", one("001.5"))])));
    assert!(!c.eval(&ctx(&[("k:n", one("1.05"))])));
    let c = cond("NumericGreaterThan", "k:n", &["-2"]);
    assert!(c.eval(&ctx(&[("k:n", one("-1.5"))])));
    assert!(!c.eval(&ctx(&[("k:n", one("-2.5"))])));
    assert!(c.eval(&ctx(&[("k:n", one("0"))])));
    let c = cond("NumericEquals", "k:n", &["0"]);
    assert!(c.eval(&ctx(&[("k:n", one("-0.0"))])));
    // Not a number: no match, and the negated operator matches.
    assert!(!c.eval(&ctx(&[("k:n", one("zero"))])));
    assert!(cond("NumericNotEquals", "k:n", &["0"]).eval(&ctx(&[("k:n", one("zero"))])));
    assert!(
        Condition::new(
            Operator::parse("NumericEquals").unwrap(),
            "k:n",
            &["1e3"],
            true
        )
        .is_err()
    );
}

#[test]
fn dates_compare_as_instants() {
    assert_eq!(parse_date("2026-01-01"), parse_date("2026-01-01T00:00:00Z"));
    assert_eq!(
        parse_date("2026-01-01T00:00:00"),
        parse_date("2026-01-01T00:00:00Z")
    );
    assert_eq!(parse_date("1767225600"), parse_date("2026-01-01T00:00:00Z"));
    assert_eq!(
        parse_date("2026-01-01T01:00:00+01:00"),
        parse_date("2026-01-01T00:00:00Z")
    );
    assert!(parse_date("1767225600.5").unwrap() > parse_date("1767225600").unwrap());
    assert_eq!(
        parse_date("1767225600.25").unwrap(),
        parse_date("2026-01-01T00:00:00.25Z").unwrap()
    );
    assert_eq!(
        parse_date("-1.5").unwrap(),
        parse_date("1969-12-31T23:59:58.5Z").unwrap()
    );
    assert_eq!(parse_date("yesterday"), None);
    let c = cond("DateLessThan", "aws:CurrentTime", &["2026-01-01T00:00:00Z"]);
    assert!(c.eval(&ctx(&[("aws:currenttime", one("1767225599"))])));
    assert!(!c.eval(&ctx(&[("aws:currenttime", one("2026-01-01"))])));
}

#[test]
fn ip_addresses() {
    let c = cond(
        "IpAddress",
        "aws:SourceIp",
        &["203.0.113.0/24", "2001:DB8:1234:5678::/64", "198.51.100.7"],
    );
    for (ip, want) in [
        ("203.0.113.200", true),
        ("203.0.114.1", false),
        ("2001:db8:1234:5678::1", true),
        ("2001:db8:1234:5679::1", false),
        ("198.51.100.7", true),
        ("198.51.100.8", false),
        ("not-an-ip", false),
    ] {
        assert_eq!(c.eval(&ctx(&[("aws:SourceIp", one(ip))])), want, "{ip}");
    }
}

#[test]
fn binary_compares_base64_text() {
    let c = cond("BinaryEquals", "k:b", &["QmluYXJ5VmFsdWVJbkJhc2U2NA=="]);
    assert!(c.eval(&ctx(&[("k:b", one("QmluYXJ5VmFsdWVJbkJhc2U2NA=="))])));
    assert!(!c.eval(&ctx(&[("k:b", one("QmluYXJ5"))])));
    assert!(
        Condition::new(
            Operator::parse("BinaryEquals").unwrap(),
            "k:b",
            &["%%%"],
            true
        )
        .is_err()
    );
}

#[test]
fn bool_values_are_checked() {
    assert!(
        Condition::new(
            Operator::parse("Bool").unwrap(),
            "aws:SecureTransport",
            &["yes"],
            true
        )
        .is_err()
    );
    let c = cond("Bool", "aws:SecureTransport", &["TRUE"]);
    assert!(c.eval(&ctx(&[("aws:SecureTransport", one("true"))])));
    assert!(!c.eval(&ctx(&[("aws:SecureTransport", one("false"))])));
}
