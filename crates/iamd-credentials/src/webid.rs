//! Web identity tokens for `AssumeRoleWithWebIdentity`: a JWT (a SPIFFE
//! JWT-SVID, or an OIDC token whose `sub` is a SPIFFE ID) checked against
//! a trusted issuer's keys (a JWKS document): its signature (ES256 or
//! RS256), issuer, audience and times.

use base64::Engine as _;
use jiff::Timestamp;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::Value;

/// How far a token's times may be off (clock skew), in seconds.
pub const LEEWAY_SECONDS: i64 = 60;

/// An issuer whose tokens are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The audiences accepted (`aud`: one of them).
    pub audiences: Vec<String>,
}

/// A token that was checked: who it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentity {
    /// Its `sub`.
    pub subject: String,
    /// The audience it was accepted for.
    pub audience: String,
    /// Its issuer.
    pub issuer: String,
}

/// Why a token is refused (AWS's `InvalidIdentityToken` or
/// `ExpiredTokenException`), with a reason that never quotes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TokenError {
    /// The token has expired.
    pub expired: bool,
    /// Why.
    pub reason: String,
}

fn invalid(reason: impl Into<String>) -> TokenError {
    TokenError {
        expired: false,
        reason: reason.into(),
    }
}

fn b64(text: &str) -> Result<Vec<u8>, TokenError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| invalid("the token is not three base64url parts"))
}

/// The issuer `token` names, unchecked: only to choose the keys that will
/// check it.
pub fn claimed_issuer(token: &str) -> Option<String> {
    let claims = b64(token.split('.').nth(1)?).ok()?;
    let v: Value = serde_json::from_slice(&claims).ok()?;
    v["iss"].as_str().map(str::to_owned)
}

/// Checks `token` against `issuer` and its JWKS document `jwks` (JSON) at
/// `now`.
pub fn check(
    token: &str,
    issuer: &Issuer,
    jwks: &str,
    now: Timestamp,
) -> Result<WebIdentity, TokenError> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(
            "the token is not a JWT (three parts separated by dots)",
        ));
    };
    let header: Value =
        serde_json::from_slice(&b64(h)?).map_err(|_| invalid("the token's header is not JSON"))?;
    let alg = header["alg"].as_str().unwrap_or_default();
    let kid = header["kid"].as_str();
    let keys: Value =
        serde_json::from_str(jwks).map_err(|_| invalid("the issuer's JWKS is not JSON"))?;
    let key = keys["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| {
            kid.is_none_or(|kid| k["kid"].as_str() == Some(kid))
                && k["use"].as_str().is_none_or(|u| u == "sig")
        })
        .ok_or_else(|| invalid("no key of the issuer's JWKS has the token's kid"))?;
    let signed = &token.trim()[..h.len() + 1 + c.len()];
    let sig = b64(s)?;
    let field = |name: &str| {
        key[name]
            .as_str()
            .ok_or_else(|| invalid(format!("the JWKS key has no `{name}`")))
            .and_then(b64)
    };
    let verified = match (alg, key["kty"].as_str()) {
        ("ES256", Some("EC")) if key["crv"] == "P-256" => {
            let mut point = vec![4u8];
            point.extend(field("x")?);
            point.extend(field("y")?);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed.as_bytes(), &sig)
        }
        ("RS256", Some("RSA")) => signature::RsaPublicKeyComponents {
            n: field("n")?,
            e: field("e")?,
        }
        .verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &sig,
        ),
        _ => {
            return Err(invalid(format!(
                "the token's algorithm `{}` is not ES256 or RS256 with a key of its type",
                alg.chars().take(16).collect::<String>()
            )));
        }
    };
    verified.map_err(|_| invalid("the token's signature is not the issuer's"))?;
    let claims: Value =
        serde_json::from_slice(&b64(c)?).map_err(|_| invalid("the token's claims are not JSON"))?;
    if claims["iss"].as_str() != Some(issuer.issuer.as_str()) {
        return Err(invalid("the token's issuer is not the one configured"));
    }
    let auds: Vec<&str> = match &claims["aud"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let audience = auds
        .iter()
        .find(|a| issuer.audiences.iter().any(|x| x == *a))
        .ok_or_else(|| invalid("the token's audience is not one configured"))?;
    let time = |name: &str| claims[name].as_i64();
    let now_s = now.as_second();
    match time("exp") {
        Some(exp) if exp + LEEWAY_SECONDS > now_s => {}
        Some(_) => {
            return Err(TokenError {
                expired: true,
                reason: "the token has expired".into(),
            });
        }
        None => return Err(invalid("the token has no `exp`")),
    }
    if time("nbf").is_some_and(|nbf| nbf > now_s + LEEWAY_SECONDS) {
        return Err(invalid("the token is not valid yet (`nbf`)"));
    }
    let subject = claims["sub"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("the token has no `sub`"))?;
    Ok(WebIdentity {
        subject: subject.to_owned(),
        audience: (*audience).to_owned(),
        issuer: issuer.issuer.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};

    fn enc(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A P-256 key, its JWKS, and a signer of claims.
    fn issuer_key() -> (EcdsaKeyPair, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = key.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
            "x": enc(&point[1..33]), "y": enc(&point[33..])}]});
        (key, jwks.to_string())
    }

    fn token(key: &EcdsaKeyPair, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            enc(br#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#),
            enc(claims.to_string().as_bytes())
        );
        let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", enc(sig.as_ref()))
    }

    /// A 2048-bit RSA key made for this test (`openssl genpkey -algorithm
    /// RSA`, then `openssl rsa -outform DER -traditional`: PKCS#1 DER, in
    /// base64): it signs nothing else.
    const TEST_RSA_KEY: &str = concat!(
        "MIIEpAIBAAKCAQEAwVG8w0hmD+v/9mLp7+7a8VpnpZ1FwP80NnEmO/ele2YHGEIbUNYuteFtuRbeYhm8O59zaOntBZ4GDzU5",
        "lrJ3UoWnIxn7qsGRvImlBtm6eAKl2iP+oGDSyddnAj7fL+cdsPqma343z3sZv5Q061/+KJZLoSxMXzSghjSFOcJgfNlxcL9e",
        "++ztQMntKCHBPasoUePdbEI8IoGcDPVLedtMgkQ5FukElT5ypAxxyOgGwDZGbdwEU2DWZIpYrF7qHUc7GHk72FpgXDjvohaT",
        "FNXYnLzGpygh9G1CRIxSch0pxcoHrJTQf+S6We/tP9UAg06/Qtp+ZOGKWUjqrQgR96xnCwIDAQABAoIBAACABDTTo3woozp+",
        "04hn09HlYCEM28gfcbfrzrEktA/GjJPwRpMue36pDdTr8nxD2KwDpzUkHBVSovQ32o3p7F+5lsgXW5a4Yf1xBROvF1cuIbsr",
        "1FldwAO7OeklNTnaO5BS8yIY/1PbEZw+yCmGcVu0yD4Jl/tL6CH5KR9GBX9z6Ui/qS7Limin//Ne9bGQd3c5tDbVFtOky7FK",
        "XSgQDknBiR+Q5qTxQhEyJF0q8k7/0eYgEAWBzQGm2Q36Ro/XpxTYCVCSeIo9lxWE9V1SflCWIjrmDIxHPHlbKAI4WuCeOyaO",
        "nZ/M/izfaFmGURDTmTVQu8IWyUKihyfaz1dol9kCgYEA5AQ+9y/RyKrsGTJEgvVJzpAUR1GstP3QOzx1xNpV+laS6QG/yy8y",
        "9NLFfZVfpC38Vt8OBaHipUv7jrDK7QXemjhIlwewGveH88xLUzgQ/2X4UF/RNe+oiTnNwRBMP8w5R+Jc/1zmHMIH9TqgFrXU",
        "kLg4sGXbXt0YNwMi4ynlA2cCgYEA2Qth6OWjibPZQWYQaM6doR3omBNezh+ev9HsSu0rI7i3Dv7KfHn7gHhXwLVUPkB8xZi3",
        "1lUW46LpSA+BXuj8u3drI4nbD3dAbcz8s451cPoBJIao57WdrPDqcg42QrajxqCG3NOybpYSeMxTu86KbBvEqgWsTwMRJbGT",
        "vTeVfL0CgYEA0npY5TRvIh0k891DAOAL0XGORodONYRVw1h8HcqtsvhXhF7o/FYFY5lsVBCeyJ7qYAZmmyxkWtFY1M69gy33",
        "3cQ2vbOLDFmSVaovnhITHq6yGP9Zz7/6gzGojJ7Ow9VwyrpZvh+zCrjRP71uKYiPP0fOjIZ5iYft4loyyh7SF+ECgYAX4MKy",
        "xqDJQ3oBUeM4RJLe6NVv9aGWd7AVVljynUkDswygn7NTInBi39p3nvtXpeyUKIsBD3dnL8MOZHZNJMC5NxgYXtA00V/LNKQQ",
        "dPnCph5+EDqA02A3aIHCboHVsRYvgfWUUc3tkKETnRcRMFXWMu/d7KXaQ3IdfX3NcVIG2QKBgQChziNX0pihKCh457GulwRg",
        "iTj14xb6lMBq71QS33STAJjquxLqEibOvf3F1fkzamAPA6ZpiXmgTmlnoACpq20GXg4KS4Gjz7p5ah58kLdTZex8LGeFBFws",
        "lumoWA8tGRbSdHHJvKb0YCp9OmeB6TlTBZBBlsjF0N8jK7QCts21XQ==",
    );

    #[test]
    fn an_rs256_token_is_checked_with_the_issuer_s_rsa_key() {
        use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
        let der = base64::engine::general_purpose::STANDARD
            .decode(TEST_RSA_KEY)
            .unwrap();
        let key = RsaKeyPair::from_der(&der).unwrap();
        let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(key.public());
        let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "r1", "n": enc(&public.n), "e": enc(&public.e)}]}).to_string();
        let issuer = Issuer {
            issuer: "https://kubernetes.default.svc".into(),
            audiences: vec!["iamd".into()],
        };
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let sign = |claims: &Value| {
            let input = format!(
                "{}.{}",
                enc(br#"{"alg":"RS256","kid":"r1"}"#),
                enc(claims.to_string().as_bytes())
            );
            let mut sig = vec![0u8; key.public().modulus_len()];
            key.sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
            format!("{input}.{}", enc(&sig))
        };
        let claims = serde_json::json!({"iss": "https://kubernetes.default.svc", "sub": "spiffe://acme.example/ns/audit/sa/shipper", "aud": "iamd", "exp": 1_800_000_300});
        assert_eq!(
            check(&sign(&claims), &issuer, &jwks, now).unwrap().subject,
            "spiffe://acme.example/ns/audit/sa/shipper"
        );
        // The same claims under an ES256 header: the key's type decides.
        let token = sign(&claims).replacen(
            &enc(br#"{"alg":"RS256","kid":"r1"}"#),
            &enc(br#"{"alg":"ES256","kid":"r1"}"#),
            1,
        );
        assert!(
            check(&token, &issuer, &jwks, now)
                .unwrap_err()
                .reason
                .contains("ES256 or RS256")
        );
    }

    #[test]
    fn a_token_of_the_issuer_names_its_subject_and_anything_else_is_refused() {
        let (key, jwks) = issuer_key();
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let issuer = Issuer {
            issuer: "https://spire.acme.example".into(),
            audiences: vec!["iamd".into()],
        };
        let claims = |sub: &str, aud: &str, exp: i64| serde_json::json!({"iss": "https://spire.acme.example", "sub": sub, "aud": [aud], "exp": exp});
        let good = token(
            &key,
            &claims(
                "spiffe://acme.example/ns/audit/sa/shipper",
                "iamd",
                1_800_000_300,
            ),
        );
        let id = check(&good, &issuer, &jwks, now).unwrap();
        assert_eq!(id.subject, "spiffe://acme.example/ns/audit/sa/shipper");
        assert_eq!(id.audience, "iamd");
        let (other_key, other_jwks) = issuer_key();
        for (token, jwks, reason) in [
            (
                token(&other_key, &claims("s", "iamd", 1_800_000_300)),
                jwks.as_str(),
                "signature",
            ),
            (good.clone(), other_jwks.as_str(), "signature"),
            (
                token(&key, &claims("s", "other", 1_800_000_300)),
                jwks.as_str(),
                "audience",
            ),
            (format!("{good}x"), jwks.as_str(), "base64url"),
            ("a.b".to_owned(), jwks.as_str(), "not a JWT"),
        ] {
            let e = check(&token, &issuer, jwks, now).unwrap_err();
            assert!(e.reason.contains(reason), "{reason}: {e}");
            assert!(!e.reason.contains(&token), "{e}");
        }
        let expired = token(&key, &claims("s", "iamd", 1_800_000_000 - 61));
        assert!(check(&expired, &issuer, &jwks, now).unwrap_err().expired);
        let wrong_issuer = Issuer {
            issuer: "https://other.example".into(),
            ..issuer
        };
        assert!(
            check(&good, &wrong_issuer, &jwks, now)
                .unwrap_err()
                .reason
                .contains("issuer")
        );
    }
}
