/* See shim.h. Each function is exactly the macro it is named after. */
#include "shim.h"

uint32_t imb_shim_header_version(void) { return IMB_VERSION_NUM; }

IMB_JOB *imb_shim_get_next_job(IMB_MGR *mgr) { return IMB_GET_NEXT_JOB(mgr); }
IMB_JOB *imb_shim_submit_job(IMB_MGR *mgr) { return IMB_SUBMIT_JOB(mgr); }
IMB_JOB *imb_shim_submit_job_nocheck(IMB_MGR *mgr) { return IMB_SUBMIT_JOB_NOCHECK(mgr); }
IMB_JOB *imb_shim_flush_job(IMB_MGR *mgr) { return IMB_FLUSH_JOB(mgr); }
IMB_JOB *imb_shim_get_completed_job(IMB_MGR *mgr) { return IMB_GET_COMPLETED_JOB(mgr); }
uint32_t imb_shim_queue_size(IMB_MGR *mgr) { return IMB_QUEUE_SIZE(mgr); }

uint32_t imb_shim_get_next_burst(IMB_MGR *mgr, uint32_t n_jobs, IMB_JOB **jobs)
{
        return IMB_GET_NEXT_BURST(mgr, n_jobs, jobs);
}
uint32_t imb_shim_submit_burst(IMB_MGR *mgr, uint32_t n_jobs, IMB_JOB **jobs)
{
        return IMB_SUBMIT_BURST(mgr, n_jobs, jobs);
}
uint32_t imb_shim_submit_burst_nocheck(IMB_MGR *mgr, uint32_t n_jobs, IMB_JOB **jobs)
{
        return IMB_SUBMIT_BURST_NOCHECK(mgr, n_jobs, jobs);
}
uint32_t imb_shim_flush_burst(IMB_MGR *mgr, uint32_t max_jobs, IMB_JOB **jobs)
{
        return IMB_FLUSH_BURST(mgr, max_jobs, jobs);
}

void imb_shim_aes_keyexp_128(IMB_MGR *mgr, const void *key, void *enc_exp, void *dec_exp)
{
        IMB_AES_KEYEXP_128(mgr, key, enc_exp, dec_exp);
}
void imb_shim_aes_keyexp_192(IMB_MGR *mgr, const void *key, void *enc_exp, void *dec_exp)
{
        IMB_AES_KEYEXP_192(mgr, key, enc_exp, dec_exp);
}
void imb_shim_aes_keyexp_256(IMB_MGR *mgr, const void *key, void *enc_exp, void *dec_exp)
{
        IMB_AES_KEYEXP_256(mgr, key, enc_exp, dec_exp);
}

void imb_shim_sha1_one_block(IMB_MGR *mgr, const void *block, void *state)
{
        IMB_SHA1_ONE_BLOCK(mgr, block, state);
}
void imb_shim_sha256_one_block(IMB_MGR *mgr, const void *block, void *state)
{
        IMB_SHA256_ONE_BLOCK(mgr, block, state);
}
void imb_shim_sha384_one_block(IMB_MGR *mgr, const void *block, void *state)
{
        IMB_SHA384_ONE_BLOCK(mgr, block, state);
}
void imb_shim_sha512_one_block(IMB_MGR *mgr, const void *block, void *state)
{
        IMB_SHA512_ONE_BLOCK(mgr, block, state);
}

void imb_shim_sha1(IMB_MGR *mgr, const void *src, uint64_t len, void *digest)
{
        IMB_SHA1(mgr, src, len, digest);
}
void imb_shim_sha256(IMB_MGR *mgr, const void *src, uint64_t len, void *digest)
{
        IMB_SHA256(mgr, src, len, digest);
}
void imb_shim_sha384(IMB_MGR *mgr, const void *src, uint64_t len, void *digest)
{
        IMB_SHA384(mgr, src, len, digest);
}
void imb_shim_sha512(IMB_MGR *mgr, const void *src, uint64_t len, void *digest)
{
        IMB_SHA512(mgr, src, len, digest);
}

/* The key precompute and the direct API per key size (declared by IMB_SHIM_GCM_DIRECT). */
#define IMB_SHIM_GCM_DIRECT_DEF(bits)                                                            \
        void imb_shim_aes##bits##_gcm_pre(IMB_MGR *mgr, const void *key,                        \
                                          struct gcm_key_data *kd)                               \
        {                                                                                        \
                IMB_AES##bits##_GCM_PRE(mgr, key, kd);                                           \
        }                                                                                        \
        void imb_shim_aes##bits##_gcm_enc(IMB_MGR *mgr, const struct gcm_key_data *kd,           \
                                          struct gcm_context_data *ctx, uint8_t *dst,            \
                                          const uint8_t *src, uint64_t len, const uint8_t *iv,   \
                                          const uint8_t *aad, uint64_t aad_len, uint8_t *tag,    \
                                          uint64_t tag_len)                                      \
        {                                                                                        \
                IMB_AES##bits##_GCM_ENC(mgr, kd, ctx, dst, src, len, iv, aad, aad_len, tag,      \
                                        tag_len);                                                \
        }                                                                                        \
        void imb_shim_aes##bits##_gcm_dec(IMB_MGR *mgr, const struct gcm_key_data *kd,           \
                                          struct gcm_context_data *ctx, uint8_t *dst,            \
                                          const uint8_t *src, uint64_t len, const uint8_t *iv,   \
                                          const uint8_t *aad, uint64_t aad_len, uint8_t *tag,    \
                                          uint64_t tag_len)                                      \
        {                                                                                        \
                IMB_AES##bits##_GCM_DEC(mgr, kd, ctx, dst, src, len, iv, aad, aad_len, tag,      \
                                        tag_len);                                                \
        }
IMB_SHIM_GCM_DIRECT_DEF(128)
IMB_SHIM_GCM_DIRECT_DEF(192)
IMB_SHIM_GCM_DIRECT_DEF(256)

void imb_shim_aes128_gcm_init(IMB_MGR *mgr, const struct gcm_key_data *kd,
                              struct gcm_context_data *ctx, const uint8_t *iv,
                              const uint8_t *aad, uint64_t aad_len)
{
        IMB_AES128_GCM_INIT(mgr, kd, ctx, iv, aad, aad_len);
}
void imb_shim_aes256_gcm_init(IMB_MGR *mgr, const struct gcm_key_data *kd,
                              struct gcm_context_data *ctx, const uint8_t *iv,
                              const uint8_t *aad, uint64_t aad_len)
{
        IMB_AES256_GCM_INIT(mgr, kd, ctx, iv, aad, aad_len);
}
void imb_shim_aes128_gcm_enc_update(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                    struct gcm_context_data *ctx, uint8_t *dst,
                                    const uint8_t *src, uint64_t len)
{
        IMB_AES128_GCM_ENC_UPDATE(mgr, kd, ctx, dst, src, len);
}
void imb_shim_aes256_gcm_enc_update(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                    struct gcm_context_data *ctx, uint8_t *dst,
                                    const uint8_t *src, uint64_t len)
{
        IMB_AES256_GCM_ENC_UPDATE(mgr, kd, ctx, dst, src, len);
}
void imb_shim_aes128_gcm_dec_update(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                    struct gcm_context_data *ctx, uint8_t *dst,
                                    const uint8_t *src, uint64_t len)
{
        IMB_AES128_GCM_DEC_UPDATE(mgr, kd, ctx, dst, src, len);
}
void imb_shim_aes256_gcm_dec_update(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                    struct gcm_context_data *ctx, uint8_t *dst,
                                    const uint8_t *src, uint64_t len)
{
        IMB_AES256_GCM_DEC_UPDATE(mgr, kd, ctx, dst, src, len);
}
void imb_shim_aes128_gcm_enc_finalize(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                      struct gcm_context_data *ctx, uint8_t *tag,
                                      uint64_t tag_len)
{
        IMB_AES128_GCM_ENC_FINALIZE(mgr, kd, ctx, tag, tag_len);
}
void imb_shim_aes256_gcm_enc_finalize(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                      struct gcm_context_data *ctx, uint8_t *tag,
                                      uint64_t tag_len)
{
        IMB_AES256_GCM_ENC_FINALIZE(mgr, kd, ctx, tag, tag_len);
}
void imb_shim_aes128_gcm_dec_finalize(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                      struct gcm_context_data *ctx, uint8_t *tag,
                                      uint64_t tag_len)
{
        IMB_AES128_GCM_DEC_FINALIZE(mgr, kd, ctx, tag, tag_len);
}
void imb_shim_aes256_gcm_dec_finalize(IMB_MGR *mgr, const struct gcm_key_data *kd,
                                      struct gcm_context_data *ctx, uint8_t *tag,
                                      uint64_t tag_len)
{
        IMB_AES256_GCM_DEC_FINALIZE(mgr, kd, ctx, tag, tag_len);
}
