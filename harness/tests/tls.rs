//! `hil run --broker mqtts://... --ca-file`: the rig and its boards reach a TLS broker with the given CA; a wrong CA
//! is a clear error. The TLS broker here is a rustls proxy in front of `hil broker`.

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ca_and_server() -> (String, Arc<tokio_rustls::rustls::ServerConfig>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let server = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), Arc::new(server))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_over_tls() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or("cargo".into());
    assert!(Command::new(cargo)
        .args(["build", "-q", "-p", "virtual-board"])
        .current_dir(&root)
        .status()
        .unwrap()
        .success());
    let hil = env!("CARGO_BIN_EXE_hil");
    let board = harness::board::default_board_bin();

    let plain = free_port();
    let mut broker = Command::new(hil)
        .args(["broker", "--listen", &format!("127.0.0.1:{plain}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", plain)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ca_pem, server) = ca_and_server();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(("127.0.0.1", plain)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    let dir = std::env::temp_dir().join(format!("hil-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
    let uri = format!("mqtts://localhost:{tls_port}");

    let run = |ca: &PathBuf| {
        let (hil, board, uri, ca, root) = (
            hil.to_string(),
            board.clone(),
            uri.clone(),
            ca.clone(),
            root.clone(),
        );
        move || {
            Command::new(hil)
                .args(["run", "--broker", &uri, "--ca-file"])
                .arg(&ca)
                .arg("--board-bin")
                .arg(&board)
                .arg("features/device-info.feature")
                .current_dir(&root)
                .output()
                .unwrap()
        }
    };
    let out = tokio::task::spawn_blocking(run(&dir.join("ca.pem")))
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    // Every scenario of the feature ran over TLS and passed: cucumber's summary says "N scenarios (N passed)".
    let summary = text
        .lines()
        .find(|l| l.contains(" scenarios ("))
        .unwrap_or_default();
    let ran = summary.split(' ').next().unwrap_or_default();
    assert!(
        ran.parse::<usize>().is_ok_and(|n| n >= 6) && summary.contains(&format!("({ran} passed)")),
        "{text}"
    );

    // Another CA: the rig says it cannot connect, and why.
    let (other_ca, _) = ca_and_server();
    std::fs::write(dir.join("other.pem"), other_ca).unwrap();
    let out = tokio::task::spawn_blocking(run(&dir.join("other.pem")))
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("invalid peer certificate") || text.contains("cannot connect"),
        "{text}"
    );
    let _ = broker.kill();
    let _ = broker.wait();
}
