//! ClientID files. The C client writes the assigned id as text (`client_id.txt`): eight groups
//! of four upper-case hex digits separated by `:` and a terminating NUL byte, 40 bytes in all.
//! A requested id (`-q/--requestid`) is read as 16 raw bytes.

use std::path::Path;

use xtt_proto::identity::CLIENT_ID_LEN;
use xtt_proto::ClientId;

use crate::error::{Error, Result};
use crate::fsio::{self, Access, Overwrite};

/// Length of the text form without its NUL.
pub const CLIENT_ID_TEXT_LEN: usize = 39;
/// Length of the file the C client writes (text plus NUL).
pub const CLIENT_ID_FILE_LEN: usize = CLIENT_ID_TEXT_LEN + 1;

const WHAT: &str = "ClientID text file";

/// The C client's 40 bytes.
pub fn encode(id: &ClientId) -> [u8; CLIENT_ID_FILE_LEN] {
    let mut out = [0u8; CLIENT_ID_FILE_LEN];
    let text = id.to_string();
    if let Some(dst) = out.get_mut(..text.len()) {
        dst.copy_from_slice(text.as_bytes());
    }
    out
}

/// Parses the text form; the trailing NUL of the C file and a trailing newline (from a person
/// writing the file by hand) are accepted.
pub fn decode(bytes: &[u8]) -> std::result::Result<ClientId, String> {
    let trimmed = bytes.strip_suffix(b"\0").unwrap_or(bytes).trim_ascii_end();
    let text = std::str::from_utf8(trimmed).map_err(|_| "not text".to_string())?;
    text.parse()
        .map_err(|_| format!("{text:?} is not XXXX:XXXX:XXXX:XXXX:XXXX:XXXX:XXXX:XXXX"))
}

/// Reads `client_id.txt`.
pub fn read(path: &Path) -> Result<ClientId> {
    let bytes = fsio::read_limited(path, WHAT, 64)?;
    decode(&bytes).map_err(|reason| Error::malformed(path, WHAT, reason))
}

/// Writes `client_id.txt` (0644, as the C client does).
pub fn write(path: &Path, id: &ClientId, overwrite: Overwrite) -> Result<()> {
    fsio::write_atomic(path, &encode(id), Access::Public, overwrite)
}

/// Reads a requested ClientID file: 16 raw bytes.
pub fn read_raw(path: &Path) -> Result<ClientId> {
    fsio::read_exact::<CLIENT_ID_LEN>(path, "raw ClientID").map(ClientId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_bytes_with_nul_and_back() {
        let id = ClientId(*b"0123456789abcdef");
        let bytes = encode(&id);
        assert_eq!(&bytes[..], b"3031:3233:3435:3637:3839:6162:6364:6566\0");
        assert_eq!(decode(&bytes).unwrap(), id);
        assert_eq!(decode(&bytes[..39]).unwrap(), id);
        assert_eq!(
            decode(b"3031:3233:3435:3637:3839:6162:6364:6566\n").unwrap(),
            id
        );
        assert!(decode(b"3031:3233").unwrap_err().contains("is not XXXX"));
        assert!(decode(&[0xff, 0xfe]).is_err());
    }
}
