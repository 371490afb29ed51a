//! A bundle archive as an OCI artifact in a registry that speaks the OCI
//! Distribution API (`oci://REGISTRY/REPOSITORY:TAG`, or
//! `...@sha256:DIGEST` pinned).
//!
//! A poll asks for the manifest (by tag, re-resolved each poll; by digest,
//! asked once); a manifest whose digest is the live one's costs nothing
//! more. Otherwise the bundle's layer (media type [`LAYER_MEDIA_TYPE`], or
//! the one gzipped-tar layer) is downloaded and its SHA-256 checked against
//! the manifest's descriptor, and a pinned manifest against its digest: a
//! tampered layer or manifest is refused.
//!
//! The registry is reached over HTTPS, or over plain HTTP when it is on
//! loopback (`127.0.0.1`, `::1`, `localhost`: a test or a node-local
//! mirror). Anonymous, with a bearer token, or with a user and password
//! (HTTP Basic, and for the registries that answer with a Bearer challenge,
//! the token service asked with them); an anonymous Bearer challenge is
//! answered too (public repositories).
//!
//! [`push`] uploads an archive the same way (`iamd bundle push`).

use std::path::PathBuf;

use base64::Engine as _;
use hyper::header;
use iamd_bundle::ReadLimits;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::client::{self, Client, ClientOptions, Request, Response};
use crate::http::Polling;
use crate::remote::{Answer, Fetch, Remote, Validator};

/// The media type of a bundle archive layer.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.iamd.bundle.layer.v1.tar+gzip";
/// The artifact type of a pushed bundle.
pub const ARTIFACT_TYPE: &str = "application/vnd.iamd.bundle.v1";
/// The media type of its (empty) configuration.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.iamd.bundle.config.v1+json";
/// An OCI image manifest.
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The manifests a pull accepts.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// `oci://REGISTRY/REPOSITORY:TAG` or `oci://REGISTRY/REPOSITORY@sha256:HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`.
    pub registry: String,
    /// `path/to/repository`.
    pub repository: String,
    /// The tag, unless pinned.
    pub tag: Option<String>,
    /// The manifest's digest, when pinned.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses a reference, `oci://` optional; what is wrong, and how to write it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let how =
            "write `oci://REGISTRY/REPOSITORY:TAG` or `oci://REGISTRY/REPOSITORY@sha256:DIGEST`";
        let rest = text.strip_prefix("oci://").unwrap_or(text);
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("`{text}` has no repository: {how}"))?;
        if registry.is_empty() || registry.contains('@') {
            return Err(format!(
                "`{text}`: no registry, or credentials in it: {how} (credentials go in a file)"
            ));
        }
        let (name, tag, digest) = if let Some((name, digest)) = path.split_once('@') {
            let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
                format!("`{text}`: a pinned digest is `sha256:` and 64 hex digits")
            })?;
            if hex.len() != 64
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(format!(
                    "`{text}`: a pinned digest is `sha256:` and 64 lowercase hex digits"
                ));
            }
            (name, None, Some(digest.to_owned()))
        } else {
            // A colon after the last slash is the tag's.
            match path.rsplit_once(':') {
                Some((name, tag)) if !tag.contains('/') => (name, Some(tag.to_owned()), None),
                _ => (path, Some("latest".to_owned()), None),
            }
        };
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
        if name.is_empty() || !name.chars().all(valid) {
            return Err(format!(
                "`{text}`: the repository `{name}` must be lowercase letters, digits and `._-/`"
            ));
        }
        if let Some(t) = &tag
            && (t.is_empty()
                || t.len() > 128
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
        {
            return Err(format!(
                "`{text}`: the tag `{t}` must be letters, digits and `._-`, at most 128"
            ));
        }
        Ok(Self {
            registry: registry.to_owned(),
            repository: name.to_owned(),
            tag,
            digest,
        })
    }

    /// The registry's base URL: HTTPS, or HTTP on loopback.
    pub fn base(&self) -> String {
        let host = self
            .registry
            .rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(self.registry.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let scheme = if loopback { "http" } else { "https" };
        format!("{scheme}://{}", self.registry)
    }

    fn url(&self, kind: &str, reference: &str) -> String {
        format!("{}/v2/{}/{kind}/{reference}", self.base(), self.repository)
    }

    /// The tag or the digest.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.digest.is_some() { '@' } else { ':' };
        write!(
            f,
            "oci://{}/{}{sep}{}",
            self.registry,
            self.repository,
            self.reference()
        )
    }
}

/// How to authenticate with the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// A file holding a bearer token, sent as is.
    pub token_file: Option<PathBuf>,
    /// A file holding `user:password` (HTTP Basic, and the token service).
    pub basic_file: Option<PathBuf>,
}

/// An OCI source's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciOptions {
    /// The reference.
    pub reference: String,
    /// Connecting, TLS, timeouts, the download's size limit.
    pub client: ClientOptions,
    /// Credentials (none: anonymous).
    pub credentials: Credentials,
    /// When to poll.
    pub polling: Polling,
    /// Where the last bundle that went live is kept.
    pub persist: Option<PathBuf>,
    /// The archive's limits once unpacked.
    pub limits: ReadLimits,
}

impl OciOptions {
    /// The defaults for `reference`.
    pub fn new(reference: &str) -> Self {
        Self {
            reference: reference.to_owned(),
            client: ClientOptions::default(),
            credentials: Credentials::default(),
            polling: Polling::default(),
            persist: None,
            limits: ReadLimits::default(),
        }
    }
}

/// A bundle in an OCI registry.
pub type OciSource = Remote<OciFetch>;

impl OciSource {
    /// A source pulling `options.reference`; an error for a reference that
    /// is not one, or TLS files that cannot be read.
    pub fn new(options: OciOptions) -> Result<Self, String> {
        let registry = Registry::new(
            Reference::parse(&options.reference)?,
            options.client.clone(),
            options.credentials.clone(),
        )?;
        Ok(Remote::with(
            OciFetch { registry },
            options.polling,
            options.limits,
            options.client.max_bytes,
            options.persist.as_deref(),
        ))
    }
}

/// One poll of a registry.
#[derive(Debug)]
pub struct OciFetch {
    registry: Registry,
}

/// A manifest, as far as a pull reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
}

fn sha256(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl Fetch for OciFetch {
    fn fetch(&mut self, validator: Option<&Validator>) -> Result<Answer, String> {
        let r = &mut self.registry;
        let live = validator.and_then(|v| v.etag.as_deref());
        if let Some(pinned) = &r.reference.digest
            && live == Some(pinned.as_str())
        {
            // Pinned, and that is what is live: nothing can change.
            return Ok(Answer::NotModified);
        }
        let url = r.reference.url("manifests", r.reference.reference());
        let manifest = r.get(&url, Some(ACCEPT), 4 << 20)?;
        let digest = sha256(&manifest.body);
        if let Some(pinned) = &r.reference.digest
            && *pinned != digest
        {
            return Err(format!(
                "`{}`: the registry's manifest has digest {digest}, not the pinned one: tampered or corrupt; refused",
                r.reference
            ));
        }
        if live == Some(digest.as_str()) {
            return Ok(Answer::NotModified);
        }
        let parsed: Manifest = serde_json::from_slice(&manifest.body).map_err(|e| {
            format!(
                "`{}`: the manifest is not an OCI image manifest: {e}",
                r.reference
            )
        })?;
        let layer = parsed
            .layers
            .iter()
            .find(|l| l.media_type == LAYER_MEDIA_TYPE)
            .or_else(|| match parsed.layers.as_slice() {
                [only] if only.media_type.ends_with("tar+gzip") => Some(only),
                _ => None,
            })
            .ok_or_else(|| {
                format!(
                    "`{}`: no bundle layer in the manifest (media type `{LAYER_MEDIA_TYPE}`, or one gzipped tar): push it with `iamd bundle push`",
                    r.reference
                )
            })?;
        if layer.size > r.client_max {
            return Err(format!(
                "`{}`: the bundle layer has {} bytes, more than `maxBytes` ({})",
                r.reference, layer.size, r.client_max
            ));
        }
        let (blob_url, max) = (r.reference.url("blobs", &layer.digest), r.client_max);
        let blob = r.get(&blob_url, None, max)?;
        let got = sha256(&blob.body);
        if got != layer.digest || blob.body.len() as u64 != layer.size {
            return Err(format!(
                "`{}`: the bundle layer's digest is {got} ({} bytes), and the manifest says {} ({} bytes): tampered or corrupt; refused",
                r.reference,
                blob.body.len(),
                layer.digest,
                layer.size
            ));
        }
        Ok(Answer::Archive {
            bytes: blob.body.to_vec(),
            validator: Validator {
                etag: Some(digest),
                last_modified: None,
            },
        })
    }

    fn describe(&self) -> String {
        self.registry.reference.to_string()
    }
}

/// A registry client for one repository: authentication and the calls a
/// pull and a push make.
#[derive(Debug)]
struct Registry {
    reference: Reference,
    client: Client,
    client_max: u64,
    credentials: Credentials,
    /// A token the registry's token service gave, for later calls.
    token: Option<String>,
}

/// `WWW-Authenticate: Bearer realm="...",service="...",scope="..."`.
fn challenge(value: &str) -> Option<(String, Vec<(String, String)>)> {
    let rest = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    let mut realm = None;
    let mut params = Vec::new();
    for part in split_params(rest) {
        let (k, v) = part.split_once('=')?;
        let v = v.trim().trim_matches('"').to_owned();
        match k.trim() {
            "realm" => realm = Some(v),
            k @ ("service" | "scope") => params.push((k.to_owned(), v)),
            _ => {}
        }
    }
    Some((realm?, params))
}

/// Splits `a="x,y",b="z"` at the commas outside quotes.
fn split_params(s: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

impl Registry {
    fn new(
        reference: Reference,
        options: ClientOptions,
        credentials: Credentials,
    ) -> Result<Self, String> {
        client::parse(&reference.base())?;
        Ok(Self {
            client_max: options.max_bytes,
            client: Client::new(options)?,
            reference,
            credentials,
            token: None,
        })
    }

    fn basic(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.credentials.basic_file else {
            return Ok(None);
        };
        let text = iamd_bundle::regular_file::read(path, 64 << 10)
            .map_err(|e| format!("the registry credentials file {}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&text).trim().to_owned();
        if !text.contains(':') || text.chars().any(char::is_control) {
            return Err(format!(
                "the registry credentials file {} must hold one line `user:password`",
                path.display()
            ));
        }
        Ok(Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        )))
    }

    /// The `Authorization` to send before any challenge.
    fn authorization(&self) -> Result<Option<String>, String> {
        if let Some(t) = &self.token {
            return Ok(Some(format!("Bearer {t}")));
        }
        if let Some(path) = &self.credentials.token_file {
            return crate::http::bearer(path).map(Some);
        }
        self.basic()
    }

    /// Sends `make()`'s request with the current credentials; after a 401
    /// with a Bearer challenge, asks the token service once and retries.
    fn send(&mut self, make: &dyn Fn() -> Result<Request, String>) -> Result<Response, String> {
        let with = |auth: Option<String>| -> Result<Request, String> {
            let r = make()?;
            match auth {
                Some(a) => r.header(header::AUTHORIZATION, &a),
                None => Ok(r),
            }
        };
        let response = self.client.send(with(self.authorization()?)?)?;
        if response.status != 401 {
            return Ok(response);
        }
        let Some((realm, params)) = response
            .header(&header::WWW_AUTHENTICATE)
            .and_then(challenge)
        else {
            return Ok(response);
        };
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent(v)))
            .collect();
        let url = if query.is_empty() {
            realm.clone()
        } else {
            format!(
                "{realm}{}{}",
                if realm.contains('?') { '&' } else { '?' },
                query.join("&")
            )
        };
        let mut ask = Request::get(url.as_str());
        if let Some(basic) = self.basic()? {
            ask = ask.header(header::AUTHORIZATION, &basic)?;
        }
        let answer = self.client.send(ask)?;
        if answer.status != 200 {
            return Err(format!(
                "the registry's token service (`{}`) answered {}: check the registry credentials",
                client::redact(&realm),
                answer.status
            ));
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("the registry's token service answered no token: {e}"))?;
        self.token = t.token.or(t.access_token);
        if self.token.is_none() {
            return Err("the registry's token service answered no token".into());
        }
        self.client.send(with(self.authorization()?)?)
    }

    /// GETs `url` (a manifest or a blob): its answer, or what went wrong.
    fn get(&mut self, url: &str, accept: Option<&str>, max: u64) -> Result<Response, String> {
        let response = self.send(&|| {
            let r = Request::get(url);
            match accept {
                Some(a) => r.header(header::ACCEPT, a),
                None => Ok(r),
            }
        })?;
        check(&self.reference, &response, 200, url)?;
        if response.body.len() as u64 > max {
            return Err(format!(
                "`{}`: the answer is larger than {max} bytes",
                self.reference
            ));
        }
        Ok(response)
    }
}

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The registry's answer was `want`, or an operator's message.
fn check(reference: &Reference, r: &Response, want: u16, url: &str) -> Result<(), String> {
    if r.status == want {
        return Ok(());
    }
    let what = match r.status {
        401 | 403 => {
            "the registry refused this daemon's credentials (`tokenFile`, `basicAuthFile`)"
                .to_owned()
        }
        404 => "not found: no such repository, tag or digest".to_owned(),
        _ => {
            // A registry's error body is JSON with a code and a message.
            let detail = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            format!(
                "expected {want}{}",
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                }
            )
        }
    };
    Err(format!(
        "`{reference}`: `{}` answered {}: {what}",
        client::redact(url),
        r.status
    ))
}

/// What a push made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest: pin it with `@DIGEST`.
    pub manifest: String,
    /// The bundle layer's digest.
    pub layer: String,
}

/// Pushes `archive` (a bundle archive) to `reference` (by tag): its layer,
/// an empty configuration, and a manifest naming the bundle's digest and
/// revision in its annotations.
pub fn push(
    reference: &Reference,
    archive: &[u8],
    annotations: &[(&str, &str)],
    options: ClientOptions,
    credentials: Credentials,
) -> Result<Pushed, String> {
    let Some(tag) = &reference.tag else {
        return Err(format!("`{reference}`: push to a tag, not to a digest"));
    };
    let mut r = Registry::new(reference.clone(), options, credentials)?;
    let config = b"{}".to_vec();
    let (config_digest, layer_digest) = (sha256(&config), sha256(archive));
    upload(&mut r, &config, &config_digest)?;
    upload(&mut r, archive, &layer_digest)?;
    let annotations: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len()},
        "layers": [{
            "mediaType": LAYER_MEDIA_TYPE,
            "digest": layer_digest,
            "size": archive.len(),
            "annotations": {"org.opencontainers.image.title": "bundle.tar.gz"},
        }],
        "annotations": annotations,
    });
    let body = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let digest = sha256(&body);
    let url = reference.url("manifests", tag);
    let response =
        r.send(&|| Request::put(url.clone(), body.clone()).header(header::CONTENT_TYPE, MANIFEST))?;
    check(reference, &response, 201, &url)?;
    Ok(Pushed {
        manifest: digest,
        layer: layer_digest,
    })
}

/// Uploads a blob unless the registry has it (a monolithic upload: POST,
/// then PUT with the digest).
fn upload(r: &mut Registry, bytes: &[u8], digest: &str) -> Result<(), String> {
    let reference = r.reference.clone();
    let blob = reference.url("blobs", digest);
    let head = r.send(&|| Ok(Request::head(blob.clone())))?;
    if head.status == 200 {
        return Ok(());
    }
    let start = format!(
        "{}/v2/{}/blobs/uploads/",
        reference.base(),
        reference.repository
    );
    let started = r.send(&|| Ok(Request::post(start.clone())))?;
    check(&reference, &started, 202, &start)?;
    let location = started.header(&header::LOCATION).ok_or_else(|| {
        format!("`{reference}`: the registry started an upload without a Location")
    })?;
    let location = if location.starts_with('/') {
        format!("{}{location}", reference.base())
    } else {
        location.to_owned()
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = format!("{location}{sep}digest={}", percent(digest));
    let body = bytes.to_vec();
    let done = r.send(&|| {
        Request::put(put.clone(), body.clone())
            .header(header::CONTENT_TYPE, "application/octet-stream")
    })?;
    check(&reference, &done, 201, &put)
}

#[cfg(test)]
mod tests {
    use super::{OciOptions, OciSource, Reference, challenge, sha256};
    use crate::BundleSource as _;
    use crate::testing::{archive, serve};

    #[test]
    fn a_bearer_challenge_is_answered_from_the_token_service_and_the_token_reused() {
        let layer = archive();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "layers": [{"mediaType": super::LAYER_MEDIA_TYPE, "digest": sha256(&layer), "size": layer.len()}],
        })
        .to_string();
        let challenge = "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"http://{addr}/token\",service=\"reg\",scope=\"repository:iamd/b:pull\"";
        let (addr, requests) = serve(vec![
            (challenge.into(), Vec::new()),
            ("HTTP/1.1 200 OK".into(), br#"{"token": "t0k"}"#.to_vec()),
            ("HTTP/1.1 200 OK".into(), manifest.into_bytes()),
            ("HTTP/1.1 200 OK".into(), layer),
        ]);
        let mut source =
            OciSource::new(OciOptions::new(&format!("oci://{addr}/iamd/b:t"))).unwrap();
        let fetched = source.read(std::time::Duration::ZERO).unwrap().unwrap();
        assert!(fetched.files.files().any(|(p, _)| p == "bundle.yaml"));
        let asked: Vec<String> = requests.try_iter().collect();
        assert_eq!(asked.len(), 4, "{asked:?}");
        assert!(
            asked[0].starts_with("get /v2/iamd/b/manifests/t ")
                && !asked[0].contains("authorization"),
            "{asked:?}"
        );
        assert!(
            asked[1].starts_with("get /token?service=reg&scope=repository%3aiamd%2fb%3apull "),
            "{asked:?}"
        );
        assert!(
            asked[2].contains("authorization: bearer t0k")
                && asked[2].contains("accept: application/vnd.oci.image.manifest.v1+json"),
            "{asked:?}"
        );
        assert!(
            asked[3].starts_with("get /v2/iamd/b/blobs/sha256:")
                && asked[3].contains("authorization: bearer t0k"),
            "{asked:?}"
        );
    }

    #[test]
    fn references_are_parsed_and_loopback_registries_are_plain_http() {
        let r = Reference::parse("oci://ghcr.io/acme/iamd/bundle:prod").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("ghcr.io", "acme/iamd/bundle", Some("prod"))
        );
        assert_eq!(r.base(), "https://ghcr.io");
        assert_eq!(r.to_string(), "oci://ghcr.io/acme/iamd/bundle:prod");
        let d = format!("oci://127.0.0.1:5000/b@sha256:{}", "a".repeat(64));
        let r = Reference::parse(&d).unwrap();
        assert_eq!(
            r.digest.as_deref(),
            Some(&*format!("sha256:{}", "a".repeat(64)))
        );
        assert_eq!(r.base(), "http://127.0.0.1:5000");
        assert_eq!(r.to_string(), d);
        assert_eq!(
            Reference::parse("localhost:5000/b").unwrap().tag.as_deref(),
            Some("latest")
        );
        assert_eq!(
            Reference::parse("oci://[::1]:5000/b:t").unwrap().base(),
            "http://[::1]:5000"
        );
        for (bad, says) in [
            ("oci://registry", "no repository"),
            ("oci://r/B:t", "lowercase"),
            ("oci://r/b@md5:00", "sha256:"),
            ("oci://r/b@sha256:abc", "64 lowercase hex"),
            ("oci://u:p@r/b:t", "credentials"),
            ("oci://r/b:t!", "the tag"),
        ] {
            assert!(Reference::parse(bad).unwrap_err().contains(says), "{bad}");
        }
    }

    #[test]
    fn a_bearer_challenge_names_the_token_service() {
        let (realm, params) = challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(realm, "https://auth.example.com/token");
        assert_eq!(
            params,
            [
                ("service".to_owned(), "registry.example.com".to_owned()),
                ("scope".to_owned(), "repository:a/b:pull,push".to_owned())
            ]
        );
        assert_eq!(challenge(r#"Basic realm="x""#), None);
    }
}
