use super::*;

fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
    Policy::parse(&Source::new("p.json", text), kind)
}

fn errors(text: &str, kind: PolicyKind) -> Vec<String> {
    parse(text, kind)
        .unwrap_err()
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_minimal_policy_compiles() {
    let p = parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}}"#,
        PolicyKind::Identity,
    )
    .unwrap();
    assert_eq!(p.statements().len(), 1);
    assert!(p.statements()[0].matches_action("S3:GetObject"));
    assert_eq!(p.version(), Some(Version::V2012_10_17));
}

#[test]
fn every_problem_is_reported_with_its_place() {
    let text = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "A", "Effect": "allow", "Action": "s3:GetObject", "Resource": "*"},
    {"Sid": "B", "Effect": "Deny", "Action": "GetObject", "Resource": "bucket"},
    {"Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "*",
     "Condition": {"StringEqual": {"aws:username": "x"}}}
  ]
}"#;
    let errs = errors(text, PolicyKind::Identity);
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(errs[0].starts_with("p.json:4:28: statement 0 (`A`): `Effect` is `Allow` or `Deny`, found `allow` (the value is case-sensitive)"), "{}", errs[0]);
    assert!(
        errs[1].starts_with(
            "p.json:5:46: statement 1 (`B`): action `GetObject` has no service prefix"
        ),
        "{}",
        errs[1]
    );
    assert!(
        errs[2].starts_with("p.json:5:71: statement 1 (`B`): resource `bucket`: not an ARN"),
        "{}",
        errs[2]
    );
    assert!(
        errs[3].contains("statement 2 (`A`): `Sid` `A` is used by an earlier statement"),
        "{}",
        errs[3]
    );
    assert!(
        errs[4].contains("unknown condition operator `StringEqual`"),
        "{}",
        errs[4]
    );
}

#[test]
fn duplicate_keys_are_errors() {
    let errs = errors(
        r#"{"Statement":{"Effect":"Allow","Effect":"Deny","Action":"a:b","Resource":"*"}}"#,
        PolicyKind::Identity,
    );
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("`Effect` appears twice"), "{}", errs[0]);
    let errs = errors(
        r#"{"Statement":{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"},"Bool":{"aws:SecureTransport":"false"}}}}"#,
        PolicyKind::Identity,
    );
    assert!(
        errs[0].contains("condition operator `Bool` appears twice"),
        "{}",
        errs[0]
    );
}

#[test]
fn element_rules_depend_on_the_policy_kind() {
    let with_principal =
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"a:b","Resource":"*"}}"#;
    assert!(
        errors(with_principal, PolicyKind::Identity)[0]
            .contains("`Principal` is not allowed in an identity policy")
    );
    assert!(
        errors(with_principal, PolicyKind::Scp)[0]
            .contains("`Principal` is not allowed in a service control policy")
    );
    assert!(parse(with_principal, PolicyKind::Resource).is_ok());
    let no_principal = r#"{"Statement":{"Effect":"Allow","Action":"a:b"}}"#;
    assert!(errors(no_principal, PolicyKind::Resource)[0].contains("has no `Principal`"));
    assert!(
        errors(no_principal, PolicyKind::Identity)[0]
            .contains("has no `Resource` or `NotResource`")
    );
    let not_principal_allow =
        r#"{"Statement":{"Effect":"Allow","NotPrincipal":{"AWS":"111122223333"},"Action":"a:b"}}"#;
    assert!(
        errors(not_principal_allow, PolicyKind::Resource)[0]
            .contains("`NotPrincipal` is supported only with")
    );
}

#[test]
fn invalid_json_names_the_place() {
    let errs = errors("{\n  \"Statement\": [\n}", PolicyKind::Identity);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("p.json:3:1: invalid JSON"),
        "{}",
        errs[0]
    );
}

#[test]
fn principals_are_checked() {
    let errs = errors(
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/*","arn:aws:iam::111122223333:group/g"],"aws":"x"},"Action":"a:b"}}"#,
        PolicyKind::Resource,
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].contains("wildcards are not allowed in principals"));
    assert!(errs[1].contains("groups cannot be principals"));
    assert!(errs[2].contains("unknown principal type `aws`: write `AWS`"));
}

#[test]
fn unknown_elements_get_a_hint() {
    let errs = errors(r#"{"statement":[]}"#, PolicyKind::Identity);
    assert!(
        errs.iter().any(|e| e.contains(
            "p.json:1:2: unknown element `statement`: element names are case-sensitive, write `Statement`"
        )),
        "{errs:#?}"
    );
}

#[test]
fn a_bad_element_is_reported_once() {
    let errs = errors(
        r#"{"Statement":[{"Effect":5,"Action":"a:b","Resource":"*"}, "x"]}"#,
        PolicyKind::Identity,
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].contains("statement 0: `Effect` is a string, found a number"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].contains("statement 1: a statement is a JSON object, found a string"),
        "{}",
        errs[1]
    );
    let errs = errors(
        r#"{"Statement":{"Effect":"Allow","Principal":5,"Action":"a:b"}}"#,
        PolicyKind::Resource,
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains("`Principal` is `\"*\"` or an object"),
        "{}",
        errs[0]
    );
}
