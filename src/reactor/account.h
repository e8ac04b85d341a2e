/* `certloop account show|update|rollover|deactivate CA`: the ACME account
 * of a [ca.NAME] as the state directory holds it, at the CA. A one-shot on
 * a private loop; it never registers an account. */
#ifndef CERTLOOP_REACTOR_ACCOUNT_H
#define CERTLOOP_REACTOR_ACCOUNT_H

#include <stdbool.h>
#include <stdio.h>

#include "config/config.h"

/* action: "show" (the account object: status, contacts, orders URL, key
 * thumbprint), "update" (sends [ca.NAME] contact as the account's
 * contacts, RFC 8555 §7.3.2), "rollover" (a new EC P-256 key stored as
 * accounts/CA/account.key.next first, keyChange §7.3.5, then account.key
 * replaced; a .next left by an interrupted run is used again) or
 * "deactivate" (§7.3.6, only with yes; the account files are then moved
 * aside so that the next order registers a new account). Prints the result
 * to out and errors (with the CA's problem document) to err. Returns 0, 1
 * (the CA refused or could not be reached), 64 (unknown action or CA,
 * deactivate without yes) or 69 (no account in the state directory). */
int account_run(struct config *cfg, const char *action, const char *ca_name, bool yes, FILE *out,
                FILE *err);

#endif
