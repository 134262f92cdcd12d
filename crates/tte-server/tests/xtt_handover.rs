//! An `xtt://` Controller: the device's first boot goes on as XTT identity provisioning against
//! a real XttServer on 127.0.0.1 (fresh root, server certificate, DAA group), with the Transfer
//! Agent and Controller of the other flow tests.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::parse;
use rand_core::{OsRng, RngCore};
use tte_server::cli::run;
use tte_server::device::{DeviceClient, DeviceError, DeviceSecrets, Enrollment};
use tte_server::xtt_enroll::{XttEnrollment, XttError};
use xtt_files::client_dir::{self, ClientDir};
use xtt_files::group::GroupDir;
use xtt_files::Overwrite;
use xtt_proto::cert::{RootCertificate, RootId, ServerCertificate, DEFAULT_RESERVED};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_registry::{Registry, SqliteRegistry};
use xtt_server::{add_group, ServerConfig, ServerKeys, XttServer};

struct XttSide {
    addr: std::net::SocketAddr,
    registry: Arc<dyn Registry>,
    group_dir: std::path::PathBuf,
    root_file: std::path::PathBuf,
    _task: tokio::task::JoinHandle<Result<(), xtt_server::ServerError>>,
}

/// A fresh root, server certificate and DAA group (a group directory, as `xtt group create`
/// makes it), and an XttServer that accepts the group.
async fn start_xtt(dir: &Path) -> XttSide {
    let root_key = LongtermKeyPair::generate(&mut OsRng);
    let mut id = RootId([0; 16]);
    OsRng.fill_bytes(&mut id.0);
    let root = RootCertificate {
        id,
        public_key: *root_key.public_key(),
    };
    let root_file = dir.join(client_dir::ROOT_CERT);
    xtt_files::certs::write_root(&root_file, &root, Overwrite::Deny).unwrap();
    let server_key = LongtermKeyPair::generate(&mut OsRng);
    let certificate =
        ServerCertificate::issue(&DEFAULT_RESERVED, &id, server_key.public_key(), &root_key)
            .unwrap();
    let mut cookie_secret = [0u8; 32];
    OsRng.fill_bytes(&mut cookie_secret);
    let keys = ServerKeys {
        certificate,
        signing_key: server_key,
        cookie_secret: zeroize::Zeroizing::new(cookie_secret),
    };

    let group_dir = dir.join("group");
    let group = GroupDir::create(&group_dir, b"tte-test-sensors", &mut OsRng).unwrap();
    let registry =
        SqliteRegistry::open(&dir.join("registry.sqlite"), xtt_registry::Durability::Full).unwrap();
    add_group(
        &registry,
        &group.group_public_key().to_bytes(),
        group.basename(),
    )
    .unwrap();
    let registry: Arc<dyn Registry> = Arc::new(registry);
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    config.metrics.listen = None;
    config.data_dir = dir.to_path_buf();
    let server = XttServer::bind(config, keys, registry.clone())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let task = tokio::spawn(server.run(std::future::pending()));
    XttSide {
        addr,
        registry,
        group_dir,
        root_file,
        _task: task,
    }
}

async fn bind_to_xtt(s: &common::Stack, dev: &DeviceSecrets, addr: std::net::SocketAddr) {
    let r = s.bind(&dev.urn, &dev.otp, &format!("xtt://{addr}")).await;
    assert_eq!(r.status(), 204);
}

/// Makes one device at the factory with XTT material (DAA membership and root of `xtt`) into
/// `s.out()/batch`, and returns its secrets file.
async fn manufacture_xtt_device(s: &common::Stack, xtt: &XttSide, batch: &str) -> PathBuf {
    let out = s.out().join(batch);
    let daa_group = xtt.group_dir.to_str().unwrap();
    let xtt_root = xtt.root_file.to_str().unwrap();
    common::manufacture_cli(
        &s.ta,
        &out,
        &["--daa-group", daa_group, "--xtt-root", xtt_root],
    )
    .await;
    let mut jsons = common::secrets_files(&out);
    assert_eq!(jsons.len(), 1);
    jsons.pop().unwrap()
}

/// The device's first boot with `handover` as its XTT hook, which must fail.
async fn enroll_error(dev: DeviceSecrets, handover: &XttEnrollment) -> DeviceError {
    DeviceClient::new(dev)
        .unwrap()
        .enroll(Some(handover))
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_fetch_of_an_xtt_controller_provisions_an_identity() {
    let s = common::start().await;
    let xtt = start_xtt(s.dir.path()).await;

    // The factory enrolls the device into the DAA group and flashes the XTT root.
    let secrets_path = manufacture_xtt_device(&s, &xtt, "batch").await;
    let dev = common::read_secrets(&secrets_path);
    assert!(dev.xtt.as_ref().is_some_and(|x| x.xtt_root.is_some()));

    bind_to_xtt(&s, &dev, xtt.addr).await;
    let identity_dir = s.dir.path().join("identity");
    run(parse(&[
        "device",
        "fetch",
        "--secrets",
        secrets_path.to_str().unwrap(),
        "--xtt-dir",
        identity_dir.to_str().unwrap(),
    ]))
    .await
    .unwrap();

    // The C client's files: id, certificate, key (0600); they fit together.
    let (client_id, _key) = ClientDir::new(&identity_dir).read_provisioned().unwrap();
    for f in [
        client_dir::CLIENT_ID,
        client_dir::LONGTERM_CERT,
        client_dir::LONGTERM_PRIV,
    ] {
        assert!(identity_dir.join(f).is_file(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |f: &str| {
            std::fs::metadata(identity_dir.join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(client_dir::LONGTERM_PRIV), 0o600);
        assert_eq!(mode(xtt_files::daa::MemberFileNames::SECRET_KEY), 0o600);
    }
    // The directory is a complete C client directory: it could provision again by itself.
    ClientDir::new(&identity_dir).member().unwrap();

    // The server registered exactly that ClientID.
    let ids = xtt.registry.identities().unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].client_id, client_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_or_bad_daa_material_is_a_typed_error_and_writes_nothing() {
    let s = common::start().await;
    let xtt = start_xtt(s.dir.path()).await;

    // A device made without --daa-group.
    let plain = s.manufacture().await;
    bind_to_xtt(&s, &plain, xtt.addr).await;
    let out_dir = s.dir.path().join("never-written");
    let handover = XttEnrollment::new(&out_dir);
    let err = enroll_error(plain.clone(), &handover).await;
    assert!(
        matches!(err, DeviceError::Xtt(XttError::NoDaaCredential { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("--daa-group"), "{err}");

    // Through the CLI: the same message, and nothing written at the default place either.
    let secrets = s.out().join(format!("{}.json", plain.urn.file_stem()));
    let e = run(parse(&[
        "device",
        "fetch",
        "--secrets",
        secrets.to_str().unwrap(),
    ]))
    .await
    .unwrap_err();
    assert!(format!("{e:#}").contains("has no DAA credential"), "{e:#}");
    assert!(!secrets.with_extension("xtt").exists());

    // A device whose credential belongs to another member: refused before any handshake.
    let group = GroupDir::open(&xtt.group_dir).unwrap();
    let members = group.enroll(2, 1, &|_| ()).unwrap();
    let mut x =
        tte_server::xtt_enroll::XttSecrets::from_member_dir(&members[0].dir, Some(&xtt.root_file))
            .unwrap();
    let other = tte_server::xtt_enroll::XttSecrets::from_member_dir(&members[1].dir, None).unwrap();
    x.daa_credential = other.daa_credential.clone();
    let mut forged = plain.clone();
    forged.xtt = Some(x.clone());
    let err = enroll_error(forged, &handover).await;
    assert!(
        matches!(err, DeviceError::Xtt(XttError::BadDaaMaterial(_))),
        "{err}"
    );

    // Good membership but no root: refused too.
    let mut rootless = plain.clone();
    let mut no_root =
        tte_server::xtt_enroll::XttSecrets::from_member_dir(&members[0].dir, None).unwrap();
    no_root.xtt_root = None;
    rootless.xtt = Some(no_root);
    let err = enroll_error(rootless, &handover).await;
    assert!(
        matches!(err, DeviceError::Xtt(XttError::NoXttRoot { .. })),
        "{err}"
    );

    assert!(!out_dir.exists(), "nothing may be written");
    assert_eq!(xtt.registry.identity_count().unwrap(), 0);
    // And the device that was never given XTT material still reports XttPending without a hook.
    assert!(matches!(
        DeviceClient::new(plain)
            .unwrap()
            .enroll(None)
            .await
            .unwrap(),
        Enrollment::XttPending(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_directory_that_cannot_be_written_is_refused_before_the_handshake() {
    let s = common::start().await;
    let xtt = start_xtt(s.dir.path()).await;
    let dev = common::read_secrets(&manufacture_xtt_device(&s, &xtt, "batch").await);
    bind_to_xtt(&s, &dev, xtt.addr).await;

    // The identity directory would be inside a regular file: it cannot be made.
    let blocker = s.dir.path().join("a-file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let handover = XttEnrollment::new(blocker.join("identity"));
    let err = enroll_error(dev.clone(), &handover).await;
    assert!(matches!(err, DeviceError::Xtt(XttError::Write(_))), "{err}");
    assert_eq!(
        xtt.registry.identity_count().unwrap(),
        0,
        "no identity may be registered for a device that could not keep it"
    );

    // Another device, bound to an XTT address where nothing listens: the failed handshake
    // leaves no empty identity directory behind.
    let other = common::read_secrets(&manufacture_xtt_device(&s, &xtt, "batch2").await);
    let unreachable = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    bind_to_xtt(&s, &other, unreachable).await;
    let fresh = s.dir.path().join("fresh-identity");
    let err = enroll_error(other, &XttEnrollment::new(&fresh)).await;
    assert!(
        matches!(err, DeviceError::Xtt(XttError::Provision { .. })),
        "{err}"
    );
    assert!(
        !fresh.exists(),
        "an empty identity directory was left behind"
    );
}
