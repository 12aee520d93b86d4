//! Smoke test of the raw bindings: AES-128-GCM Test Case 3 of McGrew & Viega,
//! "The Galois/Counter Mode of Operation (GCM)" (also draft-mcgrew-gcm-test-01),
//! through the direct API and through the job API of the system library.

use core::mem::MaybeUninit;
use core::ptr;
use ipsec_mb_sys as sys;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() & 1 == 0, "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

// Test Case 3: 128-bit key, 96-bit IV, 64-byte plaintext, no AAD.
const KEY: &str = "feffe9928665731c6d6a8f9467308308";
const IV: &str = "cafebabefacedbaddecaf888";
const PT: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                  1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
const CT: &str = "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
                  21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985";
const TAG: &str = "4d5c2af327cd64a62cf35abd2ba6fab4";

struct Mgr(*mut sys::IMB_MGR);

impl Mgr {
    fn new() -> Self {
        // SAFETY: alloc_mb_mgr has no preconditions; it returns NULL or a
        // manager we own until free_mb_mgr.
        let mgr = unsafe { sys::alloc_mb_mgr(0) };
        assert!(!mgr.is_null(), "alloc_mb_mgr failed");
        let mut arch = sys::IMB_ARCH::IMB_ARCH_NONE;
        // SAFETY: `mgr` was just allocated by alloc_mb_mgr; `arch` is a valid
        // out pointer for the duration of the call.
        unsafe { sys::init_mb_mgr_auto(mgr, &mut arch) };
        // SAFETY: `mgr` is a valid, initialised manager.
        let err = unsafe { sys::imb_get_errno(mgr) };
        assert_eq!(err, 0, "init_mb_mgr_auto failed");
        assert_ne!(arch, sys::IMB_ARCH::IMB_ARCH_NONE);
        Mgr(mgr)
    }
}

impl Drop for Mgr {
    fn drop(&mut self) {
        // SAFETY: allocated by alloc_mb_mgr, freed once, no jobs outstanding.
        unsafe { sys::free_mb_mgr(self.0) };
    }
}

fn gcm_key(mgr: &Mgr, key: &[u8]) -> Box<sys::gcm_key_data> {
    assert_eq!(key.len(), 16);
    let mut kd: Box<MaybeUninit<sys::gcm_key_data>> = Box::new(MaybeUninit::uninit());
    // SAFETY: `key` holds 16 bytes; `kd` is a writable, correctly aligned
    // gcm_key_data (Box honours the type's 64-byte alignment) that GCM_PRE
    // fills completely.
    unsafe { sys::imb_shim_aes128_gcm_pre(mgr.0, key.as_ptr().cast(), kd.as_mut_ptr()) };
    // SAFETY: fully initialised by IMB_AES128_GCM_PRE above.
    unsafe { kd.assume_init() }
}

#[test]
fn header_is_1_3() {
    // SAFETY: no preconditions; returns a compile-time constant.
    let v = unsafe { sys::imb_shim_header_version() };
    assert_eq!(v, sys::IMB_VERSION_NUM);
    assert!(v >= 0x1_03_00, "need intel-ipsec-mb >= 1.3, header says {v:#x}");
    // SAFETY: no preconditions.
    let lib = unsafe { sys::imb_get_version() };
    assert!(lib >= 0x1_03_00, "library {lib:#x}");
}

#[test]
fn gcm_test_case_3_direct_api() {
    let mgr = Mgr::new();
    let kd = gcm_key(&mgr, &hex(KEY));
    let iv = hex(IV);
    let pt = hex(PT);
    let mut ct = vec![0u8; pt.len()];
    let mut tag = [0u8; 16];
    let mut ctx = sys::gcm_context_data::default();
    // SAFETY: all pointers are valid for the lengths given; `iv` is 12 bytes;
    // no AAD (NULL with length 0 is accepted by the library).
    unsafe {
        sys::imb_shim_aes128_gcm_enc(
            mgr.0,
            &*kd,
            &mut ctx,
            ct.as_mut_ptr(),
            pt.as_ptr(),
            pt.len() as u64,
            iv.as_ptr(),
            ptr::null(),
            0,
            tag.as_mut_ptr(),
            16,
        )
    };
    assert_eq!(ct, hex(CT));
    assert_eq!(tag.to_vec(), hex(TAG));

    // And back.
    let mut back = vec![0u8; ct.len()];
    let mut tag2 = [0u8; 16];
    // SAFETY: as above, decrypt direction.
    unsafe {
        sys::imb_shim_aes128_gcm_dec(
            mgr.0,
            &*kd,
            &mut ctx,
            back.as_mut_ptr(),
            ct.as_ptr(),
            ct.len() as u64,
            iv.as_ptr(),
            ptr::null(),
            0,
            tag2.as_mut_ptr(),
            16,
        )
    };
    assert_eq!(back, pt);
    assert_eq!(tag2, tag);
}

#[test]
fn gcm_test_case_3_job_api() {
    let mgr = Mgr::new();
    let kd = gcm_key(&mgr, &hex(KEY));
    let iv = hex(IV);
    let mut buf = hex(PT);
    let mut tag = [0u8; 16];
    // SAFETY: the manager is initialised and its queue empty; the job slot is
    // filled completely before submission; every pointer stored in it
    // (key, IV, buffer, tag) outlives the flush loop below, which returns all
    // jobs before those locals go out of scope.
    unsafe {
        let job = sys::imb_shim_get_next_job(mgr.0);
        assert!(!job.is_null());
        ptr::write(job, sys::IMB_JOB::default());
        let j = &mut *job;
        j.cipher_mode = sys::IMB_CIPHER_MODE::IMB_CIPHER_GCM;
        j.cipher_direction = sys::IMB_CIPHER_DIRECTION::IMB_DIR_ENCRYPT;
        j.chain_order = sys::IMB_CHAIN_ORDER::IMB_ORDER_CIPHER_HASH;
        j.hash_alg = sys::IMB_HASH_ALG::IMB_AUTH_AES_GMAC;
        j.key_len_in_bytes = 16;
        j.enc_keys = (&*kd as *const sys::gcm_key_data).cast();
        j.dec_keys = j.enc_keys;
        j.__bindgen_anon_1.src = buf.as_ptr();
        j.__bindgen_anon_2.dst = buf.as_mut_ptr();
        j.__bindgen_anon_3.cipher_start_src_offset_in_bytes = 0;
        j.__bindgen_anon_4.msg_len_to_cipher_in_bytes = buf.len() as u64;
        j.hash_start_src_offset_in_bytes = 0;
        j.__bindgen_anon_5.msg_len_to_hash_in_bytes = buf.len() as u64;
        j.iv = iv.as_ptr();
        j.iv_len_in_bytes = 12;
        j.u.GCM.aad = ptr::null();
        j.u.GCM.aad_len_in_bytes = 0;
        j.auth_tag_output = tag.as_mut_ptr();
        j.auth_tag_output_len_in_bytes = 16;
        let mut done = sys::imb_shim_submit_job(mgr.0);
        if done.is_null() {
            done = sys::imb_shim_flush_job(mgr.0);
        }
        assert!(!done.is_null());
        assert_eq!((*done).status, sys::IMB_STATUS::IMB_STATUS_COMPLETED);
        assert!(sys::imb_shim_flush_job(mgr.0).is_null());
        assert_eq!(sys::imb_shim_queue_size(mgr.0), 0);
    }
    assert_eq!(buf, hex(CT));
    assert_eq!(tag.to_vec(), hex(TAG));
}
