//! Bytes into the signing-certificate PEM loader.
//!
//! Properties: an accepted certificate has an RSA key of at least 2048 bits and lowercase
//! names; surrounding whitespace changes nothing; two certificates in one body are refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restop::sns::certs::parse_signing_cert;

fuzz_target!(|data: &[u8]| {
    let Ok(cert) = parse_signing_cert(data) else {
        return;
    };
    let bits = cert.public_key.rsa().map(|rsa| rsa.size() * 8).unwrap_or(0);
    assert!(bits >= 2048, "accepted a {bits}-bit key");
    assert!(
        cert.names
            .iter()
            .all(|n| !n.bytes().any(|b| b.is_ascii_uppercase()))
    );
    assert_eq!(
        cert.is_valid_at(cert.not_before),
        cert.not_before <= cert.not_after
    );

    let mut padded = b"\n \t".to_vec();
    padded.extend_from_slice(data);
    padded.extend_from_slice(b"\r\n");
    let again = parse_signing_cert(&padded).expect("whitespace around a certificate refused");
    assert_eq!(
        (again.names, again.not_before, again.not_after),
        (cert.names.clone(), cert.not_before, cert.not_after)
    );
    assert!(again.public_key.public_eq(&cert.public_key));

    let mut twice = data.to_vec();
    twice.push(b'\n');
    twice.extend_from_slice(data);
    assert!(
        parse_signing_cert(&twice).is_err(),
        "two certificates in one body accepted"
    );
});
