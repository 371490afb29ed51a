//! `iamd authorize --authzen`: one question to an AuthZEN PDP (iamd's
//! `--authzen-listen`, or any other), over HTTP/1.1, or HTTPS with the same
//! TLS flags as the gRPC client.

use super::authorize::AuthorizeArgs;
use super::request::context_args;

/// The AuthZEN request of `args`: `--principal TYPE/ID`, `--action NAME`,
/// `--resource TYPE/ID`, `--context KEY=VALUE` as context fields, and
/// `--explain` as `options.iamd_reasons`.
pub(crate) fn request(args: &AuthorizeArgs) -> Result<serde_json::Value, String> {
    let entity = |flag: &str, text: &str| match text.split_once('/') {
        Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {
            Ok(serde_json::json!({"type": kind, "id": id}))
        }
        _ => Err(format!(
            "`--{flag} {text}`: over AuthZEN write `TYPE/ID` (`user/alice`, `record/record-1`)"
        )),
    };
    let mut body = serde_json::json!({
        "subject": entity("principal", &args.request.principal)?,
        "action": {"name": args.request.action},
        "resource": entity("resource", &args.request.resource)?,
    });
    let context = context_args(&args.request.context)?;
    if !context.is_empty() {
        let fields: serde_json::Map<String, serde_json::Value> = context
            .into_iter()
            .map(|(k, mut v)| {
                let value = if v.len() == 1 {
                    serde_json::Value::from(v.remove(0))
                } else {
                    serde_json::Value::from(v)
                };
                (k, value)
            })
            .collect();
        body["context"] = fields.into();
    }
    if args.explain {
        body["options"] = serde_json::json!({"iamd_reasons": true});
    }
    Ok(body)
}

/// POSTs `body` to `{url}/access/v1/evaluation`: the status and the
/// answer's body. HTTPS trusts `--tls-ca` (or the system's roots) and
/// presents `--tls-client-cert`.
pub(crate) fn evaluate(
    args: &AuthorizeArgs,
    url: &str,
    body: &serde_json::Value,
) -> Result<(u16, String), String> {
    use iamd_source::client::{Client, ClientOptions, Request};
    let d = &args.daemon;
    if d.tls_ca.is_some() && !url.starts_with("https://") {
        return Err(format!(
            "`--tls-ca` is TLS but `{url}` is not: write `https://`"
        ));
    }
    let client = Client::new(ClientOptions {
        ca_file: d.tls_ca.clone(),
        client_cert: d.tls_client_cert.clone(),
        client_key: d.tls_client_key.clone(),
        server_name: d.tls_server_name.clone(),
        ..ClientOptions::default()
    })?;
    let endpoint = format!("{}/access/v1/evaluation", url.trim_end_matches('/'));
    let mut request = Request::post_body(endpoint, body.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json")?;
    if let Some(token) = &args.token {
        request = request.header(hyper::header::AUTHORIZATION, &format!("Bearer {token}"))?;
    }
    let response = client
        .send(request)
        .map_err(|e| format!("the PDP at `{url}`: {e}"))?;
    Ok((
        response.status(),
        String::from_utf8_lossy(response.body()).into_owned(),
    ))
}

/// Prints an answer: `ALLOW` or `DENY` (and iamd's reasons, when the PDP
/// gave them), or the JSON as it came.
pub(crate) fn print(body: &str, json: bool) -> Result<(), String> {
    if json {
        println!("{body}");
        return Ok(());
    }
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let decision = v["decision"]
        .as_bool()
        .ok_or_else(|| format!("the answer has no decision: {body}"))?;
    let c = &v["context"];
    match c["outcome"].as_str() {
        Some(outcome) => println!(
            "{outcome}  (bundle {})",
            c["revision"].as_str().unwrap_or("?")
        ),
        None => println!("{}", if decision { "ALLOW" } else { "DENY" }),
    }
    for d in c["determining"].as_array().into_iter().flatten() {
        println!(
            "  {} by {} statement {} ({})",
            d["effect"].as_str().unwrap_or(""),
            d["policy"].as_str().unwrap_or(""),
            d["statement"],
            d["layer"].as_str().unwrap_or("")
        );
    }
    if let Some(layer) = c["denied_by"].as_str().filter(|l| *l != "principal") {
        println!("  no allow in the {layer} layer");
    }
    if let Some(reason) = c["reason"].as_str() {
        println!("  {reason}");
    }
    if let Some(n) = c.get("nearest_allow") {
        println!(
            "  nearest allow: {} statement {} `{}` ({})",
            n["policy"].as_str().unwrap_or(""),
            n["statement"],
            n["sid"].as_str().unwrap_or(""),
            n["layer"].as_str().unwrap_or("")
        );
        for f in c["failed"].as_array().into_iter().flatten() {
            println!("    - {}", f.as_str().unwrap_or(""));
        }
    }
    if let Some(keys) = c["missing_context_keys"].as_array() {
        let keys: Vec<&str> = keys.iter().filter_map(|k| k.as_str()).collect();
        println!("  missing context keys: {}", keys.join(", "));
    }
    Ok(())
}
