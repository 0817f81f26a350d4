//! Future types.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// Future for the [`Retry`](crate::Retry) service. Dropping it cancels the attempt in flight or
/// the sleep, refunding any budget tokens reserved for the retry.
pub struct ResponseFuture<T, E> {
    inner: BoxFuture<T, E>,
}

impl<T, E> ResponseFuture<T, E> {
    pub(crate) fn new(inner: BoxFuture<T, E>) -> Self {
        Self { inner }
    }
}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T, E> fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}
