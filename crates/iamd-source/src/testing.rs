//! What the unit tests share: a scripted HTTP server, a small archive.
#![allow(clippy::unwrap_used, reason = "test support fails loudly")]

use std::io::{BufRead as _, Read as _, Write as _};

/// A server answering each connection's one request with the next of
/// `answers` (the head, where `{addr}` is the server's own address, then
/// the body), and handing back each request's head, lower-cased; its
/// `host:port`.
pub(crate) fn serve(
    answers: Vec<(String, Vec<u8>)>,
) -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = listener.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let me = url.clone();
    std::thread::spawn(move || {
        for (head, body) in answers {
            let (mut s, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
            let mut request = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                request.push_str(&line.to_ascii_lowercase());
            }
            tx.send(request).unwrap();
            let head = head.replace("{addr}", &me);
            let head = format!(
                "{head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&body).unwrap();
            let _ = s.read(&mut [0u8; 1]);
        }
    });
    (url, rx)
}

/// The archive of a bundle of one file.
pub(crate) fn archive() -> Vec<u8> {
    let files = iamd_bundle::BundleFiles::from_files(
        "t".as_ref(),
        [(
            "bundle.yaml".to_owned(),
            b"account: \"123456789012\"\n".to_vec(),
        )],
        &iamd_bundle::ReadLimits::default(),
    )
    .unwrap();
    crate::archive::build(&files, None).unwrap()
}
