//! `iamd authorize --authzen`: one question to an AuthZEN PDP (iamd's
//! `--authzen-listen`, or any other), over HTTP/1.1, or HTTPS with the same
//! TLS flags as the gRPC client.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

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
/// answer's body.
pub(crate) async fn evaluate(
    args: &AuthorizeArgs,
    url: &str,
    body: &serde_json::Value,
) -> Result<(u16, String), String> {
    let uri: hyper::Uri = format!("{}/access/v1/evaluation", url.trim_end_matches('/'))
        .parse()
        .map_err(|e| format!("`--addr {url}`: {e}"))?;
    let https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .ok_or_else(|| format!("`--addr {url}`: no host"))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot reach the PDP at `{url}`: {e}"))?;
    let mut request = hyper::Request::builder()
        .method("POST")
        .uri(uri.path())
        .header(
            "host",
            uri.authority().map_or(host.as_str(), |a| a.as_str()),
        )
        .header("content-type", "application/json");
    if let Some(token) = &args.token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let response = if https {
        let config = tls(args)?;
        let name = args.daemon.tls_server_name.clone().unwrap_or(host);
        let name = rustls_pki_types::ServerName::try_from(name)
            .map_err(|e| format!("the PDP's name: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with `{url}`: {e}"))?;
        send(TokioIo::new(stream), request).await?
    } else if args.daemon.tls_ca.is_some() {
        return Err(format!(
            "`--tls-ca` is TLS but `{url}` is not: write `https://`"
        ));
    } else {
        send(TokioIo::new(tcp), request).await?
    };
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

async fn send<IO>(
    io: TokioIo<IO>,
    request: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(conn);
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))
}

/// The client's TLS: trusting `--tls-ca`, presenting `--tls-client-cert`.
fn tls(args: &AuthorizeArgs) -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject as _;
    use tokio_rustls::rustls;
    let Some(ca) = &args.daemon.tls_ca else {
        return Err(
            "`https://` needs `--tls-ca FILE`, the CA that signed the PDP's certificate".into(),
        );
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&read(ca)?) {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    let config = match (&args.daemon.tls_client_cert, &args.daemon.tls_client_key) {
        (Some(cert), Some(key)) => {
            let chain = rustls_pki_types::CertificateDer::pem_slice_iter(&read(cert)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&read(key)?)
                .map_err(|e| format!("{}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
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
