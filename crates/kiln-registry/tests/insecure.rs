//! Insecure registries ([`RegistryConfig::insecure`]) against real registries on loopback:
//! which [`Transport`] the client decides on, and that requests then work (or fail with the
//! error the transport explains).

use std::path::Path;

use base64::Engine as _;
use kiln_oci::{Digest, Reference};
use kiln_registry::{Pusher as _, RegistryClient, RegistryConfig, Transport};
use kiln_testkit::{CaPem, TestRegistry, server_certificates};

/// The user and password of the secure registry.
const USER: &str = "kiln";
const PASSWORD: &str = "s3cret";

/// A digest no registry has.
const ABSENT: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"))
}

/// A client with `insecure`, the certificates directory `certs_dir` and the Docker config
/// directory `config_dir`.
fn client(insecure: &[String], certs_dir: &Path, config_dir: &Path) -> RegistryClient {
    RegistryClient::new(RegistryConfig {
        insecure: insecure.to_vec(),
        docker_config_dir: Some(config_dir.to_owned()),
        user_agent: "kiln-registry-tests",
        certs_dir: Some(certs_dir.to_owned()),
    })
    .unwrap_or_else(|e| panic!("creating the client: {e}"))
}

/// One case: a registry, how the client is configured for it, and what it must decide.
struct Case<'a> {
    /// What the case shows.
    name: &'a str,
    /// The registry as references name it.
    registry: String,
    /// [`RegistryConfig::insecure`].
    insecure: Vec<String>,
    /// A CA to install into the certificates directory for the registry.
    ca: Option<&'a CaPem>,
    /// The transport decided.
    transport: Transport,
    /// What `HEAD` of an absent blob gives: `absent`, or `error: ` and a part of the error.
    blob: &'a str,
}

/// Decides the transport for the case's registry, then asks it for an absent blob.
async fn check(case: &Case<'_>) -> Result<(), String> {
    let certs = temp_dir();
    if let Some(ca) = case.ca {
        ca.install(certs.path(), &case.registry)
            .map_err(|e| format!("installing the CA: {e}"))?;
    }
    let docker = temp_dir();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let config = format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, case.registry);
    std::fs::write(docker.path().join("config.json"), config)
        .map_err(|e| format!("writing config.json: {e}"))?;
    let client = client(&case.insecure, certs.path(), docker.path());
    let mut problems = Vec::new();
    match client.transport(&case.registry).await {
        Ok(transport) if transport == case.transport => {}
        Ok(transport) => problems.push(format!(
            "transport {transport:?}, expected {:?}",
            case.transport
        )),
        Err(e) => problems.push(format!("transport: error {e}")),
    }
    let repository = Reference::parse(&format!("{}/insecure/app", case.registry))
        .map_err(|e| format!("reference: {e}"))?;
    let digest = Digest::parse(ABSENT).map_err(|e| format!("digest: {e}"))?;
    let blob = match client.blob_exists(&repository, &digest).await {
        Ok(false) => "absent".to_owned(),
        Ok(true) => "present".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    let blob_ok = match case.blob.strip_prefix("error: ") {
        Some(part) => blob.starts_with("error: ") && blob.contains(part),
        None => blob == case.blob,
    };
    if !blob_ok {
        problems.push(format!("blob: {blob}, expected {}", case.blob));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_registries_use_unverified_https_or_fall_back_to_http() {
    let plain = TestRegistry::start().unwrap_or_else(|e| panic!("{e}"));
    let (secure, ca) = TestRegistry::start_secure(USER, PASSWORD).unwrap_or_else(|e| panic!("{e}"));
    let other_ca = server_certificates("another CA")
        .unwrap_or_else(|e| panic!("{e}"))
        .ca;
    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    let plain_addr = plain.addr();
    let secure_addr = secure.addr();
    let secure_port = secure_addr.rsplit(':').next().unwrap_or_default();
    let secure_localhost = format!("localhost:{secure_port}");
    let cases = [
        Case {
            name: "plain HTTP on loopback, not insecure: plain HTTP by the localhost rule",
            registry: plain_addr.clone(),
            insecure: vec![],
            ca: None,
            transport: Transport::PlainHttp,
            blob: "absent",
        },
        Case {
            name: "plain HTTP registry listed as insecure: HTTPS fails, plain HTTP answers",
            registry: plain_addr.clone(),
            insecure: vec![plain_addr.clone()],
            ca: None,
            transport: Transport::PlainHttp,
            blob: "absent",
        },
        Case {
            name: "TLS registry listed as insecure: HTTPS without verification",
            registry: secure_addr.clone(),
            insecure: vec![secure_addr.clone()],
            ca: None,
            transport: Transport::HttpsUnverified,
            blob: "absent",
        },
        Case {
            name: "TLS registry listed by host alone, by a name its certificate has",
            registry: secure_localhost.clone(),
            insecure: vec!["localhost".to_owned()],
            ca: None,
            transport: Transport::HttpsUnverified,
            blob: "absent",
        },
        Case {
            name: "TLS registry listed as insecure ignores the (wrong) CA installed for it",
            registry: secure_addr.clone(),
            insecure: vec![secure_addr.clone()],
            ca: Some(&other_ca),
            transport: Transport::HttpsUnverified,
            blob: "absent",
        },
        Case {
            name: "TLS registry with its CA installed, not insecure: verified HTTPS",
            registry: secure_addr.clone(),
            insecure: vec![],
            ca: Some(&ca),
            transport: Transport::HttpsWithCas,
            blob: "absent",
        },
        Case {
            name: "TLS registry with another CA installed, not insecure: certificate error",
            registry: secure_addr.clone(),
            insecure: vec![],
            ca: Some(&other_ca),
            transport: Transport::HttpsWithCas,
            blob: "error: invalid peer certificate",
        },
        Case {
            name: "insecure registry that answers neither protocol: unverified HTTPS, undecided",
            registry: closed.clone(),
            insecure: vec![closed.clone()],
            ca: None,
            transport: Transport::HttpsUnverified,
            blob: &format!("error: cannot reach registry {closed}"),
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(problem) = check(case).await {
            failures.push(format!("{}: {problem}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The decision is made once per registry: a second use does not probe again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insecure_registry_is_probed_once() {
    let registry = TestRegistry::start().unwrap_or_else(|e| panic!("{e}"));
    let addr = registry.addr();
    let certs = temp_dir();
    let docker = temp_dir();
    let client = client(std::slice::from_ref(&addr), certs.path(), docker.path());
    let mut transports = Vec::new();
    for _ in 0..3 {
        transports.push(client.transport(&addr).await.map_err(|e| e.to_string()));
    }
    let probes = registry
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v2/")
        .count();
    assert_eq!(
        (transports, probes),
        (vec![Ok(Transport::PlainHttp); 3], 1),
        "{:#?}",
        registry.requests()
    );
}
