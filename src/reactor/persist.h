/* `certloop persist-record NAME [--publish]` (dns-persist-01). */
#ifndef CERTLOOP_REACTOR_PERSIST_H
#define CERTLOOP_REACTOR_PERSIST_H

#include <stdbool.h>
#include <stdio.h>

#include "config/config.h"

/* Prints, for every name of certificate NAME (challenge = "dns-persist-01")
 * and every issuer domain name of its CA (the directory's caaIdentities),
 * the TXT record _validation-persist.NAME "ISSUER; accounturi=URL[;
 * policy=wildcard]" (draft-ietf-acme-dns-persist-01), the account URL read
 * from the state directory. With publish each is put in place once through
 * the certificate's [dns.NAME] solver and waited for on every
 * authoritative server; nothing removes them later. Returns 0, 1 (a
 * publication failed), 64 (no such certificate, or another challenge) or
 * 69 (no account yet, or the directory cannot be read). */
int persist_record_run(struct config *cfg, const char *name, bool publish, FILE *out, FILE *err);

#endif
