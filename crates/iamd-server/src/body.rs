//! A request body read whole, within a limit, for the front doors that need
//! all of it before deciding: AuthZEN, and gRPC's admission (which counts a
//! decision only once its body is there).

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes};

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum Unread {
    /// Over the limit.
    TooLarge,
    /// The connection failed, or the body was cut.
    Failed(String),
}

/// A body being read: the first frame kept as it came (nearly every body is
/// one frame: handed on without a copy), later ones joined.
#[derive(Debug, Default)]
pub(crate) struct Whole {
    first: Bytes,
    joined: Vec<u8>,
}

impl Whole {
    /// Reads `body` to its end, at most `max` bytes. The end is seen from
    /// the body's length or end-of-stream flag, without another poll;
    /// trailers are ignored.
    pub(crate) fn poll<B>(
        &mut self,
        mut body: Pin<&mut B>,
        max: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Bytes, Unread>>
    where
        B: Body<Data = Bytes> + ?Sized,
        B::Error: std::fmt::Display,
    {
        if body.size_hint().lower() > max as u64 {
            return Poll::Ready(Err(Unread::TooLarge));
        }
        while !body.is_end_stream() {
            let frame = match body.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => break,
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(Unread::Failed(e.to_string())));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let size = self.first.len() + self.joined.len() + data.len();
            if size > max {
                return Poll::Ready(Err(Unread::TooLarge));
            }
            if self.joined.is_empty() && self.first.is_empty() {
                self.first = data;
            } else {
                if self.joined.is_empty() {
                    self.joined.reserve(size);
                    self.joined
                        .extend_from_slice(&std::mem::take(&mut self.first));
                }
                self.joined.extend_from_slice(&data);
            }
        }
        Poll::Ready(Ok(if self.joined.is_empty() {
            std::mem::take(&mut self.first)
        } else {
            Bytes::from(std::mem::take(&mut self.joined))
        }))
    }
}

/// The whole body, at most `max` bytes ([`Whole`]).
pub(crate) async fn whole<B>(body: B, max: usize) -> Result<Bytes, Unread>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut whole = Whole::default();
    std::future::poll_fn(|cx| whole.poll(body.as_mut(), max, cx)).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    fn frames(
        parts: &[&'static [u8]],
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        StreamBody::new(tokio_stream::iter(frames))
    }

    fn read(parts: &[&'static [u8]], max: usize) -> Result<Bytes, Unread> {
        let mut body = std::pin::pin!(frames(parts));
        let mut whole = Whole::default();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match whole.poll(body.as_mut(), max, &mut cx) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("a ready body is pending"),
        }
    }

    #[test]
    fn frames_are_joined_and_the_limit_counts_every_byte_once() {
        assert_eq!(read(&[b"abc"], 3).unwrap(), Bytes::from_static(b"abc"));
        assert_eq!(
            read(&[b"ab", b"cd", b"ef"], 6).unwrap(),
            Bytes::from_static(b"abcdef")
        );
        assert!(matches!(
            read(&[b"ab", b"cd", b"ef"], 5),
            Err(Unread::TooLarge)
        ));
        assert!(matches!(read(&[b"abcd"], 3), Err(Unread::TooLarge)));
        assert_eq!(read(&[], 3).unwrap(), Bytes::new());
        assert_eq!(read(&[b"", b"ab"], 3).unwrap(), Bytes::from_static(b"ab"));
    }
}
