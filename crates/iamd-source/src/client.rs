//! The HTTP client of the remote sources and of `iamd bundle push`: HTTP/1.1
//! over TCP or TLS (rustls; the system's roots or a CA file; a client
//! certificate), a connect timeout and a timeout on the whole exchange, a
//! limit on the body's size, and redirects (at most five, never from
//! `https` to `http`, credentials dropped when the host changes).
//!
//! It is called from the reloader's own thread, not from the daemon's
//! runtime: each call runs on a small runtime of its own. The command line
//! (`iamd authorize --authzen`, `iamd bundle push`) uses it too.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls;

/// How the client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// CAs that sign the server's certificate (PEM); without it, the
    /// system's trusted roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) for servers that require one.
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub client_key: Option<PathBuf>,
    /// The name the server's certificate must have, when not the URL's host.
    pub server_name: Option<String>,
    /// The longest a TCP connection (and TLS handshake) may take.
    pub connect_timeout: Duration,
    /// The longest a whole exchange may take, body included.
    pub timeout: Duration,
    /// The largest body read.
    pub max_bytes: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            ca_file: None,
            client_cert: None,
            client_key: None,
            server_name: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            max_bytes: 256 << 20,
        }
    }
}

/// An answer.
#[derive(Debug)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The URL that answered (after redirects).
    pub(crate) url: String,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub(crate) fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request.
#[derive(Debug, Clone)]
pub struct Request {
    pub(crate) method: hyper::Method,
    pub(crate) url: String,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Bytes,
    /// Longer than [`ClientOptions::timeout`] (a long poll).
    pub(crate) timeout: Option<Duration>,
}

impl Request {
    fn new(method: hyper::Method, url: impl Into<String>, body: Bytes) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body,
            timeout: None,
        }
    }

    pub(crate) fn get(url: impl Into<String>) -> Self {
        Self::new(hyper::Method::GET, url, Bytes::new())
    }

    pub(crate) fn head(url: impl Into<String>) -> Self {
        Self::new(hyper::Method::HEAD, url, Bytes::new())
    }

    pub(crate) fn post(url: impl Into<String>) -> Self {
        Self::new(hyper::Method::POST, url, Bytes::new())
    }

    /// A POST of `body`.
    pub fn post_body(url: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self::new(hyper::Method::POST, url, body.into())
    }

    pub(crate) fn put(url: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self::new(hyper::Method::PUT, url, body.into())
    }

    /// The request with a header more; an error for a value that cannot
    /// be one.
    pub fn header(mut self, name: HeaderName, value: &str) -> Result<Self, String> {
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of the `{name}` header is not valid"))?;
        self.headers.push((name, value));
        Ok(self)
    }
}

/// The client.
#[derive(Debug, Clone)]
pub struct Client {
    options: ClientOptions,
}

/// Redirects followed.
const REDIRECTS: usize = 5;

impl Client {
    /// A client; an error for TLS files that cannot be read.
    pub fn new(options: ClientOptions) -> Result<Self, String> {
        // The TLS files are read at each exchange (a rotated certificate is
        // used at the next poll); reading them once here reports a wrong
        // path at start.
        if options.ca_file.is_some() || options.client_cert.is_some() {
            tls_config(&options)?;
        }
        Ok(Self { options })
    }

    /// Sends `request`, following redirects; blocks the calling thread.
    pub fn send(&self, request: Request) -> Result<Response, String> {
        let timeout = request.timeout.unwrap_or(self.options.timeout);
        let run = || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
            rt.block_on(async {
                match tokio::time::timeout(timeout, self.follow(request)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "no complete answer within {} s (`timeoutSeconds`)",
                        timeout.as_secs_f64()
                    )),
                }
            })
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called from inside a runtime (a test, an async caller): a
            // runtime cannot block inside another, so on a thread of its own.
            std::thread::scope(|s| {
                s.spawn(run)
                    .join()
                    .unwrap_or_else(|_| Err("the HTTP client failed".into()))
            })
        } else {
            run()
        }
    }

    async fn follow(&self, request: Request) -> Result<Response, String> {
        let mut url = request.url.clone();
        let mut headers = request.headers;
        for _ in 0..=REDIRECTS {
            let response = self
                .once(&request.method, &url, &headers, request.body.clone())
                .await?;
            let redirect = matches!(response.status, 301 | 302 | 303 | 307 | 308);
            let Some(location) = redirect
                .then(|| response.header(&header::LOCATION))
                .flatten()
            else {
                return Ok(response);
            };
            let next = resolve(&url, location)?;
            let (from, to) = (parse(&url)?, parse(&next)?);
            if from.https && !to.https {
                return Err(format!(
                    "`{}` redirects from https to http (`{}`): refused",
                    redact(&url),
                    redact(&next)
                ));
            }
            if from.host != to.host || from.port != to.port {
                // A token for one server is not for the next.
                headers.retain(|(n, _)| n != header::AUTHORIZATION);
            }
            url = next;
        }
        Err(format!(
            "`{}`: more than {REDIRECTS} redirects",
            redact(&request.url)
        ))
    }

    async fn once(
        &self,
        method: &hyper::Method,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Response, String> {
        let target = parse(url)?;
        let shown = redact(url);
        let connect = tokio::net::TcpStream::connect((target.host.as_str(), target.port));
        let tcp = tokio::time::timeout(self.options.connect_timeout, connect)
            .await
            .map_err(|_| {
                format!(
                    "cannot connect to `{shown}` within {} s",
                    self.options.connect_timeout.as_secs_f64()
                )
            })?
            .map_err(|e| format!("cannot connect to `{shown}`: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let mut builder = hyper::Request::builder()
            .method(method.clone())
            .uri(&target.path)
            .header(header::HOST, &target.authority)
            .header(
                header::USER_AGENT,
                concat!("iamd/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| format!("`{shown}`: {e}"))?;
        let response = if target.https {
            let config = tls_config(&self.options)?;
            let name = self
                .options
                .server_name
                .clone()
                .unwrap_or_else(|| target.host.clone());
            let name = rustls_pki_types::ServerName::try_from(name)
                .map_err(|e| format!("`{shown}`: the host's name: {e}"))?;
            let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
            let stream = tokio::time::timeout(self.options.connect_timeout, handshake)
                .await
                .map_err(|_| format!("TLS with `{shown}`: no handshake in time"))?
                .map_err(|e| format!("TLS with `{shown}`: {e}"))?;
            exchange(TokioIo::new(stream), request, &shown).await?
        } else {
            exchange(TokioIo::new(tcp), request, &shown).await?
        };
        let (parts, mut incoming) = response.into_parts();
        let mut body = Vec::new();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| format!("reading the answer of `{shown}`: {e}"))?;
            if let Some(data) = frame.data_ref() {
                if (body.len() + data.len()) as u64 > self.options.max_bytes {
                    return Err(format!(
                        "the answer of `{shown}` is larger than {} bytes (`maxBytes`): refused",
                        self.options.max_bytes
                    ));
                }
                body.extend_from_slice(data);
            }
        }
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: Bytes::from(body),
            url: url.to_owned(),
        })
    }
}

async fn exchange<IO>(
    io: TokioIo<IO>,
    request: hyper::Request<Full<Bytes>>,
    shown: &str,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP with `{shown}`: {e}"))?;
    tokio::spawn(conn);
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP with `{shown}`: {e}"))
}

/// A URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host[:port]` as written.
    pub(crate) authority: String,
    /// The path and query.
    pub(crate) path: String,
}

/// Parses an `http://` or `https://` URL; credentials in it are refused
/// (they would be logged with it).
pub(crate) fn parse(url: &str) -> Result<Target, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("`{}` is not a URL: {e}", redact(url)))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(format!(
                "`{}`: only `https://` and `http://` URLs are fetched",
                redact(url)
            ));
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("`{}` has no host", redact(url)))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "`{}` has credentials in it: give them in a file instead (`bearerTokenFile`), so that they are never logged",
            redact(url)
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    Ok(Target {
        https,
        host: host.to_owned(),
        port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        authority: authority.as_str().to_owned(),
        path: uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
    })
}

/// A URL with anything after `?` and before `@` left out, for messages.
pub(crate) fn redact(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((auth, path)) => {
                let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
                format!("{scheme}://{host}/{path}")
            }
            None => format!(
                "{scheme}://{}",
                rest.rsplit_once('@').map_or(rest, |(_, h)| h)
            ),
        },
        None => url.to_owned(),
    }
}

/// `location` resolved against `base`.
fn resolve(base: &str, location: &str) -> Result<String, String> {
    if location.contains("://") {
        return Ok(location.to_owned());
    }
    let b = parse(base)?;
    let scheme = if b.https { "https" } else { "http" };
    if location.starts_with("//") {
        return Ok(format!("{scheme}:{location}"));
    }
    if location.starts_with('/') {
        return Ok(format!("{scheme}://{}{location}", b.authority));
    }
    let dir = b.path.split('?').next().unwrap_or("/");
    let dir = dir.rsplit_once('/').map_or("", |(d, _)| d);
    Ok(format!("{scheme}://{}{dir}/{location}", b.authority))
}

/// The system's trusted roots, read once.
fn system_roots() -> Result<&'static rustls::RootCertStore, String> {
    static ROOTS: OnceLock<Result<rustls::RootCertStore, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no trusted CA certificates on this system: give `caFile`".into());
            }
            Ok(roots)
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    iamd_bundle::regular_file::read(path, 1 << 20).map_err(|e| format!("{}: {e}", path.display()))
}

/// The TLS configuration: the CA file's roots (or the system's), and the
/// client certificate when given.
pub(crate) fn tls_config(options: &ClientOptions) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject as _;
    let roots = match &options.ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&read(ca)?) {
                let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no PEM certificate in it", ca.display()));
            }
            roots
        }
        None => system_roots()?.clone(),
    };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    let config = match (&options.client_cert, &options.client_key) {
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
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(
                "a client certificate needs both `clientCertFile` and `clientKeyFile`".into(),
            );
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::{parse, redact, resolve};

    #[test]
    fn urls_are_taken_apart_and_shown_without_secrets() {
        let t = parse("https://bundles.example.com/iamd/b.tar.gz?sig=x").unwrap();
        assert!(t.https);
        assert_eq!((t.host.as_str(), t.port), ("bundles.example.com", 443));
        assert_eq!(t.path, "/iamd/b.tar.gz?sig=x");
        let t = parse("http://[::1]:8080/b").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("::1", 8080, "[::1]:8080")
        );
        assert!(
            parse("https://u:p@h/x")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(parse("ftp://h/x").unwrap_err().contains("only `https://`"));
        assert_eq!(redact("https://u:p@h/x?token=s"), "https://h/x");
        assert_eq!(
            resolve("http://a:1/v2/r/blobs/x", "/other").unwrap(),
            "http://a:1/other"
        );
        assert_eq!(
            resolve("http://a:1/v2/r/x", "y?z").unwrap(),
            "http://a:1/v2/r/y?z"
        );
        assert_eq!(
            resolve("http://a/x", "https://s3/b").unwrap(),
            "https://s3/b"
        );
    }
}
