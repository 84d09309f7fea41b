//! JWT tokens (etcd's `--auth-token=jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…`).
//!
//! A token is a JWT signed with the member's private key whose claims are etcd's:
//! `username`, `revision` (the auth revision when it was made) and `exp`. Any member
//! with the public key verifies it without a table, so nothing about it is replicated
//! but the `Authenticate` entry that makes it. Unlike a simple token it names the auth
//! revision it was made at: once the store changes, requests with it are refused as
//! "revision of auth store is old" until the client authenticates again, as in etcd.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::Error;

/// Which tokens a member makes and accepts (`--auth-token`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenConfig {
    /// `simple`: random strings in a per-member table (see [`super::tokens`]).
    Simple,
    Jwt(JwtConfig),
}

/// The options of `--auth-token=jwt,…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtConfig {
    pub sign_method: Algorithm,
    /// Without it the public key is derived from the private one, as etcd does.
    pub pub_key: Option<PathBuf>,
    /// Without it the member verifies tokens but cannot make them.
    pub priv_key: Option<PathBuf>,
    /// `ttl`, etcd's default 5 minutes.
    pub ttl: Duration,
}

impl TokenConfig {
    /// Parses `--auth-token`: `simple`, or `jwt` followed by `,key=value` options.
    pub fn parse(spec: &str) -> Result<TokenConfig, String> {
        let mut parts = spec.split(',');
        match parts.next().unwrap_or_default() {
            "simple" => Ok(TokenConfig::Simple),
            "jwt" => {
                let (mut method, mut pub_key, mut priv_key, mut ttl) =
                    (None, None, None, Duration::from_secs(300));
                for opt in parts {
                    let (k, v) = opt
                        .split_once('=')
                        .ok_or_else(|| format!("malformed jwt option {opt:?}"))?;
                    match k {
                        "sign-method" => method = Some(algorithm(v)?),
                        "pub-key" => pub_key = Some(PathBuf::from(v)),
                        "priv-key" => priv_key = Some(PathBuf::from(v)),
                        "ttl" => {
                            ttl = crate::config::parse_duration_flag(v)
                                .map_err(|e| format!("jwt ttl {v:?}: {e}"))?
                        }
                        other => return Err(format!("unknown jwt option {other:?}")),
                    }
                }
                if pub_key.is_none() && priv_key.is_none() {
                    return Err("jwt needs pub-key or priv-key".into());
                }
                Ok(TokenConfig::Jwt(JwtConfig {
                    sign_method: method.ok_or("jwt needs sign-method")?,
                    pub_key,
                    priv_key,
                    ttl,
                }))
            }
            other => Err(format!("unknown token type {other:?}")),
        }
    }
}

/// The JWT signing methods with public keys (etcd 3.4 takes keys from files).
fn algorithm(name: &str) -> Result<Algorithm, String> {
    Ok(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        other => return Err(format!("unsupported sign-method {other:?}")),
    })
}

/// The PEM public key of a PEM (PKCS#8) private key.
fn derive_public(private_pem: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(private_pem).map_err(|e| e.to_string())?;
    let pair = rcgen::KeyPair::from_pem(text).map_err(|e| e.to_string())?;
    Ok(pair.public_key_pem().into_bytes())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    exp: u64,
    revision: u64,
    username: String,
}

/// A member's JWT signer and verifier.
pub struct Jwt {
    alg: Algorithm,
    sign_key: Option<EncodingKey>,
    verify_key: DecodingKey,
    ttl: Duration,
}

impl Jwt {
    /// Loads the keys `cfg` names.
    pub fn open(cfg: &JwtConfig) -> Result<Jwt, String> {
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let rsa = !matches!(cfg.sign_method, Algorithm::ES256 | Algorithm::ES384);
        let private = cfg
            .priv_key
            .as_ref()
            .map(|p| read(p).map(|pem| (p, pem)))
            .transpose()?;
        let public = match (&cfg.pub_key, &private) {
            (Some(path), _) => read(path)?,
            (None, Some((path, pem))) => derive_public(pem)
                .map_err(|e| format!("{}: deriving the public key: {e}", path.display()))?,
            (None, None) => return Err("jwt needs pub-key or priv-key".into()),
        };
        let shown = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let verify_key = if rsa {
            DecodingKey::from_rsa_pem(&public)
        } else {
            DecodingKey::from_ec_pem(&public)
        }
        .map_err(|e| format!("{}: {e}", shown(&cfg.pub_key)))?;
        let sign_key = match private {
            None => None,
            Some((path, pem)) => Some(
                if rsa {
                    EncodingKey::from_rsa_pem(&pem)
                } else {
                    EncodingKey::from_ec_pem(&pem)
                }
                .map_err(|e| format!("{}: {e}", path.display()))?,
            ),
        };
        Ok(Jwt {
            alg: cfg.sign_method,
            sign_key,
            verify_key,
            ttl: cfg.ttl,
        })
    }

    /// A token for `username` at auth revision `revision`, valid for the ttl.
    pub fn sign(&self, username: &str, revision: u64) -> Result<String, Error> {
        let key = self
            .sign_key
            .as_ref()
            .ok_or_else(|| Error::Token("this member has no jwt priv-key to sign with".into()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let claims = Claims {
            exp: (now + self.ttl).as_secs(),
            revision,
            username: username.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(self.alg), &claims, key)
            .map_err(|e| Error::Token(format!("signing a jwt: {e}")))
    }

    /// The (username, revision) of a token signed with our method and key and not
    /// expired.
    pub fn verify(&self, token: &str) -> Option<(String, u64)> {
        let mut v = Validation::new(self.alg);
        v.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.verify_key, &v).ok()?;
        Some((data.claims.username, data.claims.revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_token_flags_parse_as_etcds() {
        assert_eq!(TokenConfig::parse("simple"), Ok(TokenConfig::Simple));
        let jwt = TokenConfig::parse("jwt,pub-key=a.pub,priv-key=a.pem,sign-method=RS256,ttl=10m")
            .expect("jwt");
        assert_eq!(
            jwt,
            TokenConfig::Jwt(JwtConfig {
                sign_method: Algorithm::RS256,
                pub_key: Some("a.pub".into()),
                priv_key: Some("a.pem".into()),
                ttl: Duration::from_secs(600),
            })
        );
        assert!(TokenConfig::parse("jwt,pub-key=a.pub").is_err());
        assert!(TokenConfig::parse("jwt,sign-method=RS256").is_err());
        assert!(TokenConfig::parse("jwt,sign-method=HS256,pub-key=k").is_err());
        assert!(TokenConfig::parse("oauth").is_err());
    }

    #[test]
    fn tokens_verify_with_the_public_key_and_carry_the_revision() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let dir = tempfile::tempdir().expect("tempdir");
        let (public, private) = (dir.path().join("k.pub"), dir.path().join("k.pem"));
        std::fs::write(&public, key.public_key_pem()).expect("write");
        std::fs::write(&private, key.serialize_pem()).expect("write");
        let cfg = JwtConfig {
            sign_method: Algorithm::ES256,
            pub_key: Some(public.clone()),
            priv_key: Some(private.clone()),
            ttl: Duration::from_secs(60),
        };
        let jwt = Jwt::open(&cfg).expect("open");
        let token = jwt.sign("alice", 7).expect("sign");
        assert_eq!(jwt.verify(&token), Some(("alice".to_owned(), 7)));
        assert_eq!(jwt.verify(&format!("{token}x")), None);
        // A verifying-only member accepts it and cannot make one.
        let verifier = Jwt::open(&JwtConfig {
            priv_key: None,
            ..cfg
        })
        .expect("open");
        assert_eq!(verifier.verify(&token), Some(("alice".to_owned(), 7)));
        assert!(verifier.sign("alice", 7).is_err());
        // A signing-only configuration derives the public key.
        let derived = Jwt::open(&JwtConfig {
            sign_method: Algorithm::ES256,
            pub_key: None,
            priv_key: Some(private),
            ttl: Duration::from_secs(60),
        })
        .expect("open");
        assert_eq!(derived.verify(&token), Some(("alice".to_owned(), 7)));
    }
}
