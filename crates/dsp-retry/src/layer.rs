//! The tower [`Layer`] and [`Service`].

use std::sync::Arc;
use std::task::{Context, Poll};

use dsp_core::{Clock, SystemClock};
use tower_layer::Layer;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::{CallOptions, Decision, Retrier};

/// Wraps services in [`Retry`].
///
/// `classify` (`Fn(&Error) -> Decision`) decides which errors are retried; `idempotent`
/// (`Fn(&Request) -> bool`) says which requests may be sent more than once; others are sent once.
#[derive(Debug)]
pub struct RetryLayer<K, I, C: Clock = SystemClock> {
    retrier: Arc<Retrier<C>>,
    classify: K,
    idempotent: I,
}

impl<K: Clone, I: Clone, C: Clock> Clone for RetryLayer<K, I, C> {
    fn clone(&self) -> Self {
        Self {
            retrier: Arc::clone(&self.retrier),
            classify: self.classify.clone(),
            idempotent: self.idempotent.clone(),
        }
    }
}

impl<K, I, C: Clock> RetryLayer<K, I, C> {
    /// A layer retrying with `retrier`.
    pub fn new(retrier: Arc<Retrier<C>>, classify: K, idempotent: I) -> Self {
        Self {
            retrier,
            classify,
            idempotent,
        }
    }
}

impl<S, K: Clone, I: Clone, C: Clock> Layer<S> for RetryLayer<K, I, C> {
    type Service = Retry<S, K, I, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            retrier: Arc::clone(&self.retrier),
            classify: self.classify.clone(),
            idempotent: self.idempotent.clone(),
        }
    }
}

/// A service that retries failed requests (cloning the request and the inner service per
/// attempt). Its future is boxed: one allocation per request.
#[derive(Debug)]
pub struct Retry<S, K, I, C: Clock = SystemClock> {
    inner: S,
    retrier: Arc<Retrier<C>>,
    classify: K,
    idempotent: I,
}

impl<S: Clone, K: Clone, I: Clone, C: Clock> Clone for Retry<S, K, I, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            retrier: Arc::clone(&self.retrier),
            classify: self.classify.clone(),
            idempotent: self.idempotent.clone(),
        }
    }
}

impl<S, K, I, C: Clock> Retry<S, K, I, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req, K, I, C> Service<Req> for Retry<S, K, I, C>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    Req: Clone + Send + 'static,
    K: Fn(&S::Error) -> Decision + Clone + Send + Sync + 'static,
    I: Fn(&Req) -> bool,
    C: Clock + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // Use the service that was driven to readiness for the first attempt.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let retrier = Arc::clone(&self.retrier);
        let classify = self.classify.clone();
        let options = if (self.idempotent)(&req) {
            CallOptions::idempotent()
        } else {
            CallOptions::non_idempotent()
        };
        ResponseFuture::new(Box::pin(async move {
            let mut first = Some(ready);
            let template = first.clone();
            retrier
                .run(options, classify, move || {
                    let req = req.clone();
                    let svc = first.take().or_else(|| template.clone());
                    async move {
                        match svc {
                            Some(mut svc) => {
                                std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
                                svc.call(req).await
                            }
                            // `template` is always Some; this arm only satisfies the types.
                            None => std::future::pending().await,
                        }
                    }
                })
                .await
        }))
    }
}
