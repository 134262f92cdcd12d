//! Recognises any file (or directory) of this crate's formats and explains it: what it is, who
//! uses it, its public contents, and problems worth knowing (loose permissions on a secret, a
//! certificate that does not verify under the root beside it, ...). Secrets are never shown.
//!
//! Several formats are raw byte strings of the same size (a member secret key and a group id
//! are both 32 bytes), so the file name decides first where it is one of the C tools' names,
//! and the size and a full parse decide otherwise.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use xtt_ecdaa::issuer::{GROUP_PUBLIC_KEY_LEN, ISSUER_PUBLIC_KEY_LEN, ISSUER_SECRET_KEY_LEN};
use xtt_ecdaa::join::{CREDENTIAL_LEN, MEMBER_PUBLIC_KEY_LEN};
use xtt_ecdaa::sign::{SIGNATURE_LEN_WITHOUT_PSEUDONYM, SIGNATURE_LEN_WITH_PSEUDONYM};
use xtt_proto::cert::{ROOT_CERTIFICATE_LEN, SERVER_CERTIFICATE_LEN};

use crate::certs::hex;
use crate::client_id::{CLIENT_ID_FILE_LEN, CLIENT_ID_TEXT_LEN};
use crate::daa::MemberFileNames;
use crate::error::{Error, ErrorKind, Result};
use crate::{certs, client_dir, client_id, daa, fsio, group, keypair, x509};

/// What a file is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// Short name of the kind of file, e.g. "XTT root certificate".
    pub kind: &'static str,
    /// What the file is for and which tool reads it.
    pub purpose: &'static str,
    /// Public contents, label and value.
    pub fields: Vec<(String, String)>,
    /// Problems found (permissions, files beside it that do not match).
    pub warnings: Vec<String>,
    /// Whether the file holds a secret (its contents are never shown).
    pub secret: bool,
}

impl Description {
    fn new(kind: &'static str, purpose: &'static str) -> Self {
        Self {
            kind,
            purpose,
            fields: Vec::new(),
            warnings: Vec::new(),
            secret: false,
        }
    }

    fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    fn field(mut self, label: &str, value: impl Into<String>) -> Self {
        self.fields.push((label.to_string(), value.into()));
        self
    }
}

/// Describes `path`; an error when it is none of the known formats.
pub fn describe(path: &Path) -> Result<Description> {
    let meta = fs::metadata(path).map_err(|e| Error::new(path, ErrorKind::Read(e)))?;
    if meta.is_dir() {
        return describe_dir(path);
    }
    let bytes = zeroize::Zeroizing::new(fsio::read_limited(path, "XTT or DAA file", 8192)?);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let beside = |n: &str| path.parent().map(|p| p.join(n));
    let mut d = by_name(path, &name, &bytes, &beside)?
        .map_or_else(|| by_content(path, &bytes, &beside), Ok)?;
    if d.secret {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            d.warnings.push(format!(
                "permissions are {mode:o}: others can read this secret; run chmod 600"
            ));
        }
    }
    Ok(d)
}

type Beside<'a> = dyn Fn(&str) -> Option<std::path::PathBuf> + 'a;

fn by_name(
    path: &Path,
    name: &str,
    bytes: &[u8],
    beside: &Beside<'_>,
) -> Result<Option<Description>> {
    let d = if name.contains("basename") {
        let b = daa::read_basename(path)?;
        let mut d = Description::new(
            "DAA basename",
            "signed into every DAA signature; servers need it with the group public key",
        )
        .field("length", format!("{} bytes", b.len()))
        .field("value", printable(&b));
        if let Some(gpk) = beside(MemberFileNames::GPK).and_then(|p| daa::read_gpk(&p).ok()) {
            d = d.field(
                "group id (with daa_gpk.bin beside it)",
                hex(&xtt_ecdaa::group_id(&gpk, &b).0),
            );
        }
        d
    } else if name.starts_with("gid") || name.contains("group_id") {
        let gid = daa::read_group_id(path)?;
        let mut d = Description::new(
            "DAA group id",
            "SHA-256(group public key ‖ basename); names the group in the handshake",
        )
        .field("group id", hex(&gid.0));
        if let (Some(g), Some(b)) = (
            beside(MemberFileNames::GPK),
            beside(MemberFileNames::BASENAME),
        ) {
            if let (Ok(gpk), Ok(bsn)) = (daa::read_gpk(&g), daa::read_basename(&b)) {
                match daa::check_group_id(path, &gid, &gpk, &bsn) {
                    Ok(()) => {
                        d = d.field("check", "matches daa_gpk.bin and basename.bin beside it")
                    }
                    Err(e) => d.warnings.push(e.kind.to_string()),
                }
            }
        }
        d
    } else if name.starts_with("isk") {
        let _ = xtt_ecdaa::IssuerSecretKey::from_bytes(bytes)
            .map_err(|e| Error::malformed(path, "DAA issuer secret key", e))?;
        Description::new(
            "DAA issuer secret key",
            "secret of the group's issuer (x ‖ y); enrolls members; keep offline",
        )
        .field(
            "length",
            format!("{ISSUER_SECRET_KEY_LEN} bytes (not shown)"),
        )
        .secret()
    } else if name.contains("cred_sig") {
        xtt_ecdaa::CredentialSignature::from_bytes(bytes)
            .map_err(|e| Error::malformed(path, "DAA credential signature", e))?;
        Description::new(
            "DAA credential signature",
            "the issuer's proof (c ‖ s) that a credential is well formed; checked once at join",
        )
    } else if name.contains("secretkey") || name == "sk.bin" {
        // From the bytes read above: `xtt info` lists a loose mode among its warnings below,
        // and the reader would say it a second time.
        daa::decode_member_secret_key(path, bytes)?;
        Description::new(
            "DAA member secret key",
            "a device's secret group-membership key; signs with its credential",
        )
        .field("length", "32 bytes (not shown)")
        .secret()
    } else if name.contains("req_id") || name == "id.bin" || name.contains("rid") {
        let raw = fsio::read_exact::<16>(path, "raw 16-byte id")?;
        Description::new(
            "raw 16-byte id",
            "a root id (root certificate input) or a requested ClientID (client input)",
        )
        .field("hex", hex(&raw))
        .field("as ClientID", xtt_proto::ClientId(raw).to_string())
    } else {
        return Ok(None);
    };
    Ok(Some(d))
}

fn by_content(path: &Path, bytes: &[u8], beside: &Beside<'_>) -> Result<Description> {
    if bytes.first() == Some(&0x30) {
        if let Ok(key) = keypair::decode(bytes) {
            let layout = if bytes.len() == keypair::KEYPAIR_FILE_LEN {
                "C tool layout (121 bytes)".to_string()
            } else {
                format!(
                    "{} bytes: valid DER, but not the C tool's 121-byte layout (it reads fixed \
                     offsets and would misread this file)",
                    bytes.len()
                )
            };
            return Ok(Description::new(
                "ECDSA P-256 key pair",
                "a root, server or device long-term key (DER ECPrivateKey, secret)",
            )
            .field("curve", "P-256 (prime256v1)")
            .field("public key", hex(key.public_key().as_bytes()))
            .field("layout", layout)
            .secret());
        }
        match x509::parse(bytes) {
            Ok(cert) => {
                return Ok(Description::new(
                    "XTT long-term X.509 certificate",
                    "a provisioned device's self-signed certificate for its long-term key",
                )
                .field(
                    "ClientID (subject and issuer CN)",
                    cert.client_id.to_string(),
                )
                .field("public key", hex(cert.public_key.as_bytes()))
                .field("serial", hex(&cert.serial))
                .field(
                    "validity",
                    "0000-01-01 00:00:00 to 9999-12-31 23:59:59 (as the C client)",
                )
                .field(
                    "self-signature",
                    if cert.signature_is_minimal_der {
                        "verifies"
                    } else {
                        "verifies (INTEGERs not minimal DER, as the C tool sometimes writes)"
                    },
                ))
            }
            Err(reason) if bytes.len() > 300 => {
                return Err(Error::malformed(
                    path,
                    "XTT long-term X.509 certificate",
                    reason,
                ))
            }
            Err(_) => {}
        }
    }
    match bytes.len() {
        ROOT_CERTIFICATE_LEN => {
            let root = certs::read_root(path)?;
            Ok(Description::new(
                "XTT root certificate",
                "a trust anchor: root_id ‖ public key; clients use it to check server certificates",
            )
            .field("root id", hex(&root.id.0))
            .field("public key", hex(root.public_key.as_bytes())))
        }
        SERVER_CERTIFICATE_LEN => {
            let cert = certs::read_server(path)?;
            let mut d = Description::new(
                "XTT server certificate",
                "the server's long-term key signed by a root; sent in ServerInitAndAttest",
            )
            .field("reserved", printable(&cert.reserved()))
            .field("root id", hex(&cert.root_id().0))
            .field("public key", hex(&cert.public_key_bytes()))
            .field("root signature", hex(&cert.root_signature()));
            if let Some(root) = beside(client_dir::ROOT_CERT).filter(|p| p.exists()) {
                match certs::read_root(&root).and_then(|r| certs::verify_server(path, &cert, &r)) {
                    Ok(_) => d = d.field("check", "verifies under root_cert.bin beside it"),
                    Err(e) => d.warnings.push(e.to_string()),
                }
            }
            Ok(d)
        }
        CLIENT_ID_TEXT_LEN | CLIENT_ID_FILE_LEN if client_id::decode(bytes).is_ok() => {
            let id = client_id::read(path)?;
            Ok(Description::new(
                "ClientID text file",
                "the identity a server assigned to this device (client_id.txt)",
            )
            .field("ClientID", id.to_string())
            .field("hex", hex(&id.0)))
        }
        GROUP_PUBLIC_KEY_LEN => {
            let gpk = daa::read_gpk(path)?;
            let mut d = Description::new(
                "DAA group public key",
                "verifies the group's DAA signatures; XTT servers hold one per group",
            )
            .field("points", "X, Y on FP256BN G2, in the subgroup (checked)");
            if let Some(b) =
                beside(MemberFileNames::BASENAME).and_then(|p| daa::read_basename(&p).ok())
            {
                d = d.field(
                    "group id (with basename.bin beside it)",
                    hex(&xtt_ecdaa::group_id(&gpk, &b).0),
                );
            }
            Ok(d)
        }
        CREDENTIAL_LEN => {
            let cred = daa::read_credential(path)?;
            let mut d = Description::new(
                "DAA credential",
                "a member's credential from the issuer (A ‖ B ‖ C ‖ D); signs with the secret key",
            )
            .field("points", "A, B, C, D on FP256BN G1 (checked)");
            if let Some(gpk) = beside(MemberFileNames::GPK).and_then(|p| daa::read_gpk(&p).ok()) {
                match cred.check_pairings(&gpk) {
                    Ok(()) => d = d.field("check", "valid under daa_gpk.bin beside it"),
                    Err(e) => d
                        .warnings
                        .push(format!("not valid under daa_gpk.bin beside it: {e}")),
                }
            }
            Ok(d)
        }
        ISSUER_PUBLIC_KEY_LEN => {
            // Decoding checks the points and the issuer's proof.
            xtt_ecdaa::IssuerPublicKey::from_bytes(bytes)
                .map_err(|e| Error::malformed(path, "DAA issuer public key", e))?;
            Ok(Description::new(
                "DAA issuer public key",
                "the issuer's public key with its proof (X ‖ Y ‖ c ‖ sx ‖ sy); the first 258 bytes \
                 are the group public key",
            )
            .field("proof", "verifies"))
        }
        MEMBER_PUBLIC_KEY_LEN => {
            xtt_ecdaa::MemberPublicKey::from_bytes(bytes)
                .map_err(|e| Error::malformed(path, "DAA member public key", e))?;
            Ok(Description::new(
                "DAA member public key (join request)",
                "Q ‖ c ‖ s ‖ n: a member's key with its proof over the issuer's nonce",
            ))
        }
        SIGNATURE_LEN_WITH_PSEUDONYM | SIGNATURE_LEN_WITHOUT_PSEUDONYM => Ok(Description::new(
            "DAA signature",
            "c ‖ s ‖ R ‖ S ‖ T ‖ W ‖ n [‖ K]; verify it with the group public key and basename",
        )
        .field(
            "pseudonym",
            if bytes.len() == SIGNATURE_LEN_WITH_PSEUDONYM {
                "present (basename signature)"
            } else {
                "absent"
            },
        )),
        32 => Err(Error::malformed(
            path,
            "recognisable file",
            "32 bytes could be a DAA member secret key or a group id; name it \
             daa_secretkey.bin or gid.bin to tell",
        )),
        64 => Err(Error::malformed(
            path,
            "recognisable file",
            "64 bytes could be a DAA issuer secret key or a credential signature; name it \
             isk.bin or cred_sig.bin to tell",
        )),
        16 => Ok(Description::new(
            "raw 16-byte id",
            "a root id (root certificate input) or a requested ClientID (client input)",
        )
        .field("hex", hex(bytes))),
        n => Err(Error::malformed(
            path,
            "XTT or DAA file",
            format!("{n} bytes match none of the known formats"),
        )),
    }
}

fn describe_dir(path: &Path) -> Result<Description> {
    if path.join(group::IPK).exists() {
        let g = group::GroupDir::open(path)?;
        let members = g.members()?;
        return Ok(Description::new(
            "DAA group directory",
            "an issuer's group: issuer keys, group public key, basename, enrolled members",
        )
        .field("group id", hex(&g.group_id().0))
        .field("basename", printable(g.basename()))
        .field("members", members.len().to_string()));
    }
    if path.join(MemberFileNames::CREDENTIAL).exists() {
        let dir = client_dir::ClientDir::new(path);
        let member = dir.member()?;
        let mut d = Description::new(
            "XTT client directory",
            "a device's files as the C client reads and writes them",
        )
        .field("group id", hex(&member.group_id().0));
        match dir.read_provisioned() {
            Ok((id, key)) => {
                d = d
                    .field("ClientID", id.to_string())
                    .field("long-term public key", hex(key.public_key().as_bytes()))
            }
            Err(e) if e.path.exists() => d.warnings.push(e.to_string()),
            Err(_) => d = d.field("provisioned", "not yet"),
        }
        return Ok(d);
    }
    Err(Error::malformed(
        path,
        "XTT directory",
        "neither a DAA group (ipk.bin) nor a client directory (daa_cred.bin)",
    ))
}

fn printable(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(bytes))
    } else {
        format!("0x{}", hex(bytes))
    }
}
