/* The certloop binary: the command line (DESIGN "Command line") parsed with
 * getopt_long per subcommand, dispatching to the daemon (run), the offline
 * views (check, plan) or, later, the control-socket client. Exit codes
 * follow sysexits.h. This file only parses and dispatches. */
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "reactor/daemon.h"
#include "reactor/plan.h"
#include "util/log.h"

static const char usage_text[] =
    "usage: certloop COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  run [-c FILE] [--once]          run the daemon in the foreground; --once: issue/renew\n"
    "                                  everything due, then exit (0 all ok, 1 any failed)\n"
    "  check [-c FILE]                 validate the configuration (0 ok, 78 invalid)\n"
    "  plan [-c FILE] [NAME...]        preview each certificate and when it renews next\n"
    "  status [--json]                 ask the running daemon for every certificate's state\n"
    "  renew NAME...|--all [--force]   ask the daemon to renew now\n"
    "  reload                          reload the daemon's configuration (as SIGHUP)\n"
    "  test NAME                       pre-flight checks for one certificate\n"
    "  revoke NAME [--reason R]        revoke the current certificate\n"
    "  help, --help                    this text\n"
    "  --version                       print the version\n"
    "\n"
    "The configuration is -c FILE, else $CERTLOOP_CONFIG, else " CONFIG_DEFAULT_PATH ".\n"
    "Exit codes: 0 ok, 1 failure, 64 usage, 69 unavailable, 75 temporary failure,\n"
    "78 configuration.\n";

/* One line saying what is wrong, one hint; returns 64. */
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
    bool once, json, all, force;
    const char *reason;
    char **args; /* positional arguments (borrowed from argv) */
    int nargs;
};

enum { OPT_ONCE = 256, OPT_JSON, OPT_ALL, OPT_FORCE, OPT_REASON };

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

static int not_implemented(const char *cmd)
{
    fprintf(stderr, "certloop: %s: not implemented yet\n", cmd);
    return EXIT_UNAVAILABLE;
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

static int cmd_status(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {NULL, 0, NULL, 0},
    };
    int rc = parse(c, argc, argv, "+:", lo);

    if (rc != 0)
        return rc;
    if (c->nargs > 0)
        return usage_error(c->cmd, "unexpected argument '%s'", c->args[0]);
    return not_implemented(c->cmd);
}

static int cmd_renew(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"all", no_argument, NULL, OPT_ALL},
        {"force", no_argument, NULL, OPT_FORCE},
        {NULL, 0, NULL, 0},
    };
    int rc = parse(c, argc, argv, ":", lo);

    if (rc != 0)
        return rc;
    if (c->all && c->nargs > 0)
        return usage_error(c->cmd, "give certificate names or --all, not both");
    if (!c->all && c->nargs == 0)
        return usage_error(c->cmd, "which certificates? give NAME... or --all");
    return not_implemented(c->cmd);
}

static int cmd_reload(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {{NULL, 0, NULL, 0}};
    int rc = parse(c, argc, argv, "+:", lo);

    if (rc != 0)
        return rc;
    if (c->nargs > 0)
        return usage_error(c->cmd, "unexpected argument '%s'", c->args[0]);
    return not_implemented(c->cmd);
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

    if (rc == 0)
        rc = one_name(c);
    if (rc != 0)
        return rc;
    return not_implemented(c->cmd);
}

static int cmd_revoke(struct cli *c, int argc, char **argv)
{
    /* RFC 5280 §5.3.1 reason codes that RFC 8555 §7.6 lets a subscriber use */
    static const char *const reasons[] = {"unspecified", "keyCompromise", "affiliationChanged",
                                          "superseded", "cessationOfOperation"};
    static const struct option lo[] = {
        {"reason", required_argument, NULL, OPT_REASON},
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int rc = parse(c, argc, argv, ":c:", lo);

    if (rc == 0)
        rc = one_name(c);
    if (rc != 0)
        return rc;
    if (c->reason != NULL) {
        bool known = false;
        for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
            known = known || strcmp(c->reason, reasons[i]) == 0;
        if (!known)
            return usage_error(c->cmd,
                               "unknown reason '%s' (unspecified, keyCompromise, "
                               "affiliationChanged, superseded or cessationOfOperation)",
                               c->reason);
    }
    return not_implemented(c->cmd);
}

static const struct {
    const char *name;
    int (*fn)(struct cli *c, int argc, char **argv);
} commands[] = {
    {"run", cmd_run},     {"check", cmd_check},   {"plan", cmd_plan}, {"status", cmd_status},
    {"renew", cmd_renew}, {"reload", cmd_reload}, {"test", cmd_test}, {"revoke", cmd_revoke},
};

int main(int argc, char **argv)
{
    const char *cmd;

    log_init();
    if (argc < 2)
        return usage_error(NULL, "missing command");
    cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0) {
        printf("certloop %s\n", CERTLOOP_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
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
