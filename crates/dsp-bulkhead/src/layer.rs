//! Tower middleware: [`BulkheadLayer`] and [`Bulkhead`].
//!
//! Like tower's `ConcurrencyLimit`, the service **reserves a permit in `poll_ready`** and hands
//! it to the response future in `call`; the permit is released when the response future
//! completes or is dropped. A clone of the service starts without a reserved permit.
//!
//! - Under [`WhenFull::Reject`](crate::WhenFull::Reject), `poll_ready` never waits: when no
//!   permit is free it returns `Ready(Ok(()))` without polling the inner service, and the next
//!   `call` resolves at once to [`Error::BulkheadFull`] (boxed) without calling the inner
//!   service (the `load_shed` convention, so the rejection is an ordinary response error).
//! - Under [`WhenFull::Wait`](crate::WhenFull::Wait), `poll_ready` is `Pending` while queued;
//!   after `max_wait` it returns `Ready(Ok(()))` and the next `call` yields
//!   [`Error::WaitTimedOut`].
//!
//! Only once a permit is held is the inner service's `poll_ready` polled, so a slow inner
//! service's back-pressure is seen only by callers inside the bulkhead.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::{Error, OwnedPermit, Result, SemaphoreBulkhead};

/// The boxed error type of the middleware (tower's convention).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedPermit>> + Send>>;

/// Wraps services in a [`Bulkhead`] sharing one [`SemaphoreBulkhead`].
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: SemaphoreBulkhead,
}

impl BulkheadLayer {
    /// A layer whose services all share `bulkhead`'s permits.
    pub fn new(bulkhead: SemaphoreBulkhead) -> Self {
        BulkheadLayer { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;
    fn layer(&self, inner: S) -> Bulkhead<S> {
        Bulkhead::new(inner, self.bulkhead.clone())
    }
}

/// A service that runs at most `max_concurrent` requests of its [`SemaphoreBulkhead`] at once;
/// see the [module docs](self).
pub struct Bulkhead<S> {
    inner: S,
    bulkhead: SemaphoreBulkhead,
    permit: Option<OwnedPermit>,
    rejection: Option<Error>,
    acquiring: Option<Acquire>,
}

impl<S> Bulkhead<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, bulkhead: SemaphoreBulkhead) -> Self {
        Bulkhead {
            inner,
            bulkhead,
            permit: None,
            rejection: None,
            acquiring: None,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The bulkhead.
    pub fn bulkhead(&self) -> &SemaphoreBulkhead {
        &self.bulkhead
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for Bulkhead<S> {
    /// The clone shares the bulkhead but not a reserved permit.
    fn clone(&self) -> Self {
        Bulkhead::new(self.inner.clone(), self.bulkhead.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("bulkhead", &self.bulkhead)
            .field("permit", &self.permit)
            .field("rejection", &self.rejection)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for Bulkhead<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.permit.is_none() && self.rejection.is_none() {
            let acquiring = match &mut self.acquiring {
                Some(a) => a,
                None => {
                    // Fast path: no allocation when a permit is free.
                    match self.bulkhead.try_acquire_owned() {
                        Ok(p) => {
                            self.permit = Some(p);
                            return self.inner.poll_ready(cx).map_err(Into::into);
                        }
                        Err(e) if self.bulkhead.max_wait().is_none() => {
                            self.rejection = Some(e);
                            return Poll::Ready(Ok(()));
                        }
                        Err(_) => {}
                    }
                    self.acquiring
                        .insert(Box::pin(crate::wait::acquire_owned(self.bulkhead.clone())))
                }
            };
            let result = std::task::ready!(acquiring.as_mut().poll(cx));
            self.acquiring = None;
            match result {
                Ok(p) => self.permit = Some(p),
                Err(e) => self.rejection = Some(e),
            }
        }
        if self.permit.is_some() {
            self.inner.poll_ready(cx).map_err(Into::into)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if let Some(e) = self.rejection.take() {
            return future::ResponseFuture::rejected(e);
        }
        let permit = match self.permit.take() {
            Some(p) => p,
            // `call` without `poll_ready` breaks the Service contract; do the best we can
            // rather than panic: take a permit now or reject.
            None => match self.bulkhead.try_acquire_owned() {
                Ok(p) => p,
                Err(e) => return future::ResponseFuture::rejected(e),
            },
        };
        future::ResponseFuture::called(self.inner.call(req), permit)
    }
}

/// The response future of [`Bulkhead`].
pub mod future {
    use super::*;

    pin_project_lite::pin_project! {
        /// Holds the permit until the inner future completes or this future is dropped.
        pub struct ResponseFuture<F> {
            #[pin]
            inner: Option<F>,
            permit: Option<OwnedPermit>,
            rejection: Option<Error>,
        }
    }

    impl<F> ResponseFuture<F> {
        pub(crate) fn called(f: F, permit: OwnedPermit) -> Self {
            ResponseFuture {
                inner: Some(f),
                permit: Some(permit),
                rejection: None,
            }
        }
        pub(crate) fn rejected(e: Error) -> Self {
            ResponseFuture {
                inner: None,
                permit: None,
                rejection: Some(e),
            }
        }
    }

    impl<F: fmt::Debug> fmt::Debug for ResponseFuture<F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ResponseFuture")
                .field("inner", &self.inner)
                .field("permit", &self.permit)
                .field("rejection", &self.rejection)
                .finish()
        }
    }

    impl<F, T, E> Future for ResponseFuture<F>
    where
        F: Future<Output = std::result::Result<T, E>>,
        E: Into<BoxError>,
    {
        type Output = std::result::Result<T, BoxError>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            match this.inner.as_pin_mut() {
                Some(f) => {
                    let out = std::task::ready!(f.poll(cx));
                    // Release as soon as the inner future is done.
                    this.permit.take();
                    Poll::Ready(out.map_err(Into::into))
                }
                // Cloned rather than taken: polling again after completion repeats the
                // rejection instead of panicking.
                None => Poll::Ready(Err(Box::new(this.rejection.clone().unwrap_or(
                    Error::InvalidConfig("response future without inner future or rejection"),
                )))),
            }
        }
    }
}
