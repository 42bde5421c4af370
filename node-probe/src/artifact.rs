//! The filter artifact, served to the sidecars of this node on the receiver's HTTP port, so
//! that mesh-config's `code.remote` can point at the node agent.
//!
//! `GET <path>` answers the file with its sha256 in `Content-Digest` (RFC 9530) and as the
//! `ETag`; `GET <path>.sha256` answers the lowercase hex digest, which is what Envoy's remote
//! data source is configured with. The file is read once at start, so what is served is what
//! was hashed.

use std::path::Path;

use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::Full;
use sha2::{Digest, Sha256};

/// `Content-Digest` and `ETag` of every response, and the hex digest.
#[derive(Clone, Debug)]
pub struct Artifact {
    path: String,
    digest_path: String,
    bytes: Bytes,
    hex: String,
    content_digest: String,
}

impl Artifact {
    /// The artifact in `file`, served at `path` (which starts with `/`).
    pub fn load(file: &Path, path: &str) -> std::io::Result<Self> {
        Ok(Self::new(std::fs::read(file)?, path))
    }

    /// An artifact of `bytes`, served at `path`.
    pub fn new(bytes: Vec<u8>, path: &str) -> Self {
        let digest = Sha256::digest(&bytes);
        let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            path: path.to_owned(),
            digest_path: format!("{path}.sha256"),
            content_digest: format!("sha-256=:{}:", base64(&digest)),
            hex,
            bytes: Bytes::from(bytes),
        }
    }

    /// The lowercase hex sha256.
    pub fn sha256_hex(&self) -> &str {
        &self.hex
    }

    /// The response to a request for `path`, or `None` when it is not the artifact's.
    pub fn respond(&self, method: &Method, path: &str) -> Option<Response<Full<Bytes>>> {
        let (body, content_type) = if path == self.path {
            (self.bytes.clone(), "application/wasm")
        } else if path == self.digest_path {
            (Bytes::from(format!("{}\n", self.hex)), "text/plain")
        } else {
            return None;
        };
        let allowed = *method == Method::GET || *method == Method::HEAD;
        let mut response = Response::new(Full::new(if allowed && *method == Method::GET {
            body
        } else {
            Bytes::new()
        }));
        if !allowed {
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            return Some(response);
        }
        let headers = response.headers_mut();
        for (name, value) in [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::ETAG, format!("\"{}\"", self.hex)),
            (
                header::HeaderName::from_static("content-digest"),
                self.content_digest.clone(),
            ),
        ] {
            if let Ok(value) = header::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        Some(response)
    }
}

/// Standard base64 with padding (RFC 4648 §4), for the digest header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let symbol =
        |index: u32| char::from(ALPHABET.get((index & 63) as usize).copied().unwrap_or(b'='));
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let [a, b, c] = [0, 1, 2].map(|i| chunk.get(i).copied().map_or(0, u32::from));
        let n = (a << 16) | (b << 8) | c;
        out.push(symbol(n >> 18));
        out.push(symbol(n >> 12));
        out.push(if chunk.len() > 1 { symbol(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { symbol(n) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_values() {
        // FIPS 180-2's "abc" vector.
        let artifact = Artifact::new(b"abc".to_vec(), "/filter.wasm");
        assert_eq!(
            artifact.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 9530's own example digest form, and RFC 4648's vectors.
        assert_eq!(
            artifact.content_digest,
            "sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=:"
        );
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn only_the_artifacts_paths_are_answered() {
        let artifact = Artifact::new(b"\0asm".to_vec(), "/filter.wasm");
        let response = artifact.respond(&Method::GET, "/filter.wasm").unwrap();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/wasm");
        assert!(
            response.headers()["content-digest"]
                .to_str()
                .unwrap()
                .starts_with("sha-256=:")
        );
        let digest = artifact
            .respond(&Method::GET, "/filter.wasm.sha256")
            .unwrap();
        assert_eq!(digest.status(), StatusCode::OK);
        assert_eq!(
            artifact
                .respond(&Method::POST, "/filter.wasm")
                .unwrap()
                .status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert!(artifact.respond(&Method::GET, "/v1/traces").is_none());
    }
}
