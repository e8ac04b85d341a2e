/* `certloop revoke NAME [--reason R]`: revokes the stored current
 * certificate of NAME at its CA (RFC 8555 §7.6), signed with the CA account
 * that the state directory holds. A one-shot on a private loop; it never
 * registers an account and touches nothing in the store. */
#ifndef CERTLOOP_REACTOR_REVOKE_H
#define CERTLOOP_REACTOR_REVOKE_H

#include <stdbool.h>
#include <stdio.h>

#include "config/config.h"

/* RFC 5280 §5.3.1 reason code for a name a subscriber may use (RFC 8555
 * §7.6: unspecified, keyCompromise, affiliationChanged, superseded,
 * cessationOfOperation), or -1 for any other word. */
int revoke_reason_code(const char *name);

/* Revokes NAME's current certificate with reason (a code from
 * revoke_reason_code, or -1 to send none). Prints one line to out on
 * success, errors (naming the certificate, the CA and its problem
 * document) to err. The revocation is recorded as revoked.json in the
 * generation (status and plan show "revoked"); with reissue the running
 * daemon is asked to order the replacement now, and a daemon started later
 * orders it at once. Returns 0, 1 (the CA refused or could not be reached),
 * 64 (no such certificate, or an import without a CA) or 69 (nothing
 * stored to revoke, or no account for the CA in the state directory). */
int revoke_run(struct config *cfg, const char *name, int reason, bool reissue, FILE *out,
               FILE *err);

#endif
