#!/bin/bash
# Entrypoint of the local Flink stand-in image (images/base/flink). Same commands as the official Flink image:
#   jobmanager | standalone-job | taskmanager | history-server [Flink options...]   start that process in the foreground
#   help (or --help)                                                                 print this usage
#   anything else                                                                    run it as given (pass-through)
# Before starting, the configuration in $FLINK_HOME/conf is updated from the environment:
#   JOB_MANAGER_RPC_ADDRESS (default: this host's name), TASK_MANAGER_NUMBER_OF_TASK_SLOTS,
#   FLINK_PROPERTIES ("key: value" lines; $VARS expanded), ENABLE_BUILT_IN_PLUGINS (jar names in opt/, ';'-separated),
#   DISABLE_JEMALLOC=true (do not preload jemalloc).
set -euo pipefail

FLINK_HOME=${FLINK_HOME:-/opt/flink}

usage() {
    echo "Usage: $(basename "$0") (jobmanager|standalone-job|taskmanager|history-server) [Flink options]"
    echo "    Or $(basename "$0") help"
    echo "    Or $(basename "$0") <command> [args]   (runs the command as given)"
}

# Apply "key value" pairs to conf/config.yaml through Flink's own config parser (-Dkey=value).
update_config() {
    local params=()
    while [ $# -ge 2 ]; do
        params+=("-D$1=$2")
        shift 2
    done
    if [ ${#params[@]} -gt 0 ]; then
        # A read-only conf (a ConfigMap mounted by the Flink operator) keeps its content: warn and go on.
        "$FLINK_HOME/bin/config-parser-utils.sh" "$FLINK_HOME/conf" "$FLINK_HOME/bin" "$FLINK_HOME/lib" "${params[@]}" \
            >/dev/null || echo "WARNING: could not update $FLINK_HOME/conf/config.yaml; using it as it is" >&2
    fi
}

configure() {
    local pairs=(jobmanager.rpc.address "${JOB_MANAGER_RPC_ADDRESS:-$(hostname -f 2>/dev/null || hostname)}"
                 blob.server.port 6124 query.server.port 6125)
    if [ -n "${TASK_MANAGER_NUMBER_OF_TASK_SLOTS:-}" ]; then
        pairs+=(taskmanager.numberOfTaskSlots "$TASK_MANAGER_NUMBER_OF_TASK_SLOTS")
    fi
    local line key value
    while IFS= read -r line; do
        line=$(printf '%s' "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
        [ -n "$line" ] || continue
        key=${line%%:*}
        value=$(printf '%s' "${line#*:}" | sed -e 's/^[[:space:]]*//' | envsubst)
        pairs+=("$key" "$value")
    done <<< "${FLINK_PROPERTIES:-}"
    update_config "${pairs[@]}"
}

enable_plugins() {
    local jar name
    for jar in $(printf '%s' "${ENABLE_BUILT_IN_PLUGINS:-}" | tr ';' ' '); do
        name=${jar%.jar}
        if [ ! -e "$FLINK_HOME/opt/$jar" ]; then
            echo "plugin $jar is not in $FLINK_HOME/opt" >&2
            exit 1
        fi
        mkdir -p "$FLINK_HOME/plugins/$name"
        ln -fs "$FLINK_HOME/opt/$jar" "$FLINK_HOME/plugins/$name"
        echo "enabled plugin $jar"
    done
}

preload_jemalloc() {
    local lib
    if [ "${DISABLE_JEMALLOC:-false}" = "false" ]; then
        for lib in /usr/lib/*-linux-gnu/libjemalloc.so.2; do
            if [ -f "$lib" ]; then
                export LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$lib"
                return
            fi
        done
    fi
}

command=${1:-help}
case "$command" in
    help | --help | -h)
        usage
        exit 0
        ;;
    jobmanager | standalone-job | taskmanager | history-server)
        shift
        if [ "$(id -u)" = 0 ]; then
            echo "WARNING: running Flink as root; the image's user is flink (uid 9999)" >&2
        fi
        preload_jemalloc
        enable_plugins
        configure
        case "$command" in
            jobmanager) script=jobmanager.sh ;;
            standalone-job) script=standalone-job.sh ;;
            taskmanager) script=taskmanager.sh ;;
            history-server) script=historyserver.sh ;;
        esac
        echo "starting Flink $command"
        exec "$FLINK_HOME/bin/$script" start-foreground "$@"
        ;;
    *)
        preload_jemalloc
        enable_plugins
        configure
        exec "$@"
        ;;
esac
