/* The command line's texts: the overview (`certloop --help`), one help
 * text per command (`certloop CMD --help`, `certloop help CMD`) and the
 * version with the libraries the binary runs with (`certloop --version`).
 * main.c parses and dispatches; docs/man/certloop.8.scd says the same in
 * more words. */
#ifndef CERTLOOP_REACTOR_CLI_H
#define CERTLOOP_REACTOR_CLI_H

#include <stdio.h>

/* The overview: every command on one or two lines, where the
 * configuration comes from, the exit codes. Static. */
const char *cli_help_overview(void);

/* The help text of command cmd (synopsis first, "usage: certloop CMD ...",
 * then what it does, its options and exit codes), or NULL for an unknown
 * command. Static. */
const char *cli_help_command(const char *cmd);

/* Writes "certloop VERSION" and one line per library the binary is
 * linked with (OpenSSL, libcurl, libuv, c-ares, ldns, jansson, libpq), each with
 * the version the library reports at run time, which is the one in use
 * (the shared library may be newer than the headers it was built with). */
void cli_version_print(FILE *out);

#endif
