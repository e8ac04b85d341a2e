/* The texts of the command line: the overview, one help text per command,
 * and --version with the run-time versions of the libraries in use. It
 * does not parse anything (main.c does); keep the options listed here in
 * step with main.c's getopt tables and with docs/man/certloop.8.scd. */
#include <string.h>

#include <ares.h>
#include <curl/curl.h>
#include <jansson.h>
#include <ldns/ldns.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <uv.h>

#include "config/config.h"
#include "reactor/cli.h"
#include "reactor/control.h"

#define CONFIG_LINES                                                                               \
    "  -c, --config FILE  the configuration (else $CERTLOOP_CONFIG, else\n"                        \
    "                     " CONFIG_DEFAULT_PATH ")\n"

#define CLIENT_LINES                                                                               \
    "  --socket PATH      the daemon's control socket (else [daemon] control_socket of\n"          \
    "                     the configuration, else " CONTROL_DEFAULT_PATH ")\n" CONFIG_LINES

#define HELP_LINE "  -h, --help         this text\n"

static const char overview[] =
    "usage: certloop COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  run [-c FILE] [--once]          run the daemon in the foreground; --once: issue/renew\n"
    "                                  everything due, then exit (0 all ok, 1 any failed)\n"
    "  check [-c FILE]                 validate the configuration (0 ok, 78 invalid)\n"
    "  plan [-c FILE] [NAME...]        preview each certificate and when it renews next\n"
    "  status [NAME|--fleet] [--json]  ask the running daemon for every certificate's state\n"
    "                                  (NAME: one certificate and its history; --fleet:\n"
    "                                  every instance sharing its PostgreSQL store)\n"
    "  renew NAME...|--all [--force] [--deploy-only]\n"
    "                                  ask the daemon to renew now (--deploy-only: deploy the\n"
    "                                  stored certificate again without a new order)\n"
    "  reload                          reload the daemon's configuration (as SIGHUP; 78 when\n"
    "                                  the new configuration is invalid)\n"
    "  test NAME [-c FILE]             pre-flight checks for one certificate (0 all pass,\n"
    "                                  1 any failed)\n"
    "  revoke NAME [--reason R] [--reissue]\n"
    "                                  revoke the current certificate (--reissue: order\n"
    "                                  its replacement at once)\n"
    "  persist-record NAME [--publish] the dns-persist-01 TXT records of NAME (--publish:\n"
    "                                  put them in place once with its dns solver)\n"
    "  account ACTION CA [--yes]       the CA account: show, update (push the configured\n"
    "                                  contacts), rollover (new key), deactivate (--yes)\n"
    "  import-certbot [DIR] [-c FILE]  take over certbot's certificates and account (DIR:\n"
    "                                  /etc/letsencrypt); writes conf.d/certbot-*.toml\n"
    "  import-lego [DIR] [-c FILE]     the same for lego's --path (DIR: .lego)\n"
    "  api-token create NAME --scopes read[,pull][,manage] | api-token revoke NAME\n"
    "                                  tokens of the HTTPS API ([api] tokens_file)\n"
    "  store rotate-key --new-key-file FILE [--old-key-file FILE] [-c FILE]\n"
    "                                  seal every private key in the PostgreSQL store again\n"
    "                                  with a new encryption key\n"
    "  help [COMMAND], --help          this text, or one command's (also: COMMAND --help)\n"
    "  --version                       the version and the libraries in use\n"
    "\n"
    "The configuration is -c FILE, else $CERTLOOP_CONFIG, else " CONFIG_DEFAULT_PATH ".\n"
    "status, renew and reload talk to the daemon on [daemon] control_socket of that\n"
    "file, or on --socket PATH (else " CONTROL_DEFAULT_PATH ").\n"
    "Exit codes: 0 ok, 1 failure, 64 usage, 69 unavailable, 75 temporary failure,\n"
    "78 configuration. man certloop(8) and certloop.toml(5) say more.\n";

static const struct {
    const char *name;
    const char *text;
} helps[] = {
    {"run", "usage: certloop run [-c FILE] [--once]\n"
            "\n"
            "Runs the daemon in the foreground: obtains and renews every certificate of the\n"
            "configuration on time, serves http-01 and the control socket, reloads on SIGHUP\n"
            "and stops on SIGTERM or SIGINT. Under systemd (Type=notify) it reports READY=1\n"
            "and logs with <N> priority prefixes.\n"
            "\n"
            "options:\n" CONFIG_LINES
            "  --once             issue or renew everything that is due, concurrently, then\n"
            "                     exit (no control socket)\n" HELP_LINE "\n"
            "exit: 0 clean stop (--once: every certificate ok), 1 (--once) any failed,\n"
            "      73 the state directory cannot be created, 75 another daemon holds the\n"
            "      state directory or a listener cannot start, 78 invalid configuration\n"
            "      or an http-01 address another program holds\n"},
    {"check", "usage: certloop check [-c FILE]\n"
              "\n"
              "Parses and validates the configuration (the main file and its conf.d/ files)\n"
              "and touches nothing. Each error is one line: FILE:LINE:COL: error: KEY: MESSAGE.\n"
              "\n"
              "options:\n" CONFIG_LINES HELP_LINE "\n"
              "exit: 0 valid, 78 invalid\n"},
    {"plan", "usage: certloop plan [-c FILE] [NAME...]\n"
             "\n"
             "Previews every certificate (or the NAMEs given) from the configuration and the\n"
             "state directory: names, CA, key, challenge, deploy actions, the current\n"
             "certificate's expiry, and when and why it renews next. Talks to nobody.\n"
             "\n"
             "options:\n" CONFIG_LINES HELP_LINE "\n"
             "exit: 0, 64 an unknown NAME, 78 invalid configuration\n"},
    {"status",
     "usage: certloop status [NAME | --fleet] [--json] [--socket PATH] [-c FILE]\n"
     "\n"
     "Asks the running daemon for every certificate's state: current expiry, the\n"
     "order in flight, the last error, the next renewal and why. With NAME, that\n"
     "certificate alone, with its history (orders, issuance, deployments, failures\n"
     "with the CA's problem; kept in state_dir/history across restarts).\n"
     "With --fleet (a PostgreSQL store), every instance sharing the database: its\n"
     "version, configuration digest, last heartbeat, how many certificates it\n"
     "deployed, and SILENT (no heartbeat for 20 s), LAGGING (it deployed an older\n"
     "generation than the current one of these) or FAILED (its last deployment of\n"
     "these failed).\n"
     "\n"
     "options:\n"
     "  --fleet            every instance of the fleet instead of the certificates\n"
     "  --json             the daemon's JSON document instead of the table\n" CLIENT_LINES HELP_LINE
     "\n"
     "exit: 0, 1 the daemon answered an error, 64 an unknown NAME, 69 the daemon is\n"
     "      unreachable\n"},
    {"renew",
     "usage: certloop renew NAME...|--all [--force [--new-key]] [--deploy-only]\n"
     "                     [--socket PATH] [-c FILE]\n"
     "       certloop renew NAME...|--all --dry-run [-c FILE]\n"
     "\n"
     "Asks the running daemon to renew the named certificates (or all of them): a\n"
     "certificate that is due is ordered now; one that is not is left alone and the\n"
     "answer says when it renews, unless --force. An imported certificate's files\n"
     "are read again. The work runs in the daemon; `certloop status` shows it.\n"
     "With --dry-run a full order (validation included) runs against each CA's\n"
     "staging directory ([ca.NAME] staging; Let's Encrypt's is known), with the\n"
     "configuration file as it is now: nothing is stored or deployed, no events\n"
     "are sent; the summary and the exit status say how it went. With the daemon\n"
     "running it runs inside the daemon, whose listeners answer the CA; without\n"
     "one, it runs here as `run --once` does (its own listener, or the webroot).\n"
     "\n"
     "options:\n"
     "  --all              every certificate the daemon manages (--dry-run: every one\n"
     "                     of the configuration with a CA)\n"
     "  --force            a new order now, even when not due or over the CA's\n"
     "                     max_new_orders window\n"
     "  --new-key          with --force: a new private key even with reuse_key\n"
     "  --deploy-only      deploy the stored certificate again, without a new order\n"
     "  --dry-run          order from the staging CA, keep and deploy nothing\n" CLIENT_LINES
         HELP_LINE "\n"
     "exit: 0 every request accepted (--dry-run: every order succeeded), 1 any\n"
     "      refused or failed, 64 an unknown NAME (--dry-run), 69 the daemon is\n"
     "      unreachable, 75 the daemon is stopping or another dry run is running\n"
     "      (--dry-run), 78 a CA without a staging directory (--dry-run)\n"},
    {"reload", "usage: certloop reload [--socket PATH] [-c FILE]\n"
               "\n"
               "Asks the running daemon to read its configuration again, as SIGHUP does, and\n"
               "waits for the answer. An invalid configuration is reported line by line and\n"
               "the daemon keeps the one it has.\n"
               "\n"
               "options:\n" CLIENT_LINES HELP_LINE "\n"
               "exit: 0 reloaded, 1 the daemon answered an error, 69 the daemon is\n"
               "      unreachable, 78 the new configuration is invalid\n"},
    {"test", "usage: certloop test NAME [-c FILE]\n"
             "\n"
             "Pre-flight checks for one certificate, without asking the CA for anything:\n"
             "DNS resolution of its names, CAA records, http-01 reachability of a probe\n"
             "token, a dns-01 solver round trip. Prints PASS or FAIL with the reason per\n"
             "check.\n"
             "\n"
             "options:\n" CONFIG_LINES HELP_LINE "\n"
             "exit: 0 every check passed, 1 any failed, 64 an unknown NAME,\n"
             "      78 invalid configuration\n"},
    {"revoke", "usage: certloop revoke NAME [--reason R] [--reissue] [-c FILE]\n"
               "\n"
               "Revokes the current certificate of NAME at its CA (RFC 8555 section 7.6),\n"
               "signed with the account key, and records it beside the generation: status\n"
               "and plan show it as revoked. The certificate stays deployed until a new one\n"
               "replaces it: --reissue asks the running daemon to order it now (a daemon\n"
               "started later orders it at once), else `certloop renew NAME --force`.\n"
               "After keyCompromise the replacement never reuses the key (reuse_key).\n"
               "\n"
               "options:\n"
               "  --reason R         unspecified, keyCompromise, affiliationChanged,\n"
               "                     superseded or cessationOfOperation (RFC 5280 reason\n"
               "                     codes; default: none sent)\n"
               "  --reissue          order the replacement at once\n" CONFIG_LINES HELP_LINE "\n"
               "exit: 0 revoked, 1 the CA refused, 64 usage or an unknown or imported NAME,\n"
               "      69 no stored certificate or no account for it, 78 invalid configuration\n"},
    {"persist-record",
     "usage: certloop persist-record NAME [--publish] [-c FILE]\n"
     "\n"
     "Prints the persistent TXT records a certificate with challenge =\n"
     "\"dns-persist-01\" needs (draft-ietf-acme-dns-persist-01): for each name and\n"
     "each issuer domain name of the CA (its directory's caaIdentities),\n"
     "_validation-persist.NAME \"ISSUER; accounturi=URL\" (\"; policy=wildcard\" for a\n"
     "wildcard), URL being the CA account in the state directory (the first order\n"
     "registers it). --publish puts them in place once through the certificate's\n"
     "[dns.NAME] solver and waits until every authoritative server serves them;\n"
     "they are never removed.\n"
     "\n"
     "options:\n"
     "  --publish          put the records in place with the dns solver\n" CONFIG_LINES HELP_LINE
     "\n"
     "exit: 0 done, 1 a publication failed, 64 usage, an unknown NAME or another\n"
     "      challenge, 69 no account yet or the directory unreadable, 78 invalid\n"
     "      configuration\n"},
    {"account", "usage: certloop account show|update|rollover|deactivate CA [--yes] [-c FILE]\n"
                "\n"
                "The ACME account of [ca.CA] that the state directory holds, at the CA (RFC 8555\n"
                "section 7.3). show: its status, contacts, orders URL and key thumbprint. update:\n"
                "sends the configured contact list. rollover: a new account key, stored as\n"
                "accounts/CA/account.key.next before the CA is asked (keyChange) and made\n"
                "account.key once it agreed; a .next key left by an interrupted rollover is used\n"
                "again. deactivate: permanent, only with --yes; the account files are kept aside\n"
                "and the next order registers a new account. No account is ever registered here.\n"
                "\n"
                "options:\n"
                "  --yes              confirm deactivate\n" CONFIG_LINES HELP_LINE "\n"
                "exit: 0 done, 1 the CA refused, 64 usage, an unknown CA or deactivate without\n"
                "      --yes, 69 no account in the state directory, 78 invalid configuration\n"},
    {"import-certbot",
     "usage: certloop import-certbot [DIR] [-c FILE]\n"
     "\n"
     "Takes over certbot's lineages from DIR (default /etc/letsencrypt), without a new\n"
     "order: for each renewal/NAME.conf it writes conf.d/certbot-NAME.toml beside the\n"
     "configuration, with the certificate's names, certbot's key type, the challenge\n"
     "(webroot and standalone: http-01; dns-rfc2136: dns-01 with a [dns.certbot-NAME]\n"
     "solver, its TSIG secret in certbot-NAME.tsig; manual with dns-01 hooks: an exec\n"
     "solver calling them as certbot did), the live files imported as the\n"
     "first generation and deployed to the same paths at every renewal, and the\n"
     "deploy hook as a per-certificate exec action. A CA the configuration lacks gets\n"
     "conf.d/certbot-ca-CA.toml, and certbot's account is stored as certloop's when\n"
     "certloop has none for that CA. Existing files are never overwritten; a result\n"
     "that does not pass `check` is removed again. certbot's files stay untouched:\n"
     "disable certbot's timer once certloop runs.\n"
     "\n"
     "options:\n" CONFIG_LINES HELP_LINE "\n"
     "exit: 0 every lineage imported, 1 any skipped (each says why), 78 invalid\n"
     "      configuration\n"},
    {"api-token",
     "usage: certloop api-token create NAME --scopes SCOPES [-c FILE]\n"
     "       certloop api-token revoke NAME [-c FILE]\n"
     "\n"
     "Tokens of the HTTPS API ([api] listen, docs/API.md), kept in [api] tokens_file as\n"
     "one line each: NAME, its scopes and the SHA-256 of its secret (never the secret).\n"
     "create makes a random secret, prints it once on stdout and appends the hashed line\n"
     "(a new file is 0600; an existing one keeps its owner, group and mode, at most\n"
     "0640; written atomically). revoke removes NAME's line. The daemon reads the file\n"
     "again when it changes: both take effect at the next request, without a reload.\n"
     "Clients send the secret as Authorization: Bearer SECRET.\n"
     "\n"
     "options:\n"
     "  --scopes SCOPES    comma-separated: read (status, certificates without keys),\n"
     "                     pull (certificates and their private keys), manage "
     "(renew)\n" CONFIG_LINES HELP_LINE "\n"
     "exit: 0 done, 1 NAME exists (create) or is unknown (revoke), 64 usage, 78 invalid\n"
     "      configuration or no [api] tokens_file\n"},
    {"store",
     "usage: certloop store rotate-key --new-key-file FILE [--old-key-file FILE] [-c FILE]\n"
     "\n"
     "For [store] type = \"postgresql\": opens every private key in the database (the\n"
     "certificates' generations, the CA accounts and their rollovers' next keys) with\n"
     "the old encryption key and seals it again (AES-256-GCM) with the key in the new\n"
     "file, in one transaction: all or nothing. Keys already sealed with the new key are\n"
     "skipped, so running it again is safe; a key that opens with neither stops it with\n"
     "nothing written. Then make the new file [store] encryption_key_file on every\n"
     "instance and restart them. A generation stored meanwhile by an instance still on\n"
     "the old key is resealed by running it once more with --old-key-file. Prints the\n"
     "number of keys resealed. A key file holds 64 hex digits or the base64 of 32 bytes\n"
     "(openssl rand -hex 32).\n"
     "\n"
     "options:\n"
     "  --new-key-file FILE  the new key\n"
     "  --old-key-file FILE  the key the database's keys are sealed with now (else\n"
     "                       [store] encryption_key_file)\n" CONFIG_LINES HELP_LINE "\n"
     "exit: 0 done, 1 a key opens with neither key or the database refused (nothing\n"
     "      written), 64 usage, 69 no answer from the database, 78 invalid configuration,\n"
     "      a store that is not postgresql, or a key file that holds no key\n"},
    {"import-lego",
     "usage: certloop import-lego [DIR] [-c FILE]\n"
     "\n"
     "Takes over lego's certificates from DIR (lego's --path, default .lego), without\n"
     "a new order: each certificates/NAME.json with NAME.crt and NAME.key becomes\n"
     "conf.d/lego-NAME.toml beside the configuration, with the certificate's names\n"
     "and key type, lego's files imported as the first generation and deployed to\n"
     "the same paths at every renewal. lego records neither its CA's directory nor\n"
     "the challenge: the configuration needs a [ca.NAME] on the host of the\n"
     "certificate's URL (Let's Encrypt's is known), and the challenge is http-01\n"
     "(edit the file for webroot or dns-01). lego's account for that CA becomes\n"
     "certloop's when certloop has none. Existing files are never overwritten; a\n"
     "result that does not pass `check` is removed again.\n"
     "\n"
     "options:\n" CONFIG_LINES HELP_LINE "\n"
     "exit: 0 every certificate imported, 1 any skipped (each says why), 78 invalid\n"
     "      configuration\n"},
};

const char *cli_help_overview(void)
{
    return overview;
}

const char *cli_help_command(const char *cmd)
{
    for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++)
        if (strcmp(helps[i].name, cmd) == 0)
            return helps[i].text;
    return NULL;
}

void cli_version_print(FILE *out)
{
    const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);

    fprintf(out, "certloop %s\n", CERTLOOP_VERSION);
    /* "OpenSSL 3.0.x DATE": the name is part of the string */
    fprintf(out, "%s\n", OpenSSL_version(OPENSSL_VERSION));
    fprintf(out, "libcurl %s (%s%s%s)\n", curl->version,
            curl->ssl_version != NULL ? curl->ssl_version : "no TLS",
            curl->nghttp2_version != NULL ? ", nghttp2/" : "",
            curl->nghttp2_version != NULL ? curl->nghttp2_version : "");
    fprintf(out, "libuv %s\n", uv_version_string());
    fprintf(out, "c-ares %s\n", ares_version(NULL));
    fprintf(out, "ldns %s\n", ldns_version());
    fprintf(out, "jansson %s\n", jansson_version_str());
    int pq = PQlibVersion(); /* 150005: 15.5 (major * 10000 + minor since PostgreSQL 10) */
    fprintf(out, "libpq %d.%d\n", pq / 10000, pq % 10000);
}
