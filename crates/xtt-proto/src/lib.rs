//! Sans-IO XTT (Xaptum Trusted Transit).
//!
//! This crate opens no sockets and files, reads no clock and owns no global random number
//! generator: bytes, the current time and randomness come in as arguments, and bytes to send come
//! out. The async drivers and the `xtt` command are built on top of it.

pub mod daa;
