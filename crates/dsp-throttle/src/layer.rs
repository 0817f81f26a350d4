//! Tower middleware: [`RateLimitLayer`] (GCRA) and [`ConcurrencyLimitLayer`] (adaptive).
//!
//! Both *reject* rather than wait, like tower's `load_shed`: `poll_ready` only forwards the inner
//! service's readiness, and `call` decides. A refused request resolves at once to an
//! [`Error`] ([`Error::RateLimited`] carrying the
//! instant at which it would conform, or
//! [`Error::ConcurrencyLimited`]) boxed as the service's
//! error, and the inner service is not called. Deciding in `call` rather than in `poll_ready`
//! means a caller that polls readiness but never calls consumes no quota. Put a retry or
//! `tower::buffer` in front if you want waiting instead of shedding.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use dsp_core::{Clock, QuantaClock};
use tower_layer::Layer;
use tower_service::Service;

use crate::{ConcurrencyLimiter, Error, LimitToken, RateLimiter};

/// The boxed error type of the middleware (tower's convention).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Applies a shared GCRA [`RateLimiter`] to every request.
pub struct RateLimitLayer<C: Clock = QuantaClock> {
    limiter: Arc<RateLimiter<C>>,
}

impl<C: Clock> RateLimitLayer<C> {
    /// A layer whose services all draw from `limiter`.
    pub fn new(limiter: Arc<RateLimiter<C>>) -> Self {
        RateLimitLayer { limiter }
    }
}

impl<C: Clock> Clone for RateLimitLayer<C> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: self.limiter.clone(),
        }
    }
}

impl<C: Clock> fmt::Debug for RateLimitLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S, C: Clock> Layer<S> for RateLimitLayer<C> {
    type Service = RateLimit<S, C>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// A service that sheds requests beyond its rate limit; see the [module docs](self).
pub struct RateLimit<S, C: Clock = QuantaClock> {
    inner: S,
    limiter: Arc<RateLimiter<C>>,
}

impl<S, C: Clock> RateLimit<S, C> {
    /// Wraps `inner`.
    pub fn new(inner: S, limiter: Arc<RateLimiter<C>>) -> Self {
        RateLimit { inner, limiter }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C: Clock> Clone for RateLimit<S, C> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

impl<S: fmt::Debug, C: Clock> fmt::Debug for RateLimit<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S, C, Req> Service<Req> for RateLimit<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Clock,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.limiter.check() {
            Ok(()) => future::ResponseFuture::called(self.inner.call(req)),
            Err(not_until) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(wait = ?not_until.wait_time(), "rate limit rejected a request");
                future::ResponseFuture::rejected(Error::RateLimited(not_until))
            }
        }
    }
}

/// Applies a shared adaptive [`ConcurrencyLimiter`] to every request.
///
/// A response with `Ok` reports a success sample (its latency feeds the algorithm); an inner
/// `Err` reports a drop (the limit shrinks); a dropped response future (cancellation) frees the
/// slot and reports nothing.
pub struct ConcurrencyLimitLayer<C: Clock = QuantaClock> {
    limiter: ConcurrencyLimiter<C>,
}

impl<C: Clock> ConcurrencyLimitLayer<C> {
    /// A layer whose services all share `limiter`.
    pub fn new(limiter: ConcurrencyLimiter<C>) -> Self {
        ConcurrencyLimitLayer { limiter }
    }
}

impl<C: Clock> Clone for ConcurrencyLimitLayer<C> {
    fn clone(&self) -> Self {
        ConcurrencyLimitLayer {
            limiter: self.limiter.clone(),
        }
    }
}

impl<C: Clock> fmt::Debug for ConcurrencyLimitLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimitLayer")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S, C: Clock> Layer<S> for ConcurrencyLimitLayer<C> {
    type Service = ConcurrencyLimit<S, C>;
    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// A service that sheds requests above an adaptive concurrency limit; see
/// [`ConcurrencyLimitLayer`].
pub struct ConcurrencyLimit<S, C: Clock = QuantaClock> {
    inner: S,
    limiter: ConcurrencyLimiter<C>,
}

impl<S, C: Clock> ConcurrencyLimit<S, C> {
    /// Wraps `inner`.
    pub fn new(inner: S, limiter: ConcurrencyLimiter<C>) -> Self {
        ConcurrencyLimit { inner, limiter }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C: Clock> Clone for ConcurrencyLimit<S, C> {
    fn clone(&self) -> Self {
        ConcurrencyLimit {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

impl<S: fmt::Debug, C: Clock> fmt::Debug for ConcurrencyLimit<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S, C, Req> Service<Req> for ConcurrencyLimit<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Clock,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = future::LimitResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.limiter.try_acquire() {
            Ok(token) => future::LimitResponseFuture::called(self.inner.call(req), token),
            Err(e) => future::LimitResponseFuture::rejected(e),
        }
    }
}

/// Response futures of the middleware.
pub mod future {
    use super::*;

    pin_project_lite::pin_project! {
        /// The response future of [`RateLimit`](super::RateLimit).
        pub struct ResponseFuture<F> {
            #[pin]
            inner: Option<F>,
            rejected: Option<Error>,
        }
    }

    impl<F> ResponseFuture<F> {
        pub(crate) fn called(f: F) -> Self {
            ResponseFuture {
                inner: Some(f),
                rejected: None,
            }
        }
        pub(crate) fn rejected(e: Error) -> Self {
            ResponseFuture {
                inner: None,
                rejected: Some(e),
            }
        }
    }

    impl<F: fmt::Debug> fmt::Debug for ResponseFuture<F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ResponseFuture")
                .field("inner", &self.inner)
                .field("rejected", &self.rejected)
                .finish()
        }
    }

    impl<F, T, E> Future for ResponseFuture<F>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<BoxError>,
    {
        type Output = Result<T, BoxError>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            match this.inner.as_pin_mut() {
                Some(f) => f.poll(cx).map_err(Into::into),
                // A rejection is cloned rather than taken, so polling again after completion
                // repeats it instead of panicking.
                None => Poll::Ready(Err(Box::new(this.rejected.clone().unwrap_or(
                    Error::InvalidConfig("response future without inner future or rejection"),
                )))),
            }
        }
    }

    pin_project_lite::pin_project! {
        /// The response future of [`ConcurrencyLimit`](super::ConcurrencyLimit): holds the slot
        /// until the inner future completes or is dropped.
        pub struct LimitResponseFuture<F, C: Clock> {
            #[pin]
            inner: Option<F>,
            token: Option<LimitToken<C>>,
            rejected: Option<Error>,
        }
    }

    impl<F, C: Clock> LimitResponseFuture<F, C> {
        pub(crate) fn called(f: F, token: LimitToken<C>) -> Self {
            LimitResponseFuture {
                inner: Some(f),
                token: Some(token),
                rejected: None,
            }
        }
        pub(crate) fn rejected(e: Error) -> Self {
            LimitResponseFuture {
                inner: None,
                token: None,
                rejected: Some(e),
            }
        }
    }

    impl<F: fmt::Debug, C: Clock> fmt::Debug for LimitResponseFuture<F, C> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("LimitResponseFuture")
                .field("inner", &self.inner)
                .field("rejected", &self.rejected)
                .finish_non_exhaustive()
        }
    }

    impl<F, T, E, C> Future for LimitResponseFuture<F, C>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<BoxError>,
        C: Clock,
    {
        type Output = Result<T, BoxError>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            match this.inner.as_pin_mut() {
                Some(f) => {
                    let out = std::task::ready!(f.poll(cx));
                    if let Some(token) = this.token.take() {
                        if out.is_ok() {
                            token.success()
                        } else {
                            token.dropped()
                        }
                    }
                    Poll::Ready(out.map_err(Into::into))
                }
                // A rejection is cloned rather than taken, so polling again after completion
                // repeats it instead of panicking.
                None => Poll::Ready(Err(Box::new(this.rejected.clone().unwrap_or(
                    Error::InvalidConfig("response future without inner future or rejection"),
                )))),
            }
        }
    }
}
