//! `mqtts://`: the board verifies the broker with the CA from `mqtt.tls.cacert` (rustls). A TLS-terminating proxy
//! (rustls server, certificate from a test CA) sits in front of the broker; a wrong CA must keep the board offline.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, unique, Board, Broker, Observer};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

struct Pki {
    ca_pem: String,
    server: Arc<tokio_rustls::rustls::ServerConfig>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let server = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(
                server_key.serialize_der().into(),
            ),
        )
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    }
}

/// TLS in front of the broker's plain port; returns the TLS port.
async fn tls_proxy(server: Arc<tokio_rustls::rustls::ServerConfig>, broker_port: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(("127.0.0.1", broker_port)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_configured_ca() {
    let broker = Broker::start().await;
    let trusted = pki();
    let port = tls_proxy(trusted.server.clone(), broker.direct.port).await;
    let obs = Observer::connect(&broker, "#").await;

    let topic = unique("vbtls");
    let tls = json!({"mqtt": {"uri": format!("mqtts://localhost:{port}"), "tls": {"cacert": trusted.ca_pem}}});
    let mut board = Board::start(&topic, &config(&broker, &topic, tls));
    obs.wait_for(&board.t("/device/status/connection"), "online")
        .await;
    obs.publish(&board.t("/process/ctrl/cycle_start"), "1")
        .await;
    obs.wait_for(&board.t("/process/status/cycle_counter"), "1")
        .await;
    assert!(board
        .console("config get mqtt.tls.cacert")
        .contains("BEGIN CERTIFICATE"));

    // A board that trusts another CA never comes online, and says why on its UART.
    let other = pki();
    let topic = unique("vbtlsbad");
    let bad = json!({"mqtt": {"uri": format!("mqtts://localhost:{port}"), "tls": {"cacert": other.ca_pem}}});
    let board = Board::start(&topic, &config(&broker, &topic, bad));
    let begin = std::time::Instant::now();
    let log = loop {
        let log = board.console_lines().join("\n");
        if log.contains("MQTT: cannot connect") {
            break log;
        }
        assert!(
            begin.elapsed() < common::WAIT,
            "no connection error on the UART: {log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(log.contains("invalid peer certificate"), "{log}");
    assert!(
        obs.get(&board.t("/device/status/connection")).is_none(),
        "untrusted broker accepted"
    );
}
