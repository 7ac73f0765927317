//! The commands for humans and scripts that talk to a running keymint over
//! HTTP: `token` (exchange a key) and `verify` (check a token through the
//! issuer's JWKS), plus `openapi` (print the API document).
//!
//! Exit codes: 0 success; 1 the server or key set cannot be reached (or
//! answered 5xx); 2 usage; 3 refused: the key was not accepted, or the token
//! is not valid.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Args;
use zeroize::Zeroizing;

use super::runtime::runtime;
use crate::validator::{Verifier, VerifyError};

pub const EXIT_UNREACHABLE: u8 = 1;
pub const EXIT_REFUSED: u8 = 3;

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The API key secret. Prefer KEYMINT_API_KEY or --key-file: arguments
    /// are visible to other users in the process list.
    #[arg(
        long,
        env = "KEYMINT_API_KEY",
        hide_env_values = true,
        conflicts_with = "key_file"
    )]
    pub key: Option<String>,
    /// Read the API key secret from this file ("-" for stdin).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The keymint base URL.
    #[arg(long, env = "KEYMINT_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Space-separated scopes to ask for (default: all the key holds).
    #[arg(long)]
    pub scope: Option<String>,
    /// The audience to ask for (default: the key's first).
    #[arg(long)]
    pub audience: Option<String>,
    /// Lifetime in seconds (30 up to the key's and tenant's maximum).
    #[arg(long, value_name = "SECONDS")]
    pub expires_in: Option<u32>,
    /// Print the token's header and claims as JSON instead of the token.
    #[arg(long)]
    pub claims: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The JWT ("-" reads it from stdin).
    pub token: String,
    /// The issuer the token must come from; its JWKS is at
    /// <ISSUER>/.well-known/jwks.json unless --jwks-uri says otherwise.
    /// Both must be https:// (plain http only for localhost, 127.0.0.0/8
    /// and ::1); redirects never lead to plain http.
    #[arg(long, env = "KEYMINT_ISSUER")]
    pub issuer: String,
    /// The audience the token must be for (default: any; a service must
    /// always check its own).
    #[arg(long)]
    pub audience: Option<String>,
    #[arg(long, value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// Clock leeway in seconds.
    #[arg(long, default_value_t = 5)]
    pub leeway: i64,
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("keymint: {message}");
    ExitCode::from(code)
}

fn read_secret(args: &TokenArgs) -> Result<Zeroizing<String>, String> {
    let raw = match (&args.key, &args.key_file) {
        (Some(key), _) => Zeroizing::new(key.clone()),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = Zeroizing::new(String::new());
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("stdin: {e}"))?;
            text
        }
        (None, Some(path)) => Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        ),
        (None, None) => return Err("give the key with --key, KEYMINT_API_KEY or --key-file".into()),
    };
    Ok(Zeroizing::new(raw.trim().to_owned()))
}

/// `keymint token`: exchanges the key through `POST /api/v1/token`.
pub fn token(args: TokenArgs) -> ExitCode {
    let secret = match read_secret(&args) {
        Ok(secret) => secret,
        Err(message) => return fail(2, message),
    };
    let mut body = serde_json::Map::new();
    if let Some(scope) = &args.scope {
        body.insert("scope".into(), scope.clone().into());
    }
    if let Some(audience) = &args.audience {
        body.insert("audience".into(), audience.clone().into());
    }
    if let Some(expires_in) = args.expires_in {
        body.insert("expires_in".into(), expires_in.into());
    }
    let url = format!("{}/api/v1/token", args.url.trim_end_matches('/'));
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string())?;
            let response = client
                .post(&url)
                .header("Authorization", format!("ApiKey {}", secret.as_str()))
                .header("Content-Type", "application/json")
                .body(serde_json::Value::Object(body).to_string())
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            Ok((status, text))
        })
    });
    let (status, text) = match result {
        Ok(answer) => answer,
        Err(message) => return fail(EXIT_UNREACHABLE, message),
    };
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if !status.is_success() {
        let code = if status.is_server_error() {
            EXIT_UNREACHABLE
        } else {
            EXIT_REFUSED
        };
        let error = json["error"].as_str().unwrap_or("error");
        let description = json["error_description"].as_str().unwrap_or("");
        return fail(code, format!("refused ({status}): {error} {description}"));
    }
    let Some(token) = json["access_token"].as_str() else {
        return fail(EXIT_UNREACHABLE, "the answer holds no access_token");
    };
    if args.claims {
        match decode_parts(token) {
            Some(parts) => println!(
                "{}",
                serde_json::to_string_pretty(&parts).unwrap_or_default()
            ),
            None => return fail(EXIT_UNREACHABLE, "the token is not a JWT"),
        }
    } else {
        println!("{token}");
    }
    ExitCode::SUCCESS
}

/// The header and payload of a JWT, unverified (for display only).
fn decode_parts(token: &str) -> Option<serde_json::Value> {
    let mut parts = token.split('.');
    let decode = |part: Option<&str>| -> Option<serde_json::Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part?).ok()?).ok()
    };
    let header = decode(parts.next())?;
    let claims = decode(parts.next())?;
    Some(serde_json::json!({ "header": header, "claims": claims }))
}

/// `keymint verify`: checks the token through the issuer's JWKS and prints
/// its claims.
pub fn verify(args: VerifyArgs) -> ExitCode {
    let token = if args.token == "-" {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            return fail(2, format!("stdin: {e}"));
        }
        text.trim().to_owned()
    } else {
        args.token.trim().to_owned()
    };
    let mut builder = Verifier::builder(&args.issuer).leeway_s(args.leeway);
    builder = match &args.audience {
        Some(audience) => builder.audience(audience),
        None => builder.any_audience(),
    };
    if let Some(uri) = &args.jwks_uri {
        builder = builder.jwks_uri(uri);
    }
    let verifier = match builder.build() {
        Ok(verifier) => verifier,
        Err(err) => return fail(2, err),
    };
    let result = runtime().map_err(VerifyError::Config).and_then(|rt| {
        rt.block_on(async {
            verifier.prefetch().await?;
            verifier.verify(&token).await
        })
    });
    match result {
        Ok(claims) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&claims).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(err @ VerifyError::Config(_)) => fail(2, err),
        Err(err) if err.is_token_refused() => fail(EXIT_REFUSED, err),
        // The key set or the token's status list is out of reach.
        Err(err) => fail(EXIT_UNREACHABLE, err),
    }
}

/// `keymint openapi`: the OpenAPI document served at `/openapi.json`.
pub fn openapi() -> ExitCode {
    println!(
        "{}",
        String::from_utf8_lossy(&crate::openapi::document_json())
    );
    ExitCode::SUCCESS
}
