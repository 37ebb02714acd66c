//! OpenID Connect single sign-on: authorization code with PKCE (`openidconnect` does the
//! protocol: discovery, the token request, the ID token's signature, issuer, audience, expiry and
//! nonce checks). Playdeck keeps the sign-ins under way in `oidc_logins` (state hashed, used once,
//! ten minutes), binds each to the browser with a cookie, follows key rotation by fetching the
//! provider's JWKS again when a token names a key it does not know, and offers the provider's
//! logout page (RP-initiated logout) at sign-out.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl, JsonWebKeySet,
    LogoutRequest, Nonce, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::infra::auth::{cookie, Identity};
use crate::infra::config::auth::OidcConfig;
use crate::infra::error::AppError;
use crate::infra::extract::Q;
use crate::infra::secrets::{hash_secret, same_secret};
use crate::infra::security::ClientAddr;
use crate::infra::state::App;
use crate::infra::state::AppState;

/// The cookie that binds a sign-in under way to the browser that started it.
const STATE_COOKIE: &str = "playdeck_oidc";
/// How long someone may take at the provider's login page.
const LOGIN_MINUTES: i32 = 10;

/// The provider, discovered once and kept (its keys fetched again on rotation).
pub struct Oidc {
    config: OidcConfig,
    refetch: Duration,
    http: reqwest::Client,
    metadata: Mutex<Option<(ProviderMetadataWithLogout, Instant)>>,
}

impl Oidc {
    pub fn new(config: &OidcConfig, refetch: Duration) -> Result<Oidc, String> {
        let http = reqwest::Client::builder()
            // Following redirects would let a provider's answer send us anywhere (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("OpenID Connect client: {e}"))?;
        Ok(Oidc { config: config.clone(), refetch, http, metadata: Mutex::new(None) })
    }

    pub fn of(app: &App) -> Result<&Oidc, AppError> {
        match app.config.auth.oidc {
            Some(_) => Ok(app.service::<Oidc>()),
            None => Err(AppError::NotFound("single sign-on (PLAYDECK_OIDC_ISSUER) is not configured".into())),
        }
    }

    /// The provider's metadata and keys: discovered at first use, then kept.
    async fn metadata(&self) -> Result<ProviderMetadataWithLogout, AppError> {
        let mut cached = self.metadata.lock().await;
        if let Some((m, _)) = cached.as_ref() {
            return Ok(m.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| AppError::BadGateway(format!("PLAYDECK_OIDC_ISSUER: {e}")))?;
        let m = ProviderMetadataWithLogout::discover_async(issuer, &self.http).await.map_err(|e| {
            AppError::BadGateway(format!(
                "the OpenID provider {} cannot be discovered: {e}",
                self.config.issuer
            ))
        })?;
        *cached = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    /// Fetches the provider's keys again (a token named a key we do not know: rotation).
    async fn refetch_keys(&self) -> Result<Option<ProviderMetadataWithLogout>, AppError> {
        let mut cached = self.metadata.lock().await;
        let Some((m, fetched)) = cached.as_mut() else { return Ok(None) };
        if fetched.elapsed() < self.refetch {
            return Ok(None);
        }
        let keys = JsonWebKeySet::fetch_async(m.jwks_uri(), &self.http).await.map_err(|e| {
            AppError::BadGateway(format!("the OpenID provider's keys cannot be fetched: {e}"))
        })?;
        *m = m.clone().set_jwks(keys);
        *fetched = Instant::now();
        Ok(Some(m.clone()))
    }

    fn redirect_uri(app: &App) -> Result<RedirectUrl, AppError> {
        let base = app.config.public_url.as_deref().unwrap_or_default();
        RedirectUrl::new(format!("{base}/api/v1/session/oidc/callback"))
            .map_err(|e| AppError::BadGateway(format!("PLAYDECK_PUBLIC_URL: {e}")))
    }

    fn secret(&self) -> Option<ClientSecret> {
        self.config.client_secret.as_ref().map(|s| ClientSecret::new(s.expose().to_string()))
    }
}

#[derive(Deserialize)]
pub(super) struct StartQuery {
    return_to: Option<String>,
}

/// Where to go after signing in: a path of ours, never another site.
fn safe_return(to: Option<String>) -> String {
    match to {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.len() < 2000
                // Printable ASCII only (a browser's own paths are percent-encoded): a tab or a
                // control byte could turn `/\t/evil` into `//evil`, or break the Location header.
                && p.chars().all(|c| c.is_ascii_graphic() && c != '\\') =>
        {
            p
        }
        _ => "/".into(),
    }
}

/// `GET /api/v1/session/oidc/start`: sends the browser to the provider's login page.
pub(super) async fn start(
    State(app): State<AppState>,
    headers: HeaderMap,
    Q(q): Q<StartQuery>,
) -> Result<Response, AppError> {
    let oidc = Oidc::of(&app)?;
    let metadata = oidc.metadata().await?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(oidc.config.client_id.clone()),
        oidc.secret(),
    )
    .set_redirect_uri(Oidc::redirect_uri(&app)?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in oidc.config.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    let db = app.pool.get().await?;
    db.execute(
        "delete from oidc_logins where created < now() - make_interval(mins => $1)",
        &[&LOGIN_MINUTES],
    )
    .await?;
    db.execute(
        "insert into oidc_logins (state_hash, nonce, verifier, return_to) values ($1, $2, $3, $4)",
        &[&hash_secret(state.secret()), nonce.secret(), verifier.secret(), &safe_return(q.return_to)],
    )
    .await?;
    let cookie = format!(
        "{STATE_COOKIE}={}; Path=/api/v1/session/oidc; HttpOnly; SameSite=Lax; Max-Age={}{}",
        state.secret(),
        LOGIN_MINUTES * 60,
        if super::secure(&app, &headers) { "; Secure" } else { "" }
    );
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string())]).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| AppError::Internal(e.to_string()))?,
    );
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A refused sign-in as the browser sees it: still a 401, in words a person can read (the
/// standard error shape for anything that is not a browser).
fn refused_page(headers: &HeaderMap, e: AppError) -> Response {
    let html =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if !html {
        return e.into_response();
    }
    let status = e.status();
    let text = crate::infra::text::escape_html(&e.to_string());
    let body = format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>Sign-in refused · Playdeck</title><body style=\"font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem\">\
         <h1>Sign-in refused</h1><p>{text}</p><p><a href=\"/\">Back to the sign-in page</a></p></body></html>"
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// `GET /api/v1/session/oidc/callback`: the provider sends the browser back with a code; it is
/// exchanged (with the PKCE verifier) for an ID token, which is checked before anyone is signed in.
pub(super) async fn callback(
    State(app): State<AppState>,
    client_addr: ClientAddr,
    headers: HeaderMap,
    Q(q): Q<CallbackQuery>,
) -> Response {
    match sign_in(&app, &client_addr.0, &headers, q).await {
        Ok(resp) => resp,
        Err(e) => {
            let e = super::refused(&app, &client_addr.0, &e, serde_json::json!({"method": "oidc"})).await;
            let mut resp = refused_page(&headers, e);
            resp.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_static("playdeck_oidc=; Path=/api/v1/session/oidc; Max-Age=0"),
            );
            resp
        }
    }
}

async fn sign_in(
    app: &App,
    client_addr: &str,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> Result<Response, AppError> {
    if let Err(wait) = app.signin_limit.check(client_addr) {
        return Err(AppError::TooManyRequests(wait));
    }
    let oidc = Oidc::of(app)?;
    if let Some(error) = q.error {
        return Err(AppError::Unauthorized(format!(
            "the provider refused: {error}{}",
            q.error_description.map(|d| format!(" ({d})")).unwrap_or_default()
        )));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(AppError::Unauthorized("the provider's answer has no code or state".into()));
    };
    // The state must be the one this browser was given, and a sign-in under way here.
    let bound = cookie(headers, STATE_COOKIE).is_some_and(|c| same_secret(c, &state));
    if !bound {
        return Err(AppError::Unauthorized(
            "this sign-in was not started in this browser (state does not match); start again".into(),
        ));
    }
    let db = app.pool.get().await?;
    let row = db
        .query_opt(
            "delete from oidc_logins where state_hash = $1 and created > now() - make_interval(mins => $2)
             returning nonce, verifier, return_to",
            &[&hash_secret(&state), &LOGIN_MINUTES],
        )
        .await?
        .ok_or_else(|| {
            AppError::Unauthorized("this sign-in is unknown, used or too old (state); start again".into())
        })?;
    let (nonce, verifier, return_to): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    let nonce = Nonce::new(nonce);
    let mut metadata = oidc.metadata().await?;
    let client_id = ClientId::new(oidc.config.client_id.clone());
    let redirect = Oidc::redirect_uri(app)?;
    let client = CoreClient::from_provider_metadata(metadata.clone(), client_id.clone(), oidc.secret())
        .set_redirect_uri(redirect.clone());
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| AppError::BadGateway(format!("the provider has no token endpoint: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&oidc.http)
        .await
        .map_err(|e| AppError::Unauthorized(format!("the provider did not accept the code: {e}")))?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| AppError::Unauthorized("the provider sent no ID token".into()))?
        .clone();
    // Checked with the keys we have; a token signed by a key we do not know makes us fetch the
    // provider's keys once more (rotation) and check again.
    let mut attempt = 0;
    let claims = loop {
        let client = CoreClient::from_provider_metadata(metadata.clone(), client_id.clone(), oidc.secret())
            .set_redirect_uri(redirect.clone());
        let verifier = client.id_token_verifier();
        let checked = id_token.claims(&verifier, &nonce).cloned();
        match checked {
            Ok(c) => break c,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) if attempt == 0 => {
                attempt += 1;
                match oidc.refetch_keys().await? {
                    Some(m) => metadata = m,
                    None => {
                        return Err(AppError::Unauthorized(
                            "the ID token is signed by a key the provider does not publish".into(),
                        ))
                    }
                }
            }
            Err(e) => return Err(AppError::Unauthorized(format!("the ID token is not valid: {e}"))),
        }
    };
    // The groups claim is not a standard one: read it from the token just verified.
    let raw = id_token.to_string();
    let payload = raw
        .split('.')
        .nth(1)
        .and_then(|p| base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default();
    let groups: Vec<String> = match &payload[oidc.config.groups_claim.as_str()] {
        serde_json::Value::Array(a) => a.iter().filter_map(|g| g.as_str().map(String::from)).collect(),
        serde_json::Value::String(s) => {
            s.split(',').map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect()
        }
        _ => Vec::new(),
    };
    let subject = claims.subject().as_str().to_string();
    let email = claims.email().map(|e| e.as_str().to_string());
    let username = claims
        .preferred_username()
        .map(|u| u.as_str().to_string())
        .or_else(|| email.clone())
        .unwrap_or_else(|| subject.clone());
    let display_name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_string())
        .unwrap_or_else(|| username.clone());
    let issuer = claims.issuer().as_str().to_string();
    let (user_id, display_name) = super::remember(
        app,
        super::Seen {
            kind: "oidc",
            issuer: &issuer,
            subject: &subject,
            username: &username,
            display_name: &display_name,
            email: email.as_deref(),
            groups: &groups,
        },
    )
    .await?;
    let access = crate::infra::auth::person_access(app, &username, &groups).await?;
    let identity = Identity {
        user_id: Some(user_id),
        key_id: None,
        token_name: None,
        session_id: None,
        role: access.max_role(),
        access,
        name: username,
        via_cookie: true,
        kind: "oidc".into(),
        display_name,
        email,
        groups,
    };
    let session = super::open_session(app, &identity, "oidc", Some(&raw), client_addr, headers).await?;
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, return_to)]).into_response();
    resp.headers_mut().append(header::SET_COOKIE, session);
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("playdeck_oidc=; Path=/api/v1/session/oidc; Max-Age=0"),
    );
    Ok(resp)
}

/// The provider's logout page for a session that signed in with this ID token, when the
/// provider has one (RP-initiated logout); it sends the browser back to Playdeck.
pub(super) async fn logout_url(app: &App, id_token: Option<String>) -> Option<String> {
    let oidc = Oidc::of(app).ok()?;
    let metadata = oidc.metadata().await.ok()?;
    let endpoint = metadata.additional_metadata().end_session_endpoint.clone()?;
    let mut request =
        LogoutRequest::from(endpoint).set_client_id(ClientId::new(oidc.config.client_id.clone()));
    if let Some(hint) = id_token.and_then(|t| t.parse::<CoreIdToken>().ok()) {
        request = request.set_id_token_hint(&hint);
    }
    if let Some(base) = &app.config.public_url {
        if let Ok(back) = PostLogoutRedirectUrl::new(format!("{base}/")) {
            request = request.set_post_logout_redirect_uri(back);
        }
    }
    Some(request.http_get_url().to_string())
}

#[cfg(test)]
mod tests {
    use super::safe_return;

    #[test]
    fn only_our_own_paths_are_returned_to() {
        for (given, want) in [
            ("/jobs/5?tab=output", "/jobs/5?tab=output"),
            ("//evil.example", "/"),
            ("/\t/evil.example", "/"),
            ("/\\evil.example", "/"),
            ("https://evil.example", "/"),
            ("/a\u{7f}", "/"),
            ("/a\0b", "/"),
            ("/caf\u{e9}", "/"),
            ("", "/"),
        ] {
            assert_eq!(safe_return(Some(given.to_string())), want, "{given:?}");
        }
        assert_eq!(safe_return(None), "/");
    }
}
