#!/usr/bin/env bash
# ecs-orphan-diagnostic.sh - is this EC2 instance registered with ECS, and if
# not, why not?
#
# Runs as root under bash on an ECS-optimized Amazon Linux 2 / 2023 instance
# (an SSM Command document embeds this file verbatim). It only reads state,
# with one exception: the container run test starts a throw-away container
# from an image already on the host (never pulled) and removes it.
#
# Usage:
#   ecs-orphan-diagnostic.sh --region REGION --instance-id INSTANCE_ID
# The two parameters may instead come from the environment variables REGION and
# INSTANCE_ID (the SSM document assigns them); the command line wins. Both are
# validated strictly before anything runs:
#   region       ^[a-z]{2}(-[a-z]+)+-[0-9]+$
#   instance id  ^i-[0-9a-f]{8}([0-9a-f]{9})?$
#
# Output (stdout):
#   line 1: one JSON object, schema "ecs-orphan-diagnostic/1":
#     {"schema":"ecs-orphan-diagnostic/1","instance_id":"i-...","region":"...",
#      "registered":true|false,"cluster":"..."|null,
#      "container_instance_arn":"arn:..."|null,
#      "checks":[{"name":"...","status":"pass|fail|warn|skipped","detail":"..."}, ...],
#      "failed":["<names of the checks whose status is fail>"]}
#     "registered" is true only when the agent's introspection metadata holds a
#     ContainerInstanceArn. "cluster" is the cluster the agent reports, else the
#     valid ECS_CLUSTER of ecs.config, else null. Details are plain ASCII
#     (other bytes become '?'), at most 300 characters before escaping, so the
#     line stays far below SSM's 24000-character StandardOutputContent limit.
#   then: a human-readable summary.
# Exit status: 0 registered, 8 not registered, 2 bad parameters (message on
# stderr, nothing on stdout, no check run).
#
# Checks, always all of them, in this order: agent_introspection, ecs_service,
# docker_service, containerd_service, container_run, agent_container,
# ecs_endpoint, ecs_config, nvidia_driver.
#
# Environment overrides (for tests; the defaults are what production uses):
#   ECS_INTROSPECTION_URL     agent introspection base URL, http://host[:port]
#                             (default http://localhost:51678)
#   ECS_CONFIG_FILE           agent configuration (default /etc/ecs/ecs.config)
#   ECS_AGENT_LOG_FILE        agent log searched for the last registration error
#                             (default /var/log/ecs/ecs-agent.log)
#   ECS_ENDPOINT_HOST         ECS API host (default ecs.REGION.amazonaws.com,
#                             ecs.REGION.amazonaws.com.cn in cn-* regions)
#   ECS_ENDPOINT_PORT         ECS API port (default 443)
#   ECS_DIAG_PCI_DIR          sysfs PCI devices, for GPU detection
#                             (default /sys/bus/pci/devices)
#   ECS_DIAG_NVIDIA_PROC_DIR  NVIDIA driver proc dir (default /proc/driver/nvidia)
#   ECS_DIAG_HTTP_TIMEOUT     seconds for the introspection request (default 5)
#   ECS_DIAG_CONNECT_TIMEOUT  seconds for the TCP connect to the endpoint (default 5)
#   ECS_DIAG_CMD_TIMEOUT      seconds for systemctl, docker inspect/ls, nvidia-smi
#                             (default 10)
#   ECS_DIAG_RUN_TIMEOUT      seconds for the container run test (default 30)
# Every external command runs under `timeout` with stdin from /dev/null (so the
# script may itself be fed to `bash -s` on stdin); worst case about 3 minutes
# with the defaults.

set -u
export LC_ALL=C
umask 077

readonly SCHEMA='ecs-orphan-diagnostic/1'
readonly CHECK_NAMES=(agent_introspection ecs_service docker_service containerd_service
    container_run agent_container ecs_endpoint ecs_config nvidia_driver)
readonly DETAIL_MAX=300
readonly AGENT_CONTAINER=ecs-agent

# ---------------------------------------------------------------- helpers

usage() {
    printf 'usage: %s --region REGION --instance-id INSTANCE_ID\n' "${0##*/}"
    printf '       (or REGION=... INSTANCE_ID=... in the environment)\n'
}

# Bad input: one line on stderr, exit 2, nothing on stdout.
bad_input() {
    printf 'ecs-orphan-diagnostic: %s\n' "$1" >&2
    exit 2
}

# A value shown back in an error message: shell-quoted, cut short.
shown() {
    local v=${1:0:80}
    printf '%q' "$v"
}

# json_escape TEXT: sets REPLY to TEXT as the inside of a JSON string.
# Quotes, backslashes and control characters are escaped; bytes outside ASCII
# become '?' so the output is always valid UTF-8 whatever a tool printed.
json_escape() {
    local s=$1 out='' c i code
    local ctl=$'\001'-$'\037' high=$'\177'-$'\377'
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    if [[ $s == *[$ctl$high]* ]]; then
        for ((i = 0; i < ${#s}; i++)); do
            c=${s:i:1}
            if [[ $c == [$ctl] ]]; then
                printf -v code '%d' "'$c"
                printf -v c '\\u%04x' "$code"
            elif [[ $c == [$high] ]]; then
                c='?'
            fi
            out+=$c
        done
        s=$out
    fi
    REPLY=$s
}

# json_string TEXT: sets REPLY to a quoted JSON string, or null when TEXT is
# empty.
json_string_or_null() {
    if [[ -z $1 ]]; then
        REPLY=null
    else
        json_escape "$1"
        REPLY="\"$REPLY\""
    fi
}

# printable TEXT: sets REPLY to TEXT with control characters and bytes
# outside ASCII replaced by '?' (for the human summary).
printable() {
    local ctl=$'\001'-$'\037' high=$'\177'-$'\377'
    REPLY=${1//[$ctl$high]/?}
}

# one_line TEXT: sets REPLY to TEXT with runs of whitespace (newlines
# included) folded into single spaces and the ends trimmed.
one_line() {
    local s=${1//[$'\n\r\t']/ }
    while [[ $s == *'  '* ]]; do s=${s//  / }; done
    s=${s# }
    s=${s% }
    REPLY=$s
}

declare -A STATUS=() DETAIL=()

# record NAME STATUS DETAIL
record() {
    local d=$3
    if ((${#d} > DETAIL_MAX)); then
        d="${d:0:DETAIL_MAX-3}..."
    fi
    STATUS[$1]=$2
    DETAIL[$1]=$d
}

WORK=''
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [[ -n $WORK && -d $WORK ]]; then
        timeout 10 rm -rf -- "$WORK" </dev/null
    fi
}

# run SECONDS COMMAND [ARGS...]: runs COMMAND under timeout with stdin from
# /dev/null. Sets OUT (stdout), ERR (stderr), RC (exit status; 124 = timed out).
OUT='' ERR='' RC=0
run() {
    local secs=$1
    shift
    ERR=''
    if [[ -n $WORK ]]; then
        OUT=$(timeout -k 2 "$secs" "$@" </dev/null 2>"$WORK/stderr")
        RC=$?
        IFS= read -r -d '' ERR <"$WORK/stderr"
        ERR=${ERR%$'\n'}
    else
        OUT=$(timeout -k 2 "$secs" "$@" </dev/null 2>&1)
        RC=$?
        ERR=$OUT
    fi
    # With -k, a command that ignores SIGTERM is killed: 128 + 9.
    if ((RC == 137)); then RC=124; fi
    return "$RC"
}

# first non-empty of ERR / OUT, on one line: what a failing command said.
said() {
    if [[ -n $ERR ]]; then one_line "$ERR"; else one_line "$OUT"; fi
    if [[ -z $REPLY ]]; then REPLY="no output"; fi
}

have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- parameters

region=${REGION:-}
instance_id=${INSTANCE_ID:-}
while (($# > 0)); do
    case $1 in
        --region)
            (($# >= 2)) || bad_input "--region needs a value"
            region=$2
            shift 2
            ;;
        --region=*)
            region=${1#*=}
            shift
            ;;
        --instance-id)
            (($# >= 2)) || bad_input "--instance-id needs a value"
            instance_id=$2
            shift 2
            ;;
        --instance-id=*)
            instance_id=${1#*=}
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            bad_input "unknown argument $(shown "$1")"
            ;;
    esac
done

readonly RE_REGION='^[a-z]{2}(-[a-z]+)+-[0-9]+$'
readonly RE_INSTANCE='^i-[0-9a-f]{8}([0-9a-f]{9})?$'
readonly RE_SECONDS='^[1-9][0-9]{0,2}$'
readonly RE_PORT='^[1-9][0-9]{0,4}$'
readonly RE_HOST='^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$'
readonly RE_BASE_URL='^http://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[1-9][0-9]{0,4})?$'

[[ -n $region ]] || bad_input "missing --region (or REGION)"
[[ -n $instance_id ]] || bad_input "missing --instance-id (or INSTANCE_ID)"
[[ $region =~ $RE_REGION ]] || bad_input "invalid region $(shown "$region")"
[[ $instance_id =~ $RE_INSTANCE ]] || bad_input "invalid instance id $(shown "$instance_id")"

introspection_url=${ECS_INTROSPECTION_URL:-http://localhost:51678}
introspection_url=${introspection_url%/}
config_file=${ECS_CONFIG_FILE:-/etc/ecs/ecs.config}
agent_log=${ECS_AGENT_LOG_FILE:-/var/log/ecs/ecs-agent.log}
if [[ $region == cn-* ]]; then
    endpoint_host=${ECS_ENDPOINT_HOST:-ecs.$region.amazonaws.com.cn}
else
    endpoint_host=${ECS_ENDPOINT_HOST:-ecs.$region.amazonaws.com}
fi
endpoint_port=${ECS_ENDPOINT_PORT:-443}
pci_dir=${ECS_DIAG_PCI_DIR:-/sys/bus/pci/devices}
nvidia_proc_dir=${ECS_DIAG_NVIDIA_PROC_DIR:-/proc/driver/nvidia}
http_timeout=${ECS_DIAG_HTTP_TIMEOUT:-5}
connect_timeout=${ECS_DIAG_CONNECT_TIMEOUT:-5}
cmd_timeout=${ECS_DIAG_CMD_TIMEOUT:-10}
run_timeout=${ECS_DIAG_RUN_TIMEOUT:-30}

[[ $introspection_url =~ $RE_BASE_URL ]] ||
    bad_input "ECS_INTROSPECTION_URL must be http://host[:port], got $(shown "$introspection_url")"
[[ $endpoint_host =~ $RE_HOST ]] || bad_input "invalid ECS_ENDPOINT_HOST $(shown "$endpoint_host")"
if [[ ! $endpoint_port =~ $RE_PORT ]] || ((endpoint_port > 65535)); then
    bad_input "invalid ECS_ENDPOINT_PORT $(shown "$endpoint_port")"
fi
for t in http_timeout connect_timeout cmd_timeout run_timeout; do
    [[ ${!t} =~ $RE_SECONDS ]] || bad_input "timeout $t must be 1..999 seconds, got $(shown "${!t}")"
done
unset t

have timeout || bad_input "coreutils timeout is required"

trap cleanup EXIT
WORK=$(timeout 10 mktemp -d "${TMPDIR:-/tmp}/ecs-orphan-diagnostic.XXXXXXXX" </dev/null 2>/dev/null) || WORK=''

# ---------------------------------------------------------------- ecs_config
# ecs-init reads the file line by line, trims each line, splits it at the
# first '=' and passes KEY=VALUE to the agent container verbatim: a line with
# no '=' is silently dropped, quotes are kept, and "KEY = v" sets "KEY ".

cfg_cluster=''        # ECS_CLUSTER when it is a valid cluster name or ARN
cfg_gpu=''            # ECS_ENABLE_GPU_SUPPORT value
cfg_proxy=''          # HTTPS_PROXY / HTTP_PROXY value, for display only

# display_value KEY VALUE: sets REPLY to what may be shown of VALUE.
display_value() {
    local key=${1^^} value=$2
    case $key in
        *TOKEN* | *SECRET* | *PASSWORD* | *KEY* | *AUTH* | *CREDENTIAL*)
            REPLY='****'
            ;;
        *)
            # user:password@ in a proxy URL
            if [[ $value =~ ^([A-Za-z]+://)?[^/@]*@(.*)$ ]]; then
                value="${BASH_REMATCH[1]}****@${BASH_REMATCH[2]}"
            fi
            REPLY=$value
            ;;
    esac
}

check_ecs_config() {
    local f=$config_file
    if [[ ! -e $f ]]; then
        record ecs_config fail "$f does not exist: ECS_CLUSTER is unset, the agent would register to the cluster named default"
        return
    fi
    if [[ -d $f || ! -r $f ]]; then
        record ecs_config fail "$f is not a readable file"
        return
    fi

    local n=0 line key value
    local -a problems=() notes=()
    local -A lines_of=()
    local cluster_raw='' cluster_line=0 have_cluster=0

    while IFS= read -r line || [[ -n $line ]]; do
        n=$((n + 1))
        if ((n > 5000)); then
            notes+=("stopped reading after 5000 lines")
            break
        fi
        # trim like ecs-init (spaces, tabs, a CR of CRLF endings)
        line=${line#"${line%%[![:space:]]*}"}
        line=${line%"${line##*[![:space:]]}"}
        [[ -z $line || $line == '#'* ]] && continue
        if [[ $line != *=* ]]; then
            problems+=("line $n: no '=' (expected KEY=VALUE; ecs-init ignores this line)")
            continue
        fi
        key=${line%%=*}
        value=${line#*=}
        if [[ $key == export[[:space:]]* ]]; then
            problems+=("line $n: 'export' prefix (the file is not a shell script)")
            continue
        fi
        if [[ $key == *[[:space:]] || $key == *[[:space:]]* ]]; then
            problems+=("line $n: whitespace in the key or around '='")
            continue
        fi
        if [[ ! $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
            problems+=("line $n: invalid key name (letters, digits, _; not starting with a digit)")
            continue
        fi
        lines_of[$key]+=" $n"
        if [[ $value == \"*\" || $value == \'*\' ]] && ((${#value} >= 2)); then
            notes+=("line $n: value of $key is in quotes, which ecs-init keeps literally")
        fi
        case $key in
            ECS_CLUSTER)
                have_cluster=1
                cluster_raw=$value
                cluster_line=$n
                ;;
            ECS_ENABLE_GPU_SUPPORT) cfg_gpu=$value ;;
            HTTPS_PROXY | HTTP_PROXY)
                display_value "$key" "$value"
                cfg_proxy=$REPLY
                ;;
        esac
    done <"$f"

    for key in "${!lines_of[@]}"; do
        local -a at
        read -r -a at <<<"${lines_of[$key]}"
        if ((${#at[@]} > 1)); then
            notes+=("$key set ${#at[@]} times (lines ${at[*]}; the last one wins)")
        fi
    done

    local status=pass summary
    if ((have_cluster == 0)); then
        status=fail
        problems=("ECS_CLUSTER is not set (the agent would register to the cluster named default)" "${problems[@]}")
    elif [[ -z $cluster_raw ]]; then
        status=fail
        problems=("ECS_CLUSTER is empty (line $cluster_line)" "${problems[@]}")
    elif [[ $cluster_raw =~ ^[A-Za-z0-9_-]{1,255}$ ||
        $cluster_raw =~ ^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9_-]{1,255}$ ]]; then
        cfg_cluster=$cluster_raw
    else
        status=fail
        display_value ECS_CLUSTER "$cluster_raw"
        problems=("ECS_CLUSTER (line $cluster_line) is not a valid cluster name: ${REPLY:0:60}" "${problems[@]}")
    fi
    if ((${#problems[@]} > 0)); then
        status=fail
    elif ((${#notes[@]} > 0)); then
        status=warn
    fi

    if [[ $status == pass ]]; then
        summary="$f: $n lines, ECS_CLUSTER=$cfg_cluster"
    else
        local item sep=' '
        summary="$f:"
        for item in "${problems[@]}" "${notes[@]}"; do
            summary+="$sep$item"
            sep='; '
        done
    fi
    record ecs_config "$status" "$summary"
}

# ---------------------------------------------------------------- agent_introspection

registered=false
agent_cluster=''
container_instance_arn=''

# field NAME BODY: sets REPLY to the string value of "NAME" in the JSON BODY
# (agent metadata: flat object, values without quotes or backslashes), or ''.
field() {
    local re="\"$1\"[[:space:]]*:[[:space:]]*\"([^\"\\\\]*)\""
    if [[ $2 =~ $re ]]; then REPLY=${BASH_REMATCH[1]}; else REPLY=''; fi
}

# last_registration_error: sets REPLY to the agent log's last line about a
# failed registration, or ''.
last_registration_error() {
    REPLY=''
    [[ -f $agent_log && -r $agent_log ]] || return
    have grep || return
    run "$cmd_timeout" grep -F -e 'Unable to register' -e 'Error registering' -- "$agent_log"
    if [[ -n $OUT ]]; then
        one_line "${OUT##*$'\n'}"
        REPLY="; last registration error in $agent_log: ${REPLY:0:200}"
    fi
}

check_agent_introspection() {
    local url="$introspection_url/v1/metadata"
    if ! have curl; then
        last_registration_error
        record agent_introspection fail "curl not found: cannot query $url$REPLY"
        return
    fi
    run $((http_timeout + 2)) curl -sS --noproxy '*' --proto '=http' \
        --connect-timeout "$http_timeout" --max-time "$http_timeout" --max-filesize 65536 \
        -w '\n%{http_code}' -- "$url"
    if ((RC != 0)); then
        local why
        case $RC in
            7) why="connection refused (the agent is not listening)" ;;
            28 | 124) why="no answer within ${http_timeout}s" ;;
            *) said; why="curl exit $RC: $REPLY" ;;
        esac
        last_registration_error
        record agent_introspection fail "$url: $why$REPLY"
        return
    fi
    local code=${OUT##*$'\n'} body=${OUT%$'\n'*}
    if [[ $code != 200 ]]; then
        last_registration_error
        record agent_introspection fail "$url answered HTTP $code$REPLY"
        return
    fi
    field Cluster "$body"
    agent_cluster=$REPLY
    field ContainerInstanceArn "$body"
    local arn=$REPLY
    field Version "$body"
    local version=${REPLY:-unknown version}
    if [[ -z $arn ]]; then
        last_registration_error
        record agent_introspection fail "agent answers ($version) but reports no ContainerInstanceArn: not registered${agent_cluster:+ (cluster $agent_cluster)}$REPLY"
        return
    fi
    if [[ ! $arn =~ ^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:container-instance/[A-Za-z0-9/_-]+$ ]]; then
        one_line "$arn"
        record agent_introspection fail "agent reports an unexpected ContainerInstanceArn: ${REPLY:0:120}"
        return
    fi
    registered=true
    container_instance_arn=$arn
    local configured=${cfg_cluster##*/}
    if [[ -n $configured && -n $agent_cluster && ${agent_cluster##*/} != "$configured" ]]; then
        record agent_introspection warn "registered to cluster $agent_cluster, but $config_file says ECS_CLUSTER=$configured ($version)"
        return
    fi
    record agent_introspection pass "registered to cluster ${agent_cluster:-?} as $arn ($version)"
}

# ---------------------------------------------------------------- services

check_service() { # CHECK_NAME UNIT
    local name=$1 unit=$2
    if ! have systemctl; then
        record "$name" skipped "systemctl not found"
        return
    fi
    run "$cmd_timeout" systemctl is-active "$unit.service"
    local state=${OUT%%$'\n'*}
    if ((RC == 124)); then
        record "$name" fail "systemctl is-active $unit timed out after ${cmd_timeout}s"
        return
    fi
    if [[ -z $state ]]; then
        said
        record "$name" fail "systemctl is-active $unit failed (exit $RC): $REPLY"
        return
    fi
    case $state in
        active)
            record "$name" pass "$unit.service is active"
            ;;
        activating | reloading)
            record "$name" warn "$unit.service is $state"
            ;;
        *)
            local extra=''
            run "$cmd_timeout" systemctl show -p Result -p ExecMainStatus -p SubState "$unit.service"
            if ((RC == 0)) && [[ -n $OUT ]]; then
                one_line "$OUT"
                extra=" ($REPLY)"
            fi
            record "$name" fail "$unit.service is $state$extra; see journalctl -u $unit"
            ;;
    esac
}

# ---------------------------------------------------------------- container_run

check_container_run() {
    if ! have docker; then
        record container_run fail "docker CLI not found"
        return
    fi
    run "$cmd_timeout" docker image ls --format '{{.Repository}}:{{.Tag}}'
    if ((RC != 0)); then
        said
        record container_run fail "docker cannot list images (daemon down?): $REPLY"
        return
    fi
    local image='' agent_image='' ref
    while IFS= read -r ref; do
        case $ref in
            *'<none>'*) ;;
            amazon/amazon-ecs-pause:*) [[ -n $image ]] || image=$ref ;;
            amazon/amazon-ecs-agent:latest) agent_image=$ref ;;
            amazon/amazon-ecs-agent:*) [[ -n $agent_image ]] || agent_image=$ref ;;
        esac
    done <<<"$OUT"
    image=${image:-$agent_image}
    if [[ -z $image ]]; then
        record container_run skipped "no amazon/amazon-ecs-pause or amazon/amazon-ecs-agent image on the host (nothing is pulled)"
        return
    fi
    local name="ecs-orphan-diagnostic-$$-$RANDOM"
    run "$run_timeout" docker run -d --rm --pull never --network none \
        --label ecs-orphan-diagnostic=1 --name "$name" -- "$image"
    local rc=$RC out=$OUT err=$ERR
    run "$cmd_timeout" docker rm -f -- "$name"
    if ((rc == 0)); then
        record container_run pass "started a container from $image (--network none) and removed it"
    elif ((rc == 124)); then
        record container_run fail "docker run $image timed out after ${run_timeout}s"
    else
        OUT=$out ERR=$err
        said
        record container_run fail "docker could not start a container from $image (exit $rc): $REPLY"
    fi
}

# ---------------------------------------------------------------- agent_container

check_agent_container() {
    if ! have docker; then
        record agent_container fail "docker CLI not found"
        return
    fi
    run "$cmd_timeout" docker inspect --type container \
        --format '{{.State.Status}}|{{.State.Running}}|{{.State.ExitCode}}|{{.State.OOMKilled}}|{{.RestartCount}}|{{.State.Error}}' \
        -- "$AGENT_CONTAINER"
    if ((RC != 0)); then
        said
        if [[ $REPLY == *[Nn]'o such'* ]]; then
            record agent_container fail "no container named $AGENT_CONTAINER: ecs-init has not started the agent"
        else
            record agent_container fail "docker inspect $AGENT_CONTAINER failed (exit $RC): $REPLY"
        fi
        return
    fi
    local rest=$OUT state running exit_code oom restarts error
    state=${rest%%|*} rest=${rest#*|}
    running=${rest%%|*} rest=${rest#*|}
    exit_code=${rest%%|*} rest=${rest#*|}
    oom=${rest%%|*} rest=${rest#*|}
    restarts=${rest%%|*} rest=${rest#*|}
    error=$rest
    if [[ $running == true ]]; then
        if [[ $state == restarting ]]; then
            record agent_container warn "$AGENT_CONTAINER is restarting (restarts: $restarts)"
        else
            record agent_container pass "$AGENT_CONTAINER is running"
        fi
        return
    fi
    local d="$AGENT_CONTAINER is not running (status $state), exit code $exit_code"
    case $exit_code in
        137) d+=" (killed by SIGKILL)" ;;
        5) d+=" (terminal failure: ecs-init will not restart it)" ;;
        2) d+=" (container failure)" ;;
    esac
    if [[ $oom == true ]]; then
        d+=", OOM-killed (OOMKilled=true): the instance ran out of memory"
    fi
    if [[ -n $error ]]; then
        d+=", error: $error"
    fi
    record agent_container fail "$d"
}

# ---------------------------------------------------------------- ecs_endpoint

check_ecs_endpoint() {
    local target="$endpoint_host:$endpoint_port"
    # A TCP connect, never ICMP (security groups often drop ping while HTTPS works).
    # The host and port reach the inner shell as arguments, not as code.
    # shellcheck disable=SC2016
    run "$connect_timeout" bash -c 'exec 3<>"/dev/tcp/$1/$2"' ecs-endpoint-probe "$endpoint_host" "$endpoint_port"
    if ((RC == 0)); then
        record ecs_endpoint pass "TCP connect to $target succeeded"
        return
    fi
    local why
    if ((RC == 124)); then
        why="no TCP connection within ${connect_timeout}s (security group, NACL, route or firewall dropping it?)"
    else
        # bash says e.g. "ecs-endpoint-probe: connect: Connection refused" or
        # "HOST: Name or service not known" first, then a generic second line.
        local first=${ERR%%$'\n'*}
        first=${first#ecs-endpoint-probe: }
        one_line "${first#line 1: }"
        why=${REPLY:-exit $RC}
        case $why in
            *'not known'* | *'name resolution'* | *'No address associated'*)
                why="DNS lookup of $endpoint_host failed ($why)"
                ;;
        esac
    fi
    if [[ -n $cfg_proxy ]]; then
        record ecs_endpoint warn "cannot connect to $target directly ($why); the agent uses the proxy $cfg_proxy, not tested"
    else
        record ecs_endpoint fail "cannot connect to $target: $why"
    fi
}

# ---------------------------------------------------------------- nvidia_driver

# has_nvidia_gpu: true when a NVIDIA display/3D controller (vendor 0x10de,
# class 0x03xxxx) is on the PCI bus or the NVIDIA driver is loaded.
has_nvidia_gpu() {
    [[ -d $nvidia_proc_dir ]] && return 0
    local dev vendor class
    for dev in "$pci_dir"/*; do
        [[ -r $dev/vendor && -r $dev/class ]] || continue
        IFS= read -r vendor <"$dev/vendor" || true
        IFS= read -r class <"$dev/class" || true
        [[ $vendor == 0x10de && $class == 0x03* ]] && return 0
    done
    return 1
}

check_nvidia_driver() {
    local gpu=0 wanted=0
    has_nvidia_gpu && gpu=1
    [[ ${cfg_gpu,,} == true ]] && wanted=1
    if ((gpu == 0 && wanted == 0)); then
        record nvidia_driver skipped "no NVIDIA GPU detected and ECS_ENABLE_GPU_SUPPORT is not true"
        return
    fi
    local why="NVIDIA GPU detected"
    ((gpu == 0)) && why="ECS_ENABLE_GPU_SUPPORT=true but no NVIDIA GPU detected"
    if ! have nvidia-smi; then
        record nvidia_driver fail "$why, but nvidia-smi is not installed"
        return
    fi
    run "$cmd_timeout" nvidia-smi -L
    if ((RC != 0)); then
        said
        record nvidia_driver fail "$why, but nvidia-smi -L failed (exit $RC): $REPLY"
        return
    fi
    local count=0 l
    while IFS= read -r l; do [[ $l == GPU\ * ]] && count=$((count + 1)); done <<<"$OUT"
    if ((count == 0)); then
        record nvidia_driver fail "$why, but nvidia-smi -L lists no GPU"
    elif ((wanted == 0)); then
        record nvidia_driver warn "nvidia-smi lists $count GPU(s), but ECS_ENABLE_GPU_SUPPORT is not true: the agent will not offer them to tasks"
    else
        one_line "${OUT%%$'\n'*}"
        record nvidia_driver pass "nvidia-smi lists $count GPU(s): $REPLY"
    fi
}

# ---------------------------------------------------------------- run all

check_ecs_config # first: the other checks use ECS_CLUSTER, GPU and proxy settings
check_agent_introspection
check_service ecs_service ecs
check_service docker_service docker
check_service containerd_service containerd
check_container_run
check_agent_container
check_ecs_endpoint
check_nvidia_driver

cluster=${agent_cluster:-$cfg_cluster}

# ---------------------------------------------------------------- JSON line

json="{\"schema\":\"$SCHEMA\""
json_escape "$instance_id"
json+=",\"instance_id\":\"$REPLY\""
json_escape "$region"
json+=",\"region\":\"$REPLY\",\"registered\":$registered"
json_string_or_null "$cluster"
json+=",\"cluster\":$REPLY"
json_string_or_null "$container_instance_arn"
json+=",\"container_instance_arn\":$REPLY,\"checks\":["
failed=''
sep=''
for name in "${CHECK_NAMES[@]}"; do
    if [[ -z ${STATUS[$name]+set} ]]; then
        record "$name" fail "internal error: the check did not report"
    fi
    json_escape "${DETAIL[$name]}"
    json+="$sep{\"name\":\"$name\",\"status\":\"${STATUS[$name]}\",\"detail\":\"$REPLY\"}"
    sep=','
    if [[ ${STATUS[$name]} == fail ]]; then
        failed+="${failed:+,}\"$name\""
    fi
done
json+="],\"failed\":[$failed]}"
printf '%s\n' "$json"

# ---------------------------------------------------------------- summary

if [[ $registered == true ]]; then
    verdict="REGISTERED to cluster ${cluster:-?}"
    code=0
else
    verdict="NOT REGISTERED with ECS"
    code=8
fi
printf '\nECS orphan diagnostic for %s (%s): %s\n' "$instance_id" "$region" "$verdict"
for name in "${CHECK_NAMES[@]}"; do
    one_line "${DETAIL[$name]}"
    printable "$REPLY"
    printf '  %-9s %-19s %s\n' "[${STATUS[$name]^^}]" "$name" "$REPLY"
done

hint() { printf '  - %s\n' "$1"; }
if [[ -n $failed ]]; then
    printf 'What to look at:\n'
    for name in "${CHECK_NAMES[@]}"; do
        [[ ${STATUS[$name]} == fail ]] || continue
        case $name in
            agent_introspection) hint "agent not registered: /var/log/ecs/ecs-agent.log and ecs-init.log; https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-logs-collector.html" ;;
            ecs_service | docker_service | containerd_service) hint "${name%_service} service not active: journalctl -u ${name%_service}" ;;
            container_run) hint "docker cannot run containers: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/docker-diags.html" ;;
            agent_container) hint "agent container down: docker logs $AGENT_CONTAINER; OOM means the instance needs more memory or ECS_RESERVED_MEMORY" ;;
            ecs_endpoint) hint "no route to the ECS API: security groups, NACLs, routes/NAT or a VPC endpoint for ecs" ;;
            ecs_config) hint "fix $config_file: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-agent-config.html" ;;
            nvidia_driver) hint "GPU without a working driver: use the ECS GPU-optimized AMI" ;;
        esac
    done
fi
exit "$code"
