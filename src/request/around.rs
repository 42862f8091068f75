//! Middleware as plain tower layers: a [`Hook`] looks at (and may change) each request before the
//! inner service sees it, and the response after. Unlike `axum::middleware::from_fn`, a request
//! costs no boxed future and no clone of the inner service, and a held request (a long poll)
//! keeps only the hook's small state besides the inner future.

use axum::extract::Request;
use axum::response::Response;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tower::{Layer, Service};

/// What a middleware does around one request.
pub trait Hook: Clone + Send + Sync + 'static {
    /// What `before` hands on to `after`.
    type After: After;

    /// Runs before the inner service is called.
    fn before(&self, request: &mut Request) -> Self::After;
}

/// The second half of a [`Hook`]: what it does with the response.
pub trait After: Send + 'static {
    fn after(self, response: Response) -> Response;
}

/// Nothing to do after.
impl After for () {
    fn after(self, response: Response) -> Response {
        response
    }
}

/// The layer of a [`Hook`].
#[derive(Clone)]
pub struct Around<H>(pub H);

impl<S, H: Clone> Layer<S> for Around<H> {
    type Service = AroundService<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        AroundService { inner, hook: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct AroundService<S, H> {
    inner: S,
    hook: H,
}

impl<S, H> Service<Request> for AroundService<S, H>
where
    S: Service<Request, Response = Response>,
    H: Hook,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AroundFuture<S::Future, H::After>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let after = self.hook.before(&mut request);
        AroundFuture { inner: self.inner.call(request), after: Some(after) }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, then the hook's `after`.
    pub struct AroundFuture<F, A> {
        #[pin]
        inner: F,
        after: Option<A>,
    }
}

impl<F, E, A> Future for AroundFuture<F, A>
where
    F: Future<Output = Result<Response, E>>,
    A: After,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let after = this.after.take().expect("an AroundFuture is not polled after it completed");
        Poll::Ready(Ok(after.after(response)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::HeaderValue;
    use tower::ServiceExt;

    #[derive(Clone)]
    struct Tag;

    struct Status(String);

    impl Hook for Tag {
        type After = Status;
        fn before(&self, request: &mut Request) -> Status {
            request.headers_mut().insert("x-seen", HeaderValue::from_static("yes"));
            Status(request.uri().path().to_string())
        }
    }

    impl After for Status {
        fn after(self, mut response: Response) -> Response {
            response.headers_mut().insert("x-path", HeaderValue::from_str(&self.0).unwrap());
            response
        }
    }

    #[tokio::test]
    async fn the_hook_sees_the_request_before_and_the_response_after() {
        let inner = tower::service_fn(|request: Request| async move {
            let seen = request.headers().get("x-seen").cloned();
            let mut response = Response::new(Body::empty());
            if let Some(seen) = seen {
                response.headers_mut().insert("x-inner-saw", seen);
            }
            Ok::<_, std::convert::Infallible>(response)
        });
        let service = Around(Tag).layer(inner);
        let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(response.headers()["x-inner-saw"], "yes");
        assert_eq!(response.headers()["x-path"], "/");
    }
}
