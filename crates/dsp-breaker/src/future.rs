//! Future types.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use dsp_core::{Clock, SystemClock};
use pin_project_lite::pin_project;

use crate::{Classify, DefaultClassifier, Error, OwnedPermit};

/// A boxed error, as tower uses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// Future for the [`CircuitBreaker`](crate::CircuitBreaker) service.
    ///
    /// Dropping it before the inner future completes counts the call as ignored (a half-open
    /// trial slot is handed back).
    pub struct ResponseFuture<F, K = DefaultClassifier, C: Clock = SystemClock> {
        #[pin]
        state: ResponseState<F>,
        permit: Option<OwnedPermit<C>>,
        classifier: K,
    }
}

pin_project! {
    #[project = ResponseStateProj]
    enum ResponseState<F> {
        Called {
            #[pin]
            fut: F,
        },
        Rejected {
            error: Error,
        },
    }
}

impl<F, K, C: Clock> ResponseFuture<F, K, C> {
    pub(crate) fn called(fut: F, permit: OwnedPermit<C>, classifier: K) -> Self {
        Self {
            state: ResponseState::Called { fut },
            permit: Some(permit),
            classifier,
        }
    }
}

impl<F, K, C: Clock> ResponseFuture<F, K, C> {
    pub(crate) fn rejected(error: Error, classifier: K) -> Self {
        Self {
            state: ResponseState::Rejected { error },
            permit: None,
            classifier,
        }
    }
}

impl<F, T, E, K, C> Future for ResponseFuture<F, K, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    K: Classify<T, E>,
    C: Clock,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            ResponseStateProj::Called { fut } => {
                let result = std::task::ready!(fut.poll(cx));
                if let Some(permit) = this.permit.take() {
                    permit.record(this.classifier.classify(&result));
                }
                Poll::Ready(result.map_err(Into::into))
            }
            ResponseStateProj::Rejected { error } => Poll::Ready(Err(error.clone().into())),
        }
    }
}

impl<F, K, C: Clock> fmt::Debug for ResponseFuture<F, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}
