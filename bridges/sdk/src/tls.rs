//! TLS client settings every adapter uses: rustls on the ring provider (no OpenSSL,
//! no aws-lc), verified against the webpki roots unless the operator explicitly
//! accepts invalid certificates for a self-signed test server.

use std::sync::Arc;

/// A client config on the ring provider with the webpki roots, or, only when the
/// operator asked for it, one that accepts any certificate (logged as a warning
/// naming `who`).
pub fn client_config(
    who: &str,
    accept_invalid_certs: bool,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS setup: {error}"))?;
    if accept_invalid_certs {
        tracing::warn!(
            "{who}: accept_invalid_certs is on: the server's TLS certificate is NOT verified"
        );
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyCertificate(provider)))
            .with_no_client_auth());
    }
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Makes ring the process-wide rustls provider, unless one is installed already.
/// Some client libraries (twilight's HTTP and websocket clients) build their TLS
/// config from the process default, and a build that links both ring and aws-lc
/// (matrix-sdk brings aws-lc) has none until someone installs one: rustls then
/// panics on the first connection. An adapter using such a library calls this
/// before it connects.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

mod insecure {
    //! The verifier behind `accept_invalid_certs: true`: signatures are still checked,
    //! the certificate chain and name are not. Only for self-signed test servers.
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;

    #[derive(Debug)]
    pub struct AcceptAnyCertificate(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn verified_and_insecure_configs_build() {
        assert!(super::client_config("test", false).is_ok());
        assert!(super::client_config("test", true).is_ok());
    }
}
