//! The value types of the OpenTelemetry environment variables: Boolean, Duration, Timeout,
//! positive Integer, and the `key=value,…` lists of headers and resource attributes.
//!
//! Each parser takes the variable's name so that its error names the variable that was set.

use core::time::Duration;

use crate::config::FieldError;

/// A value read from one environment variable, with that variable's name, so that a binary
/// can name it in any error it finds later (a range its own configuration imposes, say).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FromVar<T> {
    /// The variable that was set, e.g. `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`.
    pub variable: &'static str,
    /// Its parsed value.
    pub value: T,
}

impl<T> FromVar<T> {
    /// The same variable with its value transformed.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> FromVar<U> {
        FromVar {
            variable: self.variable,
            value: f(self.value),
        }
    }
}

/// A timeout: the specification reads `0` as "no limit".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Timeout {
    /// Give up after this long.
    After(Duration),
    /// No limit; a binary may substitute the longest timeout it allows.
    Unlimited,
}

/// The Boolean type: only a case-insensitive `true` is true. Anything else is false; a value
/// other than `false` is also reported in `warnings`, as the specification asks.
pub(super) fn boolean(variable: &'static str, text: &str, warnings: &mut Vec<FieldError>) -> bool {
    let text = text.trim();
    if text.eq_ignore_ascii_case("true") {
        return true;
    }
    if !text.eq_ignore_ascii_case("false") {
        warnings.push(FieldError::new(
            variable,
            format!("{text:?} is neither true nor false; read as false"),
        ));
    }
    false
}

/// A non-negative whole number of milliseconds.
pub(super) fn milliseconds(variable: &'static str, text: &str) -> Result<u64, FieldError> {
    text.trim().parse().map_err(|_| {
        FieldError::new(
            variable,
            format!("must be a whole number of milliseconds, got {text:?}"),
        )
    })
}

/// The Duration type: milliseconds.
pub(super) fn duration(variable: &'static str, text: &str) -> Result<Duration, FieldError> {
    milliseconds(variable, text).map(Duration::from_millis)
}

/// The Timeout type: milliseconds, `0` for no limit.
pub(super) fn timeout(variable: &'static str, text: &str) -> Result<Timeout, FieldError> {
    Ok(match milliseconds(variable, text)? {
        0 => Timeout::Unlimited,
        ms => Timeout::After(Duration::from_millis(ms)),
    })
}

/// A positive Integer.
pub(super) fn positive(variable: &'static str, text: &str) -> Result<usize, FieldError> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(FieldError::new(
            variable,
            format!("must be a positive whole number, got {text:?}"),
        )),
    }
}

/// Which parts of a `key=value` pair are percent-encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Encoded {
    /// Only values: headers, in the W3C Baggage format whose keys are HTTP tokens (`%` is
    /// a token character there, so decoding it would change the name).
    Values,
    /// Keys and values: resource attributes, where `,` and `=` in either must be encoded.
    KeysAndValues,
}

/// `key1=value1,key2=value2`, percent-decoded, in order. Blank members are skipped; a member
/// without `=` or with an empty key is an error for the whole variable, as the Resource SDK
/// asks (the whole value is discarded).
pub(super) fn key_values(
    variable: &'static str,
    text: &str,
    encoded: Encoded,
) -> Result<Vec<(String, String)>, FieldError> {
    text.split(',')
        .filter(|member| !member.trim().is_empty())
        .map(|member| {
            let (key, value) = member
                .split_once('=')
                .ok_or_else(|| FieldError::new(variable, format!("{member:?} is not key=value")))?;
            let key = match encoded {
                Encoded::Values => key.trim().to_owned(),
                Encoded::KeysAndValues => percent_decode(variable, key.trim())?,
            };
            if key.is_empty() {
                return Err(FieldError::new(
                    variable,
                    format!("{member:?} has an empty key"),
                ));
            }
            Ok((key, percent_decode(variable, value.trim())?))
        })
        .collect()
}

/// RFC 3986 percent-decoding into UTF-8. A `%` not followed by two hex digits is refused
/// rather than kept: the variables' formats require a literal `%` to be written `%25`.
pub(super) fn percent_decode(variable: &'static str, text: &str) -> Result<String, FieldError> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte != b'%' {
            out.push(byte);
            rest = tail;
            continue;
        }
        let decoded = match tail {
            [high, low, after @ ..] => hex_digit(*high)
                .zip(hex_digit(*low))
                .map(|(h, l)| (h << 4 | l, after)),
            _ => None,
        };
        let Some((value, after)) = decoded else {
            return Err(FieldError::new(
                variable,
                format!("{text:?} has a % that is not followed by two hex digits"),
            ));
        };
        out.push(value);
        rest = after;
    }
    String::from_utf8(out)
        .map_err(|_| FieldError::new(variable, format!("{text:?} is not UTF-8 once decoded")))
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAR: &str = "OTEL_TEST";

    #[test]
    fn booleans_are_true_only_for_true_and_warn_about_other_words() {
        let mut warnings = Vec::new();
        assert!(boolean(VAR, "true", &mut warnings));
        assert!(boolean(VAR, " TRUE ", &mut warnings));
        assert!(!boolean(VAR, "false", &mut warnings));
        assert!(warnings.is_empty());
        assert!(!boolean(VAR, "1", &mut warnings), "no extension of true");
        assert!(!boolean(VAR, "yes", &mut warnings));
        assert_eq!(warnings.len(), 2);
        assert_eq!(warnings[0].field, VAR);
    }

    #[test]
    fn numbers_are_whole_milliseconds_and_zero_timeouts_have_no_limit() {
        assert_eq!(duration(VAR, "250"), Ok(Duration::from_millis(250)));
        assert_eq!(duration(VAR, "0"), Ok(Duration::ZERO));
        assert_eq!(
            timeout(VAR, "1500"),
            Ok(Timeout::After(Duration::from_millis(1500)))
        );
        assert_eq!(timeout(VAR, "0"), Ok(Timeout::Unlimited));
        for bad in ["-5", "1s", "2.5", "x"] {
            let e = duration(VAR, bad).unwrap_err();
            assert_eq!(e.field, VAR);
            assert!(e.reason.contains(bad), "quotes the value: {}", e.reason);
            assert!(timeout(VAR, bad).is_err());
        }
        assert_eq!(positive(VAR, "2048"), Ok(2048));
        assert!(positive(VAR, "0").is_err(), "valid values are positive");
        assert!(positive(VAR, "-1").is_err());
    }

    #[test]
    fn key_values_are_percent_decoded_and_an_error_discards_the_whole_value() {
        let headers = key_values(
            VAR,
            "authorization=Bearer%20x, team = edge ,,",
            Encoded::Values,
        );
        assert_eq!(
            headers,
            Ok(vec![
                ("authorization".into(), "Bearer x".into()),
                ("team".into(), "edge".into()),
            ])
        );
        // A header name keeps its `%`; a resource attribute's key is decoded.
        assert_eq!(
            key_values(VAR, "x%41=1", Encoded::Values),
            Ok(vec![("x%41".into(), "1".into())])
        );
        assert_eq!(
            key_values(VAR, "a%3Db%2Cc=x%2Cy%3Dz", Encoded::KeysAndValues),
            Ok(vec![("a=b,c".into(), "x,y=z".into())])
        );
        assert_eq!(
            key_values(VAR, "city=K%C3%B6ln", Encoded::KeysAndValues),
            Ok(vec![("city".into(), "Köln".into())])
        );
        for bad in ["a=1,b", "=1", "a=100%", "a=%zz", "a=%ff"] {
            let e = key_values(VAR, bad, Encoded::KeysAndValues).unwrap_err();
            assert_eq!(e.field, VAR, "{bad}");
        }
    }
}
