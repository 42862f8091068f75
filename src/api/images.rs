//! `PUT|GET|DELETE /api/v1/users/{uri}/image[?size=large]`: JPEG or PNG, size-limited and checked
//! against its content type; `ETag` is the image hash and `If-None-Match` gets `304`.

use super::auth::Caller;
use super::error::ApiError;
use super::path_uri;
use crate::model::rights::AccessLevel;
use crate::service::Gateway;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct SizeQuery {
    #[serde(default)]
    size: Option<String>,
}

fn is_large(query: &SizeQuery) -> Result<bool, ApiError> {
    match query.size.as_deref() {
        None | Some("normal") => Ok(false),
        Some("large") => Ok(true),
        Some(_) => Err(ApiError::invalid_field("size", "normal or large")),
    }
}

/// The content type the bytes really have, if it is one we accept.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else {
        None
    }
}

pub async fn put_image(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(uri): Path<String>,
    Query(query): Query<SizeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let uri = path_uri(&uri)?;
    if !caller.is_admin_or(&uri) {
        return Err(ApiError::permission_denied("only the user or an admin may set the image"));
    }
    let large = is_large(&query)?;
    if gateway.directory.profile(&uri).is_none() {
        return Err(ApiError::not_found(format!("no user {uri}")));
    }
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let declared = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if declared != "image/jpeg" && declared != "image/png" {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send image/jpeg or image/png"));
    }
    let limit = gateway.config.limits.image_bytes;
    if body.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("images are at most {limit} bytes"),
        ));
    }
    if sniff(&body) != Some(declared.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the bytes are not the declared image type",
        ));
    }
    let hash = gateway.set_image(&uri, large, &declared, body.to_vec()).await?;
    Ok((StatusCode::OK, axum::Json(serde_json::json!({"u8sImageHash": hash}))))
}

pub async fn get_image(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(uri): Path<String>,
    Query(query): Query<SizeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let uri = path_uri(&uri)?;
    let large = is_large(&query)?;
    let visible = match caller.user() {
        Some(me) => me == uri || gateway.directory.level(&uri, me) >= AccessLevel::Public,
        None => caller.is_admin(),
    };
    let image = match visible {
        true => gateway.image(&uri, large).await?,
        false => None,
    };
    let image = image.ok_or_else(|| ApiError::not_found("no image (eNOIMAGEFOUND)"))?;
    let etag = format!("\"{}\"", image.hash);
    let matches =
        headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response =
        if matches { StatusCode::NOT_MODIFIED.into_response() } else { (StatusCode::OK, image.bytes).into_response() };
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    if !matches {
        if let Ok(value) = HeaderValue::from_str(&image.content_type) {
            out.insert(header::CONTENT_TYPE, value);
        }
    }
    Ok(response)
}

pub async fn delete_image(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(uri): Path<String>,
    Query(query): Query<SizeQuery>,
) -> Result<StatusCode, ApiError> {
    let uri = path_uri(&uri)?;
    if !caller.is_admin_or(&uri) {
        return Err(ApiError::permission_denied("only the user or an admin may remove the image"));
    }
    let large = is_large(&query)?;
    match gateway.remove_image(&uri, large).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found("no image")),
    }
}
