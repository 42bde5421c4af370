//! Detection of AWS Signature Version 4 requests, which a proxy must pass on byte for byte:
//! any change to a signed header breaks the signature.

/// Where the signature is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SignatureLocation {
    /// `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
    Header,
    /// A presigned URL: `X-Amz-Signature=…` in the query.
    Query,
}

/// A signed request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedRequest {
    /// Where the signature is.
    pub location: SignatureLocation,
    /// The header names the signature covers, lowercase, as listed by the signer.
    pub signed_headers: Vec<String>,
}

impl SignedRequest {
    /// Whether `name` is covered by the signature.
    pub fn signs(&self, name: &str) -> bool {
        self.signed_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// Algorithms of SigV4 (`AWS4-HMAC-SHA256`) and SigV4a (`AWS4-ECDSA-P256-SHA256`).
const ALGORITHM_PREFIX: &[u8] = b"AWS4-";

/// Recognises a SigV4-signed request from its `Authorization` header and its query string.
pub fn detect(authorization: Option<&[u8]>, query: Option<&[u8]>) -> Option<SignedRequest> {
    if let Some(signed_headers) = authorization.and_then(from_authorization) {
        return Some(SignedRequest {
            location: SignatureLocation::Header,
            signed_headers,
        });
    }
    query
        .and_then(from_query)
        .map(|signed_headers| SignedRequest {
            location: SignatureLocation::Query,
            signed_headers,
        })
}

/// Whether a request is signed, without collecting the signed header names: the cheap check
/// for the hot path.
pub fn is_signed(authorization: Option<&[u8]>, query: Option<&[u8]>) -> bool {
    authorization.is_some_and(has_algorithm)
        || query.is_some_and(|q| {
            query_params(q).any(|(name, _)| name.eq_ignore_ascii_case(b"x-amz-signature"))
        })
}

fn has_algorithm(authorization: &[u8]) -> bool {
    let value = crate::w3c::trim_ows(authorization);
    value
        .get(..ALGORITHM_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(ALGORITHM_PREFIX))
}

fn from_authorization(authorization: &[u8]) -> Option<Vec<String>> {
    if !has_algorithm(authorization) {
        return None;
    }
    let value = crate::w3c::trim_ows(authorization);
    let params = value.splitn(2, |b| *b == b' ').nth(1).unwrap_or_default();
    let signed = params
        .split(|b| *b == b',')
        .map(crate::w3c::trim_ows)
        .find_map(|param| param.strip_prefix(b"SignedHeaders="))
        .unwrap_or_default();
    Some(split_header_list(signed))
}

fn from_query(query: &[u8]) -> Option<Vec<String>> {
    let mut signed = false;
    let mut headers = Vec::new();
    for (name, value) in query_params(query) {
        if name.eq_ignore_ascii_case(b"x-amz-signature") {
            signed = true;
        } else if name.eq_ignore_ascii_case(b"x-amz-signedheaders") {
            headers = split_header_list(&percent_decode(value));
        }
    }
    signed.then_some(headers)
}

fn query_params(query: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let query = query.strip_prefix(b"?").unwrap_or(query);
    query.split(|b| *b == b'&').map(|pair| {
        let mut kv = pair.splitn(2, |b| *b == b'=');
        (kv.next().unwrap_or_default(), kv.next().unwrap_or_default())
    })
}

fn split_header_list(list: &[u8]) -> Vec<String> {
    list.split(|b| *b == b';')
        .filter(|h| !h.is_empty())
        .map(|h| String::from_utf8_lossy(h).to_ascii_lowercase())
        .collect()
}

/// Decodes `%XX` escapes; a malformed escape is kept as it is.
fn percent_decode(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some((&byte, tail)) = rest.split_first() {
        let escaped = match (byte, tail) {
            (b'%', [hi, lo, ..]) => {
                let digit = |b: u8| (b as char).to_digit(16);
                digit(*hi).zip(digit(*lo)).map(|(h, l)| (h * 16 + l) as u8)
            }
            _ => None,
        };
        match (escaped, tail.get(2..)) {
            (Some(decoded), Some(after)) => {
                out.push(decoded);
                rest = after;
            }
            _ => {
                out.push(byte);
                rest = tail;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
        SignedHeaders=content-type;host;x-amz-date, \
        Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

    #[test]
    fn detects_the_authorization_header_and_its_signed_headers() {
        let signed = detect(Some(AUTH.as_bytes()), None).unwrap();
        assert_eq!(signed.location, SignatureLocation::Header);
        assert_eq!(
            signed.signed_headers,
            ["content-type", "host", "x-amz-date"]
        );
        assert!(signed.signs("Host"));
        assert!(!signed.signs("traceparent"));
        assert!(is_signed(Some(AUTH.as_bytes()), None));
    }

    #[test]
    fn detects_presigned_urls() {
        let query = b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders=host%3Bx-amz-date&X-Amz-Signature=abc";
        let signed = detect(None, Some(query)).unwrap();
        assert_eq!(signed.location, SignatureLocation::Query);
        assert_eq!(signed.signed_headers, ["host", "x-amz-date"]);
        assert!(is_signed(None, Some(query)));
    }

    #[test]
    fn ignores_other_requests() {
        assert_eq!(detect(Some(b"Bearer abc"), Some(b"a=1&b=2")), None);
        assert!(!is_signed(
            Some(b"Basic Zm9vOmJhcg=="),
            Some(b"x-amz-date=1")
        ));
        assert_eq!(detect(None, None), None);
    }

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(percent_decode(b"a%3Bb%zz%4"), b"a;b%zz%4");
    }
}
