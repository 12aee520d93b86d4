# shellcheck shell=bash
# Certificates for the signature-authentication cases, made at run time by strongSwan's own
# `pki` tool (Debian's strongswan-pki; no binary fixtures). pki_make DIR writes, in swanctl's
# directory layout, one directory per gateway:
#   DIR/a (gw-a, our iked) and DIR/b (gw-b, the peer), each with
#     x509ca/ca.pem            the root CA: ECDSA P-256, "C=CH, O=test, CN=test root CA"
#     x509ca/ca-p384.pem       (b only) the intermediate CA: ECDSA P-384, issued by the root
#     x509crl/crl.pem          the root's CRL, revoking both sides' `revoked` certificates
#     x509/gw-S-KIND.pem       S = a or b; KIND = rsa2048 rsa3072 p256 p384 revoked
#     rsa/gw-S-KIND.pem, ecdsa/gw-S-KIND.pem   their private keys (PKCS#1, SEC1; PEM)
# The `p384` end entities are issued by the intermediate, the others by the root. Subjects are
# "C=CH, O=test, CN=gw-S-KIND" with subjectAltNames gw-S.example.net (dNSName),
# gw-S@example.net (rfc822Name) and the gateway's outside IPv4 address. Each side trusts the
# root only: gw-a gets the intermediate over the wire (strongSwan sends it with its
# certificate); gw-b holds it among its CAs. revoked is RSA-2048, revoked (keyCompromise).
# The CAs sign with ECDSA: their signatures are short, so that every Main Mode message with a
# certificate (RSA-3072 ones too) fits in one 1,500-byte packet, unfragmented (see
# docs/interop.md on IKE messages larger than the MTU).
# pki_dn SIDE KIND prints a certificate's subject in strongSwan's string form.
# Sourced after tunnel.sh (die).

PKI_KINDS=(rsa2048 rsa3072 p256 p384 revoked)

pki_dn() { echo "C=CH, O=test, CN=gw-$1-$2"; }

# pki_run ARGS... > OUT: pki with the plugins it needs only (the default set tries a TPM
# library that is not installed and says so on every call); its messages kept for errors.
pki_run() {
    STRONGSWAN_CONF=$PKI_DIR/pki.conf pki "$@" 2>>"$PKI_DIR/pki.log" || {
        tail -5 "$PKI_DIR/pki.log" >&2
        die "pki $1 failed"
    }
}
# pki_key KIND FILE: a private key of that kind, PEM.
pki_key() {
    case $1 in
    rsa2048 | revoked) pki_run --gen --type rsa --size 2048 --outform pem >"$2" ;;
    rsa3072) pki_run --gen --type rsa --size 3072 --outform pem >"$2" ;;
    p256) pki_run --gen --type ecdsa --size 256 --outform pem >"$2" ;;
    p384) pki_run --gen --type ecdsa --size 384 --outform pem >"$2" ;;
    *) die "no key kind $1" ;;
    esac
}
pki_key_dir() { case $1 in p256 | p384) echo ecdsa ;; *) echo rsa ;; esac; }

pki_make() {
    PKI_DIR=$1
    command -v pki >/dev/null || die "pki missing (scripts/setup.sh installs strongswan-pki)"
    local s kind d ca digest key
    local -A addr=([a]=198.18.0.1 [b]=198.18.0.2)
    for s in a b; do
        for d in x509 x509ca x509crl rsa ecdsa private; do mkdir -p "$PKI_DIR/$s/$d"; done
    done
    mkdir -p "$PKI_DIR/ca"
    printf 'pki {\n    load = random nonce openssl pem pkcs1 pkcs8 x509 gmp sha2\n}\n' >"$PKI_DIR/pki.conf"
    # The root (ECDSA P-256, SHA-256) and an intermediate (ECDSA P-384, SHA-384) under it.
    pki_key p256 "$PKI_DIR/ca/ca.key"
    pki_run --self --ca --lifetime 30 --in "$PKI_DIR/ca/ca.key" --type ecdsa --digest sha256 \
        --dn "C=CH, O=test, CN=test root CA" --outform pem >"$PKI_DIR/ca/ca.pem"
    pki_key p384 "$PKI_DIR/ca/ca-p384.key"
    pki_run --pub --in "$PKI_DIR/ca/ca-p384.key" --type ecdsa \
        | pki_run --issue --ca --pathlen 0 --lifetime 30 --cacert "$PKI_DIR/ca/ca.pem" \
            --cakey "$PKI_DIR/ca/ca.key" --digest sha256 --dn "C=CH, O=test, CN=test intermediate CA" \
            --outform pem >"$PKI_DIR/ca/ca-p384.pem"
    for s in a b; do
        for kind in "${PKI_KINDS[@]}"; do
            ca=ca digest=sha256
            if [ "$kind" = p384 ]; then ca="ca-p384" digest=sha384; fi
            key="$PKI_DIR/$s/$(pki_key_dir "$kind")/gw-$s-$kind.pem"
            pki_key "$kind" "$key"
            pki_run --pub --in "$key" \
                | pki_run --issue --lifetime 30 --cacert "$PKI_DIR/ca/$ca.pem" --cakey "$PKI_DIR/ca/$ca.key" \
                    --digest "$digest" --dn "$(pki_dn "$s" "$kind")" --san "gw-$s.example.net" \
                    --san "gw-$s@example.net" --san "${addr[$s]}" --outform pem >"$PKI_DIR/$s/x509/gw-$s-$kind.pem"
        done
        cp "$PKI_DIR/ca/ca.pem" "$PKI_DIR/$s/x509ca/ca.pem"
    done
    cp "$PKI_DIR/ca/ca-p384.pem" "$PKI_DIR/b/x509ca/ca-p384.pem"
    pki_run --signcrl --lifetime 15 --cacert "$PKI_DIR/ca/ca.pem" --cakey "$PKI_DIR/ca/ca.key" --digest sha256 \
        --reason key-compromise --cert "$PKI_DIR/a/x509/gw-a-revoked.pem" \
        --reason key-compromise --cert "$PKI_DIR/b/x509/gw-b-revoked.pem" --outform pem >"$PKI_DIR/ca/crl.pem"
    for s in a b; do cp "$PKI_DIR/ca/crl.pem" "$PKI_DIR/$s/x509crl/crl.pem"; done
}
