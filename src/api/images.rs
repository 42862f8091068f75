//! `PUT|GET|DELETE /api/v1/users/{uri}/image[?size=large]`: JPEG or PNG, size-limited and checked
//! against its content type; `ETag` is the image hash and `If-None-Match` gets `304`.

use super::auth::Caller;
use super::error::ApiError;
use super::{path_uri, UserPath};
use crate::service::permits::Action;
use crate::service::Gateway;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::IntoDeserializer;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Which of the user's two pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageSize {
    #[default]
    Normal,
    Large,
}

/// `?size=`, read by hand so that a bad value is a JSON error naming the field.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SizeQuery {
    /// `normal` (the default) or `large`.
    #[serde(default)]
    #[param(value_type = Option<ImageSize>, inline)]
    size: Option<String>,
}

/// A query that does not parse (a repeated `size`, say) is refused like a bad value.
fn is_large(query: Result<Query<SizeQuery>, QueryRejection>) -> Result<bool, ApiError> {
    let refused = || ApiError::invalid_field("size", "normal or large, at most once");
    let Query(query) = query.map_err(|_| refused())?;
    let Some(size) = query.size else { return Ok(false) };
    let size: Result<ImageSize, serde::de::value::Error> = ImageSize::deserialize(size.as_str().into_deserializer());
    size.map(|s| s == ImageSize::Large).map_err(|_| refused())
}

/// A stored image.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageStored {
    /// The image hash: the `ETag` it is served with.
    #[serde(rename = "u8sImageHash")]
    hash: String,
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

/// Stores the user's picture (a change of it is a presence change).
#[utoipa::path(
    put,
    path = "/api/v1/users/{uri}/image",
    tag = "images",
    params(UserPath, SizeQuery),
    request_body(description = "The picture, at most `limits.image_bytes` bytes", content(("image/jpeg"), ("image/png"))),
    security(("bearer" = []), ("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 200, description = "Stored", body = ImageStored),
        (status = 401, description = "No valid bearer token or ticket", body = ApiError),
        (status = 403, description = "Neither the user nor an admin", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
        (status = 413, description = "Larger than `limits.image_bytes`", body = ApiError),
        (status = 415, description = "Not `image/jpeg` or `image/png`, or the bytes are not the declared type", body = ApiError),
        (status = 422, description = "The URI or `size` is malformed", body = ApiError),
    )
)]
pub async fn put_image(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
    query: Result<Query<SizeQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<ImageStored>), ApiError> {
    let uri = path_uri(&uri)?;
    let permit = gateway.permit(&caller.actor(), Action::Image, &uri)?;
    let large = is_large(query)?;
    if !gateway.user_known(&uri).await? {
        return Err(ApiError::not_found(format!("no user {uri}")));
    }
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let declared = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if declared != "image/jpeg" && declared != "image/png" {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send image/jpeg or image/png"));
    }
    let limit = gateway.config().limits.image_bytes;
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
    let hash = gateway.put_image(&permit, large, &declared, body.to_vec()).await?;
    Ok((StatusCode::OK, axum::Json(ImageStored { hash })))
}

/// The user's picture, if the caller may see it (public level and above).
#[utoipa::path(
    get,
    path = "/api/v1/users/{uri}/image",
    tag = "images",
    params(
        UserPath,
        SizeQuery,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from before: answered with 304 while it is current"),
    ),
    security(("bearer" = []), ("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 200, description = "The picture", content(("image/jpeg"), ("image/png")), headers(
            ("ETag" = String, description = "The image hash, quoted"),
            ("Cache-Control" = String, description = "`no-store`: a picture is cut by the reader's level"),
        )),
        (status = 304, description = "Not modified since the `If-None-Match` ETag", headers(
            ("ETag" = String, description = "The image hash, quoted"),
        )),
        (status = 401, description = "No valid bearer token or ticket", body = ApiError),
        (status = 404, description = "No picture, or the caller may not see it (`eNOIMAGEFOUND`)", body = ApiError),
        (status = 422, description = "The URI or `size` is malformed", body = ApiError),
    )
)]
pub async fn get_image(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
    query: Result<Query<SizeQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let uri = path_uri(&uri)?;
    let large = is_large(query)?;
    let image = gateway.visible_image(&caller.actor(), &uri, large).await?;
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
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !matches {
        if let Ok(value) = HeaderValue::from_str(&image.content_type) {
            out.insert(header::CONTENT_TYPE, value);
        }
    }
    Ok(response)
}

/// Removes the user's picture.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{uri}/image",
    tag = "images",
    params(UserPath, SizeQuery),
    security(("bearer" = []), ("cwaTicket" = []), ("cwaTicketCookie" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid bearer token or ticket", body = ApiError),
        (status = 403, description = "Neither the user nor an admin", body = ApiError),
        (status = 404, description = "No picture", body = ApiError),
        (status = 422, description = "The URI or `size` is malformed", body = ApiError),
    )
)]
pub async fn delete_image(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(UserPath { uri }): Path<UserPath>,
    query: Result<Query<SizeQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let uri = path_uri(&uri)?;
    let permit = gateway.permit(&caller.actor(), Action::Image, &uri)?;
    let large = is_large(query)?;
    match gateway.delete_image(&permit, large).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found("no image")),
    }
}
