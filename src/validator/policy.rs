//! Where keys may come from: the URL rule for issuers, key sets and
//! redirects, and how long a fetched key set stays fresh.

use std::time::Duration;

use crate::config::is_loopback_host;

/// The longest `max_cache` and `max_stale` (and `status_max_stale`)
/// accepted: limits, not a way to turn them off.
pub const MAX_CACHE_CEILING: Duration = Duration::from_secs(24 * 3600);

/// Redirects followed for one key-set fetch.
const MAX_REDIRECTS: usize = 3;

/// Whether keys may be fetched from (or trusted for) `url`: https, or plain
/// http to a loopback host. `Err` completes "… {e}" in a message.
pub(super) fn secure_enough(url: &url::Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(url) => Ok(()),
        "http" => {
            Err("must use https:// (plain http only for localhost, 127.0.0.0/8 and ::1)".to_owned())
        }
        other => Err(format!("has an unsupported scheme `{other}`")),
    }
}

/// Whether a key-set fetch that went through `previous` may follow a
/// redirect to `next`: at most [`MAX_REDIRECTS`], each target https (or
/// http on loopback), and never to http once https was used.
pub(super) fn redirect_allowed(previous: &[url::Url], next: &url::Url) -> Result<(), String> {
    if previous.len() >= MAX_REDIRECTS {
        return Err(format!("more than {MAX_REDIRECTS} redirects"));
    }
    secure_enough(next).map_err(|e| format!("a redirect target {e}"))?;
    if next.scheme() != "https" && previous.iter().any(|u| u.scheme() == "https") {
        return Err("a redirect from https to http".to_owned());
    }
    Ok(())
}

/// The redirect policy of the verifier's own HTTP client: a few redirects,
/// each to https (or http on loopback), never from https back to http. Use
/// it for a client passed to
/// [`VerifierBuilder::client`](crate::validator::VerifierBuilder::client).
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        match redirect_allowed(attempt.previous(), attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    })
}

/// `max-age` from a Cache-Control value; `no-store`/`no-cache` count as 0
/// (the floor then applies).
pub(super) fn max_age_of(value: &str) -> Duration {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            age = seconds.trim_matches('"').parse::<u64>().ok();
        }
    }
    Duration::from_secs(age.unwrap_or(300))
}

/// A failed request's message with its causes: reqwest's own omits why (a
/// refused redirect, say).
pub(super) fn with_causes(err: &reqwest::Error) -> String {
    let mut message = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    message
}

/// Why a body could not be read whole.
pub(super) enum BodyError {
    /// Longer than the bound (by `Content-Length` or as it arrived).
    TooLarge,
    Failed(String),
}

/// The response body, refused as soon as it passes `max` bytes: a hostile
/// or broken server cannot make us hold more.
pub(super) async fn read_bounded(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Failed(with_causes(&e)))?
    {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
