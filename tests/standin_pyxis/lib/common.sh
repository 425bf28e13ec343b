# shellcheck shell=bash
# Shared by the stand-ins in ../bin, for tests only (sourced by bash). The stand-ins replace what cannot exist
# on a test machine (pyxis/enroot, Docker and NVIDIA's image, GPUs, InfiniBand) so that NVIDIA's real job
# scripts run on a real Slurm cluster. Their settings come from the environment:
#   PYXIS_STANDIN_RECORD    file that every stand-in appends one JSON line per call to
#   PYXIS_STANDIN_STATE     folder for the named containers (per job and node) and the docker containers
#   PYXIS_STANDIN_REGISTRY  space-separated image references that "exist in the registry"
#   PYXIS_STANDIN_CODE      host folder that is the image's /workspace/bert (NVIDIA's Dockerfile: COPY . .)
#   PYXIS_STANDIN_PYTHON    the real interpreter (with torch and mlperf-logging) behind the python stand-in
#   PYXIS_STANDIN_MOUNTS    set inside a container: DST=SRC pairs, comma-separated (container path=host path)

STANDIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STANDIN_BIN="$STANDIN_ROOT/bin"

# A JSON string for $1 (control characters other than newline, tab and CR become '?').
standin_json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/\\r}
    s=${s//[$'\x01'-$'\x1f']/?}
    printf '"%s"' "$s"
}

# A JSON array of strings for the arguments.
standin_json_list() {
    local out="" item
    for item in "$@"; do
        out+="${out:+, }$(standin_json_str "$item")"
    done
    printf '[%s]' "$out"
}

# Append one JSON object to the record: standin_record TOOL '"key": value, ...' (the common fields are added).
standin_record() {
    [ -n "${PYXIS_STANDIN_RECORD:-}" ] || return 0
    local line
    line="{\"tool\": $(standin_json_str "$1"), \"host\": $(standin_json_str "$(hostname)"), "
    line+="\"node\": $(standin_json_str "${SLURMD_NODENAME:-}"), \"job\": $(standin_json_str "${SLURM_JOB_ID:-}"), "
    line+="\"step\": $(standin_json_str "${SLURM_STEP_ID:-}"), \"time\": $(date +%s.%N)${2:+, $2}}"
    printf '%s\n' "$line" >> "$PYXIS_STANDIN_RECORD"
}

# The first executable NAME on PATH outside the stand-ins' bin folder.
standin_real() {
    local dir
    local -a dirs
    IFS=: read -ra dirs <<< "$PATH"
    for dir in "${dirs[@]}"; do
        [ -n "$dir" ] || continue
        [ "$(cd "$dir" 2>/dev/null && pwd -P)" = "$(cd "$STANDIN_BIN" && pwd -P)" ] && continue
        if [ -f "$dir/$1" ] && [ -x "$dir/$1" ]; then
            printf '%s\n' "$dir/$1"
            return 0
        fi
    done
    return 1
}

# Is image reference $1 one that enroot/docker could get: an existing squashfs file, or a reference that
# PYXIS_STANDIN_REGISTRY lists?
standin_image_exists() {
    local ref=${1#docker://}
    case $ref in
        /* | ./* | ../* | *.sqsh | *.squashfs) [ -f "$ref" ]; return ;;
    esac
    case " ${PYXIS_STANDIN_REGISTRY:-} " in
        *" $ref "*) return 0 ;;
    esac
    return 1
}

# The host path of container path $1: the longest mount destination it lies under (PYXIS_STANDIN_MOUNTS),
# else the image's own /workspace/bert (PYXIS_STANDIN_CODE), else $1 itself.
standin_host_path() {
    local path=$1 pair dst src best_dst="" best_src=""
    local -a pairs
    IFS=, read -ra pairs <<< "${PYXIS_STANDIN_MOUNTS:-}${PYXIS_STANDIN_MOUNTS:+,}/workspace/bert=${PYXIS_STANDIN_CODE:-/workspace/bert}"
    for pair in "${pairs[@]}"; do
        dst=${pair%%=*}
        src=${pair#*=}
        [ -n "$dst" ] || continue
        case $path in
            "$dst" | "$dst"/*)
                if [ ${#dst} -gt ${#best_dst} ]; then
                    best_dst=$dst
                    best_src=$src
                fi
                ;;
        esac
    done
    if [ -n "$best_dst" ]; then
        printf '%s\n' "$best_src${path#"$best_dst"}"
    else
        printf '%s\n' "$path"
    fi
}

# An argument with its container path(s) made host paths: /abs/path and --option=/abs/path.
standin_host_arg() {
    case $1 in
        /*) standin_host_path "$1" ;;
        --*=/*) printf '%s=%s\n' "${1%%=*}" "$(standin_host_path "${1#*=}")" ;;
        *) printf '%s\n' "$1" ;;
    esac
}

# The stand-in image's own environment (what `docker exec NAME bash -c "compgen -e"` lists besides the shell's
# own), as NAME=VALUE lines; PATH puts the stand-ins first, as the image's programs would be found.
standin_image_env() {
    grep -v '^#' "$STANDIN_ROOT/image.env" | grep '='
    printf 'PATH=%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n' "$STANDIN_BIN"
    # The stand-ins' own settings travel with the image (as its /fixtures would).
    env | grep -E '^(PYXIS_STANDIN|STANDIN)_[A-Z_]*=' | grep -v '^PYXIS_STANDIN_MOUNTS='
}
