//! The files of the xaptum/xtt and xaptum/ecdaa C tools, read and written byte-compatibly, so
//! that the `xtt` command and the C tools use each other's files.
//!
//! | module | files |
//! |---|---|
//! | [`keypair`] | ECDSA P-256 key pairs: `*keys.asn1.bin`, `longterm_priv.bin` (DER ECPrivateKey, 121 bytes) |
//! | [`certs`] | `root_cert.bin` (81), `server_cert.bin` (169), root id and reserved-field inputs |
//! | [`x509`] | `longterm_cert.bin`: the X.509 certificate the C client makes for its long-term key |
//! | [`client_id`] | `client_id.txt` (40 bytes with NUL), raw requested ids |
//! | [`daa`] | `daa_gpk.bin`, `basename.bin`, `gid.bin`, `daa_cred.bin`, `daa_secretkey.bin`, issuer keys |
//! | [`group`] | a DAA group directory and member enrollment through the join protocol |
//! | [`client_dir`] | the C client's directory of inputs and outputs |
//! | [`identity`] | a provisioning's key, certificate and ClientID, replaced as one |
//! | [`describe`] | recognise and explain any of the above |
//!
//! Every write goes through [`fsio::write_atomic`]: temporary file, fsync, rename, fsync of the
//! directory; secrets are created 0600 from the start and their bytes are zeroized after use.
//! Every error names the file and says what is wrong with it ([`Error`]).

pub mod certs;
pub mod client_dir;
pub mod client_id;
pub mod daa;
pub mod describe;
pub mod error;
pub mod fsio;
pub mod group;
pub mod identity;
pub mod keypair;
pub mod x509;

pub use error::{Error, ErrorKind, Result};
pub use fsio::{Access, Overwrite};
