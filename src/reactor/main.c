/* The certloop binary: the command line (DESIGN "Command line") parsed with
 * getopt_long per subcommand, dispatching to the daemon (run), the offline
 * views (check, plan) or the control-socket client (status, renew,
 * reload). Exit codes follow sysexits.h. This file only parses, dispatches
 * and prints the daemon's answers. */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "api/api.h"
#include "config/config.h"
#include "reactor/cli.h"
#include "reactor/control.h"
#include "reactor/daemon.h"
#include "reactor/dryrun.h"
#include "reactor/migrate.h"
#include "reactor/plan.h"
#include "reactor/preflight.h"
#include "reactor/account.h"
#include "reactor/persist.h"
#include "reactor/revoke.h"
#include "store/store_pg.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* One line saying what is wrong, one hint (the command's --help when
 * there is a command); returns 64. */
static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "certloop: ");
    if (cmd != NULL)
        fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cmd != NULL)
        fprintf(stderr, "\nTry 'certloop %s --help'.\n", cmd);
    else
        fprintf(stderr, "\nTry 'certloop --help'.\n");
    return EXIT_USAGE;
}

static const char *config_path(const char *opt)
{
    const char *env = getenv("CERTLOOP_CONFIG");

    if (opt != NULL)
        return opt;
    if (env != NULL && env[0] != '\0')
        return env;
    return CONFIG_DEFAULT_PATH;
}

struct cli {
    const char *cmd;
    const char *config; /* -c */
    bool once, json, all, force, deploy_only, yes, dry_run, reissue, new_key, publish, fleet;
    const char *reason;
    const char *scopes;                      /* --scopes */
    const char *socket;                      /* --socket */
    const char *new_key_file, *old_key_file; /* store rotate-key */
    char **args;                             /* positional arguments (borrowed from argv) */
    int nargs;
};

enum {
    OPT_ONCE = 256,
    OPT_JSON,
    OPT_ALL,
    OPT_FORCE,
    OPT_REASON,
    OPT_DEPLOY_ONLY,
    OPT_SOCKET,
    OPT_YES,
    OPT_DRY_RUN,
    OPT_REISSUE,
    OPT_NEW_KEY,
    OPT_SCOPES,
    OPT_PUBLISH,
    OPT_NEW_KEY_FILE,
    OPT_OLD_KEY_FILE,
    OPT_FLEET
};

/* Parses argv (argv[0] is the subcommand) with the options that cmd
 * accepts. 0 or EXIT_USAGE (already reported). */
static int parse(struct cli *c, int argc, char **argv, const char *shortopts,
                 const struct option *longopts)
{
    int ch;

    optind = 0; /* glibc: full re-initialisation for the next argv */
    opterr = 0;
    while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            c->config = optarg;
            break;
        case OPT_ONCE:
            c->once = true;
            break;
        case OPT_JSON:
            c->json = true;
            break;
        case OPT_ALL:
            c->all = true;
            break;
        case OPT_FORCE:
            c->force = true;
            break;
        case OPT_REASON:
            c->reason = optarg;
            break;
        case OPT_DEPLOY_ONLY:
            c->deploy_only = true;
            break;
        case OPT_DRY_RUN:
            c->dry_run = true;
            break;
        case OPT_SOCKET:
            c->socket = optarg;
            break;
        case OPT_YES:
            c->yes = true;
            break;
        case OPT_REISSUE:
            c->reissue = true;
            break;
        case OPT_NEW_KEY:
            c->new_key = true;
            break;
        case OPT_SCOPES:
            c->scopes = optarg;
            break;
        case OPT_PUBLISH:
            c->publish = true;
            break;
        case OPT_FLEET:
            c->fleet = true;
            break;
        case OPT_NEW_KEY_FILE:
            c->new_key_file = optarg;
            break;
        case OPT_OLD_KEY_FILE:
            c->old_key_file = optarg;
            break;
        case ':':
            return usage_error(c->cmd, "option '%s' needs an argument", argv[optind - 1]);
        default:
            if (optopt != 0) {
                char opt[3] = {'-', (char)optopt, '\0'};
                return usage_error(c->cmd, "unknown option '%s'", opt);
            }
            return usage_error(c->cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    c->args = argv + optind;
    c->nargs = argc - optind;
    return 0;
}

static const struct option opts_config[] = {
    {"config", required_argument, NULL, 'c'},
    {NULL, 0, NULL, 0},
};

static int cmd_run(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"config", required_argument, NULL, 'c'},
        {"once", no_argument, NULL, OPT_ONCE},
        {NULL, 0, NULL, 0},
    };
    int rc = parse(c, argc, argv, "+:c:", lo);

    if (rc != 0)
        return rc;
    if (c->nargs > 0)
        return usage_error(c->cmd, "unexpected argument '%s'", c->args[0]);
    struct daemon_opts o = {.config_path = config_path(c->config), .once = c->once};
    return daemon_run(&o);
}

static int cmd_check(struct cli *c, int argc, char **argv)
{
    int rc = parse(c, argc, argv, "+:c:", opts_config);

    if (rc != 0)
        return rc;
    if (c->nargs > 0)
        return usage_error(c->cmd, "unexpected argument '%s'", c->args[0]);
    return plan_check(config_path(c->config), stdout, stderr);
}

static int cmd_plan(struct cli *c, int argc, char **argv)
{
    struct config *cfg = NULL;
    int rc = parse(c, argc, argv, ":c:", opts_config);

    if (rc != 0)
        return rc;
    rc = plan_load_config(config_path(c->config), stderr, &cfg);
    if (rc != 0)
        return rc;
    rc = plan_show(cfg, c->args, (size_t)c->nargs, (int64_t)time(NULL), stdout, stderr);
    config_unref(cfg);
    return rc;
}

/* ---- control-socket clients ---- */

#define CTL_TIMEOUT_MS 30000
#define CTL_RELOAD_TIMEOUT_MS 150000 /* above the server's 120 s for a reply */

/* The control socket: --socket, else [daemon] control_socket of the
 * configuration when it loads (silently: `check` reports its errors), else
 * the default. Owned. */
static char *socket_path(const struct cli *c)
{
    struct config_diag diag;
    struct config *cfg = NULL;
    char *path;

    if (c->socket != NULL)
        return xstrdup(c->socket);
    config_diag_init(&diag);
    if (config_load(config_path(c->config), &cfg, &diag) == 0 && cfg != NULL) {
        path = xstrdup(cfg->daemon.control_socket);
        config_unref(cfg);
    } else if (config_peek_control_socket(config_path(c->config), &path) == 0) {
        /* invalid, but it names its daemon: ask that one (reload then
         * reports the errors) */
    } else {
        path = xstrdup(CONTROL_DEFAULT_PATH);
    }
    config_diag_fini(&diag);
    return path;
}

/* One request; on a transport failure prints why and returns 69. */
static int ctl_call(const char *path, const char *method, const char *target, const char *body,
                    int timeout_ms, struct ctl_response *r)
{
    char *err = NULL;
    int rc = ctl_request(path, method, target, body, timeout_ms, r, &err);

    if (rc < 0) {
        fprintf(stderr, "certloop: %s\n", err);
        free(err);
        return EXIT_UNAVAILABLE;
    }
    return 0;
}

/* "/v1/certificates/NAME" + suffix with NAME percent-encoded. Owned. */
static char *cert_target(const char *name, const char *suffix)
{
    struct buf b = BUF_INIT(SIZE_MAX);

    buf_append_str(&b, "/v1/certificates/");
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.')
            buf_append(&b, p, 1);
        else
            buf_printf(&b, "%%%02X", *p);
    }
    buf_append_str(&b, suffix);
    return buf_steal(&b, NULL);
}

/* The "error" member of a JSON answer, or the raw body. */
static void print_error(const char *what, const struct ctl_response *r)
{
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "error"));

    if (msg != NULL)
        fprintf(stderr, "certloop: %s: %s\n", what, msg);
    else
        fprintf(stderr, "certloop: %s: HTTP %d %s", what, r->status, r->body);
    json_decref(j);
}

static const struct option opts_client[] = {
    {"config", required_argument, NULL, 'c'},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"json", no_argument, NULL, OPT_JSON},
    {"all", no_argument, NULL, OPT_ALL},
    {"force", no_argument, NULL, OPT_FORCE},
    {"deploy-only", no_argument, NULL, OPT_DEPLOY_ONLY},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"new-key", no_argument, NULL, OPT_NEW_KEY},
    {"fleet", no_argument, NULL, OPT_FLEET},
    {NULL, 0, NULL, 0},
};

/* Options a client command does not take are usage errors. */
static int client_opts_check(struct cli *c, bool json, bool renew)
{
    if (!json && c->json)
        return usage_error(c->cmd, "unknown option '--json'");
    if (c->fleet && strcmp(c->cmd, "status") != 0)
        return usage_error(c->cmd, "unknown option '--fleet'");
    if (!renew && (c->all || c->force || c->deploy_only || c->dry_run || c->new_key))
        return usage_error(c->cmd, "unknown option '%s'",
                           c->all           ? "--all"
                           : c->force       ? "--force"
                           : c->deploy_only ? "--deploy-only"
                           : c->new_key     ? "--new-key"
                                            : "--dry-run");
    if (renew && c->new_key && (!c->force || c->deploy_only || c->dry_run))
        return usage_error(c->cmd, "--new-key goes with --force (a new order)");
    return 0;
}

static int cmd_status(struct cli *c, int argc, char **argv)
{
    struct ctl_response r = {0};
    char *path;
    /* options after NAME too (status www --json), as renew takes them */
    int rc = parse(c, argc, argv, ":c:", opts_client);

    if (rc == 0)
        rc = client_opts_check(c, true, false);
    if (rc != 0)
        return rc;
    if (c->nargs > 1)
        return usage_error(c->cmd, "unexpected argument '%s'", c->args[1]);
    if (c->fleet && c->nargs > 0)
        return usage_error(c->cmd, "--fleet shows every instance: no NAME");
    path = socket_path(c);
    /* one certificate: only its object (GET /v1/certificates/NAME), not the
     * status of every one (~680 bytes each: 68 MB at 100,000) */
    char *target = c->nargs == 1 ? cert_target(c->args[0], "") : xstrdup("/v1/status");
    rc = ctl_call(path, "GET", target, NULL, CTL_TIMEOUT_MS, &r);
    free(target);
    free(path);
    if (rc != 0)
        return rc;
    json_t *one = c->nargs == 1 && r.status == 200 ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
    if (one != NULL || (c->nargs == 1 && r.status == 404)) {
        /* as the one certificate of a status document (none: 404), which
         * ctl_status_one reads */
        json_t *doc = json_pack("{s:[]}", "certificates");
        if (one != NULL)
            json_array_append_new(json_object_get(doc, "certificates"), one);
        char *text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        if (text != NULL) {
            ctl_response_fini(&r);
            r.body = text;
            r.body_len = strlen(text);
            r.status = 200;
        }
    }
    if (r.status != 200) {
        print_error("status", &r);
        rc = 1;
    } else if (c->fleet) {
        rc = ctl_fleet_table(r.body, r.body_len, c->json, stdout);
        if (rc == -ENOENT)
            fprintf(stderr, "certloop: status: the daemon's store is not shared with other "
                            "instances ([store] type = \"files\"): there is no fleet\n");
        else if (rc < 0)
            fprintf(stderr, "certloop: status: the daemon's answer is not a status document\n");
        rc = rc < 0 ? 1 : 0;
    } else if (c->nargs == 1) {
        rc = ctl_status_one(r.body, r.body_len, c->args[0], c->json, stdout);
        if (rc == -ENOENT) {
            fprintf(stderr, "certloop: status: the daemon manages no certificate '%s'\n",
                    c->args[0]);
            rc = EXIT_USAGE;
        } else if (rc < 0) {
            fprintf(stderr, "certloop: status: the daemon's answer is not a status document\n");
            rc = 1;
        }
    } else if (c->json) {
        fwrite(r.body, 1, r.body_len, stdout);
    } else if (ctl_status_table(r.body, r.body_len, stdout) < 0) {
        fprintf(stderr, "certloop: status: the daemon's answer is not a status document\n");
        rc = 1;
    }
    ctl_response_fini(&r);
    return rc;
}

/* The names the daemon manages (for --all). 0 or an exit code. */
static int all_names(const char *path, json_t **names)
{
    struct ctl_response r = {0};
    int rc = ctl_call(path, "GET", "/v1/status", NULL, CTL_TIMEOUT_MS, &r);
    json_t *root, *certs, *out;

    if (rc != 0)
        return rc;
    if (r.status != 200) {
        print_error("renew --all", &r);
        ctl_response_fini(&r);
        return 1;
    }
    root = json_loadb(r.body, r.body_len, 0, NULL);
    ctl_response_fini(&r);
    certs = json_object_get(root, "certificates");
    if (!json_is_array(certs)) {
        fprintf(stderr, "certloop: renew --all: the daemon's answer is not a status document\n");
        json_decref(root);
        return 1;
    }
    out = json_array();
    for (size_t i = 0; i < json_array_size(certs); i++) {
        json_t *n = json_object_get(json_array_get(certs, i), "name");
        if (json_is_string(n))
            json_array_append(out, n);
    }
    json_decref(root);
    *names = out;
    return 0;
}

/* How long `renew --dry-run` waits for the daemon's answer: the daemon
 * gives up on its own after CONTROL_DRY_RUN_TIMEOUT_MS (504). */
#define CTL_DRY_RUN_TIMEOUT_MS (CONTROL_DRY_RUN_TIMEOUT_MS + 30000)

/* `renew --dry-run` with a daemon up: POST /v1/dry-run, the daemon runs it
 * with its own listeners and answers with the summary. An exit status. */
static int dry_run_in_daemon(const struct cli *c, const struct config *cfg)
{
    const char *sock = cfg->daemon.control_socket;
    json_t *names = json_array();
    struct ctl_response r = {0};
    int code;

    for (int i = 0; !c->all && i < c->nargs; i++)
        json_array_append_new(names, json_string(c->args[i]));
    json_t *req = json_pack("{s:o}", "names", names);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    printf("dry run: %zu %s against the staging CA, nothing stored or deployed, no events\n"
           "(run by the daemon at %s: its listeners answer the CA)\n",
           cfg->n_certs, cfg->n_certs == 1 ? "certificate" : "certificates", sock);
    fflush(stdout);
    code = ctl_call(sock, "POST", "/v1/dry-run", body, CTL_DRY_RUN_TIMEOUT_MS, &r);
    free(body);
    if (code != 0)
        return code;
    json_t *root = json_loadb(r.body, r.body_len, 0, NULL);
    json_t *failed = json_object_get(root, "failed");
    const char *summary = json_string_value(json_object_get(root, "summary"));
    json_t *errors = json_object_get(root, "errors");
    if (r.status == 200 && json_is_integer(failed) && summary != NULL) {
        fputs(summary, stdout);
        code = json_integer_value(failed) == 0 ? 0 : 1;
    } else if (r.status == 422 && json_array_size(errors) > 0) {
        for (size_t i = 0; i < json_array_size(errors); i++)
            fprintf(stderr, "certloop: renew --dry-run: %s\n",
                    json_string_value(json_array_get(errors, i)));
        code = EXIT_CONFIG;
    } else {
        print_error("renew --dry-run", &r);
        if (r.status == 404)
            fprintf(stderr,
                    "certloop: renew --dry-run: the daemon at %s is older than this "
                    "certloop: restart it, or stop it for the dry run\n",
                    sock);
        /* busy (another dry run), stopping, or too old: later may work */
        code = r.status == 409 || r.status == 503 || r.status == 404 ? EXIT_TEMPFAIL : 1;
    }
    json_decref(root);
    ctl_response_fini(&r);
    return code;
}

/* `renew --dry-run`: a full order for each certificate against its CA's
 * staging directory, run here as `run --once` would (its own listener, or
 * the webroot), with the configuration config_dry_run derives: nothing
 * deployed, no events, no hooks; the real state directory is not touched
 * and what the run stored under STATE/dry-run is removed afterwards (its
 * staging accounts stay, so the CA sees one account). */
static int renew_dry_run(struct cli *c)
{
    const char *path = config_path(c->config);
    struct config *cfg = NULL;
    struct config_diag diag;
    int code = plan_load_config(path, stderr, &cfg);

    if (code != 0)
        return code;
    config_diag_init(&diag);
    if (config_dry_run(cfg, (const char *const *)c->args, c->all ? 0 : (size_t)c->nargs, &diag) <
        0) {
        for (size_t i = 0; i < diag.n; i++)
            fprintf(stderr, "certloop: renew --dry-run: %s\n", diag.lines[i]);
        config_diag_fini(&diag);
        config_unref(cfg);
        return c->all ? EXIT_CONFIG : EXIT_USAGE;
    }
    config_diag_fini(&diag);
    if (cfg->n_certs == 0) {
        fprintf(stderr, "certloop: renew --dry-run: no certificate with a CA to order\n");
        config_unref(cfg);
        return EXIT_USAGE;
    }
    /* A daemon answering on the control socket holds the listeners the
     * CA connects to: the dry run runs inside it. Else here, as run --once.
     * Any answer says a daemon is there: a path no route has (404) costs it
     * nothing, where the status of 100,000 certificates (~68 MB) would not
     * arrive in time (issue 16). Only nobody listening (no socket, or a
     * stale one) runs it here: a daemon that took the connection is there
     * even when it is slow to answer (a loaded machine), and a dry run here
     * would run beside it (this gave up after 2 s and did). */
    struct ctl_response r = {0};
    char *err = NULL;
    int prc =
        ctl_request(cfg->daemon.control_socket, "GET", "/v1/ping", NULL, CTL_TIMEOUT_MS, &r, &err);
    if (prc == 0) {
        ctl_response_fini(&r);
        code = dry_run_in_daemon(c, cfg);
        config_unref(cfg);
        return code;
    }
    if (prc != -ENOENT && prc != -ECONNREFUSED) {
        fprintf(stderr, "certloop: renew --dry-run: %s\n", err);
        free(err);
        config_unref(cfg);
        return EXIT_UNAVAILABLE;
    }
    free(err);
    printf("dry run: %zu %s against the staging CA, nothing stored or deployed, no events\n",
           cfg->n_certs, cfg->n_certs == 1 ? "certificate" : "certificates");
    fflush(stdout);
    char *sd = xstrdup(cfg->daemon.state_dir);
    dryrun_clean(sd); /* what an interrupted dry run left would make this one "ok" */
    struct daemon_opts o = {.config_path = path, .once = true, .cfg = cfg};
    code = daemon_run(&o);
    config_unref(cfg);
    dryrun_clean(sd);
    free(sd);
    return code;
}

static int cmd_renew(struct cli *c, int argc, char **argv)
{
    json_t *names = NULL;
    char *path = NULL;
    char *body = NULL;
    int failed = 0;
    int rc = parse(c, argc, argv, ":c:", opts_client);

    if (rc == 0)
        rc = client_opts_check(c, false, true);
    if (rc != 0)
        return rc;
    if (c->all && c->nargs > 0)
        return usage_error(c->cmd, "give certificate names or --all, not both");
    if (!c->all && c->nargs == 0)
        return usage_error(c->cmd, "which certificates? give NAME... or --all");
    if (c->dry_run) {
        if (c->force || c->deploy_only || c->socket != NULL)
            return usage_error(c->cmd, "--dry-run takes no --force, --deploy-only or --socket");
        return renew_dry_run(c);
    }
    path = socket_path(c);
    if (c->all) {
        rc = all_names(path, &names);
        if (rc != 0)
            goto out;
    } else {
        names = json_array();
        for (int i = 0; i < c->nargs; i++)
            json_array_append_new(names, json_string(c->args[i]));
    }
    json_t *flags = json_pack("{s:b,s:b}", "force", c->force, "deploy_only", c->deploy_only);
    if (c->new_key)
        json_object_set_new(flags, "new_key", json_true());
    body = json_dumps(flags, JSON_COMPACT);
    json_decref(flags);
    for (size_t i = 0; i < json_array_size(names); i++) {
        const char *name = json_string_value(json_array_get(names, i));
        struct ctl_response r = {0};
        char *target = cert_target(name, "/renew");
        rc = ctl_call(path, "POST", target, body, CTL_TIMEOUT_MS, &r);
        free(target);
        if (rc != 0)
            goto out; /* the daemon went away: no point going on */
        if (r.status == 202 || r.status == 200) {
            json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
            const char *msg = json_string_value(json_object_get(j, "message"));
            printf("%s: %s\n", name, msg != NULL ? msg : "renewal queued");
            json_decref(j);
        } else {
            print_error(name, &r);
            failed++;
        }
        ctl_response_fini(&r);
    }
    if (c->all && json_array_size(names) == 0)
        printf("the daemon manages no certificates\n");
    rc = failed > 0 ? 1 : 0;
out:
    free(body);
    free(path);
    json_decref(names);
    return rc;
}

static int cmd_reload(struct cli *c, int argc, char **argv)
{
    struct ctl_response r = {0};
    json_t *j;
    char *path;
    int rc = parse(c, argc, argv, "+:c:", opts_client);

    if (rc == 0)
        rc = client_opts_check(c, false, false);
    if (rc != 0)
        return rc;
    if (c->nargs > 0)
        return usage_error(c->cmd, "unexpected argument '%s'", c->args[0]);
    path = socket_path(c);
    rc = ctl_call(path, "POST", "/v1/reload", NULL, CTL_RELOAD_TIMEOUT_MS, &r);
    free(path);
    if (rc != 0)
        return rc;
    j = json_loadb(r.body, r.body_len, 0, NULL);
    if (r.status == 200) {
        const char *msg = json_string_value(json_object_get(j, "message"));
        printf("%s\n", msg != NULL ? msg : "reloaded");
        rc = 0;
    } else if (r.status == 422) {
        const json_t *lines = json_object_get(j, "errors");
        const char *msg = json_string_value(json_object_get(j, "error"));
        for (size_t i = 0; i < json_array_size(lines); i++)
            fprintf(stderr, "%s\n", json_string_value(json_array_get(lines, i)));
        fprintf(stderr, "certloop: reload: %s\n",
                msg != NULL ? msg : "the new configuration is invalid");
        rc = EXIT_CONFIG;
    } else {
        print_error("reload", &r);
        rc = 1;
    }
    json_decref(j);
    ctl_response_fini(&r);
    return rc;
}

static int one_name(struct cli *c)
{
    if (c->nargs == 0)
        return usage_error(c->cmd, "missing certificate NAME");
    if (c->nargs > 1)
        return usage_error(c->cmd, "unexpected argument '%s' (one NAME only)", c->args[1]);
    return 0;
}

static int cmd_test(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int rc = parse(c, argc, argv, ":c:", lo);

    struct config *cfg = NULL;

    if (rc == 0)
        rc = one_name(c);
    if (rc == 0)
        rc = plan_load_config(config_path(c->config), stderr, &cfg);
    if (rc != 0)
        return rc;
    rc = preflight_run(cfg, c->args[0], stdout, stderr);
    config_unref(cfg);
    return rc;
}

static int cmd_revoke(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"reason", required_argument, NULL, OPT_REASON},
        {"reissue", no_argument, NULL, OPT_REISSUE},
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int rc = parse(c, argc, argv, ":c:", lo);
    int reason = -1;
    struct config *cfg = NULL;

    if (rc == 0)
        rc = one_name(c);
    if (rc != 0)
        return rc;
    if (c->reason != NULL) {
        reason = revoke_reason_code(c->reason);
        if (reason < 0)
            return usage_error(c->cmd,
                               "unknown reason '%s' (unspecified, keyCompromise, "
                               "affiliationChanged, superseded or cessationOfOperation)",
                               c->reason);
    }
    rc = plan_load_config(config_path(c->config), stderr, &cfg);
    if (rc != 0)
        return rc;
    rc = revoke_run(cfg, c->args[0], reason, c->reissue, stdout, stderr);
    config_unref(cfg);
    return rc;
}

static int cmd_persist_record(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"publish", no_argument, NULL, OPT_PUBLISH},
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int rc = parse(c, argc, argv, ":c:", lo);
    struct config *cfg = NULL;

    if (rc == 0)
        rc = one_name(c);
    if (rc != 0)
        return rc;
    rc = plan_load_config(config_path(c->config), stderr, &cfg);
    if (rc != 0)
        return rc;
    rc = persist_record_run(cfg, c->args[0], c->publish, stdout, stderr);
    config_unref(cfg);
    return rc;
}

static int cmd_account(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"yes", no_argument, NULL, OPT_YES},
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int rc = parse(c, argc, argv, ":c:", lo);
    struct config *cfg = NULL;

    if (rc != 0)
        return rc;
    if (c->nargs < 2)
        return usage_error(c->cmd, "expected show|update|rollover|deactivate and a CA name");
    if (c->nargs > 2)
        return usage_error(c->cmd, "unexpected argument '%s'", c->args[2]);
    if (strcmp(c->args[0], "show") != 0 && strcmp(c->args[0], "update") != 0 &&
        strcmp(c->args[0], "rollover") != 0 && strcmp(c->args[0], "deactivate") != 0)
        return usage_error(c->cmd, "unknown action '%s' (show, update, rollover or deactivate)",
                           c->args[0]);
    rc = plan_load_config(config_path(c->config), stderr, &cfg);
    if (rc != 0)
        return rc;
    rc = account_run(cfg, c->args[0], c->args[1], c->yes, stdout, stderr);
    config_unref(cfg);
    return rc;
}

static int cmd_import_certbot(struct cli *c, int argc, char **argv)
{
    int rc = parse(c, argc, argv, ":c:", opts_config);

    if (rc != 0)
        return rc;
    if (c->nargs > 1)
        return usage_error(c->cmd, "unexpected argument '%s' (one DIR only)", c->args[1]);
    return migrate_certbot(config_path(c->config), c->nargs == 1 ? c->args[0] : "/etc/letsencrypt",
                           stdout, stderr);
}

static int cmd_import_lego(struct cli *c, int argc, char **argv)
{
    int rc = parse(c, argc, argv, ":c:", opts_config);

    if (rc != 0)
        return rc;
    if (c->nargs > 1)
        return usage_error(c->cmd, "unexpected argument '%s' (one DIR only)", c->args[1]);
    return migrate_lego(config_path(c->config), c->nargs == 1 ? c->args[0] : ".lego", stdout,
                        stderr);
}

static int cmd_api_token(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"scopes", required_argument, NULL, OPT_SCOPES},
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int rc = parse(c, argc, argv, ":c:", lo);
    struct config *cfg = NULL;
    unsigned scopes = 0;
    char *secret = NULL, *err = NULL;

    if (rc != 0)
        return rc;
    if (c->nargs < 2)
        return usage_error(c->cmd, "expected create NAME --scopes SCOPES, or revoke NAME");
    if (c->nargs > 2)
        return usage_error(c->cmd, "unexpected argument '%s'", c->args[2]);
    bool create = strcmp(c->args[0], "create") == 0;
    if (!create && strcmp(c->args[0], "revoke") != 0)
        return usage_error(c->cmd, "unknown action '%s' (create or revoke)", c->args[0]);
    if (create && c->scopes == NULL)
        return usage_error(c->cmd, "create needs --scopes (read, pull, manage, comma-separated)");
    if (!create && c->scopes != NULL)
        return usage_error(c->cmd, "revoke takes no --scopes");
    if (create && api_scopes_parse(c->scopes, &scopes) < 0)
        return usage_error(c->cmd, "--scopes %s: expected read, pull and manage, comma-separated",
                           c->scopes);
    rc = plan_load_config(config_path(c->config), stderr, &cfg);
    if (rc != 0)
        return rc;
    if (cfg->api.tokens_file == NULL) {
        fprintf(stderr, "certloop: %s: %s has no [api] tokens_file\n", c->cmd, cfg->path);
        config_unref(cfg);
        return EXIT_CONFIG;
    }
    if (create) {
        rc = api_token_create(cfg->api.tokens_file, c->args[1], scopes, &secret, &err);
        if (rc == 0) {
            fprintf(stderr, "certloop: token %s added to %s; its secret, shown only now:\n",
                    c->args[1], cfg->api.tokens_file);
            printf("%s\n", secret);
            fflush(stdout);
            OPENSSL_cleanse(secret, strlen(secret));
            free(secret);
        }
    } else {
        rc = api_token_revoke(cfg->api.tokens_file, c->args[1], &err);
        if (rc == 0)
            fprintf(stderr, "certloop: token %s removed from %s\n", c->args[1],
                    cfg->api.tokens_file);
    }
    if (rc < 0) {
        fprintf(stderr, "certloop: %s: %s\n", c->cmd, err != NULL ? err : "failed");
        rc = rc == -EINVAL ? EXIT_CONFIG : 1;
    }
    free(err);
    config_unref(cfg);
    return rc;
}

#define ROTATE_TIMEOUT_MS 60000

/* store rotate-key: the shared database's private keys sealed again with a
 * new encryption key (store/pg_admin.c). */
static int cmd_store(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"new-key-file", required_argument, NULL, OPT_NEW_KEY_FILE},
        {"old-key-file", required_argument, NULL, OPT_OLD_KEY_FILE},
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int rc = parse(c, argc, argv, ":c:", lo);
    struct config *cfg = NULL;
    size_t n = 0;

    if (rc != 0)
        return rc;
    if (c->nargs < 1)
        return usage_error(c->cmd, "expected rotate-key --new-key-file FILE");
    if (strcmp(c->args[0], "rotate-key") != 0)
        return usage_error(c->cmd, "unknown action '%s' (rotate-key)", c->args[0]);
    if (c->nargs > 1)
        return usage_error(c->cmd, "unexpected argument '%s'", c->args[1]);
    if (c->new_key_file == NULL)
        return usage_error(c->cmd, "rotate-key needs --new-key-file FILE");
    rc = plan_load_config(config_path(c->config), stderr, &cfg);
    if (rc != 0)
        return rc;
    if (cfg->store.type != CFG_STORE_POSTGRESQL) {
        fprintf(stderr,
                "certloop: store: %s keeps its store in files: rotate-key is for [store] type = "
                "\"postgresql\" (the state directory holds no sealed keys)\n",
                cfg->path);
        config_unref(cfg);
        return EXIT_CONFIG;
    }
    rc = store_pg_rotate_key(&cfg->store, c->old_key_file, c->new_key_file, ROTATE_TIMEOUT_MS, &n);
    if (rc == 0) {
        fprintf(stderr,
                "certloop: %zu private keys sealed again with the key of %s; make it [store] "
                "encryption_key_file on every instance and restart them\n",
                n, c->new_key_file);
        printf("%zu\n", n);
    } else if (rc == -EINVAL) {
        fprintf(stderr, "certloop: store rotate-key: nothing was changed (see above)\n");
    } else {
        fprintf(stderr,
                "certloop: store rotate-key: %s (one transaction: it committed whole or not at "
                "all; running it again is safe)\n",
                err_str(rc));
    }
    config_unref(cfg);
    if (rc == -EINVAL)
        return EXIT_CONFIG;
    if (rc == ERR_TIMEOUT)
        return EXIT_UNAVAILABLE;
    return rc == 0 ? 0 : 1;
}

static const struct {
    const char *name;
    int (*fn)(struct cli *c, int argc, char **argv);
} commands[] = {
    {"run", cmd_run},
    {"check", cmd_check},
    {"plan", cmd_plan},
    {"status", cmd_status},
    {"renew", cmd_renew},
    {"reload", cmd_reload},
    {"test", cmd_test},
    {"revoke", cmd_revoke},
    {"account", cmd_account},
    {"persist-record", cmd_persist_record},
    {"import-certbot", cmd_import_certbot},
    {"import-lego", cmd_import_lego},
    {"api-token", cmd_api_token},
    {"store", cmd_store},
};

int main(int argc, char **argv)
{
    const char *cmd;

    log_init();
    if (argc < 2)
        return usage_error(NULL, "missing command");
    cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0) {
        cli_version_print(stdout);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        if (argc < 3) {
            fputs(cli_help_overview(), stdout);
            return 0;
        }
        if (argc > 3)
            return usage_error(NULL, "help: one COMMAND only");
        const char *text = cli_help_command(argv[2]);
        if (text == NULL)
            return usage_error(NULL, "help: unknown command '%s'", argv[2]);
        fputs(text, stdout);
        return 0;
    }
    /* COMMAND ... --help anywhere before "--": that command's help, before
     * any other option is looked at */
    for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            const char *text = cli_help_command(cmd);
            fputs(text != NULL ? text : cli_help_overview(), stdout);
            return 0;
        }
    }
    if (cmd[0] == '-')
        return usage_error(NULL, "unknown option '%s' (options go after the command)", cmd);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(cmd, commands[i].name) == 0) {
            struct cli c = {.cmd = commands[i].name};
            return commands[i].fn(&c, argc - 1, argv + 1);
        }
    }
    return usage_error(NULL, "unknown command '%s'", cmd);
}
