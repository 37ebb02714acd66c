//! People sign in as themselves: LDAP (Debian's slapd), OpenID Connect (`oidc-provider` from
//! npm), a trusted proxy's headers; personal tokens and service accounts; sessions; disabling
//! someone; the audit log's filters and CSV. Every refusal is a 401 in the standard error shape
//! with an audit entry, and nothing is created by it.

mod common;

use std::time::Duration;

use common::people::{Browser, Directory, Provider};
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

const CSRF: &str = "x-playdeck-csrf";

fn groups(c: &mut bff::infra::config::Config) {
    c.auth.admin_groups = vec!["playdeck-admins".into()];
    c.auth.operator_groups = vec!["playdeck-operators".into()];
    c.auth.viewer_groups = vec!["playdeck-viewers".into()];
}

/// The session cookie a sign-in answer sets.
fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("playdeck_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_string())
        .filter(|c| !c.is_empty())
}

async fn sign_in(app: &TestApp, body: Value) -> reqwest::Response {
    app.http.post(app.url("/api/v1/session")).json(&body).send().await.expect("sign in")
}

async fn get_with(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .header("cookie", format!("playdeck_session={cookie}"))
        .send()
        .await
        .expect("get")
}

async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let v: Value = app
        .http
        .get(app.url(&format!("/api/v1/audit?{query}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    v["results"].as_array().cloned().unwrap_or_default()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db().await.query_one(sql, &[]).await.expect("count").get(0)
}

#[tokio::test]
async fn people_sign_in_with_ldap_and_get_the_role_of_their_groups() {
    let dir = Directory::start().await;
    let config = dir.config();
    let app = spawn_app_with(|c| {
        c.auth.ldap = Some(config);
        groups(c);
    })
    .await;

    let options: Value = app
        .http
        .get(app.url("/api/v1/session/options"))
        .send()
        .await
        .expect("options")
        .json()
        .await
        .expect("json");
    assert_eq!(options, json!({"key": true, "password": true, "oidc": null}));

    // alice: admins; bob: operators and viewers (the higher wins); carol: no group at all.
    let r = sign_in(&app, json!({"username": "alice", "password": "alice-pass"})).await;
    assert_eq!(r.status(), 200);
    let alice = session_cookie(&r).expect("a session cookie");
    let me: Value = r.json().await.expect("json");
    assert_eq!(me["name"], "alice");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["kind"], "ldap");
    assert_eq!(me["display_name"], "Alice Admin");
    assert_eq!(me["email"], "alice@playdeck.test");
    let me: Value = get_with(&app, "/api/v1/session", &alice).await.json().await.expect("json");
    assert_eq!(me["name"], "alice");

    let r = sign_in(&app, json!({"username": "bob", "password": "bob-pass"})).await;
    let me: Value = r.json().await.expect("json");
    assert_eq!(me["role"], "operator");
    let bob_groups: Vec<String> = serde_json::from_value(me["groups"].clone()).expect("groups");
    assert_eq!(bob_groups.len(), 2, "{bob_groups:?}");
    assert!(bob_groups.iter().any(|g| g.starts_with("cn=playdeck-viewers,")), "{bob_groups:?}");

    let r = sign_in(&app, json!({"username": "carol", "password": "carol-pass"})).await;
    assert_eq!(r.status(), 200, "signed in, without access");
    let carol = session_cookie(&r).expect("cookie");
    let me: Value = r.json().await.expect("json");
    assert_eq!(me["role"], Value::Null);
    assert_eq!(me["access_groups"]["viewer"], json!(["playdeck-viewers"]));
    let detail = assert_error(get_with(&app, "/api/v1/jobs", &carol).await, 403).await;
    assert!(detail.contains("none of their groups"), "{detail}");

    // What people type is escaped: `al*` with alice's password must not find alice.
    let users_before = count(&app, "select count(*) from users").await;
    for name in ["al*", "*", "alice)(uid=*", "*)(|(uid=*", "a\\lice", "(uid=alice)", "alice\u{1}"] {
        let r = sign_in(&app, json!({"username": name, "password": "alice-pass"})).await;
        assert_error(r, 401).await;
    }
    let detail =
        assert_error(sign_in(&app, json!({"username": "alice", "password": "wrong"})).await, 401).await;
    assert_eq!(detail, "wrong user name or password");
    // An empty password is an anonymous bind to many servers: refused before any bind.
    let detail = assert_error(sign_in(&app, json!({"username": "alice", "password": ""})).await, 401).await;
    assert!(detail.contains("password is needed"), "{detail}");
    assert_error(sign_in(&app, json!({"username": "nobody", "password": "x"})).await, 401).await;
    // Both ways at once, neither, or something else: 422.
    assert_error(
        sign_in(&app, json!({"key": ADMIN_KEY, "username": "alice", "password": "alice-pass"})).await,
        422,
    )
    .await;
    assert_error(sign_in(&app, json!({})).await, 422).await;
    assert_error(sign_in(&app, json!({"username": "alice"})).await, 422).await;
    assert_error(
        sign_in(&app, json!({"username": "alice", "password": "alice-pass", "admin": true})).await,
        422,
    )
    .await;
    let detail =
        assert_error(sign_in(&app, json!({"username": "ali\u{0}ce", "password": "x"})).await, 400).await;
    assert!(detail.contains("NUL"), "{detail}");
    assert_eq!(count(&app, "select count(*) from users").await, users_before, "refusals create nobody");
    let refused = audit(&app, "action=sign-in%20refused").await;
    assert!(refused.len() >= 10, "{refused:?}");
    assert!(refused.iter().any(|e| e["detail"]["username"] == "al*"), "the refusal names what was typed");
    let signed_in = audit(&app, "action=sign-in&actor=alice").await;
    assert_eq!(signed_in.len(), 1, "{signed_in:?}");
    assert!(signed_in[0]["user_id"].as_i64().is_some());

    // Sessions: a person sees theirs and signs one out.
    let r = sign_in(&app, json!({"username": "alice", "password": "alice-pass"})).await;
    let alice2 = session_cookie(&r).expect("second session");
    let list: Value = get_with(&app, "/api/v1/session/sessions", &alice2).await.json().await.expect("json");
    let sessions = list["results"].as_array().expect("results");
    assert_eq!(sessions.len(), 2, "{list}");
    let other = sessions.iter().find(|s| s["current"] == false).expect("the other session");
    assert_eq!(other["method"], "ldap");
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/session/sessions/{}", other["id"])))
        .header("cookie", format!("playdeck_session={alice2}"))
        .header(CSRF, "1")
        .send()
        .await
        .expect("end");
    assert_eq!(r.status(), 204);
    assert_error(get_with(&app, "/api/v1/session", &alice).await, 401).await;
    assert_eq!(get_with(&app, "/api/v1/session", &alice2).await.status(), 200);
    // Someone else's session is not yours to end.
    let bob_session: i64 = app
        .db()
        .await
        .query_one(
            "select s.id from sessions s join users u on u.id = s.user_id where u.username = 'bob'",
            &[],
        )
        .await
        .expect("bob")
        .get(0);
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/session/sessions/{bob_session}")))
        .header("cookie", format!("playdeck_session={alice2}"))
        .header(CSRF, "1")
        .send()
        .await
        .expect("end");
    assert_error(r, 404).await;
    // Idle and absolute timeouts.
    let db = app.db().await;
    db.execute(
        "update sessions set last_seen = now() - interval '61 minutes' where id = $1",
        &[&bob_session],
    )
    .await
    .expect("idle");
    let bob_cookie_gone = count(&app, "select count(*) from sessions s join users u on u.id = s.user_id where u.username = 'bob' and s.last_seen > now() - interval '60 minutes'").await;
    assert_eq!(bob_cookie_gone, 0);
    let r = sign_in(&app, json!({"username": "bob", "password": "bob-pass"})).await;
    let bob = session_cookie(&r).expect("bob");
    assert_eq!(get_with(&app, "/api/v1/session", &bob).await.status(), 200);
    db.execute("update sessions set last_seen = now() - interval '61 minutes' where token_hash = encode(sha256($1::bytea), 'hex')", &[&bob.as_bytes()]).await.expect("idle");
    assert_error(get_with(&app, "/api/v1/session", &bob).await, 401).await;
    let r = sign_in(&app, json!({"username": "bob", "password": "bob-pass"})).await;
    let bob = session_cookie(&r).expect("bob");
    db.execute("update sessions set expires = now() - interval '1 second' where token_hash = encode(sha256($1::bytea), 'hex')", &[&bob.as_bytes()]).await.expect("expire");
    assert_error(get_with(&app, "/api/v1/session", &bob).await, 401).await;
}

#[tokio::test]
async fn ldap_over_tls_checks_the_directory_certificate_and_limits_guesses_per_user() {
    let dir = Directory::start().await;
    // LDAPS with the test CA; StartTLS on the plain port; a wrong CA is refused.
    for (url, starttls, ca, ok) in [
        (format!("ldaps://localhost:{}", dir.tls_port), false, dir.ca.clone(), true),
        (format!("ldap://localhost:{}", dir.port), true, dir.ca.clone(), true),
        (format!("ldaps://localhost:{}", dir.tls_port), false, dir.other_ca.clone(), false),
    ] {
        let mut config = dir.config();
        config.url = url.clone();
        config.starttls = starttls;
        config.ca_file = Some(ca);
        let app = spawn_app_with(|c| {
            c.auth.ldap = Some(config);
            groups(c);
        })
        .await;
        let r = sign_in(&app, json!({"username": "alice", "password": "alice-pass"})).await;
        if ok {
            assert_eq!(r.status(), 200, "{url} starttls={starttls}");
        } else {
            let detail = assert_error(r, 502).await;
            assert!(detail.contains("cannot be reached"), "{detail}");
        }
    }

    let config = dir.config();
    let app = spawn_app_with(|c| {
        c.auth.ldap = Some(config);
        c.auth.signin_per_user_per_minute = 3;
        groups(c);
    })
    .await;
    for _ in 0..3 {
        assert_error(sign_in(&app, json!({"username": "bob", "password": "guess"})).await, 401).await;
    }
    let r = sign_in(&app, json!({"username": "Bob", "password": "bob-pass"})).await;
    assert!(r.headers().get("retry-after").is_some());
    assert_error(r, 429).await;
    // Another person is not held back.
    assert_eq!(sign_in(&app, json!({"username": "alice", "password": "alice-pass"})).await.status(), 200);
}

/// Signs alice in through the provider; the callback's answer.
async fn oidc_sign_in(app: &TestApp, browser: &Browser, user: &str, password: &str) -> reqwest::Response {
    let form = browser.to_login_form(&app.base).await;
    let callback = browser.log_in(&form, user, password).await.expect("the provider accepts the password");
    browser.callback(&callback).await
}

#[tokio::test]
async fn single_sign_on_with_an_openid_provider_and_every_bad_token_refused() {
    let provider = Provider::start().await;
    let config = provider.config();
    let app = spawn_public_app(|c| {
        c.auth.oidc = Some(config);
        groups(c);
    })
    .await;
    let options: Value = app
        .http
        .get(app.url("/api/v1/session/options"))
        .send()
        .await
        .expect("options")
        .json()
        .await
        .expect("json");
    assert_eq!(options["oidc"], "Test provider");

    // The provider's own login form checks the password.
    let browser = Browser::new();
    let form = browser.to_login_form(&app.base).await;
    assert_eq!(browser.log_in(&form, "alice", "not-her-password").await, Err(401));
    let callback = browser.log_in(&form, "alice", "alice-password").await.expect("signed in at the provider");
    let r = browser.callback(&callback).await;
    assert_eq!(r.status(), 303, "back to the page asked for");
    assert_eq!(r.headers()["location"], "/jobs");
    let alice = session_cookie(&r).expect("a session");
    let me: Value = get_with(&app, "/api/v1/session", &alice).await.json().await.expect("json");
    assert_eq!(me["name"], "alice");
    assert_eq!(me["kind"], "oidc");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["email"], "alice@example.test");
    assert_eq!(me["display_name"], "Alice Admin");
    let jwks_after_first = provider.jwks_requests().await;

    // The same callback again: its state was used.
    let users = count(&app, "select count(*) from users").await;
    let detail = assert_error(browser.callback(&callback).await, 401).await;
    assert!(detail.contains("state"), "{detail}");
    // The callback opened in another browser (no state cookie): refused.
    let detail = assert_error(Browser::new().callback(&callback).await, 401).await;
    assert!(detail.contains("not started in this browser"), "{detail}");
    // A state this browser was not given.
    let other = Browser::new();
    let form = other.to_login_form(&app.base).await;
    let fresh = other.log_in(&form, "alice", "alice-password").await.expect("login");
    let forged = regex_replace_state(&fresh, "forged-state");
    assert_error(other.callback(&forged).await, 401).await;
    // A replayed code with a fresh, valid state: the provider refuses the code.
    let third = Browser::new();
    let _form = third.to_login_form(&app.base).await;
    let state_cookie = third
        .cookie(&format!("{}/api/v1/session/oidc/callback", app.base), "playdeck_oidc")
        .expect("state cookie");
    let replay = regex_replace_state(&callback, &state_cookie);
    let detail = assert_error(third.callback(&replay).await, 401).await;
    assert!(detail.contains("did not accept the code"), "{detail}");

    // Each broken ID token: a 401, no session, nobody new.
    for mode in ["tamper", "expired", "audience", "issuer", "nonce", "unknown-key"] {
        provider.mode(mode).await;
        let r = oidc_sign_in(&app, &Browser::new(), "bob", "bob-password").await;
        assert!(session_cookie(&r).is_none(), "{mode}: no session");
        let detail = assert_error(r, 401).await;
        assert!(detail.contains("ID token"), "{mode}: {detail}");
    }
    provider.mode("none").await;
    assert_eq!(count(&app, "select count(*) from users").await, users, "refusals create nobody");
    let refused = audit(&app, "action=sign-in%20refused").await;
    assert!(refused.len() >= 10, "{}", refused.len());

    // Key rotation: the new key is fetched once, and people sign in.
    let before = provider.jwks_requests().await;
    assert!(before > jwks_after_first, "the unknown key made Playdeck look at the keys again");
    provider.rotate().await;
    let r = oidc_sign_in(&app, &Browser::new(), "bob", "bob-password").await;
    assert_eq!(r.status(), 303);
    let bob = session_cookie(&r).expect("bob signed in after the rotation");
    assert_eq!(provider.jwks_requests().await, before + 1);
    let r = oidc_sign_in(&app, &Browser::new(), "bob", "bob-password").await;
    assert_eq!(r.status(), 303);
    assert_eq!(provider.jwks_requests().await, before + 1, "the keys are kept, not fetched at each sign-in");
    let me: Value = get_with(&app, "/api/v1/session", &bob).await.json().await.expect("json");
    assert_eq!(me["role"], "viewer");

    // The browser at the HTML page of a refusal still gets a 401, in words.
    let r = app
        .http
        .get(app.url("/api/v1/session/oidc/callback?code=x&state=y"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("html");
    assert_eq!(r.status(), 401);
    assert!(r.text().await.expect("text").contains("Sign-in refused"));

    // RP-initiated logout: the provider's logout page, with the ID token as hint.
    let r = app
        .http
        .delete(app.url("/api/v1/session"))
        .header("cookie", format!("playdeck_session={alice}"))
        .header(CSRF, "1")
        .send()
        .await
        .expect("sign out");
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.expect("json");
    let url = out["logout_url"].as_str().expect("logout_url");
    assert!(url.starts_with(&format!("{}/session/end?", provider.issuer)), "{url}");
    assert!(url.contains("id_token_hint="), "{url}");
    assert!(url.contains("post_logout_redirect_uri="), "{url}");
    let page = provider.http.get(url).send().await.expect("logout page");
    assert!(page.status().is_success() || page.status().is_redirection(), "{}", page.status());
    assert_error(get_with(&app, "/api/v1/session", &alice).await, 401).await;

    // Disabled: sessions stop at once, and signing in again is refused.
    let bob_id: i64 = app
        .db()
        .await
        .query_one("select id from users where username = 'bob'", &[])
        .await
        .expect("bob")
        .get(0);
    let r = app
        .http
        .patch(app.url(&format!("/api/v1/users/{bob_id}")))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .expect("disable");
    assert_eq!(r.status(), 200);
    assert_error(get_with(&app, "/api/v1/session", &bob).await, 401).await;
    let detail = assert_error(oidc_sign_in(&app, &Browser::new(), "bob", "bob-password").await, 401).await;
    assert!(detail.contains("disabled"), "{detail}");
}

/// The callback URL with another `state`.
fn regex_replace_state(url: &str, state: &str) -> String {
    let mut u: reqwest::Url = url.parse().expect("url");
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| (k.to_string(), if k == "state" { state.to_string() } else { v.to_string() }))
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

fn proxied(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    user: &str,
    groups: &str,
) -> reqwest::RequestBuilder {
    app.http
        .request(method, app.url(path))
        .header("x-forwarded-user", user)
        .header("x-forwarded-groups", groups)
}

#[tokio::test]
async fn a_trusted_proxy_signs_people_in_and_nobody_else_can_forge_its_headers() {
    let app = spawn_app_with(|c| {
        common::people::trust_loopback_proxy(c);
        groups(c);
    })
    .await;
    let r = proxied(&app, reqwest::Method::GET, "/api/v1/session", "dave", "staff, playdeck-operators")
        .header("x-forwarded-email", "dave@example.test")
        .send()
        .await
        .expect("session");
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.expect("json");
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str(), me["kind"].as_str()),
        (Some("dave"), Some("operator"), Some("proxy"))
    );
    assert_eq!(me["groups"], json!(["staff", "playdeck-operators"]));
    // A browser's write behind the proxy needs the CSRF header like a cookie's.
    let r = proxied(&app, reqwest::Method::POST, "/api/v1/tokens", "dave", "playdeck-operators")
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .expect("token");
    assert_error(r, 403).await;

    // Personal tokens: at most the owner's role, an expiry, shown once.
    let make = |body: Value| {
        proxied(&app, reqwest::Method::POST, "/api/v1/tokens", "dave", "playdeck-operators")
            .header(CSRF, "1")
            .json(&body)
            .send()
    };
    let detail =
        assert_error(make(json!({"name": "too much", "role": "admin"})).await.expect("send"), 422).await;
    assert!(detail.contains("at most its owner's role"), "{detail}");
    assert_error(make(json!({"name": "ci", "expires_days": 0})).await.expect("send"), 422).await;
    assert_error(make(json!({"name": "ci", "expires_days": 400})).await.expect("send"), 422).await;
    assert_error(make(json!({"name": ""})).await.expect("send"), 422).await;
    assert_error(make(json!({"name": "ci", "owner": "alice"})).await.expect("send"), 422).await;
    let r = make(json!({"name": "ci deploy", "expires_days": 30})).await.expect("send");
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.expect("json");
    let token = made["secret"].as_str().expect("secret").to_string();
    assert_eq!(made["role"], "operator");
    assert_eq!(made["owner"], "dave");
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(made["expires"].clone()).expect("expires");
    assert!((expires - chrono::Utc::now() - chrono::Duration::days(30)).num_minutes().abs() < 5);
    let viewer = make(json!({"name": "read only", "role": "viewer"})).await.expect("send");
    let viewer_token =
        viewer.json::<Value>().await.expect("json")["secret"].as_str().expect("secret").to_string();

    let me: Value = app
        .http
        .get(app.url("/api/v1/session"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!((me["name"].as_str(), me["role"].as_str()), (Some("dave"), Some("operator")));
    // The token's own role caps it; a token cannot make tokens.
    let kb = json!({"title": "t", "pattern": "x", "solution": "s"});
    assert_error(post_as(&app, "/api/v1/kb", &viewer_token, Some(kb.clone())).await, 403).await;
    let r = post_as(&app, "/api/v1/kb", &token, Some(kb.clone())).await;
    assert_eq!(r.status(), 201);
    let entry = audit(&app, "action=kb%20entry%20created").await;
    assert_eq!(entry.first().map(|e| e["actor"].clone()), Some(json!("dave (token ci deploy)")), "{entry:?}");
    assert_error(post_as(&app, "/api/v1/tokens", &token, Some(json!({"name": "more"}))).await, 403).await;
    // Signed in on the key form, a token's session is the token's: its role, no minting, and it
    // ends with the token.
    let r = sign_in(&app, json!({"key": viewer_token})).await;
    assert_eq!(r.status(), 200);
    let viewer_session = session_cookie(&r).expect("a session");
    let me: Value = get_with(&app, "/api/v1/session", &viewer_session).await.json().await.expect("json");
    assert_eq!((me["name"].as_str(), me["role"].as_str()), (Some("dave"), Some("viewer")));
    let r = app
        .http
        .post(app.url("/api/v1/tokens"))
        .header("cookie", format!("playdeck_session={viewer_session}"))
        .header(CSRF, "1")
        .json(&json!({"name": "escape"}))
        .send()
        .await
        .expect("mint");
    assert_error(r, 403).await;
    // A previous release hashes keys plainly: it can never match a token of this one.
    let stored: String = app
        .db()
        .await
        .query_one("select key_hash from api_keys where name = 'ci deploy'", &[])
        .await
        .expect("hash")
        .get(0);
    let plain = count(
        &app,
        &format!("select count(*) from api_keys where key_hash = encode(sha256('{token}'::bytea), 'hex')"),
    )
    .await;
    assert_eq!(plain, 0, "{stored}");
    // A stale cookie does not hide the proxy's sign-in; names may be UTF-8.
    let r = proxied(&app, reqwest::Method::GET, "/api/v1/session", "dave", "playdeck-operators")
        .header("cookie", "playdeck_session=pds_stale")
        .send()
        .await
        .expect("stale");
    assert_eq!(r.json::<Value>().await.expect("json")["name"], "dave");
    let r = app
        .http
        .get(app.url("/api/v1/session"))
        .header(
            "x-forwarded-user",
            reqwest::header::HeaderValue::from_bytes("José".as_bytes()).expect("utf-8"),
        )
        .send()
        .await
        .expect("utf-8 user");
    assert_eq!(r.json::<Value>().await.expect("json")["name"], "José");
    let r = app
        .http
        .get(app.url("/api/v1/users?page=9223372036854775807"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("deep");
    assert_eq!(r.status(), 200);
    let mine: Value = app
        .http
        .get(app.url("/api/v1/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(mine["count"], 2);
    assert!(!mine.to_string().contains(&token), "the secret is never listed");

    // The owner's role shrinks (the proxy now sends only the viewers' group): so does the token's.
    let r = proxied(&app, reqwest::Method::GET, "/api/v1/session", "dave", "playdeck-viewers")
        .send()
        .await
        .expect("me");
    assert_eq!(r.json::<Value>().await.expect("json")["role"], "viewer");
    assert_error(post_as(&app, "/api/v1/kb", &token, Some(kb.clone())).await, 403).await;

    // Service accounts: listed beside people, the bootstrap key among them; admins make tokens.
    let r = post(&app, "/api/v1/users", &json!({"name": "deployer", "role": "operator"})).await;
    assert_eq!(r.status(), 201);
    let sa: Value = r.json().await.expect("json");
    let r = post(
        &app,
        "/api/v1/tokens",
        &json!({"name": "gitlab", "user_id": sa["id"], "role": "operator", "expires_days": 700}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let sa_token = r.json::<Value>().await.expect("json")["secret"].as_str().expect("secret").to_string();
    let dave_id: i64 = app
        .db()
        .await
        .query_one("select id from users where username = 'dave'", &[])
        .await
        .expect("dave")
        .get(0);
    let detail =
        assert_error(post(&app, "/api/v1/tokens", &json!({"name": "x", "user_id": dave_id})).await, 422)
            .await;
    assert!(detail.contains("people make their own"), "{detail}");
    let users: Value = app
        .http
        .get(app.url("/api/v1/users?kind=service"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("users")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> =
        users["results"].as_array().expect("results").iter().filter_map(|u| u["username"].as_str()).collect();
    assert!(names.contains(&"bootstrap admin") && names.contains(&"deployer"), "{names:?}");
    assert_error(
        proxied(&app, reqwest::Method::GET, "/api/v1/users", "dave", "playdeck-operators")
            .send()
            .await
            .expect("users"),
        403,
    )
    .await;

    // Disabling someone stops their tokens at once and their open streams within the recheck.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/v1/ws?key={sa_token}", app.addr))
        .await
        .expect("ws");
    let r = app
        .http
        .patch(app.url(&format!("/api/v1/users/{}", sa["id"])))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .expect("disable");
    assert_eq!(r.status(), 200);
    assert_error(
        app.http.get(app.url("/api/v1/jobs")).bearer_auth(&sa_token).send().await.expect("jobs"),
        401,
    )
    .await;
    let closed =
        tokio::time::timeout(Duration::from_secs(10), async { while let Some(Ok(_)) = ws.next().await {} })
            .await;
    assert!(closed.is_ok(), "the socket of a disabled account closes");
    // Admins cannot disable themselves (the bootstrap key's own account).
    let me: Value = app
        .http
        .get(app.url("/api/v1/session"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    let r = app
        .http
        .patch(app.url(&format!("/api/v1/users/{}", me["user_id"])))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .expect("self");
    assert_error(r, 409).await;
    // Nor demote themselves (the API fuzzer did, and every admin call after was a 403).
    let r = app
        .http
        .patch(app.url(&format!("/api/v1/users/{}", me["user_id"])))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .expect("self");
    assert_error(r, 409).await;
    let r = app
        .http
        .patch(app.url(&format!("/api/v1/users/{}", sa["id"])))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"disabled": "yes"}))
        .send()
        .await
        .expect("bad");
    assert_error(r, 422).await;
    let r = app
        .http
        .patch(app.url("/api/v1/users/999999"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .expect("missing");
    assert_error(r, 404).await;

    // Revoking a token.
    let id = made["id"].as_i64().expect("id");
    let r =
        proxied(&app, reqwest::Method::DELETE, &format!("/api/v1/tokens/{id}"), "dave", "playdeck-viewers")
            .header(CSRF, "1")
            .send()
            .await
            .expect("revoke");
    assert_eq!(r.status(), 204);
    assert_error(app.http.get(app.url("/api/v1/session")).bearer_auth(&token).send().await.expect("me"), 401)
        .await;
    let viewer_id: i64 = app
        .db()
        .await
        .query_one("select id from api_keys where name = 'read only'", &[])
        .await
        .expect("id")
        .get(0);
    let r = proxied(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/v1/tokens/{viewer_id}"),
        "dave",
        "playdeck-viewers",
    )
    .header(CSRF, "1")
    .send()
    .await
    .expect("revoke");
    assert_eq!(r.status(), 204);
    assert_error(get_with(&app, "/api/v1/session", &viewer_session).await, 401).await;

    // The same headers from a peer that is not a trusted proxy: ignored, refused, recorded.
    let app2 = spawn_app_with(|c| {
        common::people::trust_loopback_proxy(c);
        c.auth.trusted_proxies = vec!["10.0.0.0/8".parse().expect("cidr")];
        c.signin_per_minute = 3;
        groups(c);
    })
    .await;
    let r = proxied(&app2, reqwest::Method::GET, "/api/v1/jobs", "mallory", "playdeck-admins")
        .send()
        .await
        .expect("forged");
    assert_error(r, 401).await;
    assert_eq!(count(&app2, "select count(*) from users where kind = 'proxy'").await, 0);
    let refused = audit(&app2, "action=sign-in%20refused").await;
    assert!(
        refused
            .iter()
            .any(|e| e["detail"]["reason"].as_str().is_some_and(|r| r.contains("not a trusted proxy"))),
        "{refused:?}"
    );
    // Nor is its X-Forwarded-For believed: a new address per try does not escape the limit.
    let mut statuses = Vec::new();
    for i in 0..3 {
        let r = app2
            .http
            .post(app2.url("/api/v1/session"))
            .header("x-forwarded-for", format!("10.0.0.{i}"))
            .json(&json!({"key": "guess"}))
            .send()
            .await
            .expect("guess");
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429]);
}

#[tokio::test]
async fn the_audit_log_is_filtered_and_downloaded_as_csv() {
    let app = spawn_app().await;
    let r = post(&app, "/api/v1/keys", &json!({"name": "=cmd|' /C calc'!A0", "role": "admin"})).await;
    assert_eq!(r.status(), 201);
    let hostile = r.json::<Value>().await.expect("json")["secret"].as_str().expect("secret").to_string();
    let r =
        post_as(&app, "/api/v1/keys", &hostile, Some(json!({"name": "plain key", "role": "viewer"}))).await;
    assert_eq!(r.status(), 201);
    let _ = sign_in(&app, json!({"key": "wrong"})).await;
    let created = audit(&app, "action=key%20created").await;
    assert_eq!(created.len(), 2);
    assert_eq!(created[1]["actor"], "bootstrap admin");
    assert!(created[1]["user_id"].as_i64().is_some(), "the person (here a service account) is recorded");
    let by_user = audit(&app, &format!("user_id={}", created[1]["user_id"])).await;
    assert_eq!(by_user.len(), 1);
    assert_eq!(audit(&app, "target=key%20").await.len(), 2);
    assert_eq!(audit(&app, "actor=BOOTSTRAP").await.len(), 1, "actor matches part of the name, any case");
    assert_eq!(audit(&app, "actor=%25").await.len(), 0, "the caller's % is a literal");
    assert_eq!(audit(&app, "since=2999-01-01T00:00:00Z").await.len(), 0);
    assert_eq!(audit(&app, "until=2999-01-01T00:00:00Z&action=sign-in%20refused").await.len(), 1);
    let r = app
        .http
        .get(app.url("/api/v1/audit?since=yesterday"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("bad");
    assert_error(r, 400).await;
    let r =
        app.http.get(app.url("/api/v1/audit?user_id=x")).bearer_auth(ADMIN_KEY).send().await.expect("bad");
    assert_error(r, 400).await;
    for q in ["actor=a%00b", "action=%00", "target=%00"] {
        let r = app
            .http
            .get(app.url(&format!("/api/v1/audit?{q}")))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("nul");
        assert_error(r, 400).await;
    }
    let r = app.http.get(app.url("/api/v1/users?q=%00")).bearer_auth(ADMIN_KEY).send().await.expect("nul");
    assert_error(r, 400).await;
    let page: Value = app
        .http
        .get(app.url("/api/v1/audit?page_size=1&action=key%20created"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("page")
        .json()
        .await
        .expect("json");
    assert_eq!(page["count"], 2);
    assert!(page["next"].as_str().expect("next").contains("action=key%20created"), "{page}");

    let r = app
        .http
        .get(app.url("/api/v1/audit/csv?action=key%20created"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("csv");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().expect("ct").starts_with("text/csv"));
    assert!(r.headers()["content-disposition"].to_str().expect("cd").contains("attachment"));
    let text = r.text().await.expect("text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,at,actor,user_id,action,target,detail");
    assert_eq!(lines.len(), 3, "{text:?}");
    assert!(text.contains("'=cmd"), "a formula is defused: {text}");
    let actions: Vec<String> = app
        .http
        .get(app.url("/api/v1/audit/actions"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("actions")
        .json()
        .await
        .expect("json");
    assert!(actions.contains(&"key created".to_string()), "{actions:?}");
}

#[tokio::test]
async fn keys_of_a_previous_release_become_service_accounts_and_the_key_form_can_be_switched_off() {
    let app = spawn_app().await;
    // A key as the previous release writes it: no owner.
    let old_key = "pdk_made_by_the_previous_release_0123456789";
    app.db()
        .await
        .execute(
            "insert into api_keys (name, role, key_hash, prefix) values ('old pipeline', 'operator', encode(sha256($1::bytea), 'hex'), 'pdk_made')",
            &[&old_key.as_bytes()],
        )
        .await
        .expect("old key");
    let me: Value = app
        .http
        .get(app.url("/api/v1/session"))
        .bearer_auth(old_key)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str(), me["kind"].as_str()),
        (Some("old pipeline"), Some("operator"), Some("key"))
    );
    // The next start adopts it as a service account of its name.
    let pg = app.pg.clone();
    let again = spawn_app_on(pg, |c| c.auth.api_key_signin = false).await;
    let users: Value = again
        .http
        .get(again.url("/api/v1/users?kind=service"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("users")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> =
        users["results"].as_array().expect("results").iter().filter_map(|u| u["username"].as_str()).collect();
    assert!(names.contains(&"old pipeline"), "{names:?}");
    let me: Value = again
        .http
        .get(again.url("/api/v1/session"))
        .bearer_auth(old_key)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!((me["kind"].as_str(), me["role"].as_str()), (Some("service"), Some("operator")));
    // PLAYDECK_API_KEY_SIGNIN=false: no key form, no key sign-in; keys still work as bearer tokens.
    let options: Value = again
        .http
        .get(again.url("/api/v1/session/options"))
        .send()
        .await
        .expect("options")
        .json()
        .await
        .expect("json");
    assert_eq!(options["key"], false);
    let detail = assert_error(sign_in(&again, json!({"key": ADMIN_KEY})).await, 403).await;
    assert!(detail.contains("switched off"), "{detail}");
    assert_eq!(
        again.http.get(again.url("/api/v1/jobs")).bearer_auth(old_key).send().await.expect("jobs").status(),
        200
    );
}
