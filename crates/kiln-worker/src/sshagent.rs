//! kiln's own SSH agent: what `--ssh ID=KEYFILE` forwards to `RUN --mount=type=ssh`, and the
//! read-only filter in front of a forwarded agent socket (`--ssh ID=SOCKET`).
//!
//! BuildKit's client does the same (`sshprovider`): a path that is a socket is forwarded; other
//! paths are private key files, loaded into an agent held in the client's memory (Go's
//! `agent.NewKeyring`); a key protected by a passphrase is refused, as no one is there to type
//! it. Either way the build sees a read-only agent: it may list the identities and ask for
//! signatures, never add, remove or lock keys, nor use extensions.
//!
//! The agent protocol (`draft-miller-ssh-agent`) is small for a read-only agent: each message is
//! a 32-bit big-endian length and a body whose first byte is its type. [`Keyring::handle`]
//! answers `REQUEST_IDENTITIES` (11) with `IDENTITIES_ANSWER` (12) and `SIGN_REQUEST` (13) with
//! `SIGN_RESPONSE` (14), and everything else with `FAILURE` (5), which is how OpenSSH's agent
//! answers what it does not do (an `ssh` client that sends `session-bind@openssh.com` goes on).
//!
//! Crates, and why: every key is loaded into and signs with `aws-lc-rs`, the crypto provider
//! already in the tree for TLS, whose RSA is constant-time (the pure-Rust `rsa` crate that
//! `ssh-key`'s signing features pull has a timing side channel, RUSTSEC-2023-0071, and a build
//! could time signatures through the socket); it also reads the PEM formats (PKCS#1, SEC1,
//! PKCS#8) that `ssh-keygen -m PEM` and OpenSSL write. The OpenSSH key format is parsed here:
//! `ssh-key` 0.6, the stable release, rejects ECDSA keys whose private scalar OpenSSH wrote
//! shorter than the field (one P-521 key in two, one P-256 key in 256), fixed only in 0.7
//! release candidates, and an unencrypted OpenSSH key is a handful of length-prefixed fields.
//! `num-bigint` computes the two CRT exponents an OpenSSH RSA key does not store.
//! `ssh-agent-lib` was considered: its server side brings `async-trait`, `futures`, `log` and
//! `service-binding` plus its own listener abstraction, and its message types decode every
//! request (keys to add, smartcards, constraints) that a read-only agent refuses unread, while
//! the two messages answered here take a hundred lines; so the protocol is written here.
//!
//! RSA signatures are `rsa-sha2-256` or `rsa-sha2-512`, as the request's flags ask
//! (`SSH_AGENT_RSA_SHA2_256` is preferred when both are set, as in OpenSSH). A request without
//! either flag asks for SHA-1 `ssh-rsa`, which OpenSSH disabled by default in 8.8 and which this
//! agent refuses. ECDSA signs with the curve's hash (P-256/SHA-256, P-384/SHA-384,
//! P-521/SHA-512), Ed25519 as itself; DSA and security keys (`sk-…`) are refused when loaded.
//!
//! Nothing here is global, printed or written to disk: the keys live in the [`Keyring`] of one
//! build's session, and its `Debug` output shows their types and comments only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::signature::{self as sig, KeyPair as _};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};

/// OpenSSH's limit on one agent message (`AGENT_MAX_LEN`).
pub(crate) const MAX_MESSAGE: usize = 256 * 1024;

/// BuildKit's limit on a key file (it reads at most 100 KiB).
const MAX_KEY_FILE: u64 = 100 * 1024;

/// Message types and flags of the agent protocol.
pub(crate) mod msg {
    /// `SSH_AGENT_FAILURE`.
    pub const FAILURE: u8 = 5;
    /// `SSH_AGENTC_REQUEST_IDENTITIES`.
    pub const REQUEST_IDENTITIES: u8 = 11;
    /// `SSH_AGENT_IDENTITIES_ANSWER`.
    pub const IDENTITIES_ANSWER: u8 = 12;
    /// `SSH_AGENTC_SIGN_REQUEST`.
    pub const SIGN_REQUEST: u8 = 13;
    /// `SSH_AGENT_SIGN_RESPONSE`.
    pub const SIGN_RESPONSE: u8 = 14;
    /// `SSH_AGENT_RSA_SHA2_256`, a flag of a sign request.
    pub const RSA_SHA2_256: u32 = 2;
    /// `SSH_AGENT_RSA_SHA2_512`, a flag of a sign request.
    pub const RSA_SHA2_512: u32 = 4;
}

/// What serves the per-mount socket of one `--ssh` id.
#[derive(Debug)]
pub(crate) enum Agent {
    /// The client's agent at this socket, behind the read-only filter.
    Socket(PathBuf),
    /// Keys loaded from files, answered in process.
    Keys(Keyring),
}

/// The private keys of one `--ssh` id, ready to sign.
pub(crate) struct Keyring {
    identities: Vec<Identity>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.identities
                    .iter()
                    .map(|i| format!("{} {}", i.key.name(), i.comment)),
            )
            .finish()
    }
}

/// One loaded key: its public key blob (the wire encoding), its comment and the signer.
struct Identity {
    blob: Vec<u8>,
    comment: String,
    key: SigningKey,
}

/// An ECDSA curve OpenSSH knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    const ALL: [Curve; 3] = [Curve::P256, Curve::P384, Curve::P521];

    /// The curve's identifier in key blobs (`nistp256`).
    fn id(self) -> &'static str {
        match self {
            Curve::P256 => "nistp256",
            Curve::P384 => "nistp384",
            Curve::P521 => "nistp521",
        }
    }

    /// The key and signature algorithm name (`ecdsa-sha2-nistp256`).
    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "ecdsa-sha2-nistp256",
            Curve::P384 => "ecdsa-sha2-nistp384",
            Curve::P521 => "ecdsa-sha2-nistp521",
        }
    }

    /// The size of a field element (and of a private scalar) in bytes.
    fn field_size(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// Signing with the curve's hash, `r` and `s` as fixed-size big-endian numbers.
    fn signing(self) -> &'static sig::EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            Curve::P384 => &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            Curve::P521 => &sig::ECDSA_P521_SHA512_FIXED_SIGNING,
        }
    }
}

/// A private key, in the crypto provider.
enum SigningKey {
    Ed25519(sig::Ed25519KeyPair),
    Ecdsa(sig::EcdsaKeyPair, Curve),
    Rsa(sig::RsaKeyPair),
}

impl SigningKey {
    /// The key type's name (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`).
    fn name(&self) -> &'static str {
        match self {
            SigningKey::Ed25519(_) => "ssh-ed25519",
            SigningKey::Ecdsa(_, curve) => curve.name(),
            SigningKey::Rsa(_) => "ssh-rsa",
        }
    }

    /// The public key blob, as `ssh-add -L` shows it in base64.
    fn blob(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_string(&mut out, self.name().as_bytes());
        match self {
            SigningKey::Ed25519(k) => put_string(&mut out, k.public_key().as_ref()),
            SigningKey::Ecdsa(k, curve) => {
                put_string(&mut out, curve.id().as_bytes());
                put_string(&mut out, k.public_key().as_ref());
            }
            SigningKey::Rsa(k) => {
                let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                put_mpint(&mut out, &public.e);
                put_mpint(&mut out, &public.n);
            }
        }
        out
    }

    /// The signature of `data` in the wire encoding (algorithm name, then the signature blob),
    /// `None` when the flags ask for what this agent does not do or signing fails.
    fn sign(&self, data: &[u8], flags: u32) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            SigningKey::Ed25519(k) => {
                put_string(&mut out, b"ssh-ed25519");
                put_string(&mut out, k.sign(data).as_ref());
            }
            SigningKey::Ecdsa(k, curve) => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let signature = k.sign(&rng, data).ok()?;
                let fixed = signature.as_ref();
                let (r, s) = fixed.split_at(fixed.len() / 2);
                let mut blob = Vec::new();
                put_mpint(&mut blob, r);
                put_mpint(&mut blob, s);
                put_string(&mut out, curve.name().as_bytes());
                put_string(&mut out, &blob);
            }
            SigningKey::Rsa(k) => {
                let (name, padding) = if flags & msg::RSA_SHA2_256 != 0 {
                    ("rsa-sha2-256", &sig::RSA_PKCS1_SHA256)
                } else if flags & msg::RSA_SHA2_512 != 0 {
                    ("rsa-sha2-512", &sig::RSA_PKCS1_SHA512)
                } else {
                    return None;
                };
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let mut signature = vec![0; k.public_modulus_len()];
                k.sign(padding, &rng, data, &mut signature).ok()?;
                put_string(&mut out, name.as_bytes());
                put_string(&mut out, &signature);
            }
        }
        Some(out)
    }
}

impl Keyring {
    /// Loads private key files, as BuildKit's client does for `--ssh ID=FILE[,FILE…]`: each at
    /// most 100 KiB, in the OpenSSH format or PEM (PKCS#1, SEC1, PKCS#8), unencrypted. An
    /// encrypted key is refused with a message that says what to do instead.
    pub(crate) fn load(paths: &[PathBuf]) -> Result<Keyring> {
        let mut identities = Vec::new();
        for path in paths {
            identities.push(load_key(path)?);
        }
        Ok(Keyring { identities })
    }

    /// Answers one request (a message body without its length), with a response body.
    pub(crate) fn handle(&self, request: &[u8]) -> Vec<u8> {
        let mut r = Wire(request);
        match r.u8() {
            Some(msg::REQUEST_IDENTITIES) if r.is_empty() => {
                let mut out = vec![msg::IDENTITIES_ANSWER];
                put_u32(&mut out, self.identities.len());
                for i in &self.identities {
                    put_string(&mut out, &i.blob);
                    put_string(&mut out, i.comment.as_bytes());
                }
                out
            }
            Some(msg::SIGN_REQUEST) => {
                let (Some(blob), Some(data), Some(flags)) = (r.string(), r.string(), r.u32())
                else {
                    return vec![msg::FAILURE];
                };
                if !r.is_empty() {
                    return vec![msg::FAILURE];
                }
                let signature = self
                    .identities
                    .iter()
                    .find(|i| i.blob == blob)
                    .and_then(|i| i.key.sign(data, flags));
                match signature {
                    Some(signature) => {
                        let mut out = vec![msg::SIGN_RESPONSE];
                        put_string(&mut out, &signature);
                        out
                    }
                    None => vec![msg::FAILURE],
                }
            }
            _ => vec![msg::FAILURE],
        }
    }
}

/// Reads and parses one key file.
fn load_key(path: &Path) -> Result<Identity> {
    use std::io::Read as _;
    let failed = |why: String| Error::Invalid(format!("failed to parse {}: {why}", path.display()));
    let file = std::fs::File::open(path)
        .map_err(|e| Error::Invalid(format!("failed to open {}: {e}", path.display())))?;
    let mut data = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::Invalid(format!("failed to read {}: {e}", path.display())))?;
    if data.len() as u64 > MAX_KEY_FILE {
        return Err(failed(
            "larger than 100 KiB, not an ssh private key".to_string(),
        ));
    }
    let (label, der) = pem_block(&String::from_utf8_lossy(&data)).map_err(failed)?;
    let (key, comment) = match label.as_str() {
        "OPENSSH PRIVATE KEY" => from_openssh(&der).map_err(failed)?,
        _ => (from_pem(&label, &der).map_err(failed)?, String::new()),
    };
    let comment = if comment.is_empty() {
        path.display().to_string()
    } else {
        comment
    };
    Ok(Identity {
        blob: key.blob(),
        comment,
        key,
    })
}

/// Why an encrypted key is refused, and what to do instead.
fn passphrase_message() -> String {
    "this private key is passphrase protected, and kiln cannot ask for the passphrase: add the \
     key to an ssh-agent (ssh-add) and pass the agent's socket instead (--ssh default or \
     --ssh ID=$SSH_AUTH_SOCK)"
        .to_string()
}

/// The label and content of the first PEM block of `text` (RFC 7468, with the RFC 1421
/// headers that mark an encrypted PKCS#1 or SEC1 key).
fn pem_block(text: &str) -> Result<(String, Vec<u8>), String> {
    use base64::Engine as _;
    let not_a_key = || "not an ssh private key (OpenSSH or PEM format)".to_string();
    let mut lines = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "));
    let label = lines
        .next()
        .and_then(|l| l.strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(not_a_key)?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.starts_with("Proc-Type:") && line.contains("ENCRYPTED") {
            return Err(passphrase_message());
        }
        if line.contains(':') || line.is_empty() {
            // Other headers (`DEK-Info`) and the blank line after them.
            continue;
        }
        body.push_str(line);
    }
    if !ended {
        return Err(format!("unterminated PEM block {label:?}"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("invalid PEM block {label:?}: {e}"))?;
    Ok((label, der))
}

/// A key of the OpenSSH format (`PROTOCOL.key`: the magic `openssh-key-v1`, the cipher, the
/// KDF and its options, one public key and the private section, whose two check numbers match
/// when it is not encrypted), in the crypto provider, which checks that the public and private
/// parts match; and its comment.
fn from_openssh(data: &[u8]) -> Result<(SigningKey, String), String> {
    let malformed = || "malformed OpenSSH private key".to_string();
    let rest = data
        .strip_prefix(b"openssh-key-v1\0".as_slice())
        .ok_or_else(malformed)?;
    let mut w = Wire(rest);
    let cipher = w.string().ok_or_else(malformed)?;
    let _kdf = w.string().ok_or_else(malformed)?;
    let _kdf_options = w.string().ok_or_else(malformed)?;
    if cipher != b"none" {
        return Err(passphrase_message());
    }
    if w.u32() != Some(1) {
        return Err("OpenSSH private key files with several keys are not supported".to_string());
    }
    let _public = w.string().ok_or_else(malformed)?;
    let mut p = Wire(w.string().ok_or_else(malformed)?);
    let (Some(check1), Some(check2)) = (p.u32(), p.u32()) else {
        return Err(malformed());
    };
    if check1 != check2 {
        return Err(malformed());
    }
    let kind = p.string().ok_or_else(malformed)?;
    let rejected = |e: aws_lc_rs::error::KeyRejected| format!("invalid key: {e}");
    let key = match kind {
        b"ssh-ed25519" => {
            let public = p.string().ok_or_else(malformed)?;
            // The seed, then the public key again.
            let private = p.string().ok_or_else(malformed)?;
            let seed = private.get(..32).ok_or_else(malformed)?;
            sig::Ed25519KeyPair::from_seed_and_public_key(seed, public)
                .map(SigningKey::Ed25519)
                .map_err(rejected)?
        }
        b"ecdsa-sha2-nistp256" | b"ecdsa-sha2-nistp384" | b"ecdsa-sha2-nistp521" => {
            let curve_id = p.string().ok_or_else(malformed)?;
            let curve = Curve::ALL
                .into_iter()
                .find(|c| c.id().as_bytes() == curve_id && c.name().as_bytes() == kind)
                .ok_or_else(malformed)?;
            let point = p.string().ok_or_else(malformed)?;
            let scalar = p.mpint().ok_or_else(malformed)?;
            // The scalar at the field's size, as SEC1 writes it (OpenSSH writes it as short as
            // it is: one P-521 key in two is a byte shorter).
            let size = curve.field_size();
            if scalar.len() > size {
                return Err(malformed());
            }
            let mut private = vec![0; size - scalar.len()];
            private.extend_from_slice(scalar);
            sig::EcdsaKeyPair::from_private_key_and_public_key(curve.signing(), &private, point)
                .map(|pair| SigningKey::Ecdsa(pair, curve))
                .map_err(rejected)?
        }
        b"ssh-rsa" => {
            use num_bigint::BigUint;
            let mut next = || p.mpint().ok_or_else(malformed);
            let (n, e, d, iqmp, prime1, prime2) =
                (next()?, next()?, next()?, next()?, next()?, next()?);
            let one = BigUint::from(1u8);
            let big_d = BigUint::from_bytes_be(d);
            let big_p = BigUint::from_bytes_be(prime1);
            let big_q = BigUint::from_bytes_be(prime2);
            if big_p <= one || big_q <= one {
                return Err("invalid key: bad RSA primes".to_string());
            }
            let dp = (&big_d % (&big_p - &one)).to_bytes_be();
            let dq = (&big_d % (&big_q - &one)).to_bytes_be();
            let components = aws_lc_rs::rsa::KeyPairComponents {
                public_key: aws_lc_rs::rsa::PublicKeyComponents { n, e },
                d,
                p: prime1,
                q: prime2,
                dP: dp.as_slice(),
                dQ: dq.as_slice(),
                qInv: iqmp,
            };
            sig::RsaKeyPair::from_components(&components)
                .map(SigningKey::Rsa)
                .map_err(|e| format!("unsupported RSA key (2048 to 8192 bits are): {e}"))?
        }
        other => {
            return Err(format!(
                "unsupported key type {}",
                String::from_utf8_lossy(other)
            ));
        }
    };
    let comment = p.string().ok_or_else(malformed)?;
    Ok((key, String::from_utf8_lossy(comment).into_owned()))
}

/// A PEM key: PKCS#1 (`RSA PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`),
/// unencrypted.
fn from_pem(label: &str, der: &[u8]) -> Result<SigningKey, String> {
    let rejected = |e: aws_lc_rs::error::KeyRejected| format!("invalid {label}: {e}");
    match label {
        "RSA PRIVATE KEY" => sig::RsaKeyPair::from_der(der)
            .map(SigningKey::Rsa)
            .map_err(rejected),
        "EC PRIVATE KEY" => Curve::ALL
            .iter()
            .find_map(|c| {
                sig::EcdsaKeyPair::from_private_key_der(c.signing(), der)
                    .ok()
                    .map(|k| SigningKey::Ecdsa(k, *c))
            })
            .ok_or_else(|| format!("invalid {label}: not a NIST P-256, P-384 or P-521 key")),
        "PRIVATE KEY" => sig::RsaKeyPair::from_pkcs8(der)
            .map(SigningKey::Rsa)
            .ok()
            .or_else(|| {
                sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .ok()
                    .map(SigningKey::Ed25519)
            })
            .or_else(|| {
                Curve::ALL.iter().find_map(|c| {
                    sig::EcdsaKeyPair::from_pkcs8(c.signing(), der)
                        .ok()
                        .map(|k| SigningKey::Ecdsa(k, *c))
                })
            })
            .ok_or_else(|| format!("invalid {label}: not an RSA, Ed25519 or NIST ECDSA key")),
        "ENCRYPTED PRIVATE KEY" => Err(passphrase_message()),
        other => Err(format!(
            "not an ssh private key (OpenSSH or PEM format): PEM block {other:?}"
        )),
    }
}

/// A reader of the protocol's encodings (RFC 4251: `byte`, `uint32`, `string`).
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(s)
    }

    /// A positive `mpint`, without its sign byte.
    fn mpint(&mut self) -> Option<&'a [u8]> {
        let m = self.string()?;
        if m.first().is_some_and(|b| b & 0x80 != 0) {
            return None;
        }
        Some(m.strip_prefix(&[0]).unwrap_or(m))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Appends a `uint32` (lengths and counts here are far below 4 GiB: keys are at most 100 KiB).
fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&u32::try_from(v).unwrap_or(u32::MAX).to_be_bytes());
}

/// Appends a `string`.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, s.len());
    out.extend_from_slice(s);
}

/// Appends an `mpint` from a big-endian unsigned number: no leading zero bytes, and one zero
/// byte in front when the high bit is set (the number is positive).
fn put_mpint(out: &mut Vec<u8>, n: &[u8]) {
    let start = n.iter().position(|b| *b != 0).unwrap_or(n.len());
    let n = n.get(start..).unwrap_or_default();
    if n.first().is_some_and(|b| b & 0x80 != 0) {
        put_u32(out, n.len() + 1);
        out.push(0);
        out.extend_from_slice(n);
    } else {
        put_string(out, n);
    }
}

/// Reads one message body; `None` at the end of the stream. A message longer than
/// [`MAX_MESSAGE`] or empty is an error.
pub(crate) async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
    if len == 0 || len > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("ssh agent message of {len} bytes"),
        ));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Writes one message body with its length.
pub(crate) async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    body: &[u8],
) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(body.len() + 4);
    put_string(&mut frame, body);
    w.write_all(&frame).await?;
    w.flush().await
}

/// Serves one connection of a build's process until it closes: requests answered by the
/// keyring, or relayed one at a time to the client's agent when they are read-only (listing
/// identities, signing); everything else is refused.
pub(crate) async fn serve(mut conn: tokio::net::UnixStream, agent: Arc<Agent>) {
    let mut upstream: Option<tokio::net::UnixStream> = None;
    while let Ok(Some(request)) = read_message(&mut conn).await {
        let response = match &*agent {
            Agent::Keys(keyring) => keyring.handle(&request),
            Agent::Socket(path) => forward(path, &mut upstream, &request).await,
        };
        if write_message(&mut conn, &response).await.is_err() {
            break;
        }
    }
}

/// Relays one read-only request to the agent at `path` (connecting on first use) and returns
/// its answer; `FAILURE` for other requests or when the agent cannot be reached.
async fn forward(
    path: &Path,
    upstream: &mut Option<tokio::net::UnixStream>,
    request: &[u8],
) -> Vec<u8> {
    if !matches!(
        request.first(),
        Some(&msg::REQUEST_IDENTITIES | &msg::SIGN_REQUEST)
    ) {
        return vec![msg::FAILURE];
    }
    if upstream.is_none() {
        *upstream = tokio::net::UnixStream::connect(path).await.ok();
    }
    let Some(conn) = upstream.as_mut() else {
        return vec![msg::FAILURE];
    };
    let answer = match write_message(conn, request).await {
        Ok(()) => read_message(conn).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(Some(response)) => response,
        _ => {
            *upstream = None;
            vec![msg::FAILURE]
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Generates a key pair with `ssh-keygen` (commented `name`, no passphrase unless `args`
    /// gives one with `-N`); returns the private key's path (the public key is beside it, with
    /// `.pub`).
    pub(crate) fn keygen(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
        let path = dir.join(name);
        let mut cmd = std::process::Command::new("ssh-keygen");
        cmd.args(["-q", "-C", name, "-f"]).arg(&path).args(args);
        if !args.contains(&"-N") {
            cmd.args(["-N", ""]);
        }
        let out = cmd
            .output()
            .expect("ssh-keygen (Debian package openssh-client) must be installed");
        assert!(
            out.status.success(),
            "ssh-keygen {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    }

    /// The key types and file formats the agent loads, as `ssh-keygen` arguments, with the
    /// signature algorithms expected for the flags 0, `RSA_SHA2_256` and `RSA_SHA2_512`
    /// (`None`: refused).
    type KeyCase = (
        &'static str,
        &'static [&'static str],
        [Option<&'static str>; 3],
    );

    const KEYS: &[KeyCase] = &[
        ("ed25519", &["-t", "ed25519"], [Some("ssh-ed25519"); 3]),
        (
            "ecdsa256",
            &["-t", "ecdsa", "-b", "256"],
            [Some("ecdsa-sha2-nistp256"); 3],
        ),
        (
            "ecdsa384",
            &["-t", "ecdsa", "-b", "384"],
            [Some("ecdsa-sha2-nistp384"); 3],
        ),
        (
            "ecdsa521",
            &["-t", "ecdsa", "-b", "521"],
            [Some("ecdsa-sha2-nistp521"); 3],
        ),
        (
            "rsa",
            &["-t", "rsa", "-b", "2048"],
            [None, Some("rsa-sha2-256"), Some("rsa-sha2-512")],
        ),
        (
            "rsa-pem",
            &["-t", "rsa", "-b", "2048", "-m", "PEM"],
            [None, Some("rsa-sha2-256"), Some("rsa-sha2-512")],
        ),
        (
            "ecdsa-pem",
            &["-t", "ecdsa", "-b", "384", "-m", "PEM"],
            [Some("ecdsa-sha2-nistp384"); 3],
        ),
        (
            "ecdsa-pkcs8",
            &["-t", "ecdsa", "-b", "256", "-m", "PKCS8"],
            [Some("ecdsa-sha2-nistp256"); 3],
        ),
        (
            "rsa-pkcs8",
            &["-t", "rsa", "-b", "3072", "-m", "PKCS8"],
            [None, Some("rsa-sha2-256"), Some("rsa-sha2-512")],
        ),
    ];

    /// Every key of [`KEYS`], generated in `dir`.
    fn all_keys(dir: &Path) -> Vec<PathBuf> {
        KEYS.iter()
            .map(|(name, args, _)| keygen(dir, name, args))
            .collect()
    }

    /// The public key blob and comment of the `.pub` file `ssh-keygen` wrote beside `key`.
    fn public_blob(key: &Path) -> (Vec<u8>, String) {
        use base64::Engine as _;
        let line = std::fs::read_to_string(key.with_extension("pub"))
            .or_else(|_| std::fs::read_to_string(format!("{}.pub", key.display())))
            .expect("public key");
        let mut fields = line.split_whitespace();
        let _kind = fields.next();
        let blob = base64::engine::general_purpose::STANDARD
            .decode(fields.next().expect("blob"))
            .expect("base64");
        (blob, fields.next().unwrap_or_default().to_string())
    }

    fn sign_request(blob: &[u8], data: &[u8], flags: u32) -> Vec<u8> {
        let mut out = vec![msg::SIGN_REQUEST];
        put_string(&mut out, blob);
        put_string(&mut out, data);
        out.extend_from_slice(&flags.to_be_bytes());
        out
    }

    /// Verifies a signature (wire encoding) of `data` with the public key blob (as `ssh-keygen`
    /// wrote it), independently of the signing code: `Err` says why not.
    fn verify(public: &[u8], data: &[u8], signature: &[u8]) -> Result<String, String> {
        let mut s = Wire(signature);
        let alg = String::from_utf8_lossy(s.string().ok_or("no algorithm")?).into_owned();
        let sig_blob = s.string().ok_or("no signature blob")?;
        if !s.is_empty() {
            return Err("trailing bytes".to_string());
        }
        let mut k = Wire(public);
        let kind = k.string().ok_or("no key type")?;
        let ok = match (kind, alg.as_str()) {
            (b"ssh-ed25519", "ssh-ed25519") => {
                let point = k.string().ok_or("no key")?;
                sig::UnparsedPublicKey::new(&sig::ED25519, point).verify(data, sig_blob)
            }
            (b"ssh-rsa", "rsa-sha2-256" | "rsa-sha2-512") => {
                // Positive mpints: without the sign byte.
                let e = k.string().ok_or("no e")?;
                let n = k.string().ok_or("no n")?;
                let n = n.strip_prefix(&[0]).unwrap_or(n);
                let params = if alg == "rsa-sha2-256" {
                    &sig::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &sig::RSA_PKCS1_2048_8192_SHA512
                };
                sig::RsaPublicKeyComponents { n, e }.verify(params, data, sig_blob)
            }
            (kind, alg) if kind == alg.as_bytes() && alg.starts_with("ecdsa-sha2-") => {
                let _curve = k.string().ok_or("no curve")?;
                let point = k.string().ok_or("no point")?;
                let (verification, size) = match alg {
                    "ecdsa-sha2-nistp256" => (&sig::ECDSA_P256_SHA256_FIXED, 32),
                    "ecdsa-sha2-nistp384" => (&sig::ECDSA_P384_SHA384_FIXED, 48),
                    _ => (&sig::ECDSA_P521_SHA512_FIXED, 66),
                };
                let mut b = Wire(sig_blob);
                let mut fixed = Vec::new();
                for _ in 0..2 {
                    let m = b.string().ok_or("no mpint")?;
                    let m = m.strip_prefix(&[0]).unwrap_or(m);
                    if m.len() > size {
                        return Err("mpint too long".to_string());
                    }
                    fixed.extend(std::iter::repeat_n(0, size - m.len()));
                    fixed.extend_from_slice(m);
                }
                sig::UnparsedPublicKey::new(verification, point).verify(data, &fixed)
            }
            (kind, alg) => {
                return Err(format!(
                    "{alg} signature for a {} key",
                    String::from_utf8_lossy(kind)
                ));
            }
        };
        ok.map(|()| alg).map_err(|_| "bad signature".to_string())
    }

    #[test]
    fn wire_encodings() {
        let cases: &[(&[u8], &[u8])] = &[
            (&[], &[0, 0, 0, 0]),
            (&[0, 0], &[0, 0, 0, 0]),
            (&[0x7f], &[0, 0, 0, 1, 0x7f]),
            (&[0x80], &[0, 0, 0, 2, 0, 0x80]),
            (&[0, 0, 0x80, 1], &[0, 0, 0, 3, 0, 0x80, 1]),
            (&[1, 0], &[0, 0, 0, 2, 1, 0]),
        ];
        let mut failures = Vec::new();
        for (n, want) in cases {
            let mut got = Vec::new();
            put_mpint(&mut got, n);
            if got != *want {
                failures.push(format!("mpint {n:02x?}: got {got:02x?}, want {want:02x?}"));
            }
        }
        let strings: &[(&[u8], Option<&[u8]>)] = &[
            (&[0, 0, 0, 2, b'h', b'i'], Some(b"hi")),
            (&[0, 0, 0, 0], Some(b"")),
            (&[0, 0, 0, 3, b'h', b'i'], None),
            (&[0, 0, 0], None),
            (&[0xff, 0xff, 0xff, 0xff], None),
        ];
        for (input, want) in strings {
            let got = Wire(input).string();
            if got != *want {
                failures.push(format!(
                    "string {input:02x?}: got {got:02x?}, want {want:02x?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[tokio::test]
    async fn messages_are_framed_with_their_length() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_message(&mut a, &[11]).await.expect("write");
        write_message(&mut a, &[13, 1, 2]).await.expect("write");
        a.write_all(&[0, 0, 0, 0]).await.expect("write");
        a.write_all(&[0, 4, 0, 1]).await.expect("write");
        drop(a);
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(
                read_message(&mut b)
                    .await
                    .map_err(|e| e.kind())
                    .map(|m| m.unwrap_or_default()),
            );
        }
        assert_eq!(
            got,
            [
                Ok(vec![11]),
                Ok(vec![13, 1, 2]),
                Err(std::io::ErrorKind::InvalidData),
                Err(std::io::ErrorKind::InvalidData),
            ]
        );
        let (a, mut b) = tokio::io::duplex(16);
        drop(a);
        assert_eq!(read_message(&mut b).await.map_err(|e| e.kind()), Ok(None));
    }

    /// Sends each request to the keyring and compares the answer.
    fn check(keyring: &Keyring, cases: &[(&str, Vec<u8>, Vec<u8>)]) {
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(what, request, want)| {
                let got = keyring.handle(request);
                (got != *want).then(|| format!("{what}: got {got:02x?}, want {want:02x?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn requests_the_agent_does_not_answer_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ed = keygen(dir.path(), "ed", &["-t", "ed25519"]);
        let rsa = keygen(dir.path(), "rsa", &["-t", "rsa", "-b", "2048"]);
        let other = keygen(dir.path(), "other", &["-t", "ed25519"]);
        let keyring = Keyring::load(&[ed.clone(), rsa.clone()]).expect("load");
        let (ed_blob, _) = public_blob(&ed);
        let (rsa_blob, _) = public_blob(&rsa);
        let (other_blob, _) = public_blob(&other);
        let failure = vec![msg::FAILURE];
        let mut trailing = sign_request(&ed_blob, b"data", 0);
        trailing.push(0);
        let mut truncated = sign_request(&ed_blob, b"data", 0);
        truncated.truncate(truncated.len() - 1);
        let mut extension = vec![27];
        put_string(&mut extension, b"session-bind@openssh.com");
        let mut add_identity = vec![17];
        put_string(&mut add_identity, b"ssh-ed25519");
        check(
            &keyring,
            &[
                ("empty", Vec::new(), failure.clone()),
                (
                    "identities with trailing bytes",
                    vec![msg::REQUEST_IDENTITIES, 0],
                    failure.clone(),
                ),
                (
                    "bare sign request",
                    vec![msg::SIGN_REQUEST],
                    failure.clone(),
                ),
                ("truncated sign request", truncated, failure.clone()),
                (
                    "sign request with trailing bytes",
                    trailing,
                    failure.clone(),
                ),
                (
                    "a key the agent does not hold",
                    sign_request(&other_blob, b"data", 0),
                    failure.clone(),
                ),
                (
                    "ssh-rsa (SHA-1)",
                    sign_request(&rsa_blob, b"data", 0),
                    failure.clone(),
                ),
                ("add identity", add_identity, failure.clone()),
                ("remove all identities", vec![19], failure.clone()),
                ("lock", vec![22, 0, 0, 0, 1, b'x'], failure.clone()),
                ("extension", extension, failure.clone()),
                ("protocol 1 identities", vec![1], failure.clone()),
            ],
        );
    }

    #[test]
    fn identities_are_the_public_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = all_keys(dir.path());
        let keyring = Keyring::load(&keys).expect("load");
        let mut want = vec![msg::IDENTITIES_ANSWER];
        put_u32(&mut want, keys.len());
        for key in &keys {
            let (blob, comment) = public_blob(key);
            // PEM files have no comment: the agent shows the path instead, as ssh-add does.
            let text = std::fs::read_to_string(key).expect("key");
            let comment = if text.starts_with("-----BEGIN OPENSSH") {
                comment
            } else {
                key.display().to_string()
            };
            put_string(&mut want, &blob);
            put_string(&mut want, comment.as_bytes());
        }
        check(
            &keyring,
            &[("request identities", vec![msg::REQUEST_IDENTITIES], want)],
        );
    }

    #[test]
    fn signatures_verify_with_the_public_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = all_keys(dir.path());
        let keyring = Keyring::load(&keys).expect("load");
        let data = b"session identifier and the rest of the userauth request";
        let mut failures = Vec::new();
        for (key, (name, _, algorithms)) in keys.iter().zip(KEYS) {
            let (blob, _) = public_blob(key);
            let flags = [0, msg::RSA_SHA2_256, msg::RSA_SHA2_512];
            for (flags, want) in flags.into_iter().zip(algorithms) {
                let response = keyring.handle(&sign_request(&blob, data, flags));
                let got = match response.split_first() {
                    Some((&msg::SIGN_RESPONSE, rest)) => {
                        let mut w = Wire(rest);
                        match (w.string(), w.is_empty()) {
                            (Some(signature), true) => verify(&blob, data, signature).map(Some),
                            _ => Err("malformed sign response".to_string()),
                        }
                    }
                    Some((&msg::FAILURE, [])) => Ok(None),
                    _ => Err(format!("unexpected response {response:02x?}")),
                };
                if got.as_ref().map(Option::as_deref) != Ok(*want) {
                    failures.push(format!("{name} flags {flags}: got {got:?}, want {want:?}"));
                }
            }
            // Both flags: SHA-256, as OpenSSH's agent picks.
            if name.starts_with("rsa") {
                let response = keyring.handle(&sign_request(
                    &blob,
                    data,
                    msg::RSA_SHA2_256 | msg::RSA_SHA2_512,
                ));
                let got = response
                    .get(1..)
                    .and_then(|r| Wire(r).string())
                    .map(|s| verify(&blob, data, s));
                if got != Some(Ok("rsa-sha2-256".to_string())) {
                    failures.push(format!("{name} both flags: {got:?}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// The keyring served on a socket in `dir`, as `RUN --mount=type=ssh` serves it.
    fn serve_on(dir: &Path, agent: Agent) -> PathBuf {
        let socket = dir.join("agent.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let agent = Arc::new(agent);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, Arc::clone(&agent)));
            }
        });
        socket
    }

    /// Runs an OpenSSH tool against the agent at `socket`: its stdout, or its stderr as error.
    async fn openssh(socket: &Path, program: &str, args: Vec<String>) -> Result<String, String> {
        let socket = socket.to_path_buf();
        let program = program.to_string();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(&program)
                .args(&args)
                .env("SSH_AUTH_SOCK", &socket)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| format!("{program}: {e}"))?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(format!(
                    "{program} {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
        .await
        .map_err(|e| e.to_string())?
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn openssh_lists_and_signs_through_the_agent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = all_keys(dir.path());
        let socket = serve_on(dir.path(), Agent::Keys(Keyring::load(&keys).expect("load")));
        let listed = openssh(&socket, "ssh-add", vec!["-L".to_string()])
            .await
            .expect("ssh-add -L");
        let listed: Vec<String> = listed
            .lines()
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect();
        let want: Vec<String> = keys
            .iter()
            .map(|k| {
                let line = std::fs::read_to_string(format!("{}.pub", k.display())).expect("pub");
                line.split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(listed, want);

        // `ssh-keygen -Y sign` with only the public key asks the agent to sign (RSA with
        // rsa-sha2-512); `-Y check-novalidate` verifies with OpenSSH's own code.
        let data = dir.path().join("data");
        std::fs::write(&data, "signed through kiln's agent").expect("write");
        let mut failures = Vec::new();
        for key in &keys {
            let public = format!("{}.pub", key.display());
            let signature = dir.path().join("data.sig");
            let _ = std::fs::remove_file(&signature);
            let signed = openssh(
                &socket,
                "ssh-keygen",
                vec![
                    "-Y".into(),
                    "sign".into(),
                    "-n".into(),
                    "kiln".into(),
                    "-f".into(),
                    public.clone(),
                    data.display().to_string(),
                ],
            )
            .await;
            let checked = match signed {
                Ok(_) => openssh(
                    &socket,
                    "sh",
                    vec![
                        "-c".into(),
                        format!(
                            "ssh-keygen -Y check-novalidate -n kiln -f '{public}' -s '{}' < '{}'",
                            signature.display(),
                            data.display()
                        ),
                    ],
                )
                .await
                .map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = checked {
                failures.push(format!("{}: {e}", key.display()));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn encrypted_and_unusable_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let openssh = keygen(dir.path(), "enc", &["-t", "ed25519", "-N", "passw0rd"]);
        let pem = keygen(
            dir.path(),
            "enc-pem",
            &["-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "passw0rd"],
        );
        let pkcs8 = keygen(
            dir.path(),
            "enc-pkcs8",
            &["-t", "ecdsa", "-m", "PKCS8", "-N", "passw0rd"],
        );
        let public = PathBuf::from(format!("{}.pub", openssh.display()));
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "not a key").expect("write");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 100 * 1024 + 1]).expect("write");
        let passphrase = "this private key is passphrase protected, and kiln cannot ask for the \
                          passphrase: add the key to an ssh-agent (ssh-add) and pass the agent's \
                          socket instead (--ssh default or --ssh ID=$SSH_AUTH_SOCK)";
        let cases = [
            (&openssh, passphrase),
            (&pem, passphrase),
            (&pkcs8, passphrase),
            (&public, "not an ssh private key (OpenSSH or PEM format)"),
            (&garbage, "not an ssh private key (OpenSSH or PEM format)"),
            (&big, "larger than 100 KiB, not an ssh private key"),
        ];
        let mut failures = Vec::new();
        for (path, why) in cases {
            let want = format!("failed to parse {}: {why}", path.display());
            match Keyring::load(std::slice::from_ref(path)) {
                Ok(_) => failures.push(format!("{}: loaded", path.display())),
                Err(e) if e.to_string() == want => {}
                Err(e) => failures.push(format!("{}: got {e}, want {want}", path.display())),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// An OpenSSH private key file holding `pair`, as `ssh-keygen` writes it (unencrypted).
    fn openssh_file(pair: &sig::EcdsaKeyPair, curve: Curve, comment: &str) -> String {
        use aws_lc_rs::encoding::AsBigEndian as _;
        use base64::Engine as _;
        let mut public = Vec::new();
        put_string(&mut public, curve.name().as_bytes());
        put_string(&mut public, curve.id().as_bytes());
        put_string(&mut public, pair.public_key().as_ref());
        let scalar = pair.private_key().as_be_bytes().expect("scalar");
        let mut private = vec![0, 0, 0, 7, 0, 0, 0, 7];
        private.extend_from_slice(&public);
        put_mpint(&mut private, scalar.as_ref());
        put_string(&mut private, comment.as_bytes());
        let mut pad = 1;
        while private.len() % 8 != 0 {
            private.push(pad);
            pad += 1;
        }
        let mut data = b"openssh-key-v1\0".to_vec();
        for s in [b"none".as_slice(), b"none", b""] {
            put_string(&mut data, s);
        }
        put_u32(&mut data, 1);
        put_string(&mut data, &public);
        put_string(&mut data, &private);
        let body = base64::engine::general_purpose::STANDARD.encode(&data);
        format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n")
    }

    #[test]
    fn ecdsa_scalars_shorter_than_the_field_load() {
        // One P-521 key in two has a private scalar whose first byte is zero, which OpenSSH
        // writes one byte shorter (ssh-key 0.6 refuses such keys).
        let dir = tempfile::tempdir().expect("tempdir");
        let short = (0..64)
            .filter_map(|_| sig::EcdsaKeyPair::generate(Curve::P521.signing()).ok())
            .find(|k| {
                use aws_lc_rs::encoding::AsBigEndian as _;
                k.private_key()
                    .as_be_bytes()
                    .is_ok_and(|b| b.as_ref().first() == Some(&0))
            })
            .expect("a P-521 key with a short scalar");
        let path = dir.path().join("short");
        std::fs::write(&path, openssh_file(&short, Curve::P521, "short")).expect("write");
        let keyring = Keyring::load(std::slice::from_ref(&path)).expect("load");
        let mut blob = Vec::new();
        put_string(&mut blob, b"ecdsa-sha2-nistp521");
        put_string(&mut blob, b"nistp521");
        put_string(&mut blob, short.public_key().as_ref());
        let response = keyring.handle(&sign_request(&blob, b"data", 0));
        let got = response
            .strip_prefix(&[msg::SIGN_RESPONSE])
            .and_then(|r| Wire(r).string())
            .map(|s| verify(&blob, b"data", s));
        assert_eq!(got, Some(Ok("ecdsa-sha2-nistp521".to_string())));
    }

    #[test]
    fn debug_output_shows_no_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = keygen(dir.path(), "me@host", &["-t", "ed25519"]);
        let keyring = Keyring::load(std::slice::from_ref(&key)).expect("load");
        assert_eq!(format!("{keyring:?}"), "[\"ssh-ed25519 me@host\"]");
    }
}
