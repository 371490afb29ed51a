//! `iamd explain`: one request's whole evaluation, offline.

use crate::cli::iamd;

fn explain(extra: &[&str]) -> String {
    let mut args = vec![
        "explain",
        "examples/bundle",
        "--principal",
        "user/alice",
        "--action",
        "docs:GetDocument",
        "--resource",
        "arn:acme:docs:eu-1:123456789012:doc/guide",
    ];
    args.extend_from_slice(extra);
    let out = iamd(&args, "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_deny_shows_every_layer_and_the_failing_condition_with_both_values() {
    let text = explain(&["--context", "docs:Team=platform"]);
    for expected in [
        "request\n  principal  arn:aws:iam::123456789012:user/engineering/alice\n",
        "             aws:username = `alice`\n",
        "             docs:Team = `platform`\n",
        "\nscp[0]\n  FullAccess\n    statement 0 (Allow): MATCHES\n",
        "\nidentity\n",
        "  user/alice#own-drafts\n    (1 statement not about `docs:GetDocument`)\n",
        "    statement 0 `ReadTeamDocuments` (Allow): does not match\n      action     matches\n      resource   matches\n      condition  StringEquals `docs:Team`: policy `${aws:PrincipalTag/team}` (= `docs`), request `platform`: fails\n",
        "\ndecision: IMPLICIT_DENY\n  no allow in the identity layer\n  nearest allow: Allow by DocsRead statement 0 `ReadTeamDocuments` (identity)\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // The boundary layer is absent for alice, and so is any Deny here.
    assert!(!text.contains("\nboundary\n"), "{text}");
}

#[test]
fn an_allow_and_every_statement_with_all() {
    let text = explain(&["--context", "docs:Team=docs", "--all"]);
    assert!(
        text.contains("statement 0 `ReadTeamDocuments` (Allow): MATCHES\n"),
        "{text}"
    );
    assert!(
        text.contains("statement 0 `WriteOwnDrafts` (Allow): not about `docs:GetDocument`\n"),
        "{text}"
    );
    assert!(text.contains("      condition  StringEquals `docs:Team`: policy `${aws:PrincipalTag/team}` (= `docs`), request `docs`: holds\n"), "{text}");
    assert!(
        text.ends_with(
            "\ndecision: ALLOW\n  Allow by DocsRead statement 0 `ReadTeamDocuments` (identity)\n"
        ),
        "{text}"
    );
}

#[test]
fn an_unknown_principal_and_bad_arguments() {
    let out = iamd(
        &[
            "explain",
            "examples/bundle",
            "--principal",
            "user/mallory",
            "--action",
            "docs:GetDocument",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("principal `user/mallory` is not in the bundle")
    );
    let out = iamd(
        &[
            "explain",
            "examples/bundle",
            "--principal",
            "user/alice",
            "--action",
            "docs:GetDocument",
            "--context",
            "novalue",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`--context novalue`: write `KEY=VALUE`")
    );
}
