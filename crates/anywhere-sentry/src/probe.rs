//! The connectivity probe: DNS, TCP connect and a verified TLS handshake with the ECS
//! endpoint, each step under its own timeout, the connection closed (close_notify, then
//! the socket) whatever happens. Nothing is sent but the handshake; nothing is read
//! after it.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Where to probe: `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// The regional ECS endpoint, `ecs.<region>.amazonaws.com:443`
    /// (`.amazonaws.com.cn` for the China regions).
    pub fn for_region(region: &str) -> Endpoint {
        let domain = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        Endpoint {
            host: format!("ecs.{region}.{domain}"),
            port: 443,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;

    /// `host`, `host:port`, `[v6]`, `[v6]:port`; the port defaults to 443.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("expected host:port (e.g. ecs-fips.us-east-1.amazonaws.com:443), got {s:?}");
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match s.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                Some(_) => return Err(bad()),
                None => (s, None),
            }
        };
        if host.is_empty() || host.contains(['/', ' ']) {
            return Err(bad());
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
            None => 443,
        };
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }
}

/// Why a probe failed. [`ProbeError::cause`] names the class for log filters.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("DNS lookup of {host} failed: {source}")]
    Dns { host: String, source: io::Error },
    #[error("DNS lookup of {host} timed out after {after:?}")]
    DnsTimeout { host: String, after: Duration },
    #[error("DNS lookup of {host} returned no address")]
    NoAddress { host: String },
    #[error("connection to {addr} refused")]
    Refused { addr: SocketAddr },
    #[error("connection to {addr} timed out after {after:?}")]
    ConnectTimeout { addr: SocketAddr, after: Duration },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("TLS handshake with {addr} timed out after {after:?}")]
    TlsTimeout { addr: SocketAddr, after: Duration },
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls { addr: SocketAddr, source: io::Error },
}

impl ProbeError {
    /// `dns`, `refused`, `timeout`, `connect` or `tls`.
    pub fn cause(&self) -> &'static str {
        match self {
            ProbeError::Dns { .. } | ProbeError::NoAddress { .. } => "dns",
            ProbeError::Refused { .. } => "refused",
            ProbeError::DnsTimeout { .. }
            | ProbeError::ConnectTimeout { .. }
            | ProbeError::TlsTimeout { .. } => "timeout",
            ProbeError::Connect { .. } => "connect",
            ProbeError::Tls { .. } => "tls",
        }
    }

    /// How far the probe got: with several addresses the error reported is that of the
    /// one that got furthest (a TLS failure on IPv4 says more than a refusal on IPv6).
    fn depth(&self) -> u8 {
        match self {
            ProbeError::Dns { .. }
            | ProbeError::DnsTimeout { .. }
            | ProbeError::NoAddress { .. } => 0,
            ProbeError::Refused { .. } => 1,
            ProbeError::ConnectTimeout { .. } | ProbeError::Connect { .. } => 2,
            ProbeError::TlsTimeout { .. } | ProbeError::Tls { .. } => 3,
        }
    }
}

/// A probe that reached the endpoint.
#[derive(Debug, Clone)]
pub struct ProbeOk {
    pub addr: SocketAddr,
    pub elapsed: Duration,
    pub protocol: String,
}

/// Errors building the TLS trust store.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("CA file {path} holds no PEM certificate")]
    CaFileEmpty { path: PathBuf },
    #[error("CA file {path}: certificate not usable as a trust anchor: {source}")]
    CaCert {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("{host:?} is not a valid TLS server name")]
    ServerName { host: String },
}

/// The roots a probe trusts: Mozilla's (webpki-roots), the system store, and the
/// `--ca-file` certificates. Returns the config and how many roots came from each.
pub fn tls_config(ca_file: Option<&Path>) -> Result<(ClientConfig, TrustSummary), TlsSetupError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mozilla = roots.len();
    let native = rustls_native_certs::load_native_certs();
    let (system, _) = roots.add_parsable_certificates(native.certs);
    let system_errors = native.errors.iter().map(ToString::to_string).collect();
    let mut extra = 0;
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|source| TlsSetupError::CaFile {
                path: path.to_owned(),
                source,
            })?;
        if certs.is_empty() {
            return Err(TlsSetupError::CaFileEmpty {
                path: path.to_owned(),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|source| TlsSetupError::CaCert {
                path: path.to_owned(),
                source,
            })?;
            extra += 1;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((
        config,
        TrustSummary {
            mozilla,
            system,
            system_errors,
            ca_file: extra,
        },
    ))
}

/// Where the trusted roots came from (logged at start).
#[derive(Debug, Clone)]
pub struct TrustSummary {
    pub mozilla: usize,
    pub system: usize,
    pub system_errors: Vec<String>,
    pub ca_file: usize,
}

/// Probes one endpoint.
#[derive(Clone)]
pub struct Prober {
    endpoint: Endpoint,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    timeout: Duration,
}

impl fmt::Debug for Prober {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prober")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Prober {
    /// `timeout` bounds each step: the DNS lookup, each connect, the handshake, the close.
    pub fn new(
        endpoint: Endpoint,
        config: ClientConfig,
        timeout: Duration,
    ) -> Result<Prober, TlsSetupError> {
        let server_name =
            ServerName::try_from(endpoint.host.clone()).map_err(|_| TlsSetupError::ServerName {
                host: endpoint.host.clone(),
            })?;
        Ok(Prober {
            endpoint,
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// One probe. Tries each resolved address in turn until one completes a handshake;
    /// otherwise the error of the address that got furthest.
    pub async fn probe(&self) -> Result<ProbeOk, ProbeError> {
        let started = Instant::now();
        let host = &self.endpoint.host;
        let addrs: Vec<SocketAddr> = match timeout(
            self.timeout,
            tokio::net::lookup_host((host.as_str(), self.endpoint.port)),
        )
        .await
        {
            Err(_) => {
                return Err(ProbeError::DnsTimeout {
                    host: host.clone(),
                    after: self.timeout,
                });
            }
            Ok(Err(source)) => {
                return Err(ProbeError::Dns {
                    host: host.clone(),
                    source,
                });
            }
            Ok(Ok(addrs)) => addrs.collect(),
        };
        let mut last = ProbeError::NoAddress { host: host.clone() };
        for addr in addrs {
            match self.handshake(addr).await {
                Ok(protocol) => {
                    return Ok(ProbeOk {
                        addr,
                        elapsed: started.elapsed(),
                        protocol,
                    });
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "probe address failed");
                    if e.depth() >= last.depth() {
                        last = e;
                    }
                }
            }
        }
        Err(last)
    }

    async fn handshake(&self, addr: SocketAddr) -> Result<String, ProbeError> {
        let tcp = match timeout(self.timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(ProbeError::ConnectTimeout {
                    addr,
                    after: self.timeout,
                });
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(ProbeError::Refused { addr });
            }
            Ok(Err(source)) => return Err(ProbeError::Connect { addr, source }),
            Ok(Ok(tcp)) => tcp,
        };
        // On timeout or error the stream is dropped here, which closes the socket.
        let mut tls = match timeout(
            self.timeout,
            self.connector.connect(self.server_name.clone(), tcp),
        )
        .await
        {
            Err(_) => {
                return Err(ProbeError::TlsTimeout {
                    addr,
                    after: self.timeout,
                });
            }
            Ok(Err(source)) => return Err(ProbeError::Tls { addr, source }),
            Ok(Ok(tls)) => tls,
        };
        let protocol = tls
            .get_ref()
            .1
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        // close_notify and FIN; the socket is closed when `tls` drops.
        if let Err(e) = timeout(self.timeout, tls.shutdown())
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "close timed out")))
        {
            tracing::debug!(%addr, error = %e, "closing the probe connection");
        }
        Ok(protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_parsing() {
        let ok: &[(&str, &str, u16)] = &[
            (
                "ecs.eu-west-1.amazonaws.com:443",
                "ecs.eu-west-1.amazonaws.com",
                443,
            ),
            (
                "ecs-fips.us-east-1.amazonaws.com",
                "ecs-fips.us-east-1.amazonaws.com",
                443,
            ),
            ("127.0.0.1:8443", "127.0.0.1", 8443),
            ("[::1]:8443", "::1", 8443),
            ("[::1]", "::1", 443),
        ];
        for (s, host, port) in ok {
            let e: Endpoint = s.parse().unwrap();
            assert_eq!((e.host.as_str(), e.port), (*host, *port), "{s}");
        }
        for bad in [
            "",
            ":443",
            "host:",
            "host:0",
            "host:99999",
            "::1:443",
            "[::1",
            "https://x:1",
            "a b",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            "[::1]:8443".parse::<Endpoint>().unwrap().to_string(),
            "[::1]:8443"
        );
    }

    #[test]
    fn regional_endpoints() {
        assert_eq!(
            Endpoint::for_region("eu-west-1").to_string(),
            "ecs.eu-west-1.amazonaws.com:443"
        );
        assert_eq!(
            Endpoint::for_region("cn-north-1").to_string(),
            "ecs.cn-north-1.amazonaws.com.cn:443"
        );
    }

    #[test]
    fn causes_are_named_for_log_filters() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let after = Duration::from_secs(1);
        let host = "h".to_owned();
        let io = || io::Error::other("x");
        let table = [
            (
                ProbeError::Dns {
                    host: host.clone(),
                    source: io(),
                },
                "dns",
            ),
            (ProbeError::NoAddress { host: host.clone() }, "dns"),
            (ProbeError::DnsTimeout { host, after }, "timeout"),
            (ProbeError::Refused { addr }, "refused"),
            (ProbeError::ConnectTimeout { addr, after }, "timeout"),
            (ProbeError::Connect { addr, source: io() }, "connect"),
            (ProbeError::TlsTimeout { addr, after }, "timeout"),
            (ProbeError::Tls { addr, source: io() }, "tls"),
        ];
        for (e, cause) in table {
            assert_eq!(e.cause(), cause, "{e}");
        }
    }

    #[test]
    fn the_trust_store_has_the_public_roots_and_rejects_a_bad_ca_file() {
        let (_, summary) = tls_config(None).unwrap();
        assert!(summary.mozilla > 100, "{summary:?}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            tls_config(Some(&empty)),
            Err(TlsSetupError::CaFileEmpty { .. })
        ));
        assert!(matches!(
            tls_config(Some(&dir.path().join("missing.pem"))),
            Err(TlsSetupError::CaFile { .. })
        ));
    }
}
