//! Message size limits answer RESOURCE_EXHAUSTED, as the gRPC status-code spec says ("sent or
//! received message was larger than configured limit"). tonic reports them as OUT_OF_RANGE,
//! in the headers (a request too large: trailers-only response) or in the trailers (a
//! response too large); this layer rewrites exactly those statuses.

use http_body_util::BodyExt;
use tonic::codegen::http::{HeaderMap, HeaderValue, Response};

fn rewrite(h: &mut HeaderMap) {
    let out_of_range = h.get("grpc-status").is_some_and(|v| v == "11");
    let too_large = h
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .is_some_and(|m| m.contains("message%20length%20too%20large"));
    if out_of_range && too_large {
        h.insert("grpc-status", HeaderValue::from_static("8"));
    }
}

/// The response with a size-limit OUT_OF_RANGE turned into RESOURCE_EXHAUSTED.
pub fn map_response(mut r: Response<tonic::body::Body>) -> Response<tonic::body::Body> {
    rewrite(r.headers_mut());
    r.map(|body| {
        tonic::body::Body::new(body.map_frame(|frame| match frame.into_trailers() {
            Ok(mut t) => {
                rewrite(&mut t);
                http_body::Frame::trailers(t)
            }
            Err(frame) => frame,
        }))
    })
}

/// The layer for `tonic::transport::Server::builder().layer(..)`.
pub fn layer(
) -> tower::util::MapResponseLayer<fn(Response<tonic::body::Body>) -> Response<tonic::body::Body>> {
    tower::util::MapResponseLayer::new(map_response as fn(_) -> _)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_size_limit_statuses_are_rewritten() {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static("11"));
        h.insert(
            "grpc-message",
            HeaderValue::from_static("Error,%20decoded%20message%20length%20too%20large:%20found"),
        );
        rewrite(&mut h);
        assert_eq!(h["grpc-status"], "8");
        let mut other = HeaderMap::new();
        other.insert("grpc-status", HeaderValue::from_static("11"));
        other.insert(
            "grpc-message",
            HeaderValue::from_static("index%20out%20of%20range"),
        );
        rewrite(&mut other);
        assert_eq!(other["grpc-status"], "11");
    }
}
