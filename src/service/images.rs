//! Contact images (a normal and a large variant): stored durably, identified by a SHA-256 hash that
//! serves as `ETag`; a new or removed normal image is a presence change (Presence V2 flag 4).

use super::Gateway;
use crate::error::{GatewayError, Result};
use crate::store::StoredImage;
use sha2::{Digest, Sha256};

impl Gateway {
    /// Stores an image and returns its hash (to the end even if the request is abandoned).
    pub(crate) async fn set_image(&self, uri: &str, large: bool, content_type: &str, bytes: Vec<u8>) -> Result<String> {
        let hash = format!("{:x}", Sha256::digest(&bytes));
        let image = StoredImage { content_type: content_type.to_string(), bytes, hash: hash.clone() };
        let uri = uri.to_string();
        self.complete(move |gw| async move {
            gw.store.save_image(&uri, large, &image).await.map_err(|e| GatewayError::store("saving an image", e))?;
            if !large {
                gw.set_image_hash(&uri, Some(image.hash.clone()));
            }
            Ok(image.hash)
        })
        .await
    }

    pub(crate) async fn remove_image(&self, uri: &str, large: bool) -> Result<bool> {
        let uri = uri.to_string();
        self.complete(move |gw| async move {
            let removed = gw.store.remove_image(&uri, large).await;
            let removed = removed.map_err(|e| GatewayError::store("removing an image", e))?;
            if removed && !large {
                gw.set_image_hash(&uri, None);
            }
            Ok(removed)
        })
        .await
    }

    pub(crate) async fn image(&self, uri: &str, large: bool) -> Result<Option<StoredImage>> {
        self.store.image(uri, large).await.map_err(|e| GatewayError::store("reading an image", e))
    }

    pub(crate) fn set_image_hash(&self, uri: &str, hash: Option<String>) {
        if let Some(entry) = self.presence_entry(uri) {
            entry.live.lock().model.image_hash = hash;
            self.refresh(uri);
        }
    }
}
