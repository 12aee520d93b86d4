//! Crypto backends behind one interface, chosen per SA.
//!
//! A backend ([`CryptoBackend`]) turns keys into a per-SA [`CryptoSession`]. The engine hands a
//! session a whole burst of [`CryptoJob`]s at once (`process`), each job being one ESP packet
//! from the SPI to the end of the ICV, already laid out by the engine: header, IV, plaintext
//! payload + trailer, room for the ICV. Because the engine writes the IV and every header
//! byte, two backends given the same SA, IV and input produce byte-identical packets.
//!
//! What a session computes (RFC 4303 §3.3.2, §3.4.4):
//! - AEAD (AES-GCM, RFC 4106): nonce = 4-byte salt || 8-byte IV; AAD = SPI || seq (8 bytes),
//!   or SPI || seq high || seq low (12 bytes) with ESN (RFC 4106 §5); ciphertext in place; ICV
//!   16 bytes after it.
//! - Cipher + HMAC (AES-CBC RFC 3602, NULL RFC 2410): encrypt in place, then HMAC over
//!   header || IV || ciphertext, followed by the ESN high half when ESN is on (RFC 4303
//!   §2.2.1: included in the ICV, not sent), truncated (RFC 2404, RFC 4868). Inbound verifies
//!   the ICV first, in constant time, then decrypts.

pub mod conformance;
pub mod hmac;
#[cfg(all(feature = "ipsec-mb", target_arch = "x86_64"))]
pub mod ipsec_mb;
mod iv;
pub mod rust;

pub use iv::{AesCounterIvSource, CounterIvSource, IvSource};

use core::any::Any;
use core::fmt::Debug;
use zeroize::Zeroizing;

/// Encryption algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherAlgorithm {
    /// NULL encryption (RFC 2410), always with an integrity algorithm.
    Null,
    /// AES-CBC with a 128-bit key (RFC 3602).
    AesCbc128,
    /// AES-CBC with a 192-bit key (RFC 3602).
    AesCbc192,
    /// AES-CBC with a 256-bit key (RFC 3602).
    AesCbc256,
    /// AES-GCM, 128-bit key, 16-byte ICV (RFC 4106).
    AesGcm128,
    /// AES-GCM, 192-bit key, 16-byte ICV (RFC 4106).
    AesGcm192,
    /// AES-GCM, 256-bit key, 16-byte ICV (RFC 4106).
    AesGcm256,
}

impl CipherAlgorithm {
    /// True for combined-mode (AEAD) algorithms.
    pub const fn is_aead(self) -> bool {
        matches!(self, CipherAlgorithm::AesGcm128 | CipherAlgorithm::AesGcm192 | CipherAlgorithm::AesGcm256)
    }
    /// Key length in bytes, salt excluded.
    pub const fn key_len(self) -> usize {
        match self {
            CipherAlgorithm::Null => 0,
            CipherAlgorithm::AesCbc128 | CipherAlgorithm::AesGcm128 => 16,
            CipherAlgorithm::AesCbc192 | CipherAlgorithm::AesGcm192 => 24,
            CipherAlgorithm::AesCbc256 | CipherAlgorithm::AesGcm256 => 32,
        }
    }
    /// Salt length (RFC 4106 §8.1: 4 bytes of KEYMAT after the key).
    pub const fn salt_len(self) -> usize {
        if self.is_aead() {
            4
        } else {
            0
        }
    }
    /// Length of the explicit IV in each packet.
    pub const fn iv_len(self) -> usize {
        match self {
            CipherAlgorithm::Null => 0,
            CipherAlgorithm::AesCbc128 | CipherAlgorithm::AesCbc192 | CipherAlgorithm::AesCbc256 => 16,
            CipherAlgorithm::AesGcm128 | CipherAlgorithm::AesGcm192 | CipherAlgorithm::AesGcm256 => 8,
        }
    }
    /// The plaintext (payload + padding + 2) must be a multiple of this (RFC 4303 §2.4: the
    /// cipher block size, and at least 4-byte alignment).
    pub const fn block_len(self) -> usize {
        match self {
            CipherAlgorithm::AesCbc128 | CipherAlgorithm::AesCbc192 | CipherAlgorithm::AesCbc256 => 16,
            _ => 4,
        }
    }
}

/// Integrity algorithm (none for AEAD ciphers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegrityAlgorithm {
    /// No separate integrity (AEAD cipher).
    None,
    /// HMAC-SHA1-96 (RFC 2404).
    HmacSha1_96,
    /// HMAC-SHA-256-128 (RFC 4868).
    HmacSha256_128,
    /// HMAC-SHA-384-192 (RFC 4868).
    HmacSha384_192,
    /// HMAC-SHA-512-256 (RFC 4868).
    HmacSha512_256,
}

impl IntegrityAlgorithm {
    /// Key length in bytes (RFC 2404 §3: 160 bits; RFC 4868 §2.1.1: the hash output size).
    pub const fn key_len(self) -> usize {
        match self {
            IntegrityAlgorithm::None => 0,
            IntegrityAlgorithm::HmacSha1_96 => 20,
            IntegrityAlgorithm::HmacSha256_128 => 32,
            IntegrityAlgorithm::HmacSha384_192 => 48,
            IntegrityAlgorithm::HmacSha512_256 => 64,
        }
    }
    /// Truncated ICV length.
    pub const fn icv_len(self) -> usize {
        match self {
            IntegrityAlgorithm::None => 0,
            IntegrityAlgorithm::HmacSha1_96 => 12,
            IntegrityAlgorithm::HmacSha256_128 => 16,
            IntegrityAlgorithm::HmacSha384_192 => 24,
            IntegrityAlgorithm::HmacSha512_256 => 32,
        }
    }
}

/// Keys and algorithms of one SA direction. Key bytes are zeroized when dropped.
#[derive(Clone)]
pub struct CryptoParams {
    /// Cipher.
    pub cipher: CipherAlgorithm,
    /// Integrity (must be `None` exactly when `cipher` is AEAD).
    pub integrity: IntegrityAlgorithm,
    /// Cipher key; for AES-GCM the key followed by the 4-byte salt (RFC 4106 §8.1).
    pub cipher_key: Zeroizing<Vec<u8>>,
    /// Integrity key.
    pub auth_key: Zeroizing<Vec<u8>>,
}

impl Debug for CryptoParams {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CryptoParams")
            .field("cipher", &self.cipher)
            .field("integrity", &self.integrity)
            .finish_non_exhaustive()
    }
}

impl CryptoParams {
    /// Check the algorithm combination and key lengths.
    pub fn validate(&self) -> Result<(), CryptoError> {
        let aead = self.cipher.is_aead();
        if aead != (self.integrity == IntegrityAlgorithm::None) {
            // RFC 4303 §3.2: combined mode needs no separate integrity; NULL or CBC need one
            // (we never offer confidentiality-only, RFC 4303 §5).
            return Err(CryptoError::BadAlgorithmCombination);
        }
        if self.cipher_key.len() != self.cipher.key_len() + self.cipher.salt_len() {
            return Err(CryptoError::BadKeyLength);
        }
        if self.auth_key.len() != self.integrity.key_len() {
            return Err(CryptoError::BadKeyLength);
        }
        Ok(())
    }

    /// Per-packet layout implied by the algorithms.
    pub fn layout(&self) -> Layout {
        Layout {
            iv_len: self.cipher.iv_len(),
            icv_len: if self.cipher.is_aead() { 16 } else { self.integrity.icv_len() },
            block_len: self.cipher.block_len(),
        }
    }
}

/// Per-packet sizes of an SA's algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Explicit IV bytes after the ESP header.
    pub iv_len: usize,
    /// ICV bytes at the end.
    pub icv_len: usize,
    /// Plaintext alignment (payload + padding + 2 is a multiple of this).
    pub block_len: usize,
}

/// Error creating a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// Wrong key length for the algorithm.
    BadKeyLength,
    /// AEAD with integrity, or non-AEAD without.
    BadAlgorithmCombination,
    /// This backend does not implement the algorithm.
    Unsupported,
}

/// What to do with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Encrypt the plaintext in place and write the ICV (outbound).
    Seal,
    /// Verify the ICV (constant time), then decrypt in place (inbound).
    Open,
}

/// Outcome of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Not processed yet.
    Pending,
    /// Done.
    Ok,
    /// ICV did not verify; the plaintext area is unspecified (not yet decrypted or garbage).
    AuthFailed,
    /// Lengths do not fit the algorithm (e.g. CBC ciphertext not a block multiple).
    BadLength,
    /// The backend failed for another reason (library error); nothing is guaranteed.
    Failed,
}

/// One packet for a session: `esp` spans the ESP header to the end of the ICV.
#[derive(Debug)]
pub struct CryptoJob<'a> {
    /// ESP header || IV || payload+trailer || ICV.
    pub esp: &'a mut [u8],
    /// High 32 bits of the ESN, when the SA uses ESN.
    pub esn_high: Option<u32>,
    /// Set by the session.
    pub status: JobStatus,
}

impl<'a> CryptoJob<'a> {
    /// A job over `esp`.
    pub fn new(esp: &'a mut [u8], esn_high: Option<u32>) -> Self {
        CryptoJob { esp, esn_high, status: JobStatus::Pending }
    }
}

impl Default for CryptoJob<'_> {
    fn default() -> Self {
        CryptoJob { esp: &mut [], esn_high: None, status: JobStatus::Pending }
    }
}

/// Per-SA crypto state of one backend: keys, read-only once built.
///
/// `process` receives a burst (up to [`crate::MAX_BURST`]) of jobs for this session and must set
/// every job's status before returning: a multi-buffer backend submits them all and then
/// collects (flushes) the results. A burst whose jobs belong to many sessions goes through a
/// [`CryptoRunner`] instead, which batches across sessions.
pub trait CryptoSession: Send + Debug {
    /// Per-packet sizes.
    fn layout(&self) -> Layout;
    /// Process a burst of this session's jobs.
    fn process(&self, op: Operation, jobs: &mut [CryptoJob<'_>]);
    /// The concrete session, so that a backend's [`CryptoRunner`] can recognise its own
    /// sessions among others and reach their keys.
    fn as_any(&self) -> &dyn Any;
    /// Loads the session's own state into the cache where it lives behind a pointer of the
    /// session (nothing by default). First of two levels; see [`Self::warm_keys`].
    fn warm_state(&self) {}
    /// Loads the key material an `op` of this session reads first into the cache, a stage
    /// before the burst's crypto call (nothing by default). Reads the session's state:
    /// call it a level after [`Self::warm_state`].
    fn warm_keys(&self, op: Operation) {
        let _ = op;
    }
}

/// Runs bursts whose jobs belong to many sessions (SAs), as one call per algorithm class where
/// the backend can: the SA is a per-job attribute, not a reason to split the burst
/// (VPP's `esp_encrypt` fills one crypto frame across SAs; DPDK's `aesni_mb` PMD one
/// multi-buffer burst across sessions). One runner per lcore: it owns that lcore's
/// per-thread crypto state (ipsec-mb's manager), so nothing is locked or allocated per burst.
pub trait CryptoRunner: Send + Debug {
    /// Process `jobs[i]` with `sessions[i]` (up to the shorter of the two), setting every
    /// job's status.
    fn run(&mut self, op: Operation, sessions: &[&dyn CryptoSession], jobs: &mut [CryptoJob<'_>]);
}

/// The runner for sessions that batch only within themselves (the pure-Rust backend): each
/// run of consecutive jobs of one session is one `process` call.
#[derive(Debug, Default, Clone, Copy)]
pub struct PerSessionRunner;

impl CryptoRunner for PerSessionRunner {
    fn run(&mut self, op: Operation, sessions: &[&dyn CryptoSession], jobs: &mut [CryptoJob<'_>]) {
        process_runs(op, sessions, jobs);
    }
}

/// Same session as the previous job (the data pointers: two sessions are never one object).
fn same_session(a: &dyn CryptoSession, b: &dyn CryptoSession) -> bool {
    core::ptr::addr_eq(a as *const dyn CryptoSession, b as *const dyn CryptoSession)
}

/// `process` once per run of consecutive jobs of one session.
pub(crate) fn process_runs(op: Operation, sessions: &[&dyn CryptoSession], jobs: &mut [CryptoJob<'_>]) {
    let n = sessions.len().min(jobs.len());
    let mut start = 0;
    while start < n {
        let Some(&s) = sessions.get(start) else { break };
        let mut end = start + 1;
        while sessions.get(end).is_some_and(|&t| end < n && same_session(s, t)) {
            end += 1;
        }
        if let Some(run) = jobs.get_mut(start..end) {
            s.process(op, run);
        }
        start = end;
    }
}

/// A crypto implementation that can create sessions.
pub trait CryptoBackend: Debug {
    /// Name, for logs and configuration ("rust", "ipsec-mb").
    fn name(&self) -> &'static str;
    /// Create a session for `params` (already validated by the caller, re-checked here).
    fn new_session(&self, params: &CryptoParams) -> Result<Box<dyn CryptoSession>, CryptoError>;
}
