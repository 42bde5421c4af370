//! AWS Signature Version 4: verifying a received request as an AWS endpoint would, and signing
//! the workload's own calls, both through the `aws-sigv4` crate.
//!
//! Verification recomputes the signature over the request exactly as it arrived: the headers
//! the client listed as signed, the Host header, the `x-amz-date` time and the body. Any byte
//! changed on the way (by a proxy that "only" rewrote a trace header, say) fails it.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use sha2::{Digest, Sha256};

use crate::http::RequestHead;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// A key pair the workload accepts signatures from, and signs its own calls with.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The access key ID, as in the signature's credential scope.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl std::str::FromStr for Credential {
    type Err = &'static str;

    /// Parses `ACCESS_KEY_ID:SECRET_ACCESS_KEY`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(Self {
                access_key_id: id.to_owned(),
                secret_access_key: secret.to_owned(),
            }),
            _ => Err("a SigV4 credential is ACCESS_KEY_ID:SECRET_ACCESS_KEY"),
        }
    }
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No SigV4 signature on the request.
    Unsigned,
    /// The signature verified.
    Verified(Scope),
    /// The request is signed but the signature does not verify; the text says why.
    Rejected(String),
}

/// The credential scope of a verified signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The access key ID that signed.
    pub access_key_id: String,
    /// The signing region.
    pub region: String,
    /// The signing service name.
    pub service: String,
    /// The headers the client signed, as listed in its Authorization header.
    pub signed_headers: String,
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, String> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or("Authorization is not AWS4-HMAC-SHA256")?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(format!("unexpected Authorization component {part:?}")),
        }
    }
    let credential = credential.ok_or("Authorization lacks Credential")?;
    let mut scope = credential.split('/');
    let (Some(access_key_id), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(format!(
            "credential scope {credential:?} is not ID/DATE/REGION/SERVICE/aws4_request"
        ));
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed_headers.ok_or("Authorization lacks SignedHeaders")?,
        signature: signature.ok_or("Authorization lacks Signature")?,
    })
}

/// Verifies the SigV4 signature of `head` and `body` against `credentials`.
pub fn verify(head: &RequestHead, body: &[u8], credentials: &[Credential]) -> Verdict {
    let Some(authorization) = head.header("authorization") else {
        return if crate::http::query_param(head.query(), "X-Amz-Signature").is_some() {
            // Presigned URLs put the signature in the query; only header signing is checked.
            Verdict::Rejected("query-string (presigned) signatures are not verified".into())
        } else {
            Verdict::Unsigned
        };
    };
    let Ok(authorization) = std::str::from_utf8(authorization) else {
        return Verdict::Rejected("Authorization is not UTF-8".into());
    };
    if !authorization.starts_with(ALGORITHM) {
        return Verdict::Unsigned;
    }
    match verify_signed(head, body, authorization, credentials) {
        Ok(scope) => Verdict::Verified(scope),
        Err(reason) => Verdict::Rejected(reason),
    }
}

fn verify_signed(
    head: &RequestHead,
    body: &[u8],
    authorization: &str,
    credentials: &[Credential],
) -> Result<Scope, String> {
    let auth = parse_authorization(authorization)?;
    let credential = credentials
        .iter()
        .find(|c| c.access_key_id == auth.access_key_id)
        .ok_or_else(|| format!("unknown access key {:?}", auth.access_key_id))?;
    let text = |name: &str| {
        head.header(name)
            .map(|v| std::str::from_utf8(v).map_err(|_| format!("{name} is not UTF-8")))
            .transpose()
    };
    let amz_date = text("x-amz-date")?.ok_or("no x-amz-date header")?;
    let time = parse_amz_date(amz_date).ok_or("x-amz-date is not YYYYMMDD'T'HHMMSS'Z'")?;
    if amz_date.get(..8) != Some(auth.date) {
        return Err("the credential scope's date is not x-amz-date's".into());
    }
    let host = text("host")?.ok_or("no Host header")?;
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    // Headers the signer adds itself from the parameters below; the rest are passed as sent.
    let derived = [
        "host",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
    ];
    let mut headers = Vec::new();
    for name in signed.iter().filter(|n| !derived.contains(n)) {
        let values: Vec<&[u8]> = head.header_values(name).collect();
        if values.is_empty() {
            return Err(format!("signed header {name} is missing"));
        }
        for value in values {
            let value = std::str::from_utf8(value).map_err(|_| format!("{name} is not UTF-8"))?;
            headers.push((*name, value));
        }
    }
    let content_sha256 = text("x-amz-content-sha256")?;
    let checksum_signed = signed.contains(&"x-amz-content-sha256");
    let signable_body = match content_sha256.filter(|_| checksum_signed) {
        None => SignableBody::Bytes(body),
        Some(UNSIGNED_PAYLOAD) => SignableBody::UnsignedPayload,
        Some(claimed) => {
            if claimed != sha256_hex(body) {
                return Err("x-amz-content-sha256 is not the body's hash".into());
            }
            SignableBody::Precomputed(claimed.to_owned())
        }
    };
    let session_token = if signed.contains(&"x-amz-security-token") {
        text("x-amz-security-token")?.map(str::to_owned)
    } else {
        None
    };
    let uri = if head.target.starts_with('/') {
        format!("http://{host}{}", head.target)
    } else {
        head.target.clone()
    };
    let request = SignableRequest::new(&head.method, uri, headers.into_iter(), signable_body)
        .map_err(|e| format!("request cannot be signed: {e}"))?;
    let (added, signature) = compute(
        request,
        credential,
        session_token,
        auth.region,
        auth.service,
        time,
        checksum_signed,
    )?;
    let recomputed_authorization = added
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if !recomputed_authorization.contains(&format!("SignedHeaders={},", auth.signed_headers)) {
        return Err(format!(
            "signed headers {:?} are not the ones present ({recomputed_authorization:?})",
            auth.signed_headers
        ));
    }
    if !constant_time_eq(signature.as_bytes(), auth.signature.as_bytes()) {
        return Err("signature does not match".into());
    }
    Ok(Scope {
        access_key_id: auth.access_key_id.to_owned(),
        region: auth.region.to_owned(),
        service: auth.service.to_owned(),
        signed_headers: auth.signed_headers.to_owned(),
    })
}

/// The headers to add to a bodiless `method` request for `target` on `authority` so that it is
/// signed for `region` and `service` at `time`.
pub fn sign_headers(
    method: &str,
    authority: &str,
    target: &str,
    credential: &Credential,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let request = SignableRequest::new(
        method,
        format!("http://{authority}{target}"),
        std::iter::empty(),
        SignableBody::empty(),
    )
    .map_err(|e| format!("request cannot be signed: {e}"))?;
    compute(request, credential, None, region, service, time, true).map(|(added, _)| added)
}

fn compute(
    request: SignableRequest<'_>,
    credential: &Credential,
    session_token: Option<String>,
    region: &str,
    service: &str,
    time: SystemTime,
    checksum_header: bool,
) -> Result<(Vec<(String, String)>, String), String> {
    let identity: Identity = Credentials::new(
        &credential.access_key_id,
        &credential.secret_access_key,
        session_token,
        None,
        "workload",
    )
    .into();
    let mut settings = SigningSettings::default();
    // Only the headers the client listed are passed in, so nothing more may be left out.
    settings.excluded_headers = None::<Vec<Cow<'static, str>>>;
    if checksum_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    if service == "s3" {
        // S3 alone signs the path as sent: encoded once, never normalised.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let (instructions, signature) = sign(request, &params)
        .map_err(|e| format!("signing failed: {e}"))?
        .into_parts();
    let added = instructions
        .headers()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    Ok((added, signature))
}

/// Lower-case hex of the SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses SigV4's basic ISO 8601 time, `20150830T123600Z`.
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let digits = |range: std::ops::Range<usize>| -> Option<u64> {
        value
            .get(range)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?
            .parse()
            .ok()
    };
    if value.len() != 16 || value.get(8..9) != Some("T") || value.get(15..) != Some("Z") {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 || year < 1970 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), on the proleptic Gregorian calendar.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential() -> Credential {
        "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
            .parse()
            .unwrap()
    }

    #[test]
    fn amz_dates_parse() {
        assert_eq!(
            parse_amz_date("20150830T123600Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_440_938_160))
        );
        assert_eq!(
            parse_amz_date("20000301T000000Z"),
            Some(UNIX_EPOCH + Duration::from_secs(951_868_800))
        );
        for bad in [
            "20150830T123600",
            "2015083OT123600Z",
            "20151330T123600Z",
            "+0150830T123600Z",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    /// Cases of the AWS SigV4 test suite (as shipped in `aws-sigv4`'s
    /// `aws-signing-test-suite/v4/*/header-signed-request.txt`), whose signatures AWS computed:
    /// an independent check that verification computes what AWS computes.
    const SUITE: [(&str, &str); 4] = [
        (
            "get-vanilla",
            "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n\
             Authorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\n\n",
        ),
        (
            "get-header-value-trim",
            "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1: value1\nMy-Header2: \"a   b   c\"\n\
             X-Amz-Date:20150830T123600Z\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736\n\n",
        ),
        (
            "get-vanilla-with-session-token",
            "GET / HTTP/1.1\nHost:example.amazonaws.com\n\
             X-Amz-Security-Token:6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267\n\
             X-Amz-Date:20150830T123600Z\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8\n\n",
        ),
        (
            "post-x-www-form-urlencoded",
            "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded\nHost:example.amazonaws.com\n\
             Content-Length:13\nX-Amz-Date:20150830T123600Z\n\
             x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\n\
             Authorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, \
             Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b\n\nParam1=value1",
        ),
    ];

    fn suite_case(text: &str) -> (RequestHead, Vec<u8>) {
        let (head, body) = text.split_once("\n\n").unwrap();
        let head = format!("{}\r\n\r\n", head.replace('\n', "\r\n"));
        (
            RequestHead::parse(head.as_bytes()).unwrap(),
            body.as_bytes().to_vec(),
        )
    }

    #[test]
    fn the_aws_suite_cases_verify() {
        for (name, text) in SUITE {
            let (head, body) = suite_case(text);
            match verify(&head, &body, &[credential()]) {
                Verdict::Verified(scope) => {
                    assert_eq!(
                        (scope.region.as_str(), scope.service.as_str()),
                        ("us-east-1", "service")
                    );
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_changed_byte_fails_the_aws_suite_cases() {
        for (name, text) in SUITE {
            let changed = text.replace("Host:example.amazonaws.com", "Host:example.amazonaws.org");
            let (head, body) = suite_case(&changed);
            assert_eq!(
                verify(&head, &body, &[credential()]),
                Verdict::Rejected("signature does not match".into()),
                "{name}"
            );
        }
        let (head, _) = suite_case(SUITE[3].1);
        assert_eq!(
            verify(&head, b"Param1=value2", &[credential()]),
            Verdict::Rejected("x-amz-content-sha256 is not the body's hash".into())
        );
    }

    fn signed_raw(target: &str, extra: &str, service: &str) -> String {
        let time = UNIX_EPOCH + Duration::from_secs(1_763_700_000);
        let added = sign_headers(
            "GET",
            "10.200.0.1:8081",
            target,
            &credential(),
            "eu-west-1",
            service,
            time,
        )
        .unwrap();
        let mut raw = format!("GET {target} HTTP/1.1\r\nHost: 10.200.0.1:8081\r\n{extra}");
        for (name, value) in added {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw + "\r\n"
    }

    #[test]
    fn what_the_workload_signs_it_verifies() {
        for service in ["execute-api", "s3"] {
            let raw = signed_raw("/a%20b/./c?x=1&y=%2F", "", service);
            let head = RequestHead::parse(raw.as_bytes()).unwrap();
            assert!(
                matches!(verify(&head, b"", &[credential()]), Verdict::Verified(_)),
                "{service}: {raw}"
            );
            assert!(
                matches!(verify(&head, b"x", &[credential()]), Verdict::Rejected(_)),
                "a body the hash does not cover"
            );
        }
    }

    #[test]
    fn bad_signatures_are_rejected_with_a_reason() {
        let raw = signed_raw("/p", "", "execute-api");
        let cases = [
            (
                raw.replace("/p HTTP", "/q HTTP"),
                "signature does not match",
            ),
            (
                raw.replace("x-amz-date: 2025", "x-amz-date: 2024"),
                "date is not",
            ),
            (
                raw.replace("AKIDEXAMPLE/", "AKIDOTHER/"),
                "unknown access key",
            ),
            (
                raw.replace("SignedHeaders=", "SignedHeaders=x-missing;"),
                "x-missing is missing",
            ),
            (
                raw.replace("Signature=", "Bogus=1, Signature="),
                "unexpected Authorization",
            ),
            (raw.replace("/aws4_request", ""), "credential scope"),
        ];
        for (raw, reason) in cases {
            let head = RequestHead::parse(raw.as_bytes()).unwrap();
            match verify(&head, b"", &[credential()]) {
                Verdict::Rejected(why) => assert!(why.contains(reason), "{why} lacks {reason}"),
                other => panic!("{other:?} for {raw}"),
            }
        }
        let head =
            RequestHead::parse(b"GET /?X-Amz-Signature=ab HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert!(matches!(verify(&head, b"", &[]), Verdict::Rejected(_)));
        let head = RequestHead::parse(b"GET / HTTP/1.1\r\nAuthorization: Basic x\r\n\r\n").unwrap();
        assert_eq!(verify(&head, b"", &[]), Verdict::Unsigned);
    }

    #[test]
    fn an_extra_unsigned_header_does_not_break_the_signature() {
        let raw = signed_raw(
            "/p",
            "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n",
            "execute-api",
        );
        let head = RequestHead::parse(raw.as_bytes()).unwrap();
        assert!(matches!(
            verify(&head, b"", &[credential()]),
            Verdict::Verified(_)
        ));
    }

    #[test]
    fn credentials_parse_and_never_print_the_secret() {
        assert!("nocolon".parse::<Credential>().is_err());
        assert!(":secret".parse::<Credential>().is_err());
        assert!(!format!("{:?}", credential()).contains("wJal"));
    }
}
