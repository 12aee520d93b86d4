/* ipsec-mb-sys shim: the macro API of intel-ipsec-mb 1.3 as real functions.
 *
 * In intel-ipsec-mb almost every operation is a macro that calls through a
 * function pointer in IMB_MGR (e.g. IMB_SUBMIT_JOB(m) is m->submit_job(m)).
 * Macros cannot be bound by bindgen, so each one used by the Rust layer gets
 * a one-line wrapper here. Nothing else: no logic lives in this file. */
#ifndef IPSEC_MB_SYS_SHIM_H
#define IPSEC_MB_SYS_SHIM_H

#ifndef LINUX
#define LINUX 1
#endif
#ifndef NO_COMPAT_IMB_API_053
#define NO_COMPAT_IMB_API_053 1
#endif

#include <stddef.h>
#include <stdint.h>
#include <intel-ipsec-mb.h>

/* Header version this shim was compiled against (IMB_VERSION_NUM). */
uint32_t imb_shim_header_version(void);

/* Job API. */
IMB_JOB *imb_shim_get_next_job(IMB_MGR *mgr);
IMB_JOB *imb_shim_submit_job(IMB_MGR *mgr);
IMB_JOB *imb_shim_submit_job_nocheck(IMB_MGR *mgr);
IMB_JOB *imb_shim_flush_job(IMB_MGR *mgr);
IMB_JOB *imb_shim_get_completed_job(IMB_MGR *mgr);
uint32_t imb_shim_queue_size(IMB_MGR *mgr);

/* Burst API (new in 1.3). */
uint32_t imb_shim_get_next_burst(IMB_MGR *mgr, uint32_t n_jobs, IMB_JOB **jobs);
uint32_t imb_shim_submit_burst(IMB_MGR *mgr, uint32_t n_jobs, IMB_JOB **jobs);
uint32_t imb_shim_submit_burst_nocheck(IMB_MGR *mgr, uint32_t n_jobs, IMB_JOB **jobs);
uint32_t imb_shim_flush_burst(IMB_MGR *mgr, uint32_t max_jobs, IMB_JOB **jobs);

/* AES key expansion (enc + dec schedules, 16-byte aligned, 15 x 16 bytes). */
void imb_shim_aes_keyexp_128(IMB_MGR *mgr, const void *key, void *enc_exp, void *dec_exp);
void imb_shim_aes_keyexp_192(IMB_MGR *mgr, const void *key, void *enc_exp, void *dec_exp);
void imb_shim_aes_keyexp_256(IMB_MGR *mgr, const void *key, void *enc_exp, void *dec_exp);

/* One compression-function call over one block, used for the HMAC
 * ipad/opad precomputes (the job API takes the two resulting states). */
void imb_shim_sha1_one_block(IMB_MGR *mgr, const void *block, void *state);
void imb_shim_sha256_one_block(IMB_MGR *mgr, const void *block, void *state);
void imb_shim_sha384_one_block(IMB_MGR *mgr, const void *block, void *state);
void imb_shim_sha512_one_block(IMB_MGR *mgr, const void *block, void *state);

/* Whole-message hashes (HMAC keys longer than the block size, RFC 2104 §2). */
void imb_shim_sha1(IMB_MGR *mgr, const void *src, uint64_t len, void *digest);
void imb_shim_sha256(IMB_MGR *mgr, const void *src, uint64_t len, void *digest);
void imb_shim_sha384(IMB_MGR *mgr, const void *src, uint64_t len, void *digest);
void imb_shim_sha512(IMB_MGR *mgr, const void *src, uint64_t len, void *digest);

/* AES-GCM per key size: the key precompute (key expansion + GHASH key powers) and the direct
 * (single buffer, synchronous) API, declared once for 128, 192 and 256 bits. */
#define IMB_SHIM_GCM_DIRECT(bits)                                                              \
        void imb_shim_aes##bits##_gcm_pre(IMB_MGR *mgr, const void *key,                      \
                                          struct gcm_key_data *kd);                            \
        void imb_shim_aes##bits##_gcm_enc(IMB_MGR *mgr, const struct gcm_key_data *kd,         \
                                          struct gcm_context_data *ctx, uint8_t *dst,          \
                                          const uint8_t *src, uint64_t len, const uint8_t *iv, \
                                          const uint8_t *aad, uint64_t aad_len, uint8_t *tag,  \
                                          uint64_t tag_len);                                   \
        void imb_shim_aes##bits##_gcm_dec(IMB_MGR *mgr, const struct gcm_key_data *kd,         \
                                          struct gcm_context_data *ctx, uint8_t *dst,          \
                                          const uint8_t *src, uint64_t len, const uint8_t *iv, \
                                          const uint8_t *aad, uint64_t aad_len, uint8_t *tag,  \
                                          uint64_t tag_len);
IMB_SHIM_GCM_DIRECT(128)
IMB_SHIM_GCM_DIRECT(192)
IMB_SHIM_GCM_DIRECT(256)

/* AES-GCM streaming (init / update / finalize) API. */
void imb_shim_aes128_gcm_init(IMB_MGR *mgr, const struct gcm_key_data *kd,
                              struct gcm_context_data *ctx, const uint8_t *iv,
                              const uint8_t *aad, uint64_t aad_len);
void imb_shim_aes256_gcm_init(IMB_MGR *mgr, const struct gcm_key_data *kd,
                              struct gcm_context_data *ctx, const uint8_t *iv,
                              const uint8_t *aad, uint64_t aad_len);
void imb_shim_aes128_gcm_enc_update(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                    struct gcm_context_data *ctx, uint8_t *dst,
                                    const uint8_t *src, uint64_t len);
void imb_shim_aes256_gcm_enc_update(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                    struct gcm_context_data *ctx, uint8_t *dst,
                                    const uint8_t *src, uint64_t len);
void imb_shim_aes128_gcm_dec_update(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                    struct gcm_context_data *ctx, uint8_t *dst,
                                    const uint8_t *src, uint64_t len);
void imb_shim_aes256_gcm_dec_update(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                    struct gcm_context_data *ctx, uint8_t *dst,
                                    const uint8_t *src, uint64_t len);
void imb_shim_aes128_gcm_enc_finalize(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                      struct gcm_context_data *ctx, uint8_t *tag,
                                      uint64_t tag_len);
void imb_shim_aes256_gcm_enc_finalize(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                      struct gcm_context_data *ctx, uint8_t *tag,
                                      uint64_t tag_len);
void imb_shim_aes128_gcm_dec_finalize(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                      struct gcm_context_data *ctx, uint8_t *tag,
                                      uint64_t tag_len);
void imb_shim_aes256_gcm_dec_finalize(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                      struct gcm_context_data *ctx, uint8_t *tag,
                                      uint64_t tag_len);

#endif /* IPSEC_MB_SYS_SHIM_H */
