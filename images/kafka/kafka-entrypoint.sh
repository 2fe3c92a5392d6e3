#!/bin/sh
# Entrypoint of the iotpipe Kafka image (images/kafka/Dockerfile): a KRaft broker/controller configured like the
# official apache/kafka image.
#
#   kafka-entrypoint.sh [--override key=value ...]   render the config, format the storage once, exec the broker
#   kafka-entrypoint.sh --help                       this text
#   kafka-entrypoint.sh <command> [args]             run another command (e.g. java -cp '/opt/kafka/libs/*' ...)
#
# Environment:
#   KAFKA_<NAME>        every such variable becomes the broker property <name> in lower case, "_" -> ".",
#                       "__" -> "_", "___" -> "-" (KAFKA_LOG_DIRS -> log.dirs, KAFKA_NODE_ID -> node.id)
#   CLUSTER_ID          KRaft cluster id, written into the storage on first start (default: 5L6g3nShT-eMCtK--X86sw)
#   KAFKA_HEAP_OPTS     JVM heap (default -Xmx1G -Xms1G); KAFKA_JVM_PERFORMANCE_OPTS (G1 defaults), KAFKA_GC_LOG_OPTS,
#   KAFKA_JMX_OPTS, KAFKA_OPTS   more JVM options; KAFKA_LOG4J_OPTS   logging (default: stdout, INFO)
#   KAFKA_CONFIG_DIR    where server.properties is written (default /opt/kafka/config; must be writable)
# New clusters are formatted with transactions version 1 (Kafka 4 defaults to 2; see format_storage below).
# log.dirs defaults to /var/lib/kafka/data. These variables are JVM/script settings, not broker properties.
set -eu

KAFKA_HOME=/opt/kafka
CONFIG_DIR=${KAFKA_CONFIG_DIR:-$KAFKA_HOME/config}
SCRIPT_VARS=" KAFKA_HEAP_OPTS KAFKA_JVM_PERFORMANCE_OPTS KAFKA_GC_LOG_OPTS KAFKA_JMX_OPTS KAFKA_OPTS KAFKA_LOG4J_OPTS \
KAFKA_CONFIG_DIR KAFKA_VERSION KAFKA_HOME "

usage() {
    sed -n '2,/^set -eu/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
}

# KAFKA_FOO_BAR__BAZ___QUX -> foo.bar_baz-qux
property_name() {
    printf '%s' "${1#KAFKA_}" | sed -e 's/___/-/g' -e 's/__/\x01/g' -e 's/_/./g' -e 's/\x01/_/g' | tr 'A-Z' 'a-z'
}

render_config() {
    props=$CONFIG_DIR/server.properties
    if ! (mkdir -p "$CONFIG_DIR" && : > "$props") 2>/dev/null; then
        echo "kafka-entrypoint: cannot write $props (read-only file system?): mount a writable volume there or" \
             "set KAFKA_CONFIG_DIR" >&2
        exit 1
    fi
    {
        echo "# rendered by kafka-entrypoint.sh from the KAFKA_* environment"
        [ -n "${KAFKA_LOG_DIRS:-}" ] || echo "log.dirs=/var/lib/kafka/data"
        for var in $(env | sed -n 's/^\(KAFKA_[A-Za-z0-9_]*\)=.*/\1/p' | sort -u); do
            case "$SCRIPT_VARS" in *" $var "*) continue ;; esac
            eval "value=\${$var}"
            printf '%s=%s\n' "$(property_name "$var")" "$value"
        done
    } > "$props"
}

# Transactions version 1 (not Kafka 4's default 2): the Flink Kafka sink commits the transactions of a restored
# checkpoint a second time, which version 2 can refuse with InvalidPidMappingException, a restart loop of the job
# (see KAFKA_TRANSACTION_VERSION in stack/iotpipe_stack/commands.py).
format_storage() {
    echo "kafka-entrypoint: formatting the storage (cluster id ${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}) unless done"
    # shellcheck disable=SC2086
    java ${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$KAFKA_HOME/log4j2.properties} -Xmx256m \
        -cp "$KAFKA_HOME/libs/*" kafka.tools.StorageTool format --ignore-formatted \
        "--cluster-id=${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" -c "$CONFIG_DIR/server.properties" \
        --feature transaction.version=1
}

case "${1:-}" in
    -h | --help | help)
        usage
        exit 0
        ;;
    "" | -*) ;;
    *) exec "$@" ;;
esac

render_config
format_storage
echo "kafka-entrypoint: starting Kafka (node.id ${KAFKA_NODE_ID:-?}, roles ${KAFKA_PROCESS_ROLES:-?})"
# shellcheck disable=SC2086
exec java ${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G} \
    ${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true} \
    ${KAFKA_GC_LOG_OPTS:-} ${KAFKA_JMX_OPTS:-} \
    ${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$KAFKA_HOME/log4j2.properties} ${KAFKA_OPTS:-} \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$CONFIG_DIR/server.properties" "$@"
