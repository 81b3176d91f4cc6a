//! restop's own HTTPS (RESTOP_TLS_CERT, RESTOP_TLS_KEY): served with a certificate from a
//! CA made here, renewed without a restart, and out of the way of shutdown.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};

use crate::support::db::{Backend, TestDb};
use crate::support::{self, TestApp};

/// How often the running restop looks at its TLS files here.
const RELOAD_INTERVAL: Duration = Duration::from_millis(100);

/// A certificate authority of the test's own, which the clients trust.
struct Ca {
    key: PKey<Private>,
    cert: X509,
}

/// A server certificate for 127.0.0.1 and localhost, with its key, as PEM files hold them.
struct Issued {
    serial: u32,
    not_after: i64,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    name.build()
}

impl Ca {
    fn new() -> Self {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut builder = X509::builder().unwrap();
        builder.set_version(2).unwrap();
        let serial = BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap();
        builder.set_serial_number(&serial).unwrap();
        builder.set_subject_name(&name("restop test CA")).unwrap();
        builder.set_issuer_name(&name("restop test CA")).unwrap();
        builder.set_pubkey(&key).unwrap();
        builder
            .set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        builder
            .set_not_after(&Asn1Time::days_from_now(365).unwrap())
            .unwrap();
        let constraints = BasicConstraints::new().critical().ca().build().unwrap();
        builder.append_extension(constraints).unwrap();
        let usage = KeyUsage::new().critical().key_cert_sign().build().unwrap();
        builder.append_extension(usage).unwrap();
        builder.sign(&key, MessageDigest::sha256()).unwrap();
        Self {
            key,
            cert: builder.build(),
        }
    }

    /// A new key and a certificate for it, valid for `days` from now.
    fn issue(&self, serial: u32, days: i64) -> Issued {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let not_after = (Utc::now() + chrono::Duration::days(days)).timestamp();
        let mut builder = X509::builder().unwrap();
        builder.set_version(2).unwrap();
        let serial_number = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
        builder.set_serial_number(&serial_number).unwrap();
        builder.set_subject_name(&name("localhost")).unwrap();
        builder.set_issuer_name(self.cert.subject_name()).unwrap();
        builder.set_pubkey(&key).unwrap();
        builder
            .set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        builder
            .set_not_after(&Asn1Time::from_unix(not_after).unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&builder.x509v3_context(Some(&self.cert), None))
            .unwrap();
        builder.append_extension(san).unwrap();
        builder.sign(&self.key, MessageDigest::sha256()).unwrap();
        let leaf = builder.build();
        // A full chain, as Let's Encrypt's fullchain.pem: the leaf, then its issuer.
        let mut cert_pem = leaf.to_pem().unwrap();
        cert_pem.extend(self.cert.to_pem().unwrap());
        Issued {
            serial,
            not_after,
            cert_pem,
            key_pem: key.private_key_to_pem_pkcs8().unwrap(),
        }
    }

    /// A client that trusts this CA, reports the server's certificate, and opens its own
    /// connections.
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&self.cert.to_pem().unwrap()).unwrap(),
            )
            .tls_info(true)
            .build()
            .unwrap()
    }
}

/// The two files restop is pointed at.
struct Files {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn new(issued: &Issued) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = Self {
            cert: dir.path().join("fullchain.pem"),
            key: dir.path().join("privkey.pem"),
            _dir: dir,
        };
        files.write(issued);
        files
    }

    fn write(&self, issued: &Issued) {
        std::fs::write(&self.cert, &issued.cert_pem).unwrap();
        std::fs::write(&self.key, &issued.key_pem).unwrap();
    }
}

async fn start(db: &TestDb, ca: &Ca, files: &Files) -> TestApp {
    let mut config = support::config(&db.url, None);
    config.tls.tls_cert = Some(files.cert.clone());
    config.tls.tls_key = Some(files.key.clone());
    TestApp::spawn_tls(config, RELOAD_INTERVAL, ca.client()).await
}

/// The serial of the certificate a response came with.
fn serial(response: &reqwest::Response) -> u32 {
    let der = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("the server's certificate");
    X509::from_der(der)
        .unwrap()
        .serial_number()
        .to_bn()
        .unwrap()
        .to_dec_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The serial of the certificate restop serves to a new connection.
async fn served_serial(app: &TestApp, ca: &Ca) -> u32 {
    let response = ca
        .client()
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("HTTPS reaches restop");
    assert_eq!(response.status(), 200);
    serial(&response)
}

/// Polls until new connections get the certificate with `serial` (at most 10 s).
async fn until_served(app: &TestApp, ca: &Ca, serial: u32) {
    for _ in 0..200 {
        if served_serial(app, ca).await == serial {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("certificate {serial} never served");
}

async fn expiry_gauge(app: &TestApp) -> i64 {
    let metrics = app.metrics().await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("restop_tls_certificate_expiry_timestamp_seconds "))
        .unwrap_or_else(|| panic!("no expiry sample:\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_and_takes_a_renewed_certificate_without_a_restart() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let ca = Ca::new();
    let first = ca.issue(1, 90);
    let files = Files::new(&first);
    let app = start(&db, &ca, &files).await;

    assert_eq!(served_serial(&app, &ca).await, 1);
    assert_eq!(expiry_gauge(&app).await, first.not_after);
    let plain = app.base.replacen("https://", "http://", 1);
    assert!(
        reqwest::get(format!("{plain}/healthz")).await.is_err(),
        "plain HTTP answered on the HTTPS port"
    );
    // A connection opened now, kept alive by this client's pool.
    let open = ca.client();
    let response = open
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(serial(&response), 1);

    // Renewal: a new key and certificate at the same paths.
    let renewed = ca.issue(2, 120);
    files.write(&renewed);
    until_served(&app, &ca, 2).await;
    assert_eq!(expiry_gauge(&app).await, renewed.not_after);
    // The open connection keeps the certificate it was made with.
    let response = open
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(serial(&response), 1);

    // A replacement that does not load (a certificate without its key, then garbage)
    // leaves the renewed certificate in use, through many checks.
    let third = ca.issue(3, 150);
    std::fs::write(&files.cert, &third.cert_pem).unwrap();
    for _ in 0..10 {
        tokio::time::sleep(RELOAD_INTERVAL).await;
        assert_eq!(served_serial(&app, &ca).await, 2);
    }
    std::fs::write(&files.key, b"not a key").unwrap();
    for _ in 0..10 {
        tokio::time::sleep(RELOAD_INTERVAL).await;
        assert_eq!(served_serial(&app, &ca).await, 2);
    }
    assert_eq!(expiry_gauge(&app).await, renewed.not_after);
    // Once the key arrives, the pair is used.
    std::fs::write(&files.key, &third.key_pem).unwrap();
    until_served(&app, &ca, third.serial).await;
    assert_eq!(expiry_gauge(&app).await, third.not_after);

    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("shutdown completes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_holds_up_neither_clients_nor_shutdown() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let ca = Ca::new();
    let files = Files::new(&ca.issue(1, 90));
    let app = start(&db, &ca, &files).await;
    let address = app.base.trim_start_matches("https://").to_owned();

    // Clients that connect and never say a word (the handshake deadline is 10 s).
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    // Others are served meanwhile, well before those handshakes time out.
    let soon = Duration::from_secs(5);
    let served = tokio::time::timeout(soon, served_serial(&app, &ca)).await;
    assert_eq!(served.expect("served beside stalled handshakes"), 1);
    // One that sends something else than a ClientHello.
    assert!(
        reqwest::get(format!("http://{address}/healthz"))
            .await
            .is_err()
    );
    let served = tokio::time::timeout(soon, served_serial(&app, &ca)).await;
    assert_eq!(served.expect("served after a failed handshake"), 1);

    tokio::time::timeout(Duration::from_secs(5), app.stop())
        .await
        .expect("shutdown does not wait for handshakes");
    // The port closes soon after: nothing holds the socket.
    let mut closed = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&address).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "{address} still accepts connections");
    drop(stalled);
}
