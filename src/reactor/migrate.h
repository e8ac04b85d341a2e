/* Taking over another ACME client's state: `certloop import-certbot` and
 * `certloop import-lego`.
 * It writes configuration files and, for a CA account certloop does not
 * have yet, the account into the state directory; it orders nothing and
 * touches none of the other client's files. */
#ifndef CERTLOOP_REACTOR_MIGRATE_H
#define CERTLOOP_REACTOR_MIGRATE_H

#include <stdio.h>

/* Reads certbot's state under dir (/etc/letsencrypt: renewal/NAME.conf,
 * the live/ files they name, accounts/) and, for each lineage, writes
 * conf.d/certbot-NAME.toml beside config_path: a [certificate.NAME] with
 * the certificate's names, certbot's key type, challenge (webroot and
 * standalone: http-01; dns-rfc2136: dns-01 with a [dns.certbot-NAME]
 * solver whose TSIG secret goes to certbot-NAME.tsig, 0600), the live
 * files as `import` (the first generation, no order) and as a files deploy
 * action (the same paths stay current), and certbot's deploy hook as a
 * per-certificate exec action. A CA the configuration lacks gets
 * conf.d/certbot-ca-CA.toml; certbot's account for it is stored as
 * certloop's when certloop has none for that CA yet. The result is
 * validated as `check` does; an invalid one is removed again. Progress
 * and notes go to out, problems to err. Returns 0 when every lineage was
 * imported, 1 when any was skipped, EXIT_CONFIG when the configuration
 * does not load (before or after). */
int migrate_certbot(const char *config_path, const char *dir, FILE *out, FILE *err);

/* The same for lego's state under dir (its --path, default ./.lego):
 * every certificates/NAME.json with NAME.crt, NAME.key (and
 * NAME.issuer.crt) becomes conf.d/lego-NAME.toml; lego's files are
 * imported and deployed to the same paths. lego records neither the CA's
 * directory nor the challenge: the CA must be in the configuration already
 * (a [ca.NAME] on the certificate URL's host; Let's Encrypt's is known),
 * the challenge is http-01 (edit the file otherwise). lego's account for
 * that host becomes certloop's as above. Same results as migrate_certbot. */
int migrate_lego(const char *config_path, const char *dir, FILE *out, FILE *err);

#endif
