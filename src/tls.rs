//! HTTPS served by restop itself (`RESTOP_TLS_CERT`, `RESTOP_TLS_KEY`), for hosts without a
//! TLS-terminating load balancer: SNS delivers only to HTTPS endpoints.
//!
//! The handshake takes the certificate in use from behind a lock (a [`ResolvesServerCert`]),
//! so a renewed pair is put in place without a restart: [`Tls::watch`] looks at the two
//! files' modification times and sizes and loads them again when they change. New
//! connections get the new certificate; open ones keep theirs. A pair that does not load
//! (unreadable, not PEM, a key that is not the certificate's) is logged as a warning and the
//! old one stays in use.
//!
//! Each handshake runs in a task of its own, with a deadline, and only finished ones are
//! handed to the HTTP server: a client that stalls its handshake holds up neither other
//! clients nor shutdown.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::connections::Counted;
use crate::metrics::Metrics;

/// How often restop looks whether the certificate or key file changed.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// A client that has not finished its handshake by then is disconnected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for the HTTP server to take them.
const HANDSHAKEN_BACKLOG: usize = 64;

/// Handshakes under way at once; more clients wait in the kernel's backlog. A handshake
/// costs a signature: this bounds the CPU that clients can make restop spend.
const CONCURRENT_HANDSHAKES: usize = 64;

/// The certificate restop serves, and the files it comes from.
pub struct Tls {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCert>,
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
    /// The files as they were when last loaded or tried: a change means loading them again.
    seen: Mutex<Fingerprint>,
}

impl Tls {
    /// Reads and checks the pair; an error names the setting at fault and never quotes
    /// the key file.
    pub fn load(cert_path: &Path, key_path: &Path, metrics: Arc<Metrics>) -> Result<Self, String> {
        // ring, like restop's outbound clients: one TLS implementation in the binary.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let seen = fingerprint(cert_path, key_path);
        let pair = load_pair(cert_path, key_path, &provider)?;
        let current = Arc::new(CurrentCert(RwLock::new(pair.key)));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // SNS speaks HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current,
            config: Arc::new(config),
            metrics,
            seen: Mutex::new(seen),
        };
        tls.in_use(pair.not_after, "serving HTTPS");
        Ok(tls)
    }

    /// Accepts connections on `tcp` (bound to `local_addr`) and hands their finished
    /// handshakes to the server.
    /// Connections count against `places` from their acceptance (handshake included) to
    /// their close.
    pub fn listener(
        &self,
        tcp: TcpListener,
        local_addr: SocketAddr,
        places: Arc<Semaphore>,
    ) -> TlsListener {
        let (handshaken, incoming) = mpsc::channel(HANDSHAKEN_BACKLOG);
        tokio::spawn(accept_loop(
            tcp,
            TlsAcceptor::from(self.config.clone()),
            handshaken,
            places,
        ));
        TlsListener {
            incoming,
            local_addr,
        }
    }

    /// Every `interval`, loads the files again if they changed, until `stop`.
    pub async fn watch(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is now: the files were just read
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let tls = self.clone();
            // File system calls block (a slow network disk, say): off the runtime's workers.
            if let Err(error) = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await {
                tracing::error!(%error, "checking the TLS files failed");
            }
        }
    }

    /// Loads the pair again if either file changed since it was last looked at; true when
    /// a new pair is in use.
    fn reload_if_changed(&self) -> bool {
        // Taken before reading: a write that lands during the read changes it again, so
        // the next check reads the files once more.
        let now = fingerprint(&self.cert_path, &self.key_path);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match load_pair(&self.cert_path, &self.key_path, &self.provider) {
            Ok(pair) => {
                *self
                    .current
                    .0
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = pair.key;
                self.in_use(pair.not_after, "TLS certificate reloaded");
                true
            }
            Err(problem) => {
                tracing::warn!(
                    %problem,
                    "the TLS certificate or key changed but does not load: the certificate \
                     in use stays until the files change again"
                );
                false
            }
        }
    }

    fn in_use(&self, not_after: i64, what: &str) {
        self.metrics.tls_certificate_expiry(not_after);
        let expires = chrono::DateTime::from_timestamp(not_after, 0).unwrap_or_default();
        if expires < chrono::Utc::now() {
            tracing::warn!(
                cert = %self.cert_path.display(),
                %expires,
                "{what}: the certificate has expired; SNS does not deliver to it"
            );
        } else {
            tracing::info!(cert = %self.cert_path.display(), %expires, "{what}");
        }
    }

    /// The certificate chain now served (tests look at it).
    #[cfg(test)]
    fn current_chain(&self) -> Vec<CertificateDer<'static>> {
        self.current.get().cert.clone()
    }
}

/// The certified key the next handshake gets.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl CurrentCert {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// A certificate chain with its key, checked to belong together.
struct Pair {
    key: Arc<CertifiedKey>,
    /// The leaf's notAfter, Unix seconds.
    not_after: i64,
}

fn load_pair(cert_path: &Path, key_path: &Path, provider: &CryptoProvider) -> Result<Pair, String> {
    let cert_at = |problem: String| format!("RESTOP_TLS_CERT {}: {problem}", cert_path.display());
    // Only descriptions of our own: the key file's content is a secret.
    let key_at = |problem: String| format!("RESTOP_TLS_KEY {}: {problem}", key_path.display());

    let pem = std::fs::read(cert_path).map_err(|e| cert_at(format!("cannot read it: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_at(pem_problem(&e, "certificate")))?;
    let leaf = chain
        .first()
        .ok_or_else(|| cert_at(pem_problem(&pem::Error::NoItemsFound, "certificate")))?;
    let not_after = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| cert_at(format!("the first certificate is not valid X.509: {e}")))?
        .1
        .validity()
        .not_after
        .timestamp();

    let pem = std::fs::read(key_path).map_err(|e| key_at(format!("cannot read it: {e}")))?;
    let key =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| key_at(pem_problem(&e, "private key")))?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => key_at(format!(
            "not the key of the certificate in RESTOP_TLS_CERT {}",
            cert_path.display()
        )),
        rustls::Error::InvalidCertificate(_) => {
            cert_at("the first certificate cannot be used".into())
        }
        _ => key_at("not a private key restop can use (RSA, ECDSA or Ed25519)".into()),
    })?;
    Ok(Pair {
        key: Arc::new(key),
        not_after,
    })
}

/// What is wrong with a PEM file, without quoting any of it.
fn pem_problem(error: &pem::Error, what: &str) -> String {
    match error {
        pem::Error::NoItemsFound => format!("no PEM {what} in it"),
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".into(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".into(),
        _ => "not a valid PEM file".into(),
    }
}

/// Modification time and size of both files (`None` for a file that cannot be looked at).
type Fingerprint = [Option<(SystemTime, u64)>; 2];

fn fingerprint(cert_path: &Path, key_path: &Path) -> Fingerprint {
    // `metadata` follows symlinks: certbot's `live/` links move to new files on renewal.
    let look = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|m| Ok((m.modified()?, m.len())))
            .ok()
    };
    [look(cert_path), look(key_path)]
}

/// The main listener with TLS: yields connections whose handshake has finished.
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsConnection, SocketAddr)>,
    local_addr: SocketAddr,
}

/// A connection after its handshake, holding its place under the connection cap.
type TlsConnection = Counted<TlsStream<TcpStream>>;

impl axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            // The accepting task ends only once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

/// Accepts TCP connections and runs each handshake in a task of its own, until the
/// listener is dropped (the server stopped accepting): then the socket is closed.
async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshaken: mpsc::Sender<(TlsConnection, SocketAddr)>,
    places: Arc<Semaphore>,
) {
    let handshakes = Arc::new(Semaphore::new(CONCURRENT_HANDSHAKES));
    loop {
        // A place under the connection cap and a handshake slot before accepting: while
        // either is taken, clients wait in the kernel's backlog instead of holding tasks.
        let (place, handshake) = tokio::select! {
            () = handshaken.closed() => return,
            taken = async {
                let place = places.clone().acquire_owned().await;
                let handshake = handshakes.clone().acquire_owned().await;
                (place, handshake)
            } => match taken {
                (Ok(place), Ok(handshake)) => (place, handshake),
                _ => return, // the semaphores are never closed
            },
        };
        let accepted = tokio::select! {
            () = handshaken.closed() => return,
            accepted = tcp.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(connection) => connection,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // Out of file descriptors, say: wait for some to close instead of spinning.
                tracing::error!(%error, "accepting a connection failed");
                tokio::select! {
                    () = handshaken.closed() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        // TLS records are small writes; do not wait for ACKs between them.
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let handshaken = handshaken.clone();
        tokio::spawn(async move {
            let shaken = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop(handshake);
            match shaken {
                Ok(Ok(connection)) => {
                    // Fails only when the server no longer accepts: the connection closes.
                    let _ = handshaken
                        .send((Counted::new(connection, place), peer))
                        .await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Errors of one connection, not of the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509, X509NameBuilder};

    /// A self-signed certificate (PEM) with this serial, and its key (PEM).
    fn self_signed(serial: u32) -> (Vec<u8>, Vec<u8>) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "localhost").unwrap();
        let name = name.build();
        let mut builder = X509::builder().unwrap();
        builder.set_version(2).unwrap();
        let serial_number = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
        builder.set_serial_number(&serial_number).unwrap();
        builder.set_subject_name(&name).unwrap();
        builder.set_issuer_name(&name).unwrap();
        builder.set_pubkey(&key).unwrap();
        builder
            .set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        builder
            .set_not_after(&Asn1Time::days_from_now(30 + serial).unwrap())
            .unwrap();
        builder.sign(&key, MessageDigest::sha256()).unwrap();
        (
            builder.build().to_pem().unwrap(),
            key.private_key_to_pem_pkcs8().unwrap(),
        )
    }

    fn serial_served(tls: &Tls) -> u32 {
        let chain = tls.current_chain();
        let cert = X509::from_der(&chain[0]).unwrap();
        cert.serial_number()
            .to_bn()
            .unwrap()
            .to_dec_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    struct Files {
        _dir: tempfile::TempDir,
        cert: PathBuf,
        key: PathBuf,
    }

    fn files(cert: &[u8], key: &[u8]) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let files = Files {
            cert: dir.path().join("fullchain.pem"),
            key: dir.path().join("privkey.pem"),
            _dir: dir,
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    /// Writes `content` to `path` with a modification time of its own, as a later write has.
    fn replace(path: &Path, content: &[u8], generation: u64) {
        std::fs::write(path, content).unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() + Duration::from_secs(generation))
            .unwrap();
    }

    fn load(files: &Files) -> Result<Tls, String> {
        Tls::load(&files.cert, &files.key, Arc::new(Metrics::default()))
    }

    #[test]
    fn an_unreadable_file_names_its_setting() {
        let (cert, key) = self_signed(1);
        let files = files(&cert, &key);
        let problem = Tls::load(
            &files.cert.with_file_name("missing.pem"),
            &files.key,
            Arc::new(Metrics::default()),
        )
        .err()
        .unwrap();
        assert!(problem.starts_with("RESTOP_TLS_CERT "), "{problem}");
        assert!(problem.contains("missing.pem: cannot read it"), "{problem}");
        let problem = Tls::load(
            &files.cert,
            &files.key.with_file_name("missing.pem"),
            Arc::new(Metrics::default()),
        )
        .err()
        .unwrap();
        assert!(problem.starts_with("RESTOP_TLS_KEY "), "{problem}");
    }

    #[test]
    fn bad_files_are_named_and_the_key_never_quoted() {
        let (cert, key) = self_signed(1);
        let (_, other_key) = self_signed(2);
        let secret =
            b"-----BEGIN PRIVATE KEY-----\nhunter2hunter2hunter2\n-----END PRIVATE KEY-----\n";
        let bad_start = b"-----BEGIN hunter2\nAAAA\n-----END hunter2-----\n";
        for (cert, key, setting) in [
            (&b"not a certificate"[..], &key[..], "RESTOP_TLS_CERT"),
            (&cert[..], &b"hunter2"[..], "RESTOP_TLS_KEY"),
            (&cert[..], &secret[..], "RESTOP_TLS_KEY"),
            (&cert[..], &bad_start[..], "RESTOP_TLS_KEY"),
            (&cert[..], &other_key[..], "RESTOP_TLS_KEY"),
        ] {
            let problem = load(&files(cert, key)).err().unwrap();
            assert!(problem.starts_with(setting), "{problem}");
            assert!(!problem.contains("hunter2"), "{problem}");
        }
        let problem = load(&files(&cert, &other_key)).err().unwrap();
        assert!(
            problem.contains("not the key of the certificate"),
            "{problem}"
        );
    }

    #[test]
    fn a_changed_pair_is_used_and_a_bad_one_is_not() {
        let (cert, key) = self_signed(1);
        let files = files(&cert, &key);
        let tls = load(&files).unwrap();
        assert_eq!(serial_served(&tls), 1);
        assert!(!tls.reload_if_changed(), "nothing changed");

        let (cert, key) = self_signed(2);
        replace(&files.cert, &cert, 1);
        replace(&files.key, &key, 1);
        assert!(tls.reload_if_changed());
        assert_eq!(serial_served(&tls), 2);
        assert!(!tls.reload_if_changed(), "loaded once");

        // A certificate whose key is not there yet: the old pair stays.
        let (cert, key) = self_signed(3);
        replace(&files.cert, &cert, 2);
        assert!(!tls.reload_if_changed());
        assert_eq!(serial_served(&tls), 2);
        replace(&files.key, b"garbage", 3);
        assert!(!tls.reload_if_changed());
        std::fs::remove_file(&files.key).unwrap();
        assert!(!tls.reload_if_changed());
        assert_eq!(serial_served(&tls), 2);
        // Its key arrives.
        replace(&files.key, &key, 4);
        assert!(tls.reload_if_changed());
        assert_eq!(serial_served(&tls), 3);
    }
}
