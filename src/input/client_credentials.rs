//! `grant_type=client_credentials`: the client authenticates with its key id
//! and secret, by HTTP Basic (RFC 6749 §2.3.1: both form-urlencoded before
//! base64) or by `client_id` + `client_secret` in the body. Exactly one
//! credential per request.

use actix_web::HttpRequest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::domain::text::split_authorization;
use crate::error::{AuthScheme, OAuthError};
use crate::grants::Presented;
use crate::input::form::FormParams;

/// A key id is a UUID; anything else cannot name a key.
fn plausible_key_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

fn form_decode(part: &str) -> Option<Zeroizing<String>> {
    let spaced = part.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| Zeroizing::new(s.into_owned()))
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn decode_basic(credentials: &str) -> Option<(String, Zeroizing<String>)> {
    let decoded = Zeroizing::new(STANDARD.decode(credentials).ok()?);
    let text = std::str::from_utf8(&decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    Some((id.to_string(), secret))
}

/// The client's credentials, from the header or the body. `form` loses the
/// secret it carried.
pub fn credentials(req: &HttpRequest, form: &mut FormParams) -> Result<Presented, OAuthError> {
    let authorization = req
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap_or_default());
    let api_key_header = req.headers().contains_key("x-api-key");
    let posted_secret = form.contains("client_secret");
    let count = usize::from(authorization.is_some())
        + usize::from(api_key_header)
        + usize::from(posted_secret);
    if count > 1 {
        return Err(OAuthError::invalid_request(
            "send exactly one client credential",
        ));
    }
    if let Some(value) = authorization {
        let Some((scheme, encoded)) = split_authorization(value) else {
            return Err(OAuthError::invalid_client(AuthScheme::Basic));
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(OAuthError::invalid_client(AuthScheme::Basic));
        }
        let Some((id, secret)) = decode_basic(encoded) else {
            return Err(OAuthError::invalid_client(AuthScheme::Basic));
        };
        if let Some(form_id) = form.get("client_id")
            && form_id != id
        {
            return Err(OAuthError::invalid_request(
                "client_id does not match the authenticated client",
            ));
        }
        if !plausible_key_id(&id) {
            return Err(OAuthError::invalid_client(AuthScheme::Basic));
        }
        return Ok(Presented {
            key_id: Some(id),
            secret,
            scheme: AuthScheme::Basic,
        });
    }
    if posted_secret {
        let secret = form.take("client_secret").unwrap_or_default();
        return match form.get("client_id") {
            Some(id) if plausible_key_id(id) => Ok(Presented {
                key_id: Some(id.to_owned()),
                secret,
                scheme: AuthScheme::Post,
            }),
            _ => Err(OAuthError::invalid_client(AuthScheme::Post)),
        };
    }
    Err(OAuthError::invalid_client(AuthScheme::Basic))
}

/// Client authentication is optional for token exchange; when sent it
/// follows the same rules.
pub fn optional_credentials(
    req: &HttpRequest,
    form: &mut FormParams,
) -> Result<Option<Presented>, OAuthError> {
    let sent = req.headers().contains_key("authorization")
        || req.headers().contains_key("x-api-key")
        || form.contains("client_secret");
    if sent {
        credentials(req, form).map(Some)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_parts_are_form_decoded() {
        let encoded = STANDARD.encode("a%3Ab:km_x%2By+z");
        let (id, secret) = decode_basic(&encoded).unwrap();
        assert_eq!(id, "a:b");
        assert_eq!(secret.as_str(), "km_x+y z");
        assert!(decode_basic("not base64!").is_none());
        assert!(decode_basic(&STANDARD.encode("no-colon")).is_none());
    }
}
