//! `iamd authorize`: one question to a running daemon.

use std::process::ExitCode;

use super::client::DaemonArgs;
use super::request::{RequestArgs, context_args};
use super::runtime;

/// `iamd authorize` options.
#[derive(Debug, clap::Args)]
pub(crate) struct AuthorizeArgs {
    #[command(flatten)]
    pub(crate) daemon: DaemonArgs,
    #[command(flatten)]
    pub(crate) request: RequestArgs,
    /// Explain a deny: the layer, the nearest allow and what failed in it,
    /// the missing context keys.
    #[arg(long)]
    pub(crate) explain: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Ask over AuthZEN: `--addr` is the PDP's base URL
    /// (`http://127.0.0.1:8181`), `--principal` and `--resource` are
    /// `TYPE/ID`, `--action` the action's name, `--context` context fields.
    #[arg(long)]
    pub(crate) authzen: bool,
    /// A bearer token for the AuthZEN PDP.
    #[arg(
        long,
        env = "IAMD_AUTHZEN_TOKEN",
        requires = "authzen",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
}

pub(crate) fn run(args: AuthorizeArgs) -> ExitCode {
    use iamd_proto::pb;
    if args.authzen {
        return run_authzen(&args);
    }
    let (addr, endpoint) = (args.daemon.url(), args.daemon.endpoint());
    let endpoint = match endpoint {
        Ok(e) => e,
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    let context = match context_args(&args.request.context) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    let context = context
        .into_iter()
        .map(|(k, mut v)| {
            let kind = if v.len() == 1 {
                pb::context_value::Kind::Single(v.remove(0))
            } else {
                pb::context_value::Kind::Multi(pb::StringList { values: v })
            };
            (k, pb::ContextValue { kind: Some(kind) })
        })
        .collect();
    let request = pb::AuthorizeRequest {
        principal: args.request.principal,
        action: args.request.action,
        resource: args.request.resource,
        context,
        resource_account: String::new(),
        explain: args.explain,
        signed: None,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let answer = rt.block_on(async move {
        let channel = endpoint.connect().await.map_err(|e| {
            let cause = std::error::Error::source(&e).map_or(String::new(), |s| format!(": {s}"));
            format!("cannot reach the daemon at `{addr}`: {e}{cause}")
        })?;
        let mut client = pb::authorizer_client::AuthorizerClient::new(channel);
        client
            .authorize(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    });
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    print_answer(&answer, args.json);
    ExitCode::SUCCESS
}

fn run_authzen(args: &AuthorizeArgs) -> ExitCode {
    let body = match super::authzen::request(args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    let url = args.daemon.url();
    match super::authzen::evaluate(args, &url, &body) {
        Ok((200, answer)) => match super::authzen::print(&answer, args.json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("iamd: {e}");
                ExitCode::from(1)
            }
        },
        Ok((status, answer)) => {
            eprintln!("iamd: the PDP answered {status}: {answer}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("iamd: {e}");
            ExitCode::from(2)
        }
    }
}

pub(crate) fn print_answer(a: &iamd_proto::pb::AuthorizeResponse, json: bool) {
    use iamd_proto::pb;
    let decision = pb::Decision::try_from(a.decision).unwrap_or(pb::Decision::Unspecified);
    let name = match decision {
        pb::Decision::Allow => "ALLOW",
        pb::Decision::ExplicitDeny => "EXPLICIT_DENY",
        pb::Decision::ImplicitDeny => "IMPLICIT_DENY",
        pb::Decision::Unspecified => "UNSPECIFIED",
    };
    if json {
        let determining: Vec<serde_json::Value> = a
            .determining
            .iter()
            .map(pb::DeterminingStatement::to_json)
            .collect();
        let explanation = a.explanation.as_ref().map(|e| {
            serde_json::json!({"layer": e.layer, "nearestAllow": e.nearest_allow.as_ref().map(|n| serde_json::json!({
                "policy": n.policy, "layer": n.layer, "statement": n.index, "sid": n.sid})),
                "failed": e.failed, "missingContextKeys": e.missing_context_keys})
        });
        let v = serde_json::json!({"decision": name, "revision": a.revision, "determining": determining,
            "deniedBy": a.denied_by, "reason": a.reason, "explanation": explanation});
        println!("{v}");
        return;
    }
    println!("{name}  (bundle {})", a.revision);
    for d in &a.determining {
        let effect = d.effect_name();
        let sid = if d.sid.is_empty() {
            String::new()
        } else {
            format!(" `{}`", d.sid)
        };
        println!(
            "  {effect} by {} statement {}{sid} ({})",
            d.policy, d.index, d.layer
        );
    }
    if !a.denied_by.is_empty() && a.denied_by != "principal" {
        println!("  no allow in the {} layer", a.denied_by);
    }
    if !a.reason.is_empty() {
        println!("  {}", a.reason);
    }
    if let Some(e) = &a.explanation {
        if let Some(n) = &e.nearest_allow {
            let sid = if n.sid.is_empty() {
                String::new()
            } else {
                format!(" `{}`", n.sid)
            };
            println!(
                "  nearest allow: {} statement {}{sid} ({})",
                n.policy, n.index, n.layer
            );
            for f in &e.failed {
                println!("    - {f}");
            }
        } else if e.layer != "principal" && decision == pb::Decision::ImplicitDeny {
            println!(
                "  no allow statement of the {} layer is about this action",
                e.layer
            );
        }
        if !e.missing_context_keys.is_empty() {
            println!(
                "  missing context keys: {}",
                e.missing_context_keys.join(", ")
            );
        }
    }
}
