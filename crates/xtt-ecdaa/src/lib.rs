//! LRSW ECDAA on FP256BN (TPM_ECC_BN_P256), byte-compatible with xaptum/ecdaa v1.0.0.
