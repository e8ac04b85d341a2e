# bash completion for certloop(8): commands, their options, and certificate
# names, asked of the running daemon (certloop status --json, one second at
# most) or else read from the configuration's [certificate.NAME] tables
# (the -c FILE on the line, else $CERTLOOP_CONFIG, else
# /etc/certloop/certloop.toml, plus its conf.d/*.toml).

_certloop_config() {
    local i
    for ((i = 2; i < ${#COMP_WORDS[@]} - 1; i++)); do
        case ${COMP_WORDS[i]} in
        -c | --config)
            printf '%s\n' "${COMP_WORDS[i + 1]}"
            return
            ;;
        esac
    done
    printf '%s\n' "${CERTLOOP_CONFIG:-/etc/certloop/certloop.toml}"
}

_certloop_socket() {
    local i
    for ((i = 2; i < ${#COMP_WORDS[@]} - 1; i++)); do
        if [[ ${COMP_WORDS[i]} == --socket ]]; then
            printf '%s\n' "${COMP_WORDS[i + 1]}"
            return
        fi
    done
}

# The certificate names, one per line.
_certloop_names() {
    local cfg sock json
    cfg=$(_certloop_config)
    cfg=${cfg/#\~/$HOME}
    sock=$(_certloop_socket)
    # the daemon knows what it manages; each certificate object of the
    # status document starts with its "name" (names hold no white space)
    json=$(timeout 1 "${COMP_WORDS[0]:-certloop}" status --json -c "$cfg" \
        ${sock:+--socket "$sock"} 2>/dev/null) || json=
    if [[ -n $json ]]; then
        tr -d ' \t\r\n' <<<"$json" | grep -o '{"name":"[^"\\]*"' | cut -d'"' -f4
        return
    fi
    _certloop_tables certificate
}

# _certloop_tables SECTION: the NAMEs of the configuration's [SECTION.NAME]
# tables, one per line
_certloop_tables() {
    local cfg dir f t=$1
    cfg=$(_certloop_config)
    cfg=${cfg/#\~/$HOME}
    [[ -r $cfg ]] || return
    dir=$(dirname -- "$cfg")
    for f in "$cfg" "$dir"/conf.d/*.toml; do
        [[ -r $f ]] || continue
        # [T.NAME] or [T."NAME.WITH.DOTS"], not sub-tables
        sed -n -e "s/^[[:space:]]*\\[[[:space:]]*${t}[[:space:]]*\\.[[:space:]]*\\([A-Za-z0-9_-]\\{1,\\}\\)[[:space:]]*\\][[:space:]]*\\(#.*\\)\\{0,1\\}\$/\\1/p" \
            -e "s/^[[:space:]]*\\[[[:space:]]*${t}[[:space:]]*\\.[[:space:]]*\"\\([A-Za-z0-9_.-]\\{1,\\}\\)\"[[:space:]]*\\][[:space:]]*\\(#.*\\)\\{0,1\\}\$/\\1/p" "$f"
    done
}

_certloop() {
    local cur prev cmd words opts
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="run check plan status renew reload test revoke account persist-record import-certbot import-lego api-token store help"

    if ((COMP_CWORD == 1)); then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi
    cmd=${COMP_WORDS[1]}

    case $prev in
    -c | --config)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -X '!*.toml' -- "$cur") $(compgen -d -- "$cur"))
        return
        ;;
    --socket)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --scopes)
        COMPREPLY=($(compgen -W "read read,pull read,manage read,pull,manage pull" -- "$cur"))
        return
        ;;
    --reason)
        COMPREPLY=($(compgen -W "unspecified keyCompromise affiliationChanged superseded cessationOfOperation" -- "$cur"))
        return
        ;;
    esac

    case $cmd in
    run) opts="--config --once --help" ;;
    check) opts="--config --help" ;;
    plan) opts="--config --help" ;;
    status) opts="--fleet --json --socket --config --help" ;;
    renew) opts="--all --force --new-key --deploy-only --dry-run --socket --config --help" ;;
    reload) opts="--socket --config --help" ;;
    test) opts="--config --help" ;;
    revoke) opts="--reason --reissue --config --help" ;;
    account) opts="--yes --config --help" ;;
    persist-record) opts="--publish --config --help" ;;
    import-certbot | import-lego) opts="--config --help" ;;
    api-token) opts="--scopes --config --help" ;;
    store) opts="--new-key-file --old-key-file --config --help" ;;
    help)
        ((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W "${commands% help}" -- "$cur"))
        return
        ;;
    *) return ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    case $cmd in
    account)
        # ACTION, then the CA
        local i n=0
        for ((i = 2; i < COMP_CWORD; i++)); do
            case ${COMP_WORDS[i]} in
            -c | --config) ((i++)) ;;
            -*) ;;
            *) ((n++)) ;;
            esac
        done
        if ((n == 0)); then
            COMPREPLY=($(compgen -W "show update rollover deactivate" -- "$cur"))
        elif ((n == 1)); then
            COMPREPLY=($(compgen -W "$(_certloop_tables ca)" -- "$cur"))
        fi
        ;;
    api-token)
        ((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W "create revoke" -- "$cur"))
        ;;
    store)
        case $prev in
        --new-key-file | --old-key-file)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
            ;;
        *) ((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W "rotate-key" -- "$cur")) ;;
        esac
        ;;
    import-certbot | import-lego)
        # the other client's directory (one)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -d -- "$cur"))
        ;;
    plan | renew | test | revoke | status | persist-record)
        # test, revoke, status and persist-record take one NAME
        if [[ $cmd == test || $cmd == revoke || $cmd == status || $cmd == persist-record ]]; then
            local i n=0
            for ((i = 2; i < COMP_CWORD; i++)); do
                case ${COMP_WORDS[i]} in
                -c | --config | --reason | --socket) ((i++)) ;;
                -*) ;;
                *) ((n++)) ;;
                esac
            done
            ((n > 0)) && return
        fi
        COMPREPLY=($(compgen -W "$(_certloop_names)" -- "$cur"))
        ;;
    esac
}

complete -F _certloop certloop
