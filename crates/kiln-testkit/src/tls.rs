//! Certificates made by the test: a private CA and a server certificate it signs, for a
//! registry that speaks HTTPS on loopback.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::error::{Result, TestkitError, io_error};

/// A CA certificate in PEM, as a client must trust it to reach a registry whose certificate
/// the CA signed.
///
/// Clients trust it in one of three ways:
/// - Docker's convention, which kiln follows: the file `ca.crt` (any `*.crt`) in
///   `<certs.d>/<host:port>/`, where `<certs.d>` is `/etc/docker/certs.d` or the directory the
///   client is configured with; [`CaPem::install`] writes it there.
/// - skopeo and the containers tools: `--cert-dir DIR` (or `--src-cert-dir`,
///   `--dest-cert-dir`) with `DIR/ca.crt`; the directory [`CaPem::install`] returns works.
/// - BuildKit: `ca = ["/path/ca.pem"]` under `[registry."host:port"]` in `buildkitd.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPem(String);

impl CaPem {
    /// The certificate, PEM-encoded.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Writes the certificate as `certs_d/<host>/ca.crt` (Docker's layout; `host` is
    /// `host:port` as the registry is addressed) and returns the directory
    /// `certs_d/<host>`, which also serves as skopeo's `--cert-dir`.
    pub fn install(&self, certs_d: &Path, host: &str) -> Result<PathBuf> {
        let dir = certs_d.join(host);
        fs::create_dir_all(&dir).map_err(io_error("creating directory", &dir))?;
        let path = dir.join("ca.crt");
        fs::write(&path, &self.0).map_err(io_error("writing", &path))?;
        Ok(dir)
    }
}

/// A CA, a server certificate and a client certificate it signed, PEM-encoded.
#[derive(Debug, Clone)]
pub struct ServerCertificates {
    /// The CA's certificate: what a client trusts.
    pub ca: CaPem,
    /// The server's certificate.
    pub certificate: String,
    /// The server's private key (PKCS#8).
    pub key: String,
    /// A client certificate (for servers that require one, as a Docker engine with
    /// `--tlsverify` does).
    pub client_certificate: String,
    /// The client certificate's private key (PKCS#8).
    pub client_key: String,
}

/// Makes a fresh CA (named `common_name`), a server certificate it signs, valid for
/// `127.0.0.1`, `::1` and `localhost`, and a client certificate it signs.
///
/// Each call makes new keys, so two registries never trust each other's CA: a test can check
/// that a client trusting another CA is refused.
pub fn server_certificates(common_name: &str) -> Result<ServerCertificates> {
    let invalid = |e: rcgen::Error| TestkitError::Invalid {
        what: "test certificate",
        message: e.to_string(),
    };
    let ca_key = KeyPair::generate().map_err(invalid)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(invalid)?;
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::CommonName, common_name);
    ca_params.distinguished_name = ca_name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_certificate = ca_params.self_signed(&ca_key).map_err(invalid)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().map_err(invalid)?;
    let hosts = vec![
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        "localhost".to_owned(),
    ];
    let mut server_params = CertificateParams::new(hosts).map_err(invalid)?;
    let mut server_name = DistinguishedName::new();
    server_name.push(DnType::CommonName, "localhost");
    server_params.distinguished_name = server_name;
    server_params.is_ca = IsCa::ExplicitNoCa;
    server_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    let server_certificate = server_params
        .signed_by(&server_key, &issuer)
        .map_err(invalid)?;
    let client_key = KeyPair::generate().map_err(invalid)?;
    let mut client_params = CertificateParams::new(Vec::<String>::new()).map_err(invalid)?;
    let mut client_name = DistinguishedName::new();
    client_name.push(DnType::CommonName, "kiln test client");
    client_params.distinguished_name = client_name;
    client_params.is_ca = IsCa::ExplicitNoCa;
    client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client_params.use_authority_key_identifier_extension = true;
    let client_certificate = client_params
        .signed_by(&client_key, &issuer)
        .map_err(invalid)?;
    Ok(ServerCertificates {
        ca: CaPem(ca_certificate.pem()),
        certificate: server_certificate.pem(),
        key: server_key.serialize_pem(),
        client_certificate: client_certificate.pem(),
        client_key: client_key.serialize_pem(),
    })
}
