//! G1 of FP256BN on a 4×64-bit Montgomery field: the signer's fixed-base walks, the
//! verifier's double-scalar and multi-scalar multiplications and point encoding run here, and
//! the verifier's pairing tower (`crate::pairing`) is built on [`field`]; G2, the line
//! precomputation, join/issuer pairings and one-off operations stay on miracl_core. Points cross over at the edges
//! ([`point::G1::from_ecp`], [`point::G1Affine::to_ecp`]); encodings are byte-identical.

pub(crate) mod field;
pub(crate) mod point;

pub(crate) use point::{G1Affine, G1};
