//! Sans-IO core: wire types and validation, access rules, payload encryption, share URLs and
//! the three-message confirm flow. Nothing here touches a socket, a file or a clock.

pub mod confirm;
pub mod mailbox;
pub mod secret;
pub mod share_url;
pub mod wire;
