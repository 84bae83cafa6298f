//! The record layer after the handshake. rustls runs the handshake, then
//! hands over the traffic keys and sequence numbers
//! (`dangerous_into_kernel_connection`, the interface rustls offers for
//! kernel TLS offload) and keeps only what a TLS 1.3 key update needs
//! ([`KernelConnection`]). Records are then sealed and opened here with
//! ring's AEADs (AES-GCM, ChaCha20-Poly1305), in place, exactly as rustls
//! would.
//!
//! The point is memory: an established rustls session holds about 3.7 KiB,
//! this layer about 1 KiB (TLS 1.3, mostly the key-update state) or 150
//! bytes (TLS 1.2) once its expanded AEAD keys are dropped, which a parked
//! connection does (they are expanded again when it wakes, well under a
//! microsecond).
//!
//! Rules enforced on what the client sends: records no longer than the
//! protocol allows (`record_overflow`), authentication of every record,
//! TLS 1.3 inner content types application data, alert and handshake
//! (KeyUpdate only: a client never sends anything else after the
//! handshake), TLS 1.2 application data and alerts only (renegotiation is
//! refused). A close_notify ends the stream; any other alert, or any
//! violation, is an error that closes the connection.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::ConnectionTrafficSecrets;

const APP_DATA: u8 = 0x17;
const HANDSHAKE: u8 = 0x16;
const ALERT: u8 = 0x15;
const TAG: usize = 16;
const MAX_PLAIN: usize = 16384;
const KEY_UPDATE: u8 = 24;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Alg {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20,
}

impl Alg {
    fn ring(self) -> &'static aead::Algorithm {
        match self {
            Alg::Aes128Gcm => &aead::AES_128_GCM,
            Alg::Aes256Gcm => &aead::AES_256_GCM,
            Alg::Chacha20 => &aead::CHACHA20_POLY1305,
        }
    }
}

/// One direction's keys and sequence number.
struct Dir {
    alg: Alg,
    key: [u8; 32],
    iv: [u8; 12],
    seq: u64,
    /// The expanded key, built on first use, dropped when the connection parks.
    ready: Option<Box<LessSafeKey>>,
}

impl Dir {
    fn new(seq: u64, secrets: ConnectionTrafficSecrets) -> Result<Dir, String> {
        let (alg, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Alg::Aes128Gcm, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Alg::Aes256Gcm, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (Alg::Chacha20, key, iv),
            _ => return Err("unsupported cipher suite".into()),
        };
        let (k, i) = (key.as_ref(), iv.as_ref());
        if k.len() != alg.ring().key_len() || k.len() > 32 || i.len() != 12 {
            return Err("unexpected key sizes".into());
        }
        let mut d = Dir {
            alg,
            key: [0; 32],
            iv: [0; 12],
            seq,
            ready: None,
        };
        d.key[..k.len()].copy_from_slice(k);
        d.iv.copy_from_slice(i);
        Ok(d)
    }

    fn key(&mut self) -> &LessSafeKey {
        let (alg, key) = (self.alg, &self.key);
        self.ready.get_or_insert_with(|| {
            let k = &key[..alg.ring().key_len()];
            Box::new(LessSafeKey::new(
                UnboundKey::new(alg.ring(), k).expect("key length checked"),
            ))
        })
    }

    /// The per-record nonce: the IV with the sequence number xored into its last 8 bytes.
    fn nonce(&self) -> [u8; 12] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    fn next(&mut self) -> Result<(), RecordError> {
        self.seq = self.seq.checked_add(1).ok_or(RecordError::Exhausted)?;
        Ok(())
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // (best effort: the expanded key is ring's own)
        self.key = [0; 32];
        self.iv = [0; 12];
    }
}

/// Why a record was refused (the connection closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// Longer than the protocol allows.
    Overflow,
    /// Failed authentication, or too short to carry its tag.
    BadRecord,
    /// A content type or message not allowed after the handshake.
    Unexpected,
    /// The peer sent a fatal alert.
    Alert(u8),
    /// 2^64 records in one direction.
    Exhausted,
    /// The key update could not be made.
    KeyUpdate,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Overflow => f.write_str("TLS record longer than the protocol allows"),
            RecordError::BadRecord => f.write_str("TLS record failed authentication"),
            RecordError::Unexpected => f.write_str("unexpected TLS message after the handshake"),
            RecordError::Alert(d) => write!(f, "the client sent TLS alert {d}"),
            RecordError::Exhausted => f.write_str("TLS sequence numbers exhausted"),
            RecordError::KeyUpdate => f.write_str("TLS key update failed"),
        }
    }
}

/// What one opened record holds.
pub enum Opened {
    /// Application data at this range of the buffer (possibly empty).
    Data(usize, usize),
    /// Nothing for the application (a key update, say); go on.
    Nothing,
    /// close_notify: the stream has ended.
    Closed,
}

/// The established session's record layer.
pub struct Records {
    tls13: bool,
    tx: Dir,
    rx: Dir,
    /// TLS 1.3: the key schedule for key updates.
    kernel: Option<Box<KernelConnection<ServerConnectionData>>>,
    /// The client asked for our key update: one goes before our next
    /// record, however many requests came meanwhile (RFC 8446 4.6.3).
    update_due: bool,
}

impl Records {
    /// From what rustls hands over after the handshake.
    pub fn new(
        secrets: rustls::ExtractedSecrets,
        kernel: KernelConnection<ServerConnectionData>,
    ) -> Result<Records, String> {
        let tls13 = kernel.protocol_version() == rustls::ProtocolVersion::TLSv1_3;
        let (tx_seq, tx) = secrets.tx;
        let (rx_seq, rx) = secrets.rx;
        Ok(Records {
            tls13,
            tx: Dir::new(tx_seq, tx)?,
            rx: Dir::new(rx_seq, rx)?,
            kernel: tls13.then(|| Box::new(kernel)),
            update_due: false,
        })
    }

    /// Drops the expanded keys (a parked connection).
    pub fn shrink(&mut self) {
        self.tx.ready = None;
        self.rx.ready = None;
    }

    /// Bytes a record adds around `n` bytes of plaintext.
    pub fn overhead(&self) -> usize {
        if self.tls13 {
            5 + 1 + TAG
        } else if self.tx.alg == Alg::Chacha20 {
            5 + TAG
        } else {
            5 + 8 + TAG
        }
    }

    /// Seals `plain` (at most 16 KiB) as one record of `typ` into `out`
    /// (which has room for `plain.len() + overhead()`); returns its length.
    pub fn seal(&mut self, typ: u8, plain: &[u8], out: &mut [u8]) -> Result<usize, RecordError> {
        debug_assert!(plain.len() <= MAX_PLAIN);
        let explicit = if !self.tls13 && self.tx.alg != Alg::Chacha20 {
            8
        } else {
            0
        };
        let inner = plain.len() + usize::from(self.tls13);
        let body = explicit + inner + TAG;
        let total = 5 + body;
        let out = &mut out[..total];
        let nonce = self.tx.nonce();
        out[0] = if self.tls13 { APP_DATA } else { typ };
        out[1..3].copy_from_slice(&[3, 3]);
        out[3..5].copy_from_slice(&(body as u16).to_be_bytes());
        out[5..5 + explicit].copy_from_slice(&nonce[4..4 + explicit]);
        let start = 5 + explicit;
        out[start..start + plain.len()].copy_from_slice(plain);
        if self.tls13 {
            out[start + plain.len()] = typ;
        }
        let mut aad13 = [0u8; 5];
        aad13.copy_from_slice(&out[..5]);
        let aad12 = tls12_aad(self.tx.seq, typ, plain.len());
        let seq_ok = self.tx.seq.checked_add(1).is_some();
        if !seq_ok {
            return Err(RecordError::Exhausted);
        }
        let tls13 = self.tls13;
        let key = self.tx.key();
        let tag = if tls13 {
            key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad13),
                &mut out[start..start + inner],
            )
        } else {
            key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad12),
                &mut out[start..start + inner],
            )
        }
        .map_err(|_| RecordError::BadRecord)?;
        out[start + inner..].copy_from_slice(tag.as_ref());
        self.tx.next()?;
        Ok(total)
    }

    /// The length of the whole record at the front of `buf` when it is all
    /// there (`Ok(None)`: more bytes are needed).
    pub fn complete(&self, buf: &[u8]) -> Result<Option<usize>, RecordError> {
        if buf.len() < 5 {
            return Ok(None);
        }
        let len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
        let max = if self.tls13 {
            MAX_PLAIN + 256
        } else {
            MAX_PLAIN + 2048
        };
        if len > max {
            return Err(RecordError::Overflow);
        }
        Ok((buf.len() >= 5 + len).then_some(5 + len))
    }

    /// Opens the whole record `rec` (header included) in place.
    pub fn open(&mut self, rec: &mut [u8]) -> Result<Opened, RecordError> {
        let outer = rec[0];
        let explicit = if !self.tls13 && self.rx.alg != Alg::Chacha20 {
            8
        } else {
            0
        };
        let body_len = rec.len() - 5;
        if body_len < explicit + TAG {
            return Err(RecordError::BadRecord);
        }
        if self.tls13 && outer != APP_DATA {
            // (a TLS 1.3 middlebox-compatibility change_cipher_spec is not allowed here)
            log::debug!("tls: outer record type {outer} after the handshake");
            return Err(RecordError::Unexpected);
        }
        let mut nonce = self.rx.nonce();
        if explicit > 0 {
            nonce[4..].copy_from_slice(&rec[5..13]);
        }
        let mut header = [0u8; 5];
        header.copy_from_slice(&rec[..5]);
        let aad12 = tls12_aad(self.rx.seq, outer, body_len - explicit - TAG);
        let tls13 = self.tls13;
        let key = self.rx.key();
        let start = 5 + explicit;
        let plain_len = if tls13 {
            key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header),
                &mut rec[start..],
            )
        } else {
            key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad12),
                &mut rec[start..],
            )
        }
        .map_err(|_| RecordError::BadRecord)?
        .len();
        self.rx.next()?;
        let (typ, end) = if tls13 {
            // inner plaintext: content, the type, then zero padding
            let inner = &rec[start..start + plain_len];
            match inner.iter().rposition(|&b| b != 0) {
                Some(i) => (inner[i], start + i),
                None => return Err(RecordError::Unexpected),
            }
        } else {
            (outer, start + plain_len)
        };
        if end - start > MAX_PLAIN {
            return Err(RecordError::Overflow);
        }
        match typ {
            APP_DATA => Ok(Opened::Data(start, end)),
            ALERT => {
                let a = &rec[start..end];
                if a.len() != 2 {
                    return Err(RecordError::Unexpected);
                }
                if a[1] == 0 {
                    Ok(Opened::Closed)
                } else if a[0] == 1 && !tls13 {
                    // a TLS 1.2 warning (no_renegotiation, say): nothing to do
                    Ok(Opened::Nothing)
                } else {
                    Err(RecordError::Alert(a[1]))
                }
            }
            HANDSHAKE if tls13 => self.handshake(&rec[start..end]),
            _ => {
                log::debug!("tls: record type {typ} after the handshake");
                Err(RecordError::Unexpected)
            }
        }
    }

    /// TLS 1.3 post-handshake messages from a client: KeyUpdate only.
    fn handshake(&mut self, mut msgs: &[u8]) -> Result<Opened, RecordError> {
        let mut requested = false;
        while !msgs.is_empty() {
            if msgs.len() < 4 {
                return Err(RecordError::Unexpected);
            }
            let len = u32::from_be_bytes([0, msgs[1], msgs[2], msgs[3]]) as usize;
            if msgs[0] != KEY_UPDATE || len != 1 || msgs.len() < 5 || msgs[4] > 1 {
                log::debug!("tls: handshake message {} after the handshake", msgs[0]);
                return Err(RecordError::Unexpected);
            }
            requested |= msgs[4] == 1;
            let kernel = self.kernel.as_mut().ok_or(RecordError::Unexpected)?;
            let (seq, secrets) = kernel
                .update_rx_secret()
                .map_err(|_| RecordError::KeyUpdate)?;
            self.rx = Dir::new(seq, secrets).map_err(|_| RecordError::KeyUpdate)?;
            msgs = &msgs[5..];
        }
        self.update_due |= requested;
        Ok(Opened::Nothing)
    }

    /// Whether our key update is due before the next record ([`Records::seal_key_update`]).
    pub fn update_due(&self) -> bool {
        self.update_due
    }

    /// Seals our KeyUpdate (update_not_requested) with the current key,
    /// then moves to the next one; returns the record's length.
    pub fn seal_key_update(&mut self, out: &mut [u8]) -> Result<usize, RecordError> {
        self.update_due = false;
        let n = self.seal(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out)?;
        let kernel = self.kernel.as_mut().ok_or(RecordError::KeyUpdate)?;
        let (seq, secrets) = kernel
            .update_tx_secret()
            .map_err(|_| RecordError::KeyUpdate)?;
        self.tx = Dir::new(seq, secrets).map_err(|_| RecordError::KeyUpdate)?;
        Ok(n)
    }

    /// Seals a close_notify alert.
    pub fn seal_close_notify(&mut self, out: &mut [u8]) -> Result<usize, RecordError> {
        self.seal(ALERT, &[1, 0], out)
    }

    /// Seals a fatal alert (`desc`).
    pub fn seal_alert(&mut self, desc: u8, out: &mut [u8]) -> Result<usize, RecordError> {
        self.seal(ALERT, &[2, desc], out)
    }
}

/// TLS 1.2's additional data: sequence number, type, version, plaintext length.
fn tls12_aad(seq: u64, typ: u8, len: usize) -> [u8; 13] {
    let mut a = [0u8; 13];
    a[..8].copy_from_slice(&seq.to_be_bytes());
    a[8] = typ;
    a[9] = 3;
    a[10] = 3;
    a[11..].copy_from_slice(&(len as u16).to_be_bytes());
    a
}
