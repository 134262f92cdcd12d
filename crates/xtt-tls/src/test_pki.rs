//! A throwaway PKI for tests: a CA and a server certificate for `127.0.0.1` and `localhost`,
//! made fresh in each test (feature `test-pki`; never use these outside tests).
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

/// A CA that can issue server certificates.
#[derive(Debug)]
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA certificate, DER.
    pub cert_der: Vec<u8>,
}

/// A server's certificate chain and key, PEM.
#[derive(Debug)]
pub struct TestServerCert {
    /// Leaf then CA.
    pub chain_pem: String,
    /// PKCS#8 private key.
    pub key_pem: String,
}

impl TestCa {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("generate a CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let cert_pem = cert.pem();
        let cert_der = cert.der().to_vec();
        let issuer = rcgen::Issuer::new(params, key);
        Self {
            issuer,
            cert_pem,
            cert_der,
        }
    }

    /// A server certificate for `127.0.0.1`, `::1` and `localhost`.
    pub fn server_cert(&self) -> TestServerCert {
        let key = rcgen::KeyPair::generate().expect("generate a server key");
        let mut params = rcgen::CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test server");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("issue");
        TestServerCert {
            chain_pem: format!("{}{}", cert.pem(), self.cert_pem),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the CA certificate as `dir/NAME.pem` and returns the path.
    pub fn write_pem(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, &self.cert_pem).expect("write the CA file");
        path
    }
}

impl TestServerCert {
    /// A rustls server configuration for this certificate.
    pub fn server_config(&self) -> rustls::ServerConfig {
        crate::server::config_from_pem(self.chain_pem.as_bytes(), self.key_pem.as_bytes())
            .expect("server config")
    }
}
