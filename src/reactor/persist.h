/* `certloop persist-record NAME [--publish]` (dns-persist-01). */
#ifndef CERTLOOP_REACTOR_PERSIST_H
#define CERTLOOP_REACTOR_PERSIST_H

#include <stdbool.h>
#include <stdio.h>

#include "config/config.h"

/* Prints, for every name of certificate NAME (challenge = "dns-persist-01")
 * and every issuer domain name of its CA (the directory's
 * issuerDomainNames), the TXT record _validation-persist.NAME "ISSUER;
 * accounturi=HASHED-URI[; policy=wildcard][; persistUntil=T]"
 * (draft-ietf-acme-dns-persist-02), the hashed URI computed from the
 * directory's accountHashPrefix, NAME and the account (URL and key) read
 * from the state directory. With publish each is put in place once through
 * the certificate's [dns.NAME] solver and waited for on every
 * authoritative server; nothing removes them later. Returns 0, 1 (a
 * publication failed), 64 (no such certificate, or another challenge) or
 * 69 (no account yet, or the directory cannot be read). */
int persist_record_run(struct config *cfg, const char *name, bool publish, FILE *out, FILE *err);

#endif
