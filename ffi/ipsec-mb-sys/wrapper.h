/* Input to bindgen: the system intel-ipsec-mb header plus our shim.
 *
 * LINUX must be defined exactly as when the library itself was built, or
 * `struct gcm_key_data` loses its 64-byte alignment and our layout would
 * differ from the library's. NO_COMPAT_IMB_API_053 drops the pre-0.53
 * compatibility macros (SHA1, CBC, ...) that would otherwise pollute the
 * bindings. */
#ifndef IPSEC_MB_SYS_WRAPPER_H
#define IPSEC_MB_SYS_WRAPPER_H
#include "shim/shim.h"
#endif
