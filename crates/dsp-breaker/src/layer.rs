//! The tower [`Layer`] and [`Service`].

use std::task::{Context, Poll};

use dsp_core::{Clock, SystemClock};
use tower_layer::Layer;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::{Breaker, DefaultClassifier};

/// Wraps services in a [`CircuitBreaker`] sharing one [`Breaker`].
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<K = DefaultClassifier, C: Clock = SystemClock> {
    breaker: Breaker<C>,
    classifier: K,
}

impl<C: Clock> CircuitBreakerLayer<DefaultClassifier, C> {
    /// A layer counting `Ok` as success and `Err` as failure.
    pub fn new(breaker: Breaker<C>) -> Self {
        Self {
            breaker,
            classifier: DefaultClassifier,
        }
    }
}

impl<K, C: Clock> CircuitBreakerLayer<K, C> {
    /// A layer with a result classifier (a [`Classify`](crate::Classify) such as a closure
    /// `Fn(&Result<Response, Error>) -> Outcome`).
    pub fn with_classifier(breaker: Breaker<C>, classifier: K) -> Self {
        Self {
            breaker,
            classifier,
        }
    }
}

impl<S, K: Clone, C: Clock> Layer<S> for CircuitBreakerLayer<K, C> {
    type Service = CircuitBreaker<S, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            breaker: self.breaker.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// A service that sends requests through a [`Breaker`].
///
/// Rejected requests are not passed to the inner service; they fail with a boxed
/// [`Error::Rejected`](crate::Error::Rejected). Other errors are the inner service's, boxed.
/// Readiness is the inner service's: the breaker decides in `call`.
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S, K = DefaultClassifier, C: Clock = SystemClock> {
    inner: S,
    breaker: Breaker<C>,
    classifier: K,
}

impl<S, C: Clock> CircuitBreaker<S, DefaultClassifier, C> {
    /// Wraps `inner`.
    pub fn new(inner: S, breaker: Breaker<C>) -> Self {
        Self {
            inner,
            breaker,
            classifier: DefaultClassifier,
        }
    }
}

impl<S, K, C: Clock> CircuitBreaker<S, K, C> {
    /// The breaker.
    pub fn breaker(&self) -> &Breaker<C> {
        &self.breaker
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req, K, C> Service<Req> for CircuitBreaker<S, K, C>
where
    S: Service<Req>,
    S::Error: Into<crate::future::BoxError>,
    K: crate::Classify<S::Response, S::Error> + Clone,
    C: Clock,
{
    type Response = S::Response;
    type Error = crate::future::BoxError;
    type Future = ResponseFuture<S::Future, K, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => {
                ResponseFuture::called(self.inner.call(req), permit, self.classifier.clone())
            }
            Err(e) => ResponseFuture::rejected(e, self.classifier.clone()),
        }
    }
}
