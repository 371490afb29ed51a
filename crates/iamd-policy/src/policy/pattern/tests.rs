use super::*;
use crate::context::ContextValue;

const LIKE: Syntax = Syntax {
    wildcards: true,
    variables: true,
    fold: false,
};
const EQUALS: Syntax = Syntax {
    wildcards: false,
    variables: true,
    fold: false,
};
const ACTION: Syntax = Syntax {
    wildcards: true,
    variables: false,
    fold: true,
};

fn m(pattern: &str, syntax: Syntax, text: &str) -> bool {
    m_ctx(pattern, syntax, text, &Context::new())
}

fn m_ctx(pattern: &str, syntax: Syntax, text: &str, ctx: &Context) -> bool {
    Pattern::new(pattern, syntax).unwrap().matches(text, ctx)
}

#[test]
fn strategies_are_chosen_by_shape() {
    let s = |p: &str| Pattern::new(p, LIKE).unwrap().strategy;
    assert_eq!(s("*"), Strategy::Any);
    assert_eq!(s("**"), Strategy::Any);
    assert_eq!(s("abc"), Strategy::Exact("abc".into()));
    assert_eq!(s("ab*"), Strategy::Prefix("ab".into()));
    assert_eq!(s("*ab"), Strategy::Suffix("ab".into()));
    assert_eq!(s("a*b"), Strategy::Glob);
    assert_eq!(s("a?"), Strategy::Glob);
    assert_eq!(s("a${aws:username}"), Strategy::Template);
}

#[test]
fn wildcards() {
    assert!(m("a*b", LIKE, "ab"));
    assert!(m("a*b", LIKE, "axxb"));
    assert!(!m("a*b", LIKE, "axxc"));
    assert!(m("a?c", LIKE, "abc"));
    assert!(!m("a?c", LIKE, "ac"));
    assert!(m("a?c", LIKE, "aéc"));
    assert!(m("*a*b*", LIKE, "xxaybz"));
    assert!(!m("*a*b*", LIKE, "xxbya"));
    assert!(m("bucket/*/test/*", LIKE, "bucket/1/2/test/3/x"));
    assert!(m("bucket/*/test/*", LIKE, "bucket//test/x"));
    assert!(m("*ab", LIKE, "abab"));
    assert!(m("a*a", LIKE, "aa"));
    assert!(!m("a*a", LIKE, "a"));
    assert!(m("?*?", LIKE, "ab"));
    assert!(!m("?*?", LIKE, "a"));
    assert!(m("", LIKE, ""));
    assert!(!m("", LIKE, "x"));
}

#[test]
fn wildcards_are_literal_where_the_syntax_says_so() {
    assert!(m("a*b", EQUALS, "a*b"));
    assert!(!m("a*b", EQUALS, "axb"));
}

#[test]
fn folding_ignores_case() {
    assert!(m("s3:Get*", ACTION, "S3:GETOBJECT"));
    assert!(m("iam:*AccessKey*", ACTION, "IAM:CreateAccessKey"));
    assert!(!m("s3:Get*", ACTION, "s3-object-lambda:GetObject"));
    assert!(m("ÉTÉ", ACTION, "été"));
    assert!(m("*été", ACTION, "xÉTÉ"));
    assert!(!m("abc", LIKE, "ABC"));
}

#[test]
fn variables_resolve_from_the_context() {
    let mut ctx = Context::new();
    ctx.insert("aws:username", ContextValue::Single("alice".into()))
        .unwrap();
    ctx.insert("aws:TagKeys", ContextValue::Multi(vec!["a".into()]))
        .unwrap();
    assert!(m_ctx("home/${aws:username}/*", LIKE, "home/alice/x", &ctx));
    assert!(m_ctx("home/${AWS:UserName}/*", LIKE, "home/alice/x", &ctx));
    assert!(!m_ctx("home/${aws:username}/*", LIKE, "home/bob/x", &ctx));
    // A substituted value is literal: its `*` is no wildcard.
    let mut star = Context::new();
    star.insert("aws:username", ContextValue::Single("*".into()))
        .unwrap();
    assert!(!m_ctx("home/${aws:username}", LIKE, "home/bob", &star));
    assert!(m_ctx("home/${aws:username}", LIKE, "home/*", &star));
    // No value, no default: no match.
    assert!(!m_ctx("t/${aws:PrincipalTag/team}", LIKE, "t/", &ctx));
    // Default.
    assert!(m_ctx(
        "t/${aws:PrincipalTag/team, 'all'}",
        LIKE,
        "t/all",
        &ctx
    ));
    // Multivalued keys are not variables.
    assert!(!m_ctx("${aws:TagKeys}", LIKE, "a", &ctx));
    assert!(m_ctx("${aws:TagKeys, 'd'}", LIKE, "d", &ctx));
}

#[test]
fn special_variables_are_literal_characters() {
    assert!(m("doc/a${*}b", LIKE, "doc/a*b"));
    assert!(!m("doc/a${*}b", LIKE, "doc/aXXb"));
    assert!(m("a${?}", LIKE, "a?"));
    assert!(!m("a${?}", LIKE, "ab"));
    assert!(m("${$}x", LIKE, "$x"));
}

#[test]
fn variables_are_literal_where_the_syntax_says_so() {
    let literal = Syntax {
        wildcards: true,
        variables: false,
        fold: false,
    };
    assert!(m("home/${aws:username}", literal, "home/${aws:username}"));
    // An unterminated `${` is literal text.
    assert!(m("a${b", LIKE, "a${b"));
}

#[test]
fn bad_variables_are_errors() {
    assert_eq!(Pattern::new("${}", LIKE), Err(PatternError::EmptyVariable));
    assert!(matches!(
        Pattern::new("${a, b}", LIKE),
        Err(PatternError::BadVariable(_))
    ));
    assert!(matches!(
        Pattern::new("${a b}", LIKE),
        Err(PatternError::BadVariable(_))
    ));
}

#[test]
fn a_value_may_hold_any_number_of_variables() {
    let mut ctx = Context::new();
    ctx.insert("aws:username", ContextValue::Single("alice".into()))
        .unwrap();
    ctx.insert("docs:team", ContextValue::Single("t".into()))
        .unwrap();
    // 8 resolve on the stack once; 9, 64 and a value as long as a managed
    // policy may be (6,144 characters: 409 variables) one at a time.
    for n in [8, 9, 64, 409] {
        let pattern =
            "/${aws:username}-${docs:team}".repeat(n / 2) + &"/${aws:username}".repeat(n % 2);
        let text = "/alice-t".repeat(n / 2) + &"/alice".repeat(n % 2);
        let p = Pattern::new(&pattern, LIKE).unwrap();
        assert_eq!(p.variables.len(), n);
        assert!(p.matches(&text, &ctx), "{n} variables");
        assert!(!p.matches(&format!("{text}x"), &ctx), "{n} variables");
        // One wrong value anywhere, even the last, is no match.
        let wrong = format!("{}bob", &text[..text.len() - 5]);
        assert!(!p.matches(&wrong, &ctx), "{n} variables");
        // A variable without a value matches nothing.
        let missing = format!("{pattern}${{docs:absent}}");
        assert!(!Pattern::new(&missing, LIKE).unwrap().matches(&text, &ctx));
        // With wildcards between them.
        let starred = pattern.replace('-', "*");
        assert!(Pattern::new(&starred, LIKE).unwrap().matches(&text, &ctx));
    }
    let quota = "/${aws:username}-${docs:team}".repeat(204) + "/${aws:username}";
    assert!(quota.len() <= 6144, "{}", quota.len());
}

const RESOURCE: ArnSyntax = ArnSyntax {
    variables: true,
    variables_anywhere: false,
    literal_service: true,
};
const ARN_CONDITION: ArnSyntax = ArnSyntax {
    variables: true,
    variables_anywhere: true,
    literal_service: false,
};

fn arn(pattern: &str, syntax: ArnSyntax, text: &str, ctx: &Context) -> bool {
    let p = ArnPattern::new(pattern, syntax).unwrap();
    crate::arn::Arn::parse(text).is_some_and(|a| p.matches(&a, ctx))
}

#[test]
fn arn_patterns_match_per_component() {
    let ctx = Context::new();
    let p = "arn:aws:someservice:*:111122223333:finance/*";
    assert!(!arn(
        p,
        ARN_CONDITION,
        "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt",
        &ctx
    ));
    assert!(arn(
        p,
        ARN_CONDITION,
        "arn:aws:someservice:us-east-2:111122223333:finance/document.txt",
        &ctx
    ));
    // The resource component is one component: `*` spans `/` and `:`.
    assert!(arn(
        "arn:aws:s3:::b/*",
        RESOURCE,
        "arn:aws:s3:::b/x/y:z",
        &ctx
    ));
    // Case-sensitive.
    assert!(!arn(
        "arn:aws:docs:::doc/Alice",
        RESOURCE,
        "arn:aws:docs:::doc/alice",
        &ctx
    ));
    assert!(!arn(
        "arn:AWS:docs:::doc/a",
        RESOURCE,
        "arn:aws:docs:::doc/a",
        &ctx
    ));
    // Empty components match only empty components.
    assert!(!arn(
        "arn:aws:s3:::b",
        RESOURCE,
        "arn:aws:s3:us-east-1::b",
        &ctx
    ));
    assert!(arn(
        "arn:aws:s3:*::b",
        RESOURCE,
        "arn:aws:s3:us-east-1::b",
        &ctx
    ));
}

#[test]
fn arn_pattern_errors() {
    assert_eq!(
        ArnPattern::new("arn:aws:s3", RESOURCE),
        Err(ArnPatternError::NotAnArn)
    );
    assert_eq!(
        ArnPattern::new("bucket/*", RESOURCE),
        Err(ArnPatternError::NotAnArn)
    );
    assert_eq!(
        ArnPattern::new("arn:aws:s*:::b", RESOURCE),
        Err(ArnPatternError::WildcardInService)
    );
    assert_eq!(
        ArnPattern::new("arn:aws:s3::${aws:PrincipalAccount}:b", RESOURCE),
        Err(ArnPatternError::VariableOutsideResource)
    );
    assert!(ArnPattern::new("arn:aws:s*:::b", ARN_CONDITION).is_ok());
}

#[test]
fn arn_condition_variables_may_hold_colons() {
    let mut ctx = Context::new();
    ctx.insert(
        "aws:PrincipalAccount",
        ContextValue::Single("111122223333".into()),
    )
    .unwrap();
    assert!(arn(
        "arn:aws:iam::${aws:PrincipalAccount}:role/x",
        ARN_CONDITION,
        "arn:aws:iam::111122223333:role/x",
        &ctx
    ));
}

/// The group after the last star is tried only where it can end the text
/// when its length is known (literals, ASCII `?`), and scanned for where it
/// is not (`?` in a non-ASCII text, a non-ASCII literal ignoring case): the
/// same answers either way, including a last group that would overlap the
/// groups before it.
#[test]
fn the_last_group_ends_the_text_wherever_it_is_tried() {
    // Known length.
    assert!(m("a*b*cd", LIKE, "abxcd"));
    assert!(!m("a*b*cd", LIKE, "abxc"));
    assert!(
        !m("a*ab", LIKE, "ab"),
        "the last group may not reuse the first's `a`"
    );
    assert!(m("a*ab", LIKE, "aab"));
    assert!(m("x*y?z*a?", LIKE, "xyyzzab"));
    assert!(!m("x*y?z*a?", LIKE, "xyyzza"));
    assert!(m("s3:*Get*object", ACTION, "S3:xGETyOBJECT"));
    // Unknown length: `?` in a text with multibyte characters, a literal
    // beyond ASCII ignoring case.
    assert!(m("x*a?", LIKE, "xxaé"));
    assert!(m("x*é?", LIKE, "xxéé"));
    assert!(!m("x*a??", LIKE, "xxaé"));
    assert!(m("x*ÉTÉ", ACTION, "xyété"));
    // A long text whose end is not the last group: one try.
    let long = format!("doc/{}", "a".repeat(4_000));
    let p = format!("doc/{}*b", "*a".repeat(50));
    assert!(!m(&p, LIKE, &long));
    assert!(m(&p, LIKE, &format!("{long}b")));
}

/// A group between stars that is one exact literal is found by substring
/// search: the leftmost occurrence, as the scan found it.
#[test]
fn a_literal_between_stars_is_found_leftmost() {
    assert!(m("x*aac*b", LIKE, "xaaaacb"));
    assert!(!m("x*aac*b", LIKE, "xaaaab"));
    assert!(m("x*ab*ab", LIKE, "xabab"));
    assert!(!m("x*ab*ab", LIKE, "xab"));
    assert!(m("*é*é", LIKE, "aéé"));
    let long = format!("doc/{}", "a".repeat(4_000));
    let p = format!("doc/*{}c*b", "a".repeat(20));
    assert!(!m(&p, LIKE, &long));
    assert!(m(&p, LIKE, &format!("{long}cb")));
}
